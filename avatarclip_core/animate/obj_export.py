"""Wavefront OBJ + MTL + PNG export of the textured rest-pose avatar, for tools without glTF (trimesh's writer).

The OBJ holds the rest T-pose mesh (metres, y up, facing +z; docs/method.md, Avatar animation) split along the
UV seams, with normals and texture coordinates (OBJ's v points up, so v = 1 − glTF v); `avatar.mtl` names the
baked texture `avatar.png` as `map_Kd`. OBJ has no skin or animation: those live in `avatar.glb`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

from ..io import atomic_write_bytes, atomic_write_text
from .rig_transfer import RiggedAvatar
from .texture_bake import UVTexture


def export_obj(folder, avatar: RiggedAvatar, texture: UVTexture, name: str = "avatar") -> dict:
    """Write `<name>.obj`, `<name>.mtl` and `<name>.png` into `folder` (created), each atomically.

    Args:
        folder: output folder; avatar: rigged avatar (its rest vertices are written);
        texture: the baked `UVTexture` of `avatar` (image set); name: file stem and material name.
    Returns:
        {"obj": Path, "mtl": Path, "png": Path}.
    Raises:
        ValueError: the texture has no image.
    """
    if texture.image is None:
        raise ValueError("export_obj: the texture has no image; bake it first (texture_bake.bake_texture)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    uv = texture.uv.astype(np.float64) * [1.0, -1.0] + [0.0, 1.0]  # glTF (v down) → OBJ (v up)
    image = Image.fromarray((np.clip(texture.image, 0, 1) * 255 + 0.5).astype(np.uint8))
    material = trimesh.visual.material.SimpleMaterial(image=image, name=name, diffuse=[255, 255, 255, 255])
    mesh = trimesh.Trimesh(avatar.rest_vertices.numpy()[texture.vmapping], texture.faces, process=False,
                           visual=trimesh.visual.TextureVisuals(uv=uv, material=material))
    text, files = trimesh.exchange.obj.export_obj(mesh, include_normals=True, include_color=False,
                                                 return_texture=True, mtl_name=f"{name}.mtl")
    out = {"obj": atomic_write_text(folder / f"{name}.obj", text)}
    mtl = files.pop(f"{name}.mtl").decode()
    for old, data in files.items():  # trimesh names the image after the material; ours is <name>.png
        mtl = mtl.replace(old, f"{name}.png")
        out["png"] = atomic_write_bytes(folder / f"{name}.png", data)
    out["mtl"] = atomic_write_text(folder / f"{name}.mtl", mtl)
    return out
