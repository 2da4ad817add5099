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
from tqdm.auto import tqdm

from ..cameras import Cameras, orbit_cameras
from ..io import atomic_save_torch
from ..video import write_png
from .fields import NeusModel
from .params import NeusInitParams
from .renderer import render_rays, render_views
from .schedule import lr_factor, set_lr


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


def body_view_cameras(params: NeusInitParams, device="cpu") -> Cameras:
    """The init camera set: len(elevations) × (360 / azimuth_step) views, azimuth-major, first azimuth 180°
    (the back, like AvatarCLIP's azimuth 0), distance params.view_distance, FoV params.fov_deg."""
    az = [(180.0 + a) % 360.0 for a in np.arange(0.0, 360.0, params.view_azimuth_step_deg)]
    return orbit_cameras(params.view_distance, params.view_elevations_deg, az, params.fov_deg).to(device)


def body_views(vertices: torch.Tensor, faces: torch.Tensor, params: NeusInitParams):
    """Render the init training set: returns images (N, S, S, 3), masks (N, S, S), cameras (N), S = image_size."""
    params.validate()
    cams = body_view_cameras(params, vertices.device)
    images, masks = [], []
    for i in range(0, len(cams), 12):
        rgb, m = render_body(vertices, faces, cams[i:i + 12], params.image_size)
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
    """SDF regression phase of init_mode "sdf" (docs/method.md, Fast path): `params.sdf_steps` Adam steps on the SDF
    network only, each on `params.sdf_batch` points drawn equally from the bank's surface / near / uniform
    parts (`body_sdf_bank`). Loss = L1(f, sdf) + igr_weight·eikonal (|∇f| − 1)² (all points)
    + sdf_normal_weight·(1 − cos(∇f, n)) (surface points) — IGR/SIREN-style direct SDF supervision (Gropp et
    al. 2020) replacing the reference's slow volume-rendering fit of the known coarse body. LR
    `sdf_learning_rate` (None → learning_rate), cosine-decayed to learning_rate_alpha, no warm-up.
    Minibatches come from a generator seeded by `seed` + 1. Returns the final mean |f − sdf| (metres).
    `on_progress(step, {"sdf_l1": …, "eikonal": …}, None)` is called about 25 times over the phase.
    """
    sdf_net = model.sdf
    opt = torch.optim.Adam(sdf_net.parameters(), lr=params.sdf_learning_rate or params.learning_rate)
    g = torch.Generator().manual_seed(seed + 1)
    parts = bank["parts"].tolist()
    starts = [0, parts[0], parts[0] + parts[1]]
    per = [params.sdf_batch // 3, params.sdf_batch // 3, params.sdf_batch - 2 * (params.sdf_batch // 3)]
    lr0 = params.sdf_learning_rate or params.learning_rate
    err = float("nan")
    for step in tqdm(range(params.sdf_steps), disable=not progress, desc="NeuS init (SDF)"):
        set_lr(opt, lr0 * lr_factor(step, 0, params.sdf_steps, params.learning_rate_alpha))
        idx = torch.cat([torch.randint(0, parts[i], (per[i],), generator=g) + starts[i] for i in range(3)])
        idx = idx.to(bank["points"].device)
        x, target = bank["points"][idx], bank["sdf"][idx]
        f, _, grad = sdf_net.sdf_and_gradient(x, create_graph=True)
        l1 = (f[:, 0] - target).abs().mean()
        eik = ((grad.norm(dim=-1) - 1.0) ** 2).mean()
        ns = per[0]
        normal = (1.0 - F.cosine_similarity(grad[:ns], bank["normals"][idx[:ns]], dim=-1)).mean()
        loss = l1 + params.igr_weight * eik + params.sdf_normal_weight * normal
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        err = float(l1.detach())
        if on_progress is not None and (step + 1) % max(1, params.sdf_steps // 25) == 0:
            on_progress(step + 1, {"sdf_l1": err, "eikonal": float(eik.detach())}, None)
    return err


def fit_neus_init(images: torch.Tensor, masks: torch.Tensor, cameras: Cameras, params: NeusInitParams,
                  out_dir, seed: int = 0, progress: bool = True, body=None, on_progress=None) -> NeusModel:
    """Fit NeuS (head 1 only) to multi-view renders of the body (docs/method.md §2.3).

    Each step: one view from a random permutation of the N views, `batch_size` uniformly random pixels
    (background included); loss = L1 colour Σ|c − gt|·mask / (#mask + 1e-5) + igr_weight·eikonal
    + mask_weight·BCE(clip(Σw, 1e-3, 1 − 1e-3), mask). Adam (0.9, 0.999, 1e-8) on all parameters with
    warm-up + cosine LR. `out_dir/ckpt.pt` (model, optimizer, step, RNG, init_mode, sdf_step) is written
    atomically every `save_every` steps and at the end; an existing one is resumed (a finished one returns at
    once; a resumed run skips the sphere init, whose result the checkpoint overwrites anyway; so does
    init_mode "sdf").
    Previews `out_dir/validations/{step:06d}.png` (prediction above GT, view 0) every `val_every` steps.

    `params.init_mode == "sdf"` (docs/method.md, Fast path) first runs `fit_body_sdf` on a `body_sdf_bank` of the
    body mesh (`sdf_steps` steps, checkpointed once finished with sdf_step = sdf_steps so a resume never
    repeats it), sets the variance to `sdf_variance_init` if given, then runs the `iterations`
    volume-rendering steps above on colour head 1 and the variance only when `sdf_freeze_geometry` (default:
    the regressed SDF is already the body, and Adam's first steps on the render loss — with a still random
    colour head — would pull it away; no double backward is needed then, so these steps are cheap), or on
    all parameters otherwise.

    Args:
        images: (N, H, W, 3) float [0, 1]; masks: (N, H, W) float/bool silhouettes (binarised at 0.5);
        cameras: N cameras (avatar frame); params: NeusInitParams; out_dir: output folder; seed: RNG seed;
        body: (vertices (V, 3), faces (F, 3) long) of the body the images show — required by init_mode "sdf",
            ignored by "render".
        on_progress: optional callback(step, losses: dict[str, float], image (2H, W, 3) tensor | None): every
            `val_every` render steps with the validation image (prediction above GT), about 25 times per phase
            with the losses alone (the SDF phase's steps are counted separately).
    Returns: the trained NeusModel (on images' device, eval mode).
    Raises: ValueError on shape mismatches, invalid params, or init_mode "sdf" without `body` (before any
        training).
    """
    params.validate()
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (N, H, W, 3), got {tuple(images.shape)}")
    N, H, W, _ = images.shape
    if masks.shape != (N, H, W):
        raise ValueError(f"masks must be (N, H, W) = {(N, H, W)}, got {tuple(masks.shape)}")
    if len(cameras) != N:
        raise ValueError(f"need one camera per image: {len(cameras)} cameras for {N} images")
    if params.init_mode == "sdf" and body is None:
        raise ValueError("init_mode = 'sdf' needs the body mesh: call fit_neus_init(..., body=(vertices, faces)), "
                         "or set neus_init.init_mode = render")
    dev = images.device
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cameras = cameras.to(dev)
    masks = (masks.float() > 0.5).float()

    ckpt_path = out_dir / "ckpt.pt"
    ck = torch.load(ckpt_path, map_location=dev, weights_only=False) if ckpt_path.exists() else None
    torch.manual_seed(seed)
    # The sphere fit is skipped on resume (the checkpoint overwrites it) and in init_mode "sdf" (the SDF phase
    # regresses the body directly; IDR's geometric init is start enough).
    fresh = ck is None and params.init_mode == "render"
    model = (NeusModel.from_params(params, seed=seed) if fresh else NeusModel(params)).to(dev)
    sdf_step, ran_sdf = 0, False
    if ck is not None:
        model.load_state_dict(ck["model"]["state_dict"])
        sdf_step = ck.get("sdf_step", 0)
    if params.init_mode == "sdf" and sdf_step < params.sdf_steps:
        verts, faces = body
        bank = body_sdf_bank(verts.to(dev), faces.to(dev), params.sdf_bank_size, params.sdf_near_std, seed)
        model.train()
        fit_body_sdf(model, bank, params, seed, progress, on_progress)
        if params.sdf_variance_init is not None:
            with torch.no_grad():
                model.variance.variance.fill_(params.sdf_variance_init)
        sdf_step, ck, ran_sdf = params.sdf_steps, None, True  # render phase starts fresh (step 0, new optimizer)
    frozen = params.init_mode == "sdf" and params.sdf_freeze_geometry
    trainable = [p for n, p in model.named_parameters() if not (frozen and n.startswith("sdf."))]
    opt = torch.optim.Adam(trainable, lr=params.learning_rate, betas=(0.9, 0.999), eps=1e-8)
    gen = torch.Generator().manual_seed(seed)
    step, perm = 0, torch.randperm(N, generator=gen)
    if ck is not None:
        opt.load_state_dict(ck["optimizer"])
        step, perm = ck["step"], ck["perm"]
        gen.set_state(ck["rng"])

    def save():
        atomic_save_torch({"model": model.to_dict(), "optimizer": opt.state_dict(), "step": step, "perm": perm,
                           "rng": gen.get_state(), "seed": seed, "init_mode": params.init_mode,
                           "sdf_step": sdf_step}, ckpt_path)

    if ran_sdf:
        save()  # the SDF phase is done: a resume must not repeat it

    model.train()
    bar = tqdm(total=params.iterations, initial=step, disable=not progress, desc="NeuS init")
    while step < params.iterations:
        set_lr(opt, params.learning_rate * lr_factor(step, params.warm_up_end, params.end_iter,
                                                     params.learning_rate_alpha))
        if step % N == 0 and step > 0:
            perm = torch.randperm(N, generator=gen)
        idx = int(perm[step % N])
        px = torch.randint(0, W, (params.batch_size,), generator=gen).to(dev)
        py = torch.randint(0, H, (params.batch_size,), generator=gen).to(dev)
        uv = torch.stack([px + 0.5, py + 0.5], -1).float()[None]
        o, d = cameras[idx].rays(H, W, pixels=uv)
        out = render_rays(model, o[0], d[0], generator=gen, create_graph=not frozen)
        gt, m = images[idx, py, px], masks[idx, py, px][:, None]
        color_loss = ((out["color"] - gt).abs() * m).sum() / (m.sum() + 1e-5)
        mask_loss = F.binary_cross_entropy(out["weights_sum"].clip(1e-3, 1 - 1e-3), m)
        loss = color_loss + params.igr_weight * out["eikonal"] + params.mask_weight * mask_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        bar.update(1)
        if progress and step % 100 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}", inv_s=f"{out['inv_s'].item():.1f}")
        losses = None
        if on_progress is not None and step % max(1, params.iterations // 25) == 0:
            losses = {"loss": float(loss.detach()), "color": float(color_loss.detach()),
                      "mask": float(mask_loss.detach())}
        if step % params.val_every == 0:
            with torch.no_grad():
                pred = render_views(model, cameras[0], H, W, chunk=params.chunk)["rgb"][0]
            image = torch.cat([pred, images[0]], 0)
            write_png(out_dir / "validations" / f"{step:06d}.png", image)
            if on_progress is not None:
                on_progress(step, losses or {"loss": float(loss.detach())}, image)
        elif losses is not None:
            on_progress(step, losses, None)
        if step % params.save_every == 0 or step == params.iterations:
            save()
    bar.close()
    model.eval()
    return model


def load_neus(path, device="cpu") -> NeusModel:
    """Load a NeusModel from a stage-2 `ckpt.pt` or a stage-3 `ckpt_XXXXXX.pt` (key 'model')."""
    ck = torch.load(path, map_location=device, weights_only=False)
    return NeusModel.from_dict(ck["model"] if "model" in ck else ck, device)
