"""Pinhole cameras in the OpenGL convention (docs/design.md §3): look-at, intrinsics from FoV, rays, projection.

Camera frame: the camera looks along its −z axis, +y is up in the image, +x to the right. A camera is a
camera-to-world matrix (c2w, 4×4) plus a horizontal field of view in degrees. Pixel (row i, column j)
of an H×W image has its centre at u = j + 0.5, v = i + 0.5; the principal point is (W/2, H/2) and the
focal length f = 0.5·W / tan(0.5·FoV) in pixels (square pixels). Angles given to users are degrees.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

UP = (0.0, 1.0, 0.0)


def _as_tensor(x, like: torch.Tensor | None = None, dtype=torch.float32) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x if like is None else x.to(like)
    return torch.as_tensor(x, dtype=like.dtype if like is not None else dtype,
                           device=like.device if like is not None else None)


def look_at(eye, target=(0.0, 0.0, 0.0), up=UP) -> torch.Tensor:
    """Camera-to-world matrices of cameras at `eye` looking at `target` (OpenGL convention).

    Args:
        eye: (..., 3) camera positions in metres (tensor or sequence).
        target: (..., 3) or (3,) points looked at.
        up: (3,) world up direction.
    Returns:
        (..., 4, 4) float c2w: columns x = normalize(up × z), y = z × x, z = normalize(eye − target),
        translation = eye.
    Raises:
        ValueError: if eye == target or the view direction is parallel to `up`.
    """
    eye = _as_tensor(eye)
    target = _as_tensor(target, eye).expand_as(eye)
    up = _as_tensor(up, eye).expand_as(eye)
    z = eye - target
    if (z.norm(dim=-1) < 1e-9).any():
        raise ValueError("look_at: eye and target coincide; move the camera away from the target")
    z = torch.nn.functional.normalize(z, dim=-1)
    x = torch.linalg.cross(up, z)
    if (x.norm(dim=-1) < 1e-9).any():
        raise ValueError("look_at: view direction is parallel to the up vector; pick another up or eye")
    x = torch.nn.functional.normalize(x, dim=-1)
    y = torch.linalg.cross(z, x)
    c2w = torch.zeros(*eye.shape[:-1], 4, 4, dtype=eye.dtype, device=eye.device)
    c2w[..., :3, 0], c2w[..., :3, 1], c2w[..., :3, 2], c2w[..., :3, 3] = x, y, z, eye
    c2w[..., 3, 3] = 1.0
    return c2w


def eye_from_angles(distance, elevation_deg, azimuth_deg, target=(0.0, 0.0, 0.0)) -> torch.Tensor:
    """Camera position on a sphere around `target`.

    Azimuth 0° puts the camera on +z (it sees the avatar's front), 90° on +x (the avatar's left side);
    elevation > 0 is above. Returns (..., 3) = target + d·(cos e·sin a, sin e, cos e·cos a).
    """
    d, e, a = (torch.as_tensor(v, dtype=torch.float32) for v in (distance, elevation_deg, azimuth_deg))
    d, e, a = torch.broadcast_tensors(d, torch.deg2rad(e), torch.deg2rad(a))
    offset = torch.stack([d * torch.cos(e) * torch.sin(a), d * torch.sin(e), d * torch.cos(e) * torch.cos(a)], -1)
    return offset + _as_tensor(target, offset)


def focal_from_fov(fov_deg: float, width: int) -> float:
    """Focal length in pixels for a horizontal FoV in degrees: 0.5·W / tan(FoV/2)."""
    if not 0.0 < float(fov_deg) < 180.0:
        raise ValueError(f"fov_deg must be in (0, 180) degrees, got {fov_deg}")
    return 0.5 * width / math.tan(math.radians(float(fov_deg)) / 2)


@dataclass
class Cameras:
    """A batch of B pinhole cameras sharing one FoV.

    Attributes:
        c2w: (B, 4, 4) float camera-to-world matrices (OpenGL convention).
        fov_deg: horizontal field of view in degrees (AvatarCLIP uses 60°).
    """

    c2w: torch.Tensor
    fov_deg: float = 60.0

    def __post_init__(self):
        if self.c2w.ndim == 2:
            self.c2w = self.c2w[None]
        if self.c2w.shape[-2:] != (4, 4):
            raise ValueError(f"c2w must be (B, 4, 4), got {tuple(self.c2w.shape)}")
        focal_from_fov(self.fov_deg, 1)  # validates the FoV

    def __len__(self) -> int:
        return self.c2w.shape[0]

    def __getitem__(self, idx) -> "Cameras":
        c2w = self.c2w[idx]
        return Cameras(c2w if c2w.ndim == 3 else c2w[None], self.fov_deg)

    def to(self, device) -> "Cameras":
        return Cameras(self.c2w.to(device), self.fov_deg)

    @property
    def eye(self) -> torch.Tensor:
        """(B, 3) camera centres in world coordinates."""
        return self.c2w[:, :3, 3]

    def w2c(self) -> torch.Tensor:
        """(B, 4, 4) world-to-camera matrices (rigid inverse of c2w)."""
        R = self.c2w[:, :3, :3]
        t = self.c2w[:, :3, 3:]
        out = torch.zeros_like(self.c2w)
        out[:, :3, :3] = R.transpose(1, 2)
        out[:, :3, 3:] = -R.transpose(1, 2) @ t
        out[:, 3, 3] = 1.0
        return out

    def to_camera(self, points: torch.Tensor) -> torch.Tensor:
        """World points (B, N, 3) or (N, 3) → camera-frame points (B, N, 3)."""
        w2c = self.w2c().to(points)
        if points.ndim == 2:
            points = points[None].expand(len(self), -1, -1)
        return points @ w2c[:, :3, :3].transpose(1, 2) + w2c[:, None, :3, 3]

    def project(self, points: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Project world points to pixels.

        Args:
            points: (B, N, 3) or (N, 3) world points in metres.
        Returns:
            uv: (B, N, 2) continuous pixel coordinates (u right, v down; pixel centres at +0.5),
            depth: (B, N) distance along the viewing axis (−z_cam, positive in front of the camera).
        """
        cam = self.to_camera(points)
        f = focal_from_fov(self.fov_deg, width)
        depth = -cam[..., 2]
        safe = torch.where(depth.abs() < 1e-8, torch.full_like(depth, 1e-8), depth)
        u = width / 2 + f * cam[..., 0] / safe
        v = height / 2 - f * cam[..., 1] / safe
        return torch.stack([u, v], -1), depth

    def rays(self, height: int, width: int, pixels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """World-space rays through pixel centres.

        Args:
            pixels: optional (B, N, 2) float (u, v) pixel coordinates; default every pixel centre.
        Returns:
            origins, directions: (B, H, W, 3) (or (B, N, 3) with `pixels`); directions unit length.
        """
        f = focal_from_fov(self.fov_deg, width)
        dev, dt = self.c2w.device, self.c2w.dtype
        if pixels is None:
            v, u = torch.meshgrid(torch.arange(height, device=dev, dtype=dt) + 0.5,
                                  torch.arange(width, device=dev, dtype=dt) + 0.5, indexing="ij")
            uv = torch.stack([u, v], -1)[None].expand(len(self), -1, -1, -1)
        else:
            uv = pixels.to(self.c2w)
        d_cam = torch.stack([(uv[..., 0] - width / 2) / f, -(uv[..., 1] - height / 2) / f,
                             -torch.ones_like(uv[..., 0])], -1)
        R = self.c2w[:, :3, :3].reshape(len(self), *([1] * (d_cam.ndim - 2)), 3, 3)
        d = torch.nn.functional.normalize((R @ d_cam[..., None])[..., 0], dim=-1)
        o = self.c2w[:, :3, 3].reshape(len(self), *([1] * (d_cam.ndim - 2)), 3).expand_as(d)
        return o, d


def orbit_cameras(distance: float, elevations_deg, azimuths_deg, fov_deg: float = 60.0,
                  target=(0.0, 0.0, 0.0)) -> Cameras:
    """Cameras on a ring/grid around `target`, azimuth-major order (index = azimuth_idx·n_elev + elev_idx),
    the order of AvatarCLIP's 108-view set (docs/method.md §1.4)."""
    az, el = torch.meshgrid(torch.as_tensor(azimuths_deg, dtype=torch.float32),
                            torch.as_tensor(elevations_deg, dtype=torch.float32), indexing="ij")
    eye = eye_from_angles(distance, el.reshape(-1), az.reshape(-1), target)
    return Cameras(look_at(eye, torch.as_tensor(target, dtype=torch.float32).expand_as(eye)), fov_deg)


def unit_sphere_near_far(origins: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """NeuS near/far bounds of rays against the unit sphere (docs/method.md §2): mid = −(o·d)/(d·d),
    near = max(0, mid − 1), far = mid + 1. Shapes (..., 3) → (..., 1) each."""
    mid = -(origins * directions).sum(-1, keepdim=True) / (directions * directions).sum(-1, keepdim=True)
    return (mid - 1.0).clamp_min(0.0), mid + 1.0
