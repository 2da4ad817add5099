"""Normals, Lambert + ambient shading and background compositing (AvatarCLIP's neural_renderer defaults:
colour·(ambient + (1 − ambient)·max(0, n·l)), ambient 0.5, one white directional light from +y;
docs/method.md §0, neural_renderer conventions)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def face_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Unit face normals (B, F, 3) of vertices (B, V, 3) and faces (F, 3) (right-hand rule: CCW → outward).

    Degenerate faces get a zero normal. Differentiable w.r.t. vertices.
    """
    v = vertices[:, faces]                                          # (B, F, 3, 3)
    n = torch.linalg.cross(v[..., 1, :] - v[..., 0, :], v[..., 2, :] - v[..., 0, :])
    return F.normalize(n, dim=-1, eps=1e-20)


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals (B, V, 3) of vertices (B, V, 3) and faces (F, 3)."""
    v = vertices[:, faces]
    n = torch.linalg.cross(v[..., 1, :] - v[..., 0, :], v[..., 2, :] - v[..., 0, :])   # |n| = 2·area
    out = torch.zeros_like(vertices).index_add_(1, faces.reshape(-1), n.repeat_interleave(3, dim=1))
    return F.normalize(out, dim=-1, eps=1e-20)


def lambert_factor(normals: torch.Tensor, light_dir: torch.Tensor, ambient=0.5) -> torch.Tensor:
    """The Lambert + ambient shading factor s = ambient + (1 − ambient)·clamp(n·l, 0, 1), the one shading rule of the
    package: neural_renderer's default for meshes (docs/method.md §0) and AvatarCLIP's random shading of the NeuS
    texture (§3.6, `render_geometry_cast_light` of §4).

    Args:
        normals: (..., 3) unit normals (world frame); NaN where there is no surface (→ s = 1, fully lit).
        light_dir: (..., 3) unit direction *towards* the light (world frame), broadcastable to normals.
        ambient: ambient term in [0, 1] (float or tensor broadcastable to (..., 1); NR default 0.5).
    Returns:
        (..., 1) shading factors.
    """
    diffuse = torch.nan_to_num((normals * light_dir.to(normals)).sum(-1, keepdim=True).clamp(0, 1), nan=1.0)
    return ambient + (1.0 - ambient) * diffuse


def lambert(colors: torch.Tensor, normals: torch.Tensor, light_dir: torch.Tensor, ambient: float = 0.5) -> torch.Tensor:
    """Lambert-shaded colours (..., 3): colors (..., 3) albedo in [0, 1] × `lambert_factor(normals, light_dir,
    ambient)`."""
    return colors * lambert_factor(normals, light_dir, ambient)


def composite(rgb: torch.Tensor, alpha: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """Alpha-composite rgb (B, H, W, 3) with coverage alpha (B, H, W) over background (broadcastable to rgb):
    alpha·rgb + (1 − alpha)·background."""
    a = alpha[..., None]
    return a * rgb + (1.0 - a) * background
