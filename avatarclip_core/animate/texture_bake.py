"""UV unwrapping (xatlas) and texture baking of the avatar's colour (docs/method.md, Avatar animation).

Game engines' standard shaders ignore vertex colours, so stage 6 also ships the colour as a texture:

1. `unwrap`: xatlas charts and packs the rest mesh; vertices on chart seams are split (`UVTexture.vmapping`).
2. `bake_texture`: the UV triangles are rasterised into the texture (our torch rasteriser, one texel per pixel
   centre); each covered texel's point on the *stand-pose* mesh (the pose NeuS was trained in) is coloured by a
   function of points — `neus.mesh.surface_colors` (the NeuS texture head at the level set, so detail finer than
   the mesh survives) or, without a NeuS model, the interpolated vertex colours;
3. empty texels take the colour of the nearest covered texel (seam dilation, so bilinear filtering and mipmaps
   never pull in background).

Texture images are float (H, W, 3) in [0, 1], sRGB-encoded (as rendered; glTF's baseColorTexture is sRGB). UVs
follow glTF: (0, 0) is the image's top-left corner, texel row = v·H (OBJ flips v on export).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

from ..render.rasterizer import interpolate_barycentric, rasterize


@dataclass
class UVTexture:
    """A UV layout and its baked texture.

    Attributes:
        vmapping: (V',) int64 index of the original vertex of each UV vertex (seam vertices are duplicated).
        faces: (F, 3) int64 triangles over the UV vertices (same order and winding as the original faces).
        uv: (V', 2) float32 texture coordinates in [0, 1], glTF convention (v down).
        image: (H, W, 3) float32 sRGB colours in [0, 1], or None before baking.
        coverage: fraction of texels covered by a triangle before dilation.
    """

    vmapping: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    image: np.ndarray | None = None
    coverage: float = 0.0

    def png_bytes(self) -> bytes:
        """The texture as PNG bytes (RGB, 8 bit). Raises ValueError before baking."""
        import imageio.v3 as iio

        if self.image is None:
            raise ValueError("UVTexture.png_bytes: bake the texture first (bake_texture)")
        return iio.imwrite("<bytes>", (np.clip(self.image, 0, 1) * 255 + 0.5).astype(np.uint8), extension=".png")


def unwrap(vertices, faces, size: int = 1024, padding: int = 2) -> UVTexture:
    """UV-unwrap a triangle mesh with xatlas (charts + packing for a `size`² texture, `padding` texels between
    charts).

    Args:
        vertices: (V, 3) float (metres; the rest T-pose mesh); faces: (F, 3) int.
    Returns:
        UVTexture without image (faces in the input order).
    Raises:
        ImportError: xatlas is missing (pip install xatlas). ValueError: size < 16 or an empty mesh.
    """
    import xatlas

    if size < 16:
        raise ValueError(f"texture size must be ≥ 16 texels, got {size}")
    v = np.ascontiguousarray(vertices, dtype=np.float32)
    f = np.ascontiguousarray(faces, dtype=np.uint32)
    if len(f) == 0:
        raise ValueError("unwrap: the mesh has no faces")
    atlas = xatlas.Atlas()
    atlas.add_mesh(v, f)
    pack = xatlas.PackOptions()
    pack.resolution, pack.padding, pack.bilinear = int(size), int(padding), True
    atlas.generate(pack_options=pack)
    vmapping, idx, uv = atlas[0]
    return UVTexture(vmapping.astype(np.int64), idx.astype(np.int64), uv.astype(np.float32))


def texel_samples(tex: UVTexture, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Texels whose centre lies in a UV triangle: flat texel index (N,) into size², face (N,), barycentric
    weights (N, 3) float64 of the texel centre in that face."""
    uv = torch.from_numpy(tex.uv.astype(np.float64))[None] * size
    depth = torch.ones(uv.shape[:2], dtype=torch.float64)
    faces = torch.from_numpy(tex.faces)
    frags = rasterize(uv, depth, faces, size, size)
    pix = torch.nonzero(frags.face_index.reshape(-1) >= 0).squeeze(1)
    face = frags.face_index.reshape(-1)[pix]
    bary, _ = interpolate_barycentric(uv, depth, faces, pix, face, size, size)
    return pix.numpy(), face.numpy(), bary.numpy()


def bake_texture(tex: UVTexture, vertices, size: int = 1024,
                 color_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 vertex_colors=None) -> UVTexture:
    """Bake a colour into `tex`'s layout (see the module docstring).

    Args:
        tex: from `unwrap`; vertices: (V, 3) float original (not UV-split) vertices where colours are looked up:
            the stand-pose mesh, metres, avatar frame.
        size: texture height and width in texels (≥ 16).
        color_fn: points (N, 3) float32 → (N, 3) colours in [0, 1] (e.g. `neus.mesh.surface_colors` of the
            stage-3 model); None = interpolate `vertex_colors`.
        vertex_colors: (V, ≥3) uint8 (or float in [0, 1]) sRGB colours, used when color_fn is None.
    Returns:
        `tex` with `image` (size, size, 3) float32 and `coverage` set.
    Raises:
        ValueError: neither color_fn nor vertex_colors, or size < 16.
    """
    if size < 16:
        raise ValueError(f"texture size must be ≥ 16 texels, got {size}")
    if color_fn is None and vertex_colors is None:
        raise ValueError("bake_texture needs color_fn (e.g. the NeuS texture head) or vertex_colors")
    v = np.asarray(torch.as_tensor(vertices).detach().cpu(), dtype=np.float64)[tex.vmapping]
    pix, face, bary = texel_samples(tex, size)
    corners = tex.faces[face]
    if color_fn is not None:
        pts = np.einsum("nc,ncd->nd", bary, v[corners])
        col = color_fn(torch.from_numpy(pts).float()).detach().cpu().numpy()
    else:
        c = np.asarray(torch.as_tensor(vertex_colors).detach().cpu())[:, :3].astype(np.float64)
        c = c / 255.0 if c.max() > 1.0 else c
        col = np.einsum("nc,ncd->nd", bary, c[tex.vmapping][corners])
    image = np.zeros((size * size, 3), np.float32)
    image[pix] = col
    covered = np.zeros(size * size, bool)
    covered[pix] = True
    covered = covered.reshape(size, size)
    if covered.any():  # seam dilation: every empty texel takes its nearest covered texel's colour
        _, (iy, ix) = distance_transform_edt(~covered, return_indices=True)
        image = image.reshape(size, size, 3)[iy, ix]
    tex.image, tex.coverage = image.reshape(size, size, 3).astype(np.float32), float(covered.mean())
    return tex


def render_textured(vertices, tex: UVTexture, cameras, image_size: int, background: float = 0.0):
    """Unshaded render of the textured mesh (bilinear texture lookup), for checking a bake against NeuS renders.

    The UV coordinates are rendered as perspective-correct per-vertex colours (`render.render_mesh`, shading
    "none", hard edges) and the texture is sampled there (`torch.nn.functional.grid_sample`, bilinear).

    Args:
        vertices: (V, 3) original vertices (metres, avatar frame, same pose as the cameras see);
        tex: a baked UVTexture; cameras: B `Cameras`; image_size: pixels; background: grey level.
    Returns:
        rgb (B, S, S, 3) float in [0, 1], mask (B, S, S) bool.
    """
    from ..render.renderer import render_mesh

    v = torch.as_tensor(np.asarray(torch.as_tensor(vertices).cpu())[tex.vmapping], dtype=torch.float32)
    uvc = torch.from_numpy(np.concatenate([tex.uv, np.zeros((len(tex.uv), 1), np.float32)], 1))
    out = render_mesh(v, torch.from_numpy(tex.faces), cameras, image_size, colors=uvc, shading="none", sigma=0.0)
    grid = out.rgb[..., :2] * 2 - 1  # grid_sample: x = u, y = v, both in [-1, 1], y down the image rows
    img = torch.from_numpy(tex.image).permute(2, 0, 1)[None].expand(len(grid), -1, -1, -1)
    rgb = torch.nn.functional.grid_sample(img, grid, mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
    mask = out.mask
    return torch.where(mask[..., None], rgb, torch.full_like(rgb, background)), mask
