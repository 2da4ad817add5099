"""`render_mesh`: differentiable mesh rendering (RGB, soft alpha, depth, normals, face index) in pure torch.

Replaces AvatarCLIP's CUDA-only neural_renderer (docs/method.md §0, neural_renderer conventions): both windings
are rendered (fill_back), back faces get their normal flipped towards the camera, default lighting is
colour·(0.5 + 0.5·max(0, n·(0, 1, 0))) with flat (face) normals, and — unlike NR — cameras are standard OpenGL
look-at cameras (`avatarclip_core.cameras`), so no left-right flip is needed. See `rasterizer` for the method.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..cameras import Cameras
from . import shading as _sh
from .rasterizer import contour_edge_hits, interpolate_barycentric, project, rasterize


@dataclass
class RenderOutput:
    """Rendered images of B views.

    Attributes:
        rgb: (B, H, W, 3) float in [0, 1] (for colours in [0, 1]): alpha·shaded + (1 − alpha)·background.
        alpha: (B, H, W) float soft coverage in [0, 1]; ≥ 0.5 where a face covers the pixel centre and < 0.5
            where none does, smooth across silhouette edges (differentiable w.r.t. vertex positions there).
        depth: (B, H, W) float view-axis depth in metres (−z in camera frame) of the visible surface at the
            pixel centre, perspective-correct; 0 where empty.
        normals: (B, H, W, 3) float world-frame unit normals of the visible surface, facing the camera
            (back faces flipped); 0 where empty.
        face_index: (B, H, W) int64 index into `faces` of the visible face, −1 where empty.
    """

    rgb: torch.Tensor
    alpha: torch.Tensor
    depth: torch.Tensor
    normals: torch.Tensor
    face_index: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """(B, H, W) bool hard coverage (face_index ≥ 0)."""
        return self.face_index >= 0


def _image_size(image_size) -> tuple[int, int]:
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        h = w = image_size
    else:
        try:
            h, w = (int(x) for x in image_size)
        except (TypeError, ValueError):
            raise ValueError(f"image_size must be an int or (H, W), got {image_size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return h, w


def _check_inputs(vertices, faces, cameras, image_size):
    if not isinstance(vertices, torch.Tensor) or vertices.ndim not in (2, 3) or vertices.shape[-1] != 3:
        raise ValueError(f"vertices must be a (V, 3) or (B, V, 3) float tensor, got "
                         f"{tuple(vertices.shape) if isinstance(vertices, torch.Tensor) else type(vertices)}")
    if not vertices.is_floating_point():
        raise ValueError(f"vertices must be floating point, got {vertices.dtype}; use vertices.float()")
    if vertices.ndim == 2:
        vertices = vertices[None]
    if not isinstance(cameras, Cameras):
        raise ValueError(f"cameras must be an avatarclip_core.cameras.Cameras, got {type(cameras).__name__}")
    if not isinstance(faces, torch.Tensor) or faces.ndim != 2 or faces.shape[1] != 3 or faces.is_floating_point():
        raise ValueError(f"faces must be an (F, 3) integer tensor, got "
                         f"{tuple(faces.shape) if isinstance(faces, torch.Tensor) else type(faces)}")
    faces = faces.to(device=vertices.device, dtype=torch.int64)
    V = vertices.shape[1]
    if faces.numel() and (faces.min() < 0 or faces.max() >= V):
        raise ValueError(f"faces index vertices 0..{V - 1} but hold values in [{int(faces.min())}, "
                         f"{int(faces.max())}]; pass the faces that belong to these vertices")
    Bv, Bc = vertices.shape[0], len(cameras)
    if Bv != Bc and 1 not in (Bv, Bc):
        raise ValueError(f"got {Bv} vertex sets for {Bc} cameras; pass one vertex set, one camera, or as many "
                         f"vertex sets as cameras")
    B = max(Bv, Bc)
    if not torch.isfinite(vertices).all():
        raise ValueError("vertices contain NaN/inf")
    cameras = cameras.to(vertices.device)
    if Bc != B:
        cameras = Cameras(cameras.c2w.expand(B, -1, -1), cameras.fov_deg)
    H, W = _image_size(image_size)
    return vertices.expand(B, -1, -1), faces, cameras, H, W


def _per_batch(x, B, name, inner: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(x, dtype=like.dtype, device=like.device) if not isinstance(x, torch.Tensor) \
        else x.to(device=like.device, dtype=like.dtype)
    if tuple(x.shape) == inner:
        x = x[None]
    if x.ndim != len(inner) + 1 or tuple(x.shape[1:]) != inner or x.shape[0] not in (1, B):
        raise ValueError(f"{name} must have shape {inner} or ({B}, {', '.join(map(str, inner))}), got "
                         f"{tuple(x.shape)}")
    return x.expand(B, *inner)


def render_mesh(vertices: torch.Tensor, faces: torch.Tensor, cameras: Cameras, image_size,
                colors: torch.Tensor | None = None, background=0.0, shading: str = "lambert",
                light_dir=None, ambient: float = 0.5, sigma: float = 0.5, smooth_normals: bool = False,
                near: float = 1e-2, max_pairs: int = 1 << 20) -> RenderOutput:
    """Render a triangle mesh from B cameras, differentiably (pure torch; CPU and CUDA).

    Args:
        vertices: (V, 3) or (B, V, 3) float world positions in metres (avatar frame). (V, 3) with B cameras
            renders the same mesh from every camera; (B, V, 3) pairs mesh b with camera b (or with a single
            camera, broadcast).
        faces: (F, 3) integer vertex indices (CCW seen from outside for outward normals); both sides render.
        cameras: `Cameras` (OpenGL look-at, horizontal FoV in degrees), B or 1 of them.
        image_size: int (square) or (H, W) in pixels.
        colors: per-vertex albedo (V, 3) or (B, V, 3) (perspective-correct interpolation); None = white.
        background: float, (3,) colour, or (B, H, W, 3) / (H, W, 3) image composited behind the mesh.
        shading: "lambert" (colour·(ambient + (1 − ambient)·max(0, n·l)), NR's default) or "none" (albedo).
        light_dir: world-frame direction *towards* the light, (3,) or (B, 3), normalised here;
            default (0, 1, 0) (light from above, as NR).
        ambient: ambient fraction in [0, 1] (NR default 0.5).
        sigma: softness of silhouette edges in pixels (alpha = sigmoid(signed distance / sigma) within a
            band of ceil(6·sigma) px); 0 = hard (binary) alpha with no silhouette gradients.
        smooth_normals: interpolate area-weighted vertex normals instead of flat face normals (NR: flat).
        near: faces with a vertex closer than `near` metres to the camera plane are culled (no clipping).
        max_pairs: (face, pixel) candidate pairs per chunk; bounds peak memory (~100 bytes per pair).
    Returns:
        `RenderOutput` (rgb, alpha, depth, normals, face_index); rgb/alpha/depth/normals are differentiable
        w.r.t. vertices and colours (alpha w.r.t. vertices only at silhouette edges).
    Raises:
        ValueError: on bad shapes, out-of-range face indices, non-finite vertices, unknown shading,
            a zero light direction, ambient outside [0, 1], negative sigma or near ≤ 0.
    """
    vertices, faces, cameras, H, W = _check_inputs(vertices, faces, cameras, image_size)
    B, V = vertices.shape[:2]
    if shading not in ("lambert", "none"):
        raise ValueError(f"shading must be 'lambert' or 'none', got {shading!r}")
    if not 0.0 <= float(ambient) <= 1.0:
        raise ValueError(f"ambient must be in [0, 1], got {ambient}")
    if not float(sigma) >= 0.0:
        raise ValueError(f"sigma (edge softness in pixels) must be ≥ 0, got {sigma}")
    if not float(near) > 0.0:
        raise ValueError(f"near must be > 0 metres, got {near}")
    colors = torch.ones(B, V, 3, dtype=vertices.dtype, device=vertices.device) if colors is None \
        else _per_batch(colors, B, "colors", (V, 3), vertices)
    light = _per_batch((0.0, 1.0, 0.0) if light_dir is None else light_dir, B, "light_dir", (3,), vertices)
    if (light.norm(dim=-1) < 1e-12).any():
        raise ValueError(f"light_dir must be non-zero, got {light_dir}")
    light = torch.nn.functional.normalize(light, dim=-1)
    if isinstance(background, (int, float)):
        bg = torch.full((1, 1, 1, 3), float(background), dtype=vertices.dtype, device=vertices.device)
    else:
        bg = torch.as_tensor(background, dtype=vertices.dtype).to(vertices.device)
        if bg.shape == (3,):
            bg = bg.view(1, 1, 1, 3)
        elif bg.shape == (H, W, 3):
            bg = bg[None]
        elif bg.ndim != 4 or tuple(bg.shape[1:]) != (H, W, 3) or bg.shape[0] not in (1, B):
            raise ValueError(f"background must be a float, (3,), ({H}, {W}, 3) or ({B}, {H}, {W}, 3); "
                             f"got shape {tuple(bg.shape)}")

    uv, z = project(vertices, cameras, H, W)
    frags = rasterize(uv.detach(), z.detach(), faces, H, W, near=near, max_pairs=max_pairs)
    face_flat = frags.face_index.reshape(-1)
    pix = torch.nonzero(face_flat >= 0).squeeze(1)
    face = face_flat[pix]
    b = pix // (H * W)
    w, zpix = interpolate_barycentric(uv, z, faces, pix, face, H, W)
    side = torch.where(frags.face_sign[b, face] >= 0, 1.0, -1.0).to(vertices.dtype)[:, None]

    vnormals = _sh.vertex_normals(vertices, faces) if smooth_normals else None
    fnormals = None if smooth_normals else _sh.face_normals(vertices, faces)
    vid = faces[face]
    albedo = (colors[b[:, None], vid] * w[..., None]).sum(1)
    if smooth_normals:
        n = torch.nn.functional.normalize((vnormals[b[:, None], vid] * w[..., None]).sum(1), dim=-1, eps=1e-20)
    else:
        n = fnormals[b, face]
    n = n * side
    lit = _sh.lambert(albedo, n, light[b], ambient) if shading == "lambert" else albedo

    HWB = B * H * W
    alpha = (face_flat >= 0).to(vertices.dtype)
    shaded = torch.zeros(HWB, 3, dtype=vertices.dtype, device=vertices.device).index_put((pix,), lit)
    if sigma > 0:
        margin = max(1, math.ceil(6.0 * float(sigma)))
        hits = contour_edge_hits(uv, faces, frags, H, W, margin, max_pairs=max_pairs)
        alpha = alpha.index_put((hits.pix,), torch.sigmoid(hits.distance / float(sigma)))
        out = face_flat[hits.pix] < 0                                  # soft pixels outside the hard coverage
        opix, t, ev, ef = hits.pix[out], hits.t[out, None], hits.edge_vertices[out], hits.face[out]
        ob = opix // (H * W)
        oalb = (1 - t) * colors[ob, ev[:, 0]] + t * colors[ob, ev[:, 1]]
        oside = torch.where(frags.face_sign[ob, ef] >= 0, 1.0, -1.0).to(vertices.dtype)[:, None]
        if smooth_normals:
            on = torch.nn.functional.normalize((1 - t) * vnormals[ob, ev[:, 0]] + t * vnormals[ob, ev[:, 1]],
                                               dim=-1, eps=1e-20)
        else:
            on = fnormals[ob, ef]
        on = on * oside
        olit = _sh.lambert(oalb, on, light[ob], ambient) if shading == "lambert" else oalb
        shaded = shaded.index_put((opix,), olit)
    normals = torch.zeros(HWB, 3, dtype=vertices.dtype, device=vertices.device).index_put((pix,), n)
    depth = torch.zeros(HWB, dtype=vertices.dtype, device=vertices.device).index_put((pix,), zpix)
    alpha = alpha.reshape(B, H, W)
    rgb = _sh.composite(shaded.reshape(B, H, W, 3), alpha, bg)
    return RenderOutput(rgb, alpha, depth.reshape(B, H, W), normals.reshape(B, H, W, 3), frags.face_index)


def silhouette(vertices: torch.Tensor, faces: torch.Tensor, cameras: Cameras, image_size, sigma: float = 0.5,
               near: float = 1e-2) -> torch.Tensor:
    """Soft silhouette (B, H, W) in [0, 1] of a mesh (the `alpha` of `render_mesh`, without shading work).

    Args/raises: as `render_mesh`. Differentiable w.r.t. vertex positions at silhouette edges.
    """
    vertices, faces, cameras, H, W = _check_inputs(vertices, faces, cameras, image_size)
    if not float(sigma) >= 0.0:
        raise ValueError(f"sigma (edge softness in pixels) must be ≥ 0, got {sigma}")
    if not float(near) > 0.0:
        raise ValueError(f"near must be > 0 metres, got {near}")
    uv, z = project(vertices, cameras, H, W)
    frags = rasterize(uv.detach(), z.detach(), faces, H, W, near=near)
    alpha = (frags.face_index >= 0).to(vertices.dtype).reshape(-1)
    if sigma > 0:
        hits = contour_edge_hits(uv, faces, frags, H, W, max(1, math.ceil(6.0 * float(sigma))))
        alpha = alpha.index_put((hits.pix,), torch.sigmoid(hits.distance / float(sigma)))
    return alpha.reshape(-1, H, W)
