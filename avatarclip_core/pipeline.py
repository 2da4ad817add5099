"""The six stages of docs/design.md §2 as functions `run_<stage>(run, conf) -> manifest`.

Each function collects its inputs, then runs its body through `RunDir.stage` (skip when finished, resume when
interrupted, wipe when inputs changed) and writes only its own folder. Notebooks call these and show results.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from . import skeleton, stages
from .body import get_body_model, stand_pose
from .config import Config, ConfigError
from .io import atomic_save_npz, atomic_write_json
from .rundir import RunDir, run_lock
from .video import write_mp4, write_png


# ----------------------------------------------------------------------------------------------- shared pieces
from .device import resolve_device  # the one copy (device.py); the stages below call it as before


@lru_cache(maxsize=4)
def _load_encoder(model: str, pretrained: str, cache: str, device: str):
    from .guidance.encoder import encoder_name_problem
    from .guidance.factory import load_encoder as make_encoder

    problem = encoder_name_problem(model, key="run.clip_model")  # also checked by RunParams.validate
    if problem:
        raise ConfigError(problem)
    return make_encoder(model, pretrained=pretrained, cache_dir=cache or None, device=device)


def load_encoder(conf: Config):
    """The encoder named by `run.clip_model` — an `Encoder` (guidance/encoder.py), via `guidance.load_encoder` — on
    the run's device (cached per process)."""
    r = conf.run
    return _load_encoder(r.clip_model, r.clip_pretrained, r.clip_cache, str(resolve_device(r.device)))


def body_of(conf: Config):
    """The body model named by `run.body` (built once per process; SMPL files from `paths.smpl_dir`, a precomputed
    body from `run.body_file`)."""
    from .paths import smpl_dir

    return get_body_model(conf.run.body, smpl_dir=smpl_dir(conf.run.smpl_dir) if conf.run.body == "smpl" else None,
                          body_file=conf.run.body_file or None)


def stage_inputs(stage: str, conf: Config, run: RunDir | None = None) -> dict:
    """The inputs dict of `stage` (a folder name such as "03_texture"): what its result depends on — its config
    section, body, seed, the prompts it reads and, when it uses it, the CLIP model and its `clip_sections` (the stage table in
    `stages.py`); with a user input file (`Stage.input_file`) that file's sha256 instead of the upstream stages and
    prompts (`run`, when given, tells whether stage 1's body is there to retarget onto). RunDir hashes it to
    skip/resume/invalidate. Raises ConfigError on an empty prompt it needs or a bad input file."""
    spec = stages.get(stage)
    out = {spec.section: conf.section_hash(spec.section), "body": conf.run.body, "seed": conf.run.seed,
           **({"body_file": conf.run.body_file} if conf.run.body == "precomputed" else {}),
           "prompts": {p: conf.prompts.require(p) for p in spec.prompts_for(conf)}}
    if spec.uses_clip(conf):
        out["clip"] = [conf.run.clip_model, conf.run.clip_pretrained]
        out.update({section: conf.section_hash(section) for section in spec.clip_sections})
    if spec.file_given(conf):  # a user file replaces the upstream stages: its content is the input
        out.update(_file_inputs(spec, conf, run))
    return out


def _file_inputs(spec, conf, run: RunDir | None) -> dict:
    """Inputs of a stage driven by a user file (stage 5 with `motion.file`): the file's and the joint map's sha256
    and, as `upstream` (read by `RunDir`), the stage-1 body it is retargeted onto when that stage has finished."""
    import hashlib

    check_motion_file(conf)
    params = conf.params(spec.section)

    def sha(path):
        return hashlib.sha256(Path(path).expanduser().read_bytes()).hexdigest() if path else ""

    shaped = run is not None and run.manifest("01_shape") is not None
    return {"file_sha256": sha(params.file), "joint_map_sha256": sha(params.joint_map),
            "upstream": ["01_shape"] if shaped else []}


def check_motion_file(conf: Config) -> None:
    """When `motion.file` is set, check before any long work that it exists, parses as BVH and maps onto the
    22-joint skeleton (`bvh_retarget.read_bvh` + `map_joints`, no retarget). Raises ConfigError naming the file,
    what is wrong and the fix (for an unmappable skeleton: the joints not found and the joint map format)."""
    params = conf.params("motion")
    if not params.file:
        return
    path = Path(params.file).expanduser()
    if not path.is_file():
        raise ConfigError(f"motion.file = {params.file!r}: no such file; give an existing .bvh file "
                          f"(`--motion-file my.bvh`, notebook setting motion_file), or '' to generate the motion")
    from .motion.bvh_mapping import SkeletonMapError
    from .motion.bvh_retarget import map_joints, read_bvh

    try:
        map_joints(read_bvh(path), params.joint_map or None)
    except SkeletonMapError as err:
        raise ConfigError(f"motion.file = {params.file!r}: {err}") from None
    except ValueError as err:
        raise ConfigError(f"motion.file = {params.file!r}: {err}; give a valid BVH file") from None


def run_settings(conf: Config) -> dict:
    """What a stage's manifest records of the run's settings (not hashed): preset, the three prompts, the run
    section (body, device, seed, CLIP model)."""
    import dataclasses

    return {"preset": conf.preset, "prompts": dataclasses.asdict(conf.prompts), "run": dataclasses.asdict(conf.run)}


def load_shape(run: RunDir) -> torch.Tensor:
    """Stage-1 shape parameters (S,) from 01_shape/shape.json."""
    data = json.loads((run.path("01_shape") / "shape.json").read_text())
    return torch.tensor(data["shape"], dtype=torch.float32)


def stand_mesh(conf: Config, run: RunDir):
    """The stage-1 body in the stand pose: (vertices (V, 3), faces (F, 3)) in the avatar frame."""
    body = body_of(conf)
    mesh = body(shape=load_shape(run), pose=stand_pose())
    return mesh.vertices[0], mesh.faces


def save_mesh_ply(path, vertices, faces, colors=None) -> Path:
    """Binary PLY of vertices (V, 3), faces (F, 3) and optional colors (V, 3|4) uint8 or float [0, 1], written
    atomically by `neus.save_ply`."""
    import trimesh

    from .neus.mesh import save_ply
    from .video import to_uint8

    mesh = trimesh.Trimesh(np.asarray(vertices.detach().cpu() if hasattr(vertices, "detach") else vertices),
                           np.asarray(faces.cpu() if hasattr(faces, "cpu") else faces), process=False)
    if colors is not None:
        mesh.visual.vertex_colors = to_uint8(colors)
    return save_ply(mesh, path)


# ----------------------------------------------------------------------------------------------- stage 1
def run_coarse_shape(run: RunDir, conf: Config, progress: bool = True, on_progress=None) -> dict:
    """Stage 1: shape prompt → `01_shape/shape.json`, `body.ply` (stand pose), `preview.png`."""
    from .shape import search_shape

    inputs = stage_inputs("01_shape", conf)

    def body_fn(folder: Path) -> dict:
        device = resolve_device(conf.run.device)
        body = body_of(conf)
        result = search_shape(load_encoder(conf), body, conf.prompts.shape, conf.params("shape"),
                              seed=conf.run.seed, device=device, progress=progress)
        shape = result.shape
        atomic_write_json(folder / "shape.json", {
            "body_model": body.name, "shape_names": list(body.shape_names), "shape": shape.tolist(),
            "score": float(result.scores[result.best]), "prompt": conf.prompts.shape,
            "top5": [{"shape": result.candidates[i].tolist(), "score": float(result.scores[i])}
                     for i in result.scores.argsort(descending=True)[:5].tolist()],
        })
        mesh = body(shape=shape, pose=stand_pose())
        save_mesh_ply(folder / "body.ply", mesh.vertices[0], mesh.faces)
        write_png(folder / "preview.png", torch.cat([result.neutral_image, result.best_image], dim=1))
        v, _ = body.rest(shape[None])
        return {"height_m": float(v[0, :, 1].max() - v[0, :, 1].min()), "score": float(result.scores[result.best]),
                "num_candidates": len(result.candidates)}

    return run.stage("01_shape", inputs, body_fn, seed=conf.run.seed, settings=run_settings(conf))


# ----------------------------------------------------------------------------------------------- stage 2
def run_neus_init(run: RunDir, conf: Config, progress: bool = True, on_progress=None) -> dict:
    """Stage 2: renders of the stand-posed coarse body from a camera ring, NeuS fitted to them →
    `02_neus_init/views/` (PNG + cameras.json), `ckpt.pt`, `preview.png`. `on_progress(step, losses, image)` is
    called as `fit_neus_init` documents (live notebook previews)."""
    from . import neus

    params = conf.params("neus_init")
    inputs = stage_inputs("02_neus_init", conf)

    def body_fn(folder: Path) -> dict:
        device = resolve_device(conf.run.device)
        verts, faces = stand_mesh(conf, run)
        images, masks, cams = neus.body_views(verts.to(device), faces.to(device), params)
        views = folder / "views"
        if not (views / "cameras.json").is_file():
            for i, img in enumerate(images):
                write_png(views / f"{i:04d}.png", img)
            atomic_write_json(views / "cameras.json", {
                "fov_deg": cams.fov_deg, "image_size": params.views.image_size, "convention": "OpenGL c2w, metres",
                "frames": [{"file": f"{i:04d}.png", "c2w": cams.c2w[i].cpu().tolist()} for i in range(len(cams))]})
        model = neus.fit_neus_init(images, masks, cams, params, folder, seed=conf.run.seed, progress=progress,
                                   body=(verts.to(device), faces.to(device)), on_progress=on_progress)
        figures = evaluate_views(model, images, masks, cams, params)
        figures["chamfer_mm"] = chamfer_to_body(model, verts, faces)
        front = _front_index(cams)
        pred = neus_render(model, cams[front], params)
        write_png(folder / "preview.png", torch.cat([images[front].cpu(), pred["rgb"][0].detach().cpu()], dim=1))
        return figures

    return run.stage("02_neus_init", inputs, body_fn, seed=conf.run.seed, settings=run_settings(conf))


def _front_index(cams) -> int:
    """Index of the camera closest to the front view (on +z, slightly above)."""
    eye = torch.nn.functional.normalize(cams.eye.cpu(), dim=-1)
    return int((eye @ torch.tensor([0.0, 0.34, 0.94])).argmax())


@torch.no_grad()
def evaluate_views(model, images, masks, cams, params, max_views: int = 6) -> dict:
    """Silhouette IoU and masked PSNR of NeuS renders against up to `max_views` evenly spread training views."""
    idx = torch.linspace(0, len(cams) - 1, min(max_views, len(cams))).round().long().tolist()
    ious, psnrs = [], []
    for i in idx:
        out = neus_render(model, cams[i], params)
        pred_mask = out["alpha"][0].cpu() > 0.5
        gt_mask = masks[i].cpu() > 0.5
        ious.append(float((pred_mask & gt_mask).sum() / (pred_mask | gt_mask).sum().clamp_min(1)))
        mse = ((out["rgb"][0].cpu() - images[i].cpu()) ** 2)[gt_mask].mean()
        psnrs.append(float(-10 * torch.log10(mse.clamp_min(1e-10))))
    return {"silhouette_iou": round(sum(ious) / len(ious), 4), "masked_psnr_db": round(sum(psnrs) / len(psnrs), 2),
            "views_evaluated": len(idx)}


@torch.no_grad()
def chamfer_to_body(model, vertices, faces, resolution: int = 128, samples: int = 20000) -> float:
    """Symmetric Chamfer distance (mean of both directions, mm) between the NeuS zero level set (marching cubes
    at `resolution`³) and the body mesh, from `samples` surface points each."""
    import trimesh
    from scipy.spatial import cKDTree

    from . import neus

    mesh = neus.extract_mesh(model, resolution=resolution, head="base", with_colors=False)
    if len(mesh.faces) == 0:
        return float("inf")
    body = trimesh.Trimesh(vertices.detach().cpu().numpy(), faces.cpu().numpy(), process=False)
    a = trimesh.sample.sample_surface(mesh, samples, seed=0)[0]
    b = trimesh.sample.sample_surface(body, samples, seed=0)[0]
    d_ab = cKDTree(b).query(a)[0].mean()
    d_ba = cKDTree(a).query(b)[0].mean()
    return round(float(500.0 * (d_ab + d_ba)), 2)


def neus_render(model, cam, params):
    from . import neus

    return neus.render_views(model, cam, params.views.image_size, params.views.image_size, chunk=params.chunk)


# ----------------------------------------------------------------------------------------------- stage 3
def run_texture(run: RunDir, conf: Config, progress: bool = True, on_progress=None) -> dict:
    """Stage 3: CLIP sculpting and texturing → `03_texture/ckpt_XXXXXX.pt`, `progress/XXXXXX.png`,
    `progress.mp4`, `avatar.ply` (vertex colours). `on_progress(step, losses, image)` is called every
    `texture.schedule.val_every` steps (see `train_texture`)."""
    from . import neus
    from .guidance import prompts

    params = conf.params("texture")
    inputs = stage_inputs("03_texture", conf)

    def body_fn(folder: Path) -> dict:
        device = resolve_device(conf.run.device)
        verts, faces = stand_mesh(conf, run)
        model = neus.load_neus(run.path("02_neus_init") / "ckpt.pt", device=device)
        texts = prompts.appearance_prompts(conf.prompts.appearance)
        body = body_of(conf)
        head = body(shape=load_shape(run), pose=stand_pose()).joints[0, skeleton.JOINT_INDEX["head"]]
        encoder = load_encoder(conf)
        model = neus.train_texture(model, verts.to(device), faces.to(device), encoder, texts, params,
                                   folder, seed=conf.run.seed, progress=progress, head_joint=head.to(device),
                                   on_progress=on_progress)
        frames = sorted((folder / "progress").glob("*.png"))
        if frames:
            import imageio.v3 as iio

            write_mp4(folder / "progress.mp4", np.stack([iio.imread(f)[..., :3] for f in frames]), fps=5)
        mesh = neus.extract_mesh(model, resolution=params.mesh_resolution, head="texture")
        neus.save_ply(mesh, folder / "avatar.ply")
        colors = np.asarray(mesh.visual.vertex_colors)[:, :3] / 255.0
        return {"vertices": int(len(mesh.vertices)), "faces": int(len(mesh.faces)),
                "mean_vertex_color": colors.mean(0).round(4).tolist(),
                "guidance_encoder": str(getattr(encoder, "name", ""))}  # `avatarclip eval` refuses to reuse it

    return run.stage("03_texture", inputs, body_fn, seed=conf.run.seed, settings=run_settings(conf))


# ----------------------------------------------------------------------------------------------- stage 4
def run_poses(run: RunDir, conf: Config, progress: bool = True, on_progress=None) -> dict:
    """Stage 4: motion prompt → `04_poses/candidates.npz` ((K, 22, 3) poses, scores) and `candidate_XX.png`."""
    from . import motion

    params = conf.params("poses")
    inputs = stage_inputs("04_poses", conf)

    def body_fn(folder: Path) -> dict:
        body = body_of(conf)
        poses, scores, indices = motion.generate_poses(
            load_encoder(conf), conf.prompts.motion, body, params, progress=progress,
            generator=torch.Generator().manual_seed(conf.run.seed))
        atomic_save_npz(folder / "candidates.npz", poses=poses.cpu().numpy().astype(np.float32),
                        scores=scores.cpu().numpy().astype(np.float32), library_index=np.asarray(indices))
        images = motion.render_pose_images(body, poses, image_size=256)
        for i, img in enumerate(images):
            write_png(folder / f"candidate_{i:02d}.png", img)
        return {"num_candidates": int(len(poses)), "scores": [round(float(s), 5) for s in scores]}

    return run.stage("04_poses", inputs, body_fn, seed=conf.run.seed, settings=run_settings(conf))


# ----------------------------------------------------------------------------------------------- stage 5
def load_candidates(run: RunDir) -> torch.Tensor:
    data = np.load(run.path("04_poses") / "candidates.npz")
    return torch.as_tensor(data["poses"])


def run_motion(run: RunDir, conf: Config, progress: bool = True, on_progress=None) -> dict:
    """Stage 5: candidates → `05_motion/motion.npz` (poses (T, 22, 3), root_translation (T, 3), fps, foot_contact
    (T, 4) bool in `FOOT_JOINTS` order), `motion.bvh`, `preview.mp4` (the plain body moving on the floor).

    With `motion.file` the user's BVH clip is retargeted onto the run's body instead and kept as captured.
    Every generator's output goes through the root-motion and foot-contact post-process (`motion.apply_contact`,
    `motion.contact` settings) on the default body's skeleton; the manifest records foot skating (m/s), float
    and penetration (cm) and jitter (m/s²) before and after it (`motion.metrics.motion_metrics`)."""
    from . import motion
    from .motion.metrics import motion_metrics
    from .motion.priors import FOOT_JOINTS

    params = conf.params("motion")
    inputs = stage_inputs("05_motion", conf, run)

    def body_fn(folder: Path) -> dict:
        body = body_of(conf)
        figures = {}
        if params.file:  # the user's clip, retargeted onto the run's body (stage 1's shape when it has run)
            shape = load_shape(run) if "01_shape" in inputs.get("upstream", []) else body.default_shape()
            _, rest_joints = body.rest(shape[None])
            clip = motion.retarget_bvh(params.file, rest_joints[0], fps=params.file_fps or None,
                                       target_fps=params.fps, joint_map=params.joint_map or None)
            poses, root = clip.poses, clip.root_translation
            err = motion.direction_errors(clip, rest_joints[0]).rad2deg()
            figures = {"source": Path(params.file).name, "skeleton": clip.skeleton_type, "unit": clip.mapping.unit,
                       "direction_error_deg": round(float(err.mean()), 2)}
        else:
            poses, root = motion.generate_motion(
                load_candidates(run), params, encoder=load_encoder(conf) if params.generator == "optimize" else None,
                text=conf.prompts.motion, body=body, progress=progress,
                generator=torch.Generator().manual_seed(conf.run.seed), pose_params=conf.params("poses"))
            _, rest_joints = body.rest(body.default_shape()[None])
        rest = rest_joints[0]
        before = motion_metrics(poses, root, rest, params.fps)
        # a user's clip is captured motion: kept as it is (its own contacts), only generated motion is post-processed
        contact_params = params.contact.replace({"enabled": False}) if params.file else params.contact
        result = motion.apply_contact(poses, root, rest, params.fps, contact_params)
        poses, root = result.poses, result.root_translation
        after = motion_metrics(poses, root, rest, params.fps)
        atomic_save_npz(folder / "motion.npz", poses=poses.numpy().astype(np.float32),
                        root_translation=root.numpy().astype(np.float32), fps=np.float32(params.fps),
                        joint_names=np.array(skeleton.JOINT_NAMES), foot_contact=result.contact.numpy())
        motion.write_bvh(folder / "motion.bvh", poses, root, params.fps, rest)
        frames = render_body_motion(body, poses, root, params.fps, progress=progress)
        write_mp4(folder / "preview.mp4", frames, fps=params.fps)
        contact = {"enabled": contact_params.enabled, "root_from_contact": result.root_from_contact,
                   "contact_fraction": {skeleton.JOINT_NAMES[j]: round(float(f), 3)
                                        for j, f in zip(FOOT_JOINTS, result.contact.float().mean(0))},
                   "before": {k: round(v, 4) for k, v in before.items()},
                   "after": {k: round(v, 4) for k, v in after.items()}}
        return {"frames": int(len(poses)), "fps": float(params.fps), "contact": contact, **figures}

    return run.stage("05_motion", inputs, body_fn, seed=conf.run.seed, settings=run_settings(conf))


def render_body_motion(body, poses, root, fps: float, size: int = 256, progress: bool = True) -> np.ndarray:
    """Frames (T, size, size, 3) uint8 of the plain grey body (default shape) performing the motion, on the
    floor with its shadow (`VideoParams().floor`)."""
    from .animate import RiggedAvatar, VideoParams, render_motion_frames

    rest_v, rest_j = body.rest(body.default_shape()[None])
    grey = torch.full((rest_v.shape[1], 4), 170, dtype=torch.uint8)
    grey[:, 3] = 255
    rigged = RiggedAvatar(rest_v[0], body.faces, grey, body.skin_weights, rest_j[0])
    params = VideoParams(image_size=size, gif=False)
    return render_motion_frames(rigged, poses, root, fps, params, progress=progress)


# ----------------------------------------------------------------------------------------------- stage 6
def load_motion(run: RunDir) -> tuple[torch.Tensor, torch.Tensor, float]:
    data = np.load(run.path("05_motion") / "motion.npz")
    return torch.as_tensor(data["poses"]), torch.as_tensor(data["root_translation"]), float(data["fps"])


def run_video(run: RunDir, conf: Config, progress: bool = True, on_progress=None) -> dict:
    """Stage 6: rig the stage-3 avatar with the stage-1 body, clean it, bake the stage-3 NeuS texture head into a
    UV texture, drive it with the stage-5 motion → `06_video/avatar.glb` (skinned, animated, textured),
    `avatar.obj/.mtl/.png` and `avatar.mp4` (+ `avatar.gif`) (docs/method.md, Avatar animation)."""
    import trimesh

    from . import animate
    from .neus.init import load_neus
    from .neus.training import Checkpoints

    params = conf.params("video")
    inputs = stage_inputs("06_video", conf)

    def body_fn(folder: Path) -> dict:
        body = body_of(conf)
        mesh = trimesh.load(run.path("03_texture") / "avatar.ply", process=False)
        poses, root, fps = load_motion(run)
        device = resolve_device(conf.run.device)
        ckpt = Checkpoints(run.path("03_texture"), numbered=True).latest() if params.texture_size else None
        neus_model = load_neus(ckpt, device) if ckpt is not None else None  # its texture head → the UV texture
        _, figures = animate.animate_avatar(folder, mesh, body, load_shape(run), poses, root, fps, params,
                                            device=device, progress=progress, neus_model=neus_model)
        return figures

    return run.stage("06_video", inputs, body_fn, seed=conf.run.seed, settings=run_settings(conf))


def prepare_run(root: str | Path, conf: Config) -> RunDir:
    """Create `root`, write the resolved `run.conf` (under the run lock: raises RunLocked while another process
    uses the run), and return the RunDir."""
    run = RunDir(Path(root))
    with run_lock(run.root):
        run.write_run_conf(conf.to_hocon())
    return run
