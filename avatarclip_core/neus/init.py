"""Stage 2 — NeuS initialisation on the coarse body (reference §1.4, §2.3).

The SDF/colour fields are fitted to grey renders of the stand-posed body (white albedo, ambient 0.5 +
Lambert light from +y, black background — `render_mesh`'s default) from AvatarCLIP's 108-view camera set:
18 azimuths × 6 elevations (−60 … 40°), distance 2.2 m, FoV 60°, azimuth-major order so that view 58 is
the front view 20° above (reference §1.4; our azimuth 0 = front, theirs 180 — the set is the same).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..cameras import Cameras, orbit_cameras
from ..io import atomic_save_torch, atomic_write
from .fields import NeusModel
from .params import NeusInitParams
from .renderer import render_rays, render_views
from .schedule import lr_factor, set_lr


def render_body(vertices: torch.Tensor, faces: torch.Tensor, cameras: Cameras, size: int):
    """Ground-truth grey renders and silhouettes of the body (reference §1.4, §3.2).

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


def _save_png(path, img: torch.Tensor) -> None:
    import imageio.v3 as iio

    arr = (img.detach().clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    atomic_write(path, lambda p: iio.imwrite(p, arr, extension=".png"))


def fit_neus_init(images: torch.Tensor, masks: torch.Tensor, cameras: Cameras, params: NeusInitParams,
                  out_dir, seed: int = 0, progress: bool = True) -> NeusModel:
    """Fit NeuS (head 1 only) to multi-view renders of the body (reference §2.3).

    Each step: one view from a random permutation of the N views, `batch_size` uniformly random pixels
    (background included); loss = L1 colour Σ|c − gt|·mask / (#mask + 1e-5) + igr_weight·eikonal
    + mask_weight·BCE(clip(Σw, 1e-3, 1 − 1e-3), mask). Adam (0.9, 0.999, 1e-8) on all parameters with
    warm-up + cosine LR. `out_dir/ckpt.pt` (model, optimizer, step, RNG) is written atomically every
    `save_every` steps and at the end; an existing one is resumed (a finished one returns at once).
    Previews `out_dir/validations/{step:06d}.png` (prediction above GT, view 0) every `val_every` steps.

    Args:
        images: (N, H, W, 3) float [0, 1]; masks: (N, H, W) float/bool silhouettes (binarised at 0.5);
        cameras: N cameras (avatar frame); params: NeusInitParams; out_dir: output folder; seed: RNG seed.
    Returns: the trained NeusModel (on images' device, eval mode).
    Raises: ValueError on shape mismatches or invalid params (before any training).
    """
    params.validate()
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (N, H, W, 3), got {tuple(images.shape)}")
    N, H, W, _ = images.shape
    if masks.shape != (N, H, W):
        raise ValueError(f"masks must be (N, H, W) = {(N, H, W)}, got {tuple(masks.shape)}")
    if len(cameras) != N:
        raise ValueError(f"need one camera per image: {len(cameras)} cameras for {N} images")
    dev = images.device
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cameras = cameras.to(dev)
    masks = (masks.float() > 0.5).float()

    torch.manual_seed(seed)
    model = NeusModel.from_params(params, seed=seed).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=params.learning_rate, betas=(0.9, 0.999), eps=1e-8)
    gen = torch.Generator().manual_seed(seed)
    step, perm = 0, torch.randperm(N, generator=gen)
    ckpt_path = out_dir / "ckpt.pt"
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=dev, weights_only=False)
        model.load_state_dict(ck["model"]["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        step, perm = ck["step"], ck["perm"]
        gen.set_state(ck["rng"])

    def save():
        atomic_save_torch({"model": model.to_dict(), "optimizer": opt.state_dict(), "step": step, "perm": perm,
                           "rng": gen.get_state(), "seed": seed}, ckpt_path)

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
        out = render_rays(model, o[0], d[0], generator=gen)
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
        if step % params.val_every == 0:
            with torch.no_grad():
                pred = render_views(model, cameras[0], H, W, chunk=params.chunk)["rgb"][0]
            _save_png(out_dir / "validations" / f"{step:06d}.png", torch.cat([pred, images[0]], 0))
        if step % params.save_every == 0 or step == params.iterations:
            save()
    bar.close()
    model.eval()
    return model


def load_neus(path, device="cpu") -> NeusModel:
    """Load a NeusModel from a stage-2 `ckpt.pt` or a stage-3 `ckpt_XXXXXX.pt` (key 'model')."""
    ck = torch.load(path, map_location=device, weights_only=False)
    return NeusModel.from_dict(ck["model"] if "model" in ck else ck, device)
