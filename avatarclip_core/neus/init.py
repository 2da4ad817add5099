"""Stage 2 — NeuS initialisation on the coarse body (docs/method.md §1.4, §2.3).

The SDF/colour fields are fitted to grey renders of the stand-posed body (white albedo, ambient 0.5 +
Lambert light from +y, black background — `render_mesh`'s default) from AvatarCLIP's 108-view camera set:
18 azimuths × 6 elevations (−60 … 40°), distance 2.2 m, FoV 60°, azimuth-major order so that view 58 is
the front view 20° above (docs/method.md §1.4; our azimuth 0 = front, theirs 180 — the set is the same).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..cameras import Cameras, orbit_cameras
from ..video import write_png
from .fields import NeusModel
from .params import NeusInitParams, ScheduleParams, ViewParams
from .renderer import render_rays, render_views
from .training import Checkpoints, train


def render_body(vertices: torch.Tensor, faces: torch.Tensor, cameras: Cameras, size: int):
    """Ground-truth grey renders and silhouettes of the body (docs/method.md §1.4, §3.2).

    Args: vertices (V, 3) avatar frame; faces (F, 3) long; cameras (B); size: image side in px.
    Returns: rgb (B, size, size, 3) in [0, 1] (white albedo, colour·(0.5 + 0.5·max(0, n·ŷ)), black bg),
        mask (B, size, size) float {0, 1} (coverage > 0.5). No gradient.
    """
    from ..render import render_mesh

    with torch.no_grad():
        out = render_mesh(vertices, faces, cameras, size)
    return out.rgb.clamp(0, 1), (out.alpha > 0.5).float()


def body_view_cameras(views: ViewParams, device="cpu") -> Cameras:
    """The init camera set: len(elevations) × (360 / azimuth_step) views, azimuth-major, first azimuth 180°
    (the back, like AvatarCLIP's azimuth 0), at `views.distance` metres with FoV `views.fov_deg`."""
    az = [(180.0 + a) % 360.0 for a in np.arange(0.0, 360.0, views.azimuth_step_deg)]
    return orbit_cameras(views.distance, views.elevations_deg, az, views.fov_deg).to(device)


def body_views(vertices: torch.Tensor, faces: torch.Tensor, params: NeusInitParams):
    """Render the init training set of `params.views`: returns images (N, S, S, 3), masks (N, S, S), cameras (N),
    S = views.image_size. Raises ConfigError on invalid params."""
    views = params.validate().views
    cams = body_view_cameras(views, vertices.device)
    images, masks = [], []
    for i in range(0, len(cams), 12):
        rgb, m = render_body(vertices, faces, cams[i:i + 12], views.image_size)
        images.append(rgb)
        masks.append(m)
    return torch.cat(images), torch.cat(masks), cams


def body_sdf_bank(vertices: torch.Tensor, faces: torch.Tensor, n: int, near_std: float = 0.03, seed: int = 0,
                  n_surface: int | None = None, k: int = 8) -> dict:
    """Fixed bank of SDF supervision samples of a closed body mesh (docs/method.md, Fast path; init_mode "sdf").

    Three equal parts of n // 3 points (the last takes the remainder): `surface` points on the mesh (SDF 0,
    with their face normal), `near` points = surface points + N(0, σ²) offsets (half with σ = near_std, half
    with near_std / 5), `uniform` points in the unit ball. The signed distance of the off-surface points is
    the distance to the nearest of `n_surface` (default max(n, 300000); ≈ 2 mm spacing on a body) dense
    area-uniform surface samples (scipy cKDTree; error ≲ 1 mm near the surface), signed by the majority vote of
    the k nearest samples' outward normals (sign of (x − p)·n). Exact winding numbers would be more robust in
    narrow concavities but trimesh's `contains` needs embree/rtree for speed; the vote is right everywhere
    except within ~1 sample spacing of thin features.

    Args: vertices (V, 3) float avatar frame (metres); faces (F, 3) long, outward (counter-clockwise) winding;
        n: bank size; near_std: metres; seed: numpy RNG seed (the bank is deterministic).
    Returns: dict of tensors on vertices' device: points (n, 3) float32, sdf (n,) float32 metres (negative
        inside), normals (n, 3) (unit; meaningful for the surface part), parts (3,) long = part sizes
        [surface, near, uniform], in that order.
    Raises: ValueError for an empty mesh or n < 3.
    """
    import trimesh
    from scipy.spatial import cKDTree

    if faces.ndim != 2 or faces.shape[-1] != 3 or len(faces) == 0 or vertices.ndim != 2 or vertices.shape[-1] != 3:
        raise ValueError(f"body must be vertices (V, 3) and faces (F ≥ 1, 3), got {tuple(vertices.shape)}, "
                         f"{tuple(faces.shape)}")
    if n < 3:
        raise ValueError(f"n = {n} is invalid: use a bank of at least 3 samples")
    mesh = trimesh.Trimesh(vertices.detach().cpu().double().numpy(), faces.cpu().numpy(), process=False)
    rng = np.random.default_rng(seed)
    n_dense = max(n, 300000) if n_surface is None else n_surface
    dense, fid = trimesh.sample.sample_surface(mesh, n_dense, seed=seed)
    dense_n = np.asarray(mesh.face_normals)[fid]
    tree = cKDTree(dense)
    m = n // 3
    sel = rng.choice(n_dense, 2 * m, replace=n_dense < 2 * m)
    surf, surf_n = dense[sel[:m]], dense_n[sel[:m]]
    std = np.where(np.arange(m) < m // 2, near_std, near_std / 5.0)[:, None]
    near = dense[sel[m:]] + rng.normal(size=(m, 3)) * std
    u = rng.normal(size=(n - 2 * m, 3))
    u = u / np.linalg.norm(u, axis=1, keepdims=True) * rng.random((n - 2 * m, 1)) ** (1 / 3)
    off = np.concatenate([near, u])
    dist, nn = tree.query(off, k=k)
    vote = np.sign(((off[:, None] - dense[nn]) * dense_n[nn]).sum(-1)).sum(-1)
    sdf_off = dist[:, 0] * np.where(vote >= 0, 1.0, -1.0)
    dev = vertices.device
    f32 = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=dev)  # noqa: E731
    return {"points": f32(np.concatenate([surf, off])), "sdf": f32(np.concatenate([np.zeros(m), sdf_off])),
            "normals": f32(np.concatenate([surf_n, dense_n[nn[:, 0]]])),
            "parts": torch.tensor([m, m, n - 2 * m], dtype=torch.long)}


def fit_body_sdf(model: NeusModel, bank: dict, params: NeusInitParams, seed: int = 0, progress: bool = True,
                 on_progress=None) -> float:
    """SDF regression phase of sdf_init.mode "sdf" (docs/method.md, Fast path): `sdf_init.steps` Adam steps on the
    SDF network only, each on `sdf_init.batch` points drawn equally from the bank's surface / near / uniform
    parts (`body_sdf_bank`). Loss = L1(f, sdf) + loss.igr_weight·eikonal (|∇f| − 1)² (all points)
    + sdf_init.normal_weight·(1 − cos(∇f, n)) (surface points) — IGR/SIREN-style direct SDF supervision (Gropp et
    al. 2020) replacing the reference's slow volume-rendering fit of the known coarse body. LR
    `sdf_init.learning_rate` (None → the schedule's), cosine-decayed to learning_rate_alpha, no warm-up.
    Minibatches come from a generator seeded by `seed` + 1. Returns the final mean |f − sdf| (metres).
    `on_progress(step, {"sdf_l1": …, "eikonal": …}, None)` is called about 25 times over the phase.
    """
    si, sdf_net = params.sdf_init, model.sdf
    lr0 = si.learning_rate or params.schedule.learning_rate
    opt = torch.optim.Adam(sdf_net.parameters(), lr=lr0)
    g = torch.Generator().manual_seed(seed + 1)
    parts = bank["parts"].tolist()
    starts = [0, parts[0], parts[0] + parts[1]]
    per = [si.batch // 3, si.batch // 3, si.batch - 2 * (si.batch // 3)]

    def step_fn(step: int) -> dict:
        idx = torch.cat([torch.randint(0, parts[i], (per[i],), generator=g) + starts[i] for i in range(3)])
        idx = idx.to(bank["points"].device)
        x, target = bank["points"][idx], bank["sdf"][idx]
        f, _, grad = sdf_net.sdf_and_gradient(x, create_graph=True)
        l1 = (f[:, 0] - target).abs().mean()
        eik = ((grad.norm(dim=-1) - 1.0) ** 2).mean()
        ns = per[0]
        normal = (1.0 - F.cosine_similarity(grad[:ns], bank["normals"][idx[:ns]], dim=-1)).mean()
        loss = l1 + params.loss.igr_weight * eik + si.normal_weight * normal
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"sdf_l1": float(l1.detach()), "eikonal": float(eik.detach())}

    schedule = ScheduleParams(iterations=si.steps, end_iter=si.steps, warm_up_end=0, learning_rate=lr0,
                              learning_rate_alpha=params.schedule.learning_rate_alpha)
    last = {"sdf_l1": float("nan")}
    train(lambda step: last.update(step_fn(step)) or last, opt, schedule, on_progress=on_progress,
          report_every=max(1, si.steps // 25), desc="NeuS init (SDF)", progress=progress, postfix=())
    return last["sdf_l1"]


def fit_neus_init(images: torch.Tensor, masks: torch.Tensor, cameras: Cameras, params: NeusInitParams,
                  out_dir, seed: int = 0, progress: bool = True, body=None, on_progress=None) -> NeusModel:
    """Fit NeuS (head 1 only) to multi-view renders of the body (docs/method.md §2.3).

    Each step: one view from a random permutation of the N views, `batch_size` uniformly random pixels
    (background included); loss = L1 colour Σ|c − gt|·mask / (#mask + 1e-5) + igr_weight·eikonal
    + mask_weight·BCE(clip(Σw, 1e-3, 1 − 1e-3), mask). Adam (0.9, 0.999, 1e-8) on all parameters with
    warm-up + cosine LR (`training.train`). `out_dir/ckpt.pt` (model, optimizer, step, RNG, sdf_init mode,
    sdf_step) is written atomically every `schedule.save_every` steps and at the end; an existing one is resumed
    (a finished one returns at once; a resumed run skips the sphere init, whose result the checkpoint overwrites
    anyway; so does sdf_init.mode "sdf").
    Previews `out_dir/validations/{step:06d}.png` (prediction above GT, view 0) every `schedule.val_every` steps.

    `params.sdf_init.mode == "sdf"` (docs/method.md, Fast path) first runs `fit_body_sdf` on a `body_sdf_bank` of
    the body mesh (`sdf_init.steps` steps, checkpointed once finished with sdf_step = steps so a resume never
    repeats it), sets the variance to `sdf_init.variance_init` if given, then runs the schedule's
    volume-rendering steps above on colour head 1 and the variance only when `sdf_init.freeze_geometry`
    (default: the regressed SDF is already the body, and Adam's first steps on the render loss — with a still
    random colour head — would pull it away; no double backward is needed then, so these steps are cheap), or
    on all parameters otherwise.

    Args:
        images: (N, H, W, 3) float [0, 1]; masks: (N, H, W) float/bool silhouettes (binarised at 0.5);
        cameras: N cameras (avatar frame); params: NeusInitParams; out_dir: output folder; seed: RNG seed;
        body: (vertices (V, 3), faces (F, 3) long) of the body the images show — required by mode "sdf",
            ignored by "render".
        on_progress: optional callback(step, losses: dict[str, float], image (2H, W, 3) tensor | None): every
            `val_every` render steps with the validation image (prediction above GT), about 25 times per phase
            with the losses alone (the SDF phase's steps are counted separately).
    Returns: the trained NeusModel (on images' device, eval mode).
    Raises: ValueError on shape mismatches, invalid params, or mode "sdf" without `body` (before any training).
    """
    params.validate()
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (N, H, W, 3), got {tuple(images.shape)}")
    N, H, W, _ = images.shape
    if masks.shape != (N, H, W):
        raise ValueError(f"masks must be (N, H, W) = {(N, H, W)}, got {tuple(masks.shape)}")
    if len(cameras) != N:
        raise ValueError(f"need one camera per image: {len(cameras)} cameras for {N} images")
    mode, si, sch = params.sdf_init.mode, params.sdf_init, params.schedule
    if mode == "sdf" and body is None:
        raise ValueError("sdf_init.mode = 'sdf' needs the body mesh: call fit_neus_init(..., body=(vertices, faces)), "
                         "or set neus_init.sdf_init.mode = render")
    dev = images.device
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cameras = cameras.to(dev)
    masks = (masks.float() > 0.5).float()

    checkpoints = Checkpoints(out_dir, numbered=False)
    ck = checkpoints.load(dev)
    torch.manual_seed(seed)
    # The sphere fit is skipped on resume (the checkpoint overwrites it) and in mode "sdf" (the SDF phase
    # regresses the body directly; IDR's geometric init is start enough).
    fresh = ck is None and mode == "render"
    model = (NeusModel.from_params(params, seed=seed) if fresh else NeusModel(params)).to(dev)
    sdf_step, ran_sdf = 0, False
    if ck is not None:
        model.load_state_dict(ck["model"]["state_dict"])
        sdf_step = ck.get("sdf_step", 0)
    if mode == "sdf" and sdf_step < si.steps:
        verts, faces = body
        bank = body_sdf_bank(verts.to(dev), faces.to(dev), si.bank_size, si.near_std, seed)
        model.train()
        fit_body_sdf(model, bank, params, seed, progress, on_progress)
        if si.variance_init is not None:
            with torch.no_grad():
                model.variance.variance.fill_(si.variance_init)
        sdf_step, ck, ran_sdf = si.steps, None, True  # render phase starts fresh (step 0, new optimizer)
    frozen = mode == "sdf" and si.freeze_geometry
    trainable = [p for n, p in model.named_parameters() if not (frozen and n.startswith("sdf."))]
    opt = torch.optim.Adam(trainable, lr=sch.learning_rate, betas=(0.9, 0.999), eps=1e-8)
    gen = torch.Generator().manual_seed(seed)
    state = {"step": 0, "perm": torch.randperm(N, generator=gen)}
    if ck is not None:
        opt.load_state_dict(ck["optimizer"])
        state = {"step": ck["step"], "perm": ck["perm"]}
        gen.set_state(ck["rng"])

    def save(step: int) -> None:
        checkpoints.save({"model": model.to_dict(), "optimizer": opt.state_dict(), "step": step,
                          "perm": state["perm"], "rng": gen.get_state(), "seed": seed, "init_mode": mode,
                          "sdf_step": sdf_step}, step)

    if ran_sdf:
        save(0)  # the SDF phase is done: a resume must not repeat it

    def step_fn(step: int) -> dict:
        if step % N == 0 and step > 0:
            state["perm"] = torch.randperm(N, generator=gen)
        idx = int(state["perm"][step % N])
        px = torch.randint(0, W, (params.batch_size,), generator=gen).to(dev)
        py = torch.randint(0, H, (params.batch_size,), generator=gen).to(dev)
        uv = torch.stack([px + 0.5, py + 0.5], -1).float()[None]
        o, d = cameras[idx].rays(H, W, pixels=uv)
        out = render_rays(model, o[0], d[0], generator=gen, create_graph=not frozen)
        gt, m = images[idx, py, px], masks[idx, py, px][:, None]
        color_loss = ((out["color"] - gt).abs() * m).sum() / (m.sum() + 1e-5)
        mask_loss = F.binary_cross_entropy(out["weights_sum"].clip(1e-3, 1 - 1e-3), m)
        loss = color_loss + params.loss.igr_weight * out["eikonal"] + params.loss.mask_weight * mask_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": float(loss.detach()), "color": float(color_loss.detach()), "mask": float(mask_loss.detach()),
                "inv_s": float(out["inv_s"].detach())}

    def validate(step: int) -> torch.Tensor:
        with torch.no_grad():
            pred = render_views(model, cameras[0], H, W, chunk=params.chunk)["rgb"][0]
        image = torch.cat([pred, images[0]], 0)
        write_png(out_dir / "validations" / f"{step:06d}.png", image)
        return image

    model.train()
    train(step_fn, opt, sch, state["step"], save=save, validate=validate, on_progress=on_progress,
          report_every=max(1, sch.iterations // 25), desc="NeuS init", progress=progress,
          postfix=("loss", "inv_s"), postfix_every=100)
    model.eval()
    return model


def load_neus(path, device="cpu") -> NeusModel:
    """Load a NeusModel from a stage-2 `ckpt.pt` or a stage-3 `ckpt_XXXXXX.pt` (key 'model')."""
    ck = torch.load(path, map_location=device, weights_only=False)
    return NeusModel.from_dict(ck["model"] if "model" in ck else ck, device)
