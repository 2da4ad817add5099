"""NeuS volume renderer (docs/method.md §2.2), as configured by AvatarCLIP.

Per ray: `n_samples` (32) uniform samples in the unit-sphere [near, far] with one random shift per ray,
then `n_importance` (32) samples over `up_sample_steps` (4) hierarchical steps, each drawn
deterministically from weights computed with a fixed inv_s = 64·2^i and the NeuS section-slope estimator.
Colour/normal/eikonal are evaluated at section mid-points; α from prev/next SDF estimates with
cos_anneal_ratio = 1. No background NeRF. Rays are in the avatar frame (metres).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..cameras import Cameras, unit_sphere_near_far
from .fields import NeusModel


def sample_pdf(bins: torch.Tensor, weights: torch.Tensor, n: int) -> torch.Tensor:
    """Deterministic inverse-CDF sampling at mid-quantiles (NeuS `sample_pdf`, det=True).

    bins (R, S) z values, weights (R, S−1) → (R, n) new z values.
    """
    weights = weights + 1e-5
    pdf = weights / weights.sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], -1)
    u = torch.linspace(0.5 / n, 1.0 - 0.5 / n, n, device=bins.device, dtype=bins.dtype).expand(cdf.shape[0], n)
    inds = torch.searchsorted(cdf.contiguous(), u.contiguous(), right=True)
    below = (inds - 1).clamp_min(0)
    above = inds.clamp_max(cdf.shape[-1] - 1)
    cdf0, cdf1 = cdf.gather(1, below), cdf.gather(1, above)
    b0, b1 = bins.gather(1, below), bins.gather(1, above)
    denom = cdf1 - cdf0
    denom = torch.where(denom < 1e-5, torch.ones_like(denom), denom)
    return b0 + (u - cdf0) / denom * (b1 - b0)


def _up_sample(rays_o, rays_d, z, sdf, n, inv_s):
    """NeuS `up_sample`: weights from section SDF slopes with fixed inv_s, min(prev, cur) slope ≤ 0,
    zeroed where both section ends are outside the unit sphere → `n` new z values (R, n)."""
    pts = rays_o[:, None] + rays_d[:, None] * z[..., None]
    radius = pts.norm(dim=-1)
    inside = (radius[:, :-1] < 1.0) | (radius[:, 1:] < 1.0)
    prev_sdf, next_sdf = sdf[:, :-1], sdf[:, 1:]
    prev_z, next_z = z[:, :-1], z[:, 1:]
    mid_sdf = (prev_sdf + next_sdf) * 0.5
    cos_val = (next_sdf - prev_sdf) / (next_z - prev_z + 1e-5)
    prev_cos = torch.cat([torch.zeros_like(cos_val[:, :1]), cos_val[:, :-1]], -1)
    cos_val = torch.minimum(prev_cos, cos_val).clip(-1e3, 0.0) * inside
    dist = next_z - prev_z
    prev_cdf = torch.sigmoid((mid_sdf - cos_val * dist * 0.5) * inv_s)
    next_cdf = torch.sigmoid((mid_sdf + cos_val * dist * 0.5) * inv_s)
    alpha = (prev_cdf - next_cdf + 1e-5) / (prev_cdf + 1e-5)
    T = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1.0 - alpha + 1e-7], -1), -1)[:, :-1]
    return sample_pdf(z, alpha * T, n)


def sample_z(model: NeusModel, rays_o: torch.Tensor, rays_d: torch.Tensor, near: torch.Tensor, far: torch.Tensor,
             perturb: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample positions along rays (no gradient): 32 uniform + 4×8 hierarchical (docs/method.md §2.2).

    Args: rays_o, rays_d (R, 3) (unit directions); near, far (R, 1); perturb > 0 shifts every ray's uniform
        samples by one (U − 0.5)·2/n_samples drawn from `generator` (CPU generator; values moved to device).
    Returns: (R, n_samples + n_importance) sorted z values (metres along the ray).
    """
    p = model.params.renderer
    R = rays_o.shape[0]
    t = torch.linspace(0.0, 1.0, p.n_samples, device=rays_o.device, dtype=rays_o.dtype)
    z = near + (far - near) * t[None]
    if perturb > 0:
        shift = torch.rand(R, 1, generator=generator).to(z) - 0.5
        z = z + shift * 2.0 / p.n_samples
    if p.n_importance > 0:
        with torch.no_grad():
            sdf = model.sdf.sdf((rays_o[:, None] + rays_d[:, None] * z[..., None]).reshape(-1, 3)).reshape(R, -1)
            per_step = p.n_importance // p.up_sample_steps
            for i in range(p.up_sample_steps):
                new_z = _up_sample(rays_o, rays_d, z, sdf, per_step, 64 * 2 ** i)
                z, order = torch.sort(torch.cat([z, new_z], -1), -1)
                if i + 1 < p.up_sample_steps:
                    new_sdf = model.sdf.sdf((rays_o[:, None] + rays_d[:, None] * new_z[..., None]).reshape(-1, 3))
                    sdf = torch.cat([sdf, new_sdf.reshape(R, -1)], -1).gather(1, order)
    return z.detach()


def render_rays(model: NeusModel, rays_o: torch.Tensor, rays_d: torch.Tensor, perturb: float | None = None,
                generator: torch.Generator | None = None, background: torch.Tensor | None = None,
                create_graph: bool = True, cos_anneal_ratio: float = 1.0) -> dict:
    """Volume-render rays through the NeuS fields (docs/method.md §2.2, §3.1, §3.6).

    Args:
        model: NeusModel (head 2 rendered too when it has one).
        rays_o, rays_d: (R, 3) origins and unit directions, avatar frame.
        perturb: stratified jitter (None → model.params.renderer.perturb; 0 for deterministic renders).
        generator: torch.Generator for the jitter (CPU).
        background: optional (3,) or (R, 3) colour added as bg·(1 − Σw) to head 2 only when the model has a
            texture head (AvatarCLIP), otherwise to head 1.
        create_graph: keep ∇f differentiable (training); False for inference.
    Returns dict:
        color (R, 3) head 1; texture (R, 3) head 2 or None; weights (R, S); weights_sum (R, 1);
        normals (R, 3) Σ w·∇f (unnormalised); depth (R, 1) Σ w·mid_z; gradients (R, S, 3);
        eikonal () mean (‖∇f‖ − 1)² over samples with |p| < 1.2; inv_s (); mid_z (R, S).
    Raises:
        ValueError: if rays_o / rays_d are not (R, 3) of the same shape.
    """
    if rays_o.ndim != 2 or rays_o.shape[-1] != 3 or rays_o.shape != rays_d.shape:
        raise ValueError(f"rays_o and rays_d must both be (R, 3); got {tuple(rays_o.shape)} and "
                         f"{tuple(rays_d.shape)} — flatten image rays with .reshape(-1, 3)")
    p = model.params.renderer
    perturb = p.perturb if perturb is None else perturb
    near, far = unit_sphere_near_far(rays_o, rays_d)
    z = sample_z(model, rays_o, rays_d, near, far, perturb, generator)
    R, S = z.shape
    dists = torch.cat([z[:, 1:] - z[:, :-1], torch.full_like(z[:, :1], 2.0 / p.n_samples)], -1)
    mid_z = z + dists * 0.5
    pts = (rays_o[:, None] + rays_d[:, None] * mid_z[..., None]).reshape(-1, 3)
    dirs = rays_d[:, None].expand(R, S, 3).reshape(-1, 3)
    sdf, feature, grad = model.sdf.sdf_and_gradient(pts, create_graph=create_graph)
    colors = model.color(pts, grad, feature).reshape(R, S, -1)
    inv_s = model.variance.inv_s()
    true_cos = (dirs * grad).sum(-1, keepdim=True)
    iter_cos = -(F.relu(-true_cos * 0.5 + 0.5) * (1.0 - cos_anneal_ratio) + F.relu(-true_cos) * cos_anneal_ratio)
    d = dists.reshape(-1, 1)
    prev_cdf = torch.sigmoid((sdf - iter_cos * d * 0.5) * inv_s)
    next_cdf = torch.sigmoid((sdf + iter_cos * d * 0.5) * inv_s)
    alpha = ((prev_cdf - next_cdf + 1e-5) / (prev_cdf + 1e-5)).reshape(R, S).clip(0.0, 1.0)
    weights = alpha * torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1.0 - alpha + 1e-7], -1), -1)[:, :-1]
    wsum = weights.sum(-1, keepdim=True)
    grad = grad.reshape(R, S, 3)
    color = (colors[..., :3] * weights[..., None]).sum(1)
    texture = (colors[..., 3:6] * weights[..., None]).sum(1) if colors.shape[-1] == 6 else None
    if background is not None:
        bg = background.to(color).expand(R, 3) * (1.0 - wsum)
        if texture is not None:
            texture = texture + bg
        else:
            color = color + bg
    relax = (pts.reshape(R, S, 3).norm(dim=-1) < 1.2).to(weights).detach()
    eik = ((grad.norm(dim=-1) - 1.0) ** 2 * relax).sum() / (relax.sum() + 1e-5)
    return {"color": color, "texture": texture, "weights": weights, "weights_sum": wsum,
            "normals": (grad * weights[..., None]).sum(1), "depth": (mid_z * weights).sum(-1, keepdim=True),
            "gradients": grad, "eikonal": eik, "inv_s": inv_s, "mid_z": mid_z}


def render_rays_chunked(model: NeusModel, rays_o: torch.Tensor, rays_d: torch.Tensor, chunk: int = 512,
                        background: torch.Tensor | None = None) -> dict:
    """Inference render of many rays in chunks (perturb 0, no graph). rays (R, 3) → dict of
    color (R, 3), texture (R, 3) | None, weights_sum (R, 1), normals (R, 3) normalised, depth (R, 1)."""
    outs = []
    for s in range(0, rays_o.shape[0], chunk):
        bg = background if background is None or background.ndim == 1 else background[s:s + chunk]
        o = render_rays(model, rays_o[s:s + chunk], rays_d[s:s + chunk], perturb=0.0, background=bg,
                        create_graph=False)
        outs.append({k: o[k].detach() for k in ("color", "weights_sum", "normals", "depth")}
                    | {"texture": None if o["texture"] is None else o["texture"].detach()})
    res = {k: torch.cat([o[k] for o in outs]) for k in ("color", "weights_sum", "normals", "depth")}
    res["texture"] = None if outs[0]["texture"] is None else torch.cat([o["texture"] for o in outs])
    res["normals"] = F.normalize(res["normals"], dim=-1)
    return res


def render_views(model: NeusModel, cameras: Cameras, H: int, W: int, chunk: int = 512,
                 head: str = "base", background: float = 0.0) -> dict:
    """Render full images from cameras for previews/validation (no gradient, perturb 0).

    Args:
        cameras: B cameras; H, W: image size in px; head: "base" (head 1) or "texture" (head 2, needs one).
        background: grey level composited as bg·(1 − Σw).
    Returns dict: rgb (B, H, W, 3) in [0, 1], alpha (B, H, W) Σw, normals (B, H, W, 3) unit world-frame
        normals (Σ w·∇f normalised), depth (B, H, W) expected ray distance in metres.
    Raises:
        ValueError: on an unknown head or a missing texture head.
    """
    if head not in ("base", "texture"):
        raise ValueError(f"head must be 'base' or 'texture', got {head!r}")
    if head == "texture" and not model.has_texture_head:
        raise ValueError("head='texture' needs a model with colour head 2 (a stage-3 model); use head='base'")
    dev = next(model.parameters()).device
    o, d = cameras.to(dev).rays(H, W)
    B = len(cameras)
    out = render_rays_chunked(model, o.reshape(-1, 3), d.reshape(-1, 3), chunk)
    rgb = out["texture"] if head == "texture" else out["color"]
    rgb = (rgb + background * (1.0 - out["weights_sum"])).clamp(0, 1)
    return {"rgb": rgb.reshape(B, H, W, 3), "alpha": out["weights_sum"].reshape(B, H, W),
            "normals": out["normals"].reshape(B, H, W, 3), "depth": out["depth"].reshape(B, H, W)}
