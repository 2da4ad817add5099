"""Mesh export of a NeuS avatar (docs/method.md §4): marching cubes on −SDF over the cube [−1.01, 1.01]³ with
PyMCubes, vertex colours by the 6-direction least-occlusion rule, binary PLY with RGBA, and the head
close-up render (`render_geometry_cast_light`)."""
from __future__ import annotations

import math
from pathlib import Path

import mcubes
import numpy as np
import torch
import trimesh

from ..cameras import Cameras, look_at
from ..io import atomic_write
from ..render.shading import lambert
from .fields import NeusModel
from .renderer import render_rays_chunked

BOUND = 1.01
_SOURCES = ((2.0, 0, 0), (-2.0, 0, 0), (0, 2.0, 0), (0, -2.0, 0), (0, 0, 2.0), (0, 0, -2.0))


def sdf_grid(model: NeusModel, resolution: int = 256, chunk: int = 64, bound: float = BOUND) -> np.ndarray:
    """SDF sampled on a resolution³ grid over [−bound, bound]³ ('ij' order: index [i, j, k] ↔ (x, y, z)),
    evaluated in chunk³ blocks without gradient. Returns float32 (R, R, R) numpy, metres."""
    if resolution < 2 or chunk < 1:
        raise ValueError(f"need resolution ≥ 2 and chunk ≥ 1, got resolution={resolution}, chunk={chunk}")
    dev = next(model.parameters()).device
    xs = torch.linspace(-bound, bound, resolution, device=dev)
    out = np.zeros((resolution,) * 3, np.float32)
    with torch.no_grad():
        for i in range(0, resolution, chunk):
            for j in range(0, resolution, chunk):
                for k in range(0, resolution, chunk):
                    gx, gy, gz = torch.meshgrid(xs[i:i + chunk], xs[j:j + chunk], xs[k:k + chunk], indexing="ij")
                    pts = torch.stack([gx, gy, gz], -1).reshape(-1, 3)
                    out[i:i + chunk, j:j + chunk, k:k + chunk] = \
                        model.sdf.sdf(pts).reshape(gx.shape).cpu().numpy()
    return out


def vertex_colors(model: NeusModel, vertices: torch.Tensor, head: str = "texture", chunk: int = 512) -> torch.Tensor:
    """Per-vertex colours by AvatarCLIP's least-occlusion rule (docs/method.md §4).

    For each vertex, rays are cast from the six points (±2, 0, 0), (0, ±2, 0), (0, 0, ±2) towards it and
    volume-rendered (head 2 for "texture", head 1 for "base"; black background); the colour of the
    direction whose expected depth Σ w·z is closest to the true distance is kept.
    vertices (V, 3) → (V, 3) float in [0, 1].
    """
    dev = next(model.parameters()).device
    v = vertices.to(dev).float()
    best_err = torch.full((v.shape[0],), float("inf"), device=dev)
    best_col = torch.zeros(v.shape[0], 3, device=dev)
    for src in _SOURCES:
        o = torch.tensor(src, device=dev).expand_as(v).contiguous()
        diff = v - o
        dist = diff.norm(dim=-1)
        out = render_rays_chunked(model, o, diff / dist[:, None], chunk)
        col = out["texture"] if head == "texture" else out["color"]
        err = (out["depth"][:, 0] - dist).abs()
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_col = torch.where(better[:, None], col, best_col)
    return best_col.clamp(0, 1)


def extract_mesh(model: NeusModel, resolution: int = 256, head: str = "texture", threshold: float = 0.0,
                 chunk: int = 64, color_chunk: int = 512, with_colors: bool = True) -> trimesh.Trimesh:
    """Marching-cubes mesh of the avatar with vertex colours (docs/method.md §4).

    Field = −SDF on a resolution³ grid over [−1.01, 1.01]³ (512 in the reference's final export, 256 during
    training), PyMCubes at `threshold`; vertices mapped back by v/(res − 1)·2.02 − 1.01 (avatar frame,
    metres); triangles wound counter-clockwise seen from outside. Vertex colours RGBA uint8 (alpha 255)
    from `vertex_colors` (head "texture" = head 2, "base" = head 1). Floaters are kept, as in the reference;
    stage 6 drops them (`animate.largest_component`).

    Raises: ValueError for an unknown head, head "texture" on a model without head 2, or an empty level set.
    """
    if head not in ("texture", "base"):
        raise ValueError(f"head must be 'texture' or 'base', got {head!r}")
    if head == "texture" and not model.has_texture_head:
        raise ValueError("head='texture' needs a stage-3 model with colour head 2; use head='base'")
    field = -sdf_grid(model, resolution, chunk)
    verts, tris = mcubes.marching_cubes(field, threshold)  # positive-inside field: wound outward as is
    if len(tris) == 0:
        raise ValueError(f"the SDF has no level set at threshold {threshold} inside [−1.01, 1.01]³ "
                         f"(SDF range {-field.max():.3f} … {-field.min():.3f}); check the model or the threshold")
    verts = verts / (resolution - 1) * (2 * BOUND) - BOUND
    mesh = trimesh.Trimesh(verts.astype(np.float32), np.ascontiguousarray(tris), process=False)
    if with_colors:
        col = vertex_colors(model, torch.as_tensor(mesh.vertices, dtype=torch.float32), head, color_chunk)
        rgba = np.concatenate([(col.cpu().numpy() * 255 + 0.5).astype(np.uint8),
                               np.full((len(mesh.vertices), 1), 255, np.uint8)], 1)
        mesh.visual.vertex_colors = rgba
    return mesh


def save_ply(mesh: trimesh.Trimesh, path) -> Path:
    """Write `mesh` as a binary PLY (per-vertex RGBA uint8 when present) atomically; returns the path. The one PLY
    writer of the package (`pipeline.save_mesh_ply` builds the mesh from arrays and calls it)."""
    return atomic_write(path, lambda p: mesh.export(p, file_type="ply", encoding="binary"))


def render_head_closeup(model: NeusModel, head_height: float, face_z: float, size: int = 512, seed: int = 0,
                        chunk: int = 512, fov_deg: float = 60.0) -> torch.Tensor:
    """Head close-up (docs/method.md §4 `render_geometry_cast_light`): camera at (0, head_height, face_z + 0.5)
    looking at (0, head_height, face_z), head-2 colour × Lambert shading with zero ambient and a light
    jittered ±45° about the view direction, black background. Returns (size, size, 3) float in [0, 1]."""
    dev = next(model.parameters()).device
    at = torch.tensor([0.0, head_height, face_z])
    cam = Cameras(look_at(at + torch.tensor([0.0, 0.0, 0.5]), at), fov_deg).to(dev)
    g = torch.Generator().manual_seed(seed)
    th, ph = ((torch.rand(2, generator=g) * 2 - 1) * math.pi / 4).tolist()
    light = torch.tensor([math.sin(th) * math.cos(ph), math.sin(th) * math.sin(ph), math.cos(th)], device=dev)
    o, d = cam.rays(size, size)
    out = render_rays_chunked(model, o.reshape(-1, 3), d.reshape(-1, 3), chunk)
    col = out["texture"] if out["texture"] is not None else out["color"]
    return lambert(col, out["normals"], light, ambient=0.0).clamp(0, 1).reshape(size, size, 3)


def surface_colors(model: NeusModel, points: torch.Tensor, head: str = "texture", project_steps: int = 2,
                   max_step: float = 0.02, chunk: int = 65536) -> torch.Tensor:
    """Colour of the NeuS colour field at points on (or near) the zero level set (docs/method.md §4, Avatar
    animation: texture baking).

    Each point first takes `project_steps` Newton steps onto the level set, p ← p − f(p)·∇f/‖∇f‖², each step
    clipped to `max_step` metres (a point of a marching-cubes triangle lies within a voxel of the surface);
    then the colour network (mode `no_view_dir`, so no view direction is needed) is evaluated there with the
    SDF feature and gradient, head 2 for "texture", head 1 for "base". Unlike `vertex_colors` this is one
    network evaluation per point, so texels finer than the mesh get their own colour.

    Args:
        model: NeusModel; points: (N, 3) float, metres, avatar frame (the stand pose of stages 2–3), any device.
        head: "texture" (head 2) or "base" (head 1); project_steps ≥ 0; max_step > 0 metres; chunk ≥ 1.
    Returns:
        (N, 3) float32 colours in [0, 1] (sRGB-encoded, as the NeuS renders), on the model's device.
    Raises:
        ValueError: unknown head, head "texture" on a model without head 2, or points not (N, 3).
    """
    if head not in ("texture", "base"):
        raise ValueError(f"head must be 'texture' or 'base', got {head!r}")
    if head == "texture" and not model.has_texture_head:
        raise ValueError("head='texture' needs a stage-3 model with colour head 2; use head='base'")
    if points.ndim != 2 or points.shape[-1] != 3:
        raise ValueError(f"points must be (N, 3), got {tuple(points.shape)}")
    dev = next(model.parameters()).device
    out = []
    for s in range(0, points.shape[0], chunk):
        p = points[s:s + chunk].to(dev).float()
        for _ in range(project_steps):
            sdf, _, grad = model.sdf.sdf_and_gradient(p, create_graph=False)
            step = sdf.reshape(-1, 1) * grad / grad.pow(2).sum(-1, keepdim=True).clamp_min(1e-8)
            norm = step.norm(dim=-1, keepdim=True)
            p = (p - step * (max_step / norm.clamp_min(max_step))).detach()
        _, feature, grad = model.sdf.sdf_and_gradient(p, create_graph=False)
        with torch.no_grad():
            col = model.color(p, grad.detach(), feature.detach())
        out.append((col[:, 3:6] if head == "texture" else col[:, :3]).detach().float())
    return torch.cat(out).clamp(0, 1) if out else torch.zeros(0, 3, device=dev)
