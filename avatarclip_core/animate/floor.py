"""The floor under the avatar in the videos: a ground plane (box-filtered checkerboard) with a soft shadow of the
figure, rendered per pixel by intersecting the camera rays with the plane y = floor, and composited behind the
avatar as the renderer's background image (docs/method.md "Root motion and foot contact").

The shadow is the classic blob ("contact") shadow of real-time graphics: each joint darkens the floor under it
with a Gaussian whose width grows and whose strength falls with the joint's height above the floor, so the feet
on the floor leave dark, sharp spots and the body a faint, wide one; it needs no light direction and shows
at once whether a foot is on the floor.
"""
from __future__ import annotations

import torch

from ..cameras import Cameras
from .params import FloorParams

_SHADOW_FALLOFF = 0.5  # metres of joint height over which a joint's shadow fades to 1/e
_SHADOW_SPREAD = 0.25  # blob radius growth per metre of joint height
_SHADOW_GRID = 128  # the (smooth) shadow is computed on about this many pixels per side and upsampled


def _filtered_checker(u: torch.Tensor, v: torch.Tensor, wu: torch.Tensor, wv: torch.Tensor) -> torch.Tensor:
    """Box-filtered checkerboard in [0, 1] at tile coordinates (u, v) with filter widths (wu, wv) in tiles
    (the analytic integral of the square wave over the pixel footprint; 0.5 where the footprint spans tiles)."""
    def frac(x):
        return x - torch.floor(x)

    def tri(x, w):  # mean of the ±1 square wave (−1)^⌊x⌋ over [x − w/2, x + w/2]
        return 2.0 * ((frac((x - 0.5 * w) * 0.5) - 0.5).abs() - (frac((x + 0.5 * w) * 0.5) - 0.5).abs()) / w

    return 0.5 - 0.5 * tri(u, wu) * tri(v, wv)


def floor_image(cameras: Cameras, image_size: int, floor_y: float, joints: torch.Tensor,
                background, params: FloorParams | None = None, centre=None) -> torch.Tensor:
    """Background images with the floor and the figure's shadow.

    Args:
        cameras: B cameras (avatar frame, metres). image_size: square size in pixels.
        floor_y: height of the floor plane (metres, `motion.contact.floor_height` of the rest mesh).
        joints: (B, J, 3) the figure's joint positions per camera/frame (metres), which cast the shadow.
        background: (3,) RGB in [0, 1] where there is no floor (above the horizon, beyond `radius`).
        params: `FloorParams` (default `FloorParams()`); style "none" returns the plain background.
        centre: (3,) the floor disc's centre (metres; only x, z are used), default the origin.
    Returns:
        (B, H, W, 3) float32 images in [0, 1] on the cameras' device.
    """
    params = (params or FloorParams()).validate()
    dev = cameras.c2w.device
    H = W = int(image_size)
    B = len(cameras)
    bg = torch.as_tensor(background, dtype=torch.float32, device=dev).reshape(1, 1, 1, 3)
    if params.style == "none":
        return bg.expand(B, H, W, 3).clone()
    # A fixed camera (no orbit) sees the same plane in every frame: trace it once, only the shadow changes.
    same = bool((cameras.c2w == cameras.c2w[:1]).all())
    albedo, fade, px, pz = _plane(cameras[:1] if same else cameras, H, W, floor_y, params, centre)
    if params.shadow > 0:
        albedo = albedo * (1.0 - params.shadow * _shadow(px, pz, joints.to(dev).float(), floor_y, params, H, W))
    return bg * (1 - fade[..., None]) + (albedo * fade)[..., None]


def _plane(cameras: Cameras, H: int, W: int, floor_y: float, params: FloorParams, centre):
    """(albedo, fade, x, z) (B, H, W) of the floor seen by `cameras`: the checker/plain grey, the disc's opacity
    (0 off the plane), and the hit points' x and z (metres)."""
    o, d = cameras.rays(H, W)  # (B, H, W, 3)
    dy = d[..., 1]
    hit = dy < -1e-6
    t = (floor_y - o[..., 1]) / torch.where(hit, dy, -torch.ones_like(dy))
    hit &= t > 0
    t = torch.where(hit, t, torch.zeros_like(t))
    px, pz = (o[..., 0] + t * d[..., 0]).float(), (o[..., 2] + t * d[..., 2]).float()
    c0, c1 = params.colors
    if params.style == "checker":
        # Footprint of a pixel on the plane (tiles), from the neighbouring pixels' hit points.
        def footprint(x):
            du = (x[:, :, 1:] - x[:, :, :-1]).abs()
            dv = (x[:, 1:] - x[:, :-1]).abs()
            w = torch.cat([du, du[:, :, -1:]], 2) + torch.cat([dv, dv[:, -1:]], 1)
            return (w / params.tile).clamp(1e-3, 4.0)

        albedo = c0 + (c1 - c0) * _filtered_checker(px / params.tile, pz / params.tile, footprint(px), footprint(pz))
    else:
        albedo = torch.full_like(px, 0.5 * (c0 + c1))
    cx, cz = (0.0, 0.0) if centre is None else (float(centre[0]), float(centre[2]))
    fade = ((params.radius - torch.sqrt((px - cx) ** 2 + (pz - cz) ** 2)) / (params.radius / 3.0)).clamp(0, 1)
    fade = torch.where(hit, fade * fade * (3 - 2 * fade), torch.zeros_like(fade))
    return albedo, fade, px, pz


def _shadow(px: torch.Tensor, pz: torch.Tensor, joints: torch.Tensor, floor_y: float, params: FloorParams,
            H: int, W: int) -> torch.Tensor:
    """(B, H, W) shadow darkness in [0, 1] on the floor points (px, pz) (1 or B, H, W) of joints (B, J, 3):
    1 − Π_j (1 − 0.9·s_j·exp(−d_j² / 2σ_j²)), s_j = exp(−h_j / 0.5 m), σ_j = shadow_blur + 0.25·h_j, h_j the
    joint's height above the floor and d_j the horizontal distance to it."""
    height = (joints[..., 1] - floor_y).clamp_min(0)  # (B, J)
    inv = (-0.5 / (params.shadow_blur + _SHADOW_SPREAD * height) ** 2)[:, :, None, None]
    strength = 0.9 * torch.exp(-height / _SHADOW_FALLOFF)
    # The shadow is smooth (blobs ≥ shadow_blur wide): evaluate it on a coarser pixel grid and upsample.
    step = max(1, min(H, W) // _SHADOW_GRID)
    qx, qz = px[:, ::step, ::step].contiguous(), pz[:, ::step, ::step].contiguous()
    lit = torch.ones(joints.shape[0], *qx.shape[1:], device=px.device)
    for k in range(joints.shape[1]):  # one joint at a time to bound memory
        d2 = (qx - joints[:, k, 0, None, None]).square_() + (qz - joints[:, k, 2, None, None]).square_()
        lit.mul_(1.0 - strength[:, k, None, None] * torch.exp_(d2.mul_(inv[:, k])))
    return 1.0 - torch.nn.functional.interpolate(lit[:, None], size=(H, W), mode="bilinear",
                                                 align_corners=False)[:, 0]
