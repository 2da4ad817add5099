"""Stages 2–3 of AvatarCLIP (docs/method.md §2–§4): NeuS fields and volume renderer, NeuS init on the coarse
body, CLIP sculpting + texturing, marching-cubes export with vertex colours.

Names are imported on first access (PEP 562), so ``import avatarclip_core.neus.params`` (the configuration
check) does not import torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "fields": ("ColorNetwork", "NeusModel", "SDFNetwork", "VarianceNetwork", "positional_encoding"),
    "init": ("body_sdf_bank", "body_view_cameras", "body_views", "fit_body_sdf", "fit_neus_init", "load_neus",
             "render_body"),
    "mesh": ("extract_mesh", "render_head_closeup", "save_ply", "vertex_colors"),
    "params": ("NeusInitParams", "NeusModelParams", "TextureParams"),
    "renderer": ("render_rays", "render_views"),
    "sampler": ("TextureCameraSampler", "face_anchor"),
    "texture": ("TextureState", "train_texture"),
    "training": ("Checkpoints",),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = ["NeusModel", "SDFNetwork", "ColorNetwork", "VarianceNetwork", "positional_encoding", "NeusInitParams",
           "NeusModelParams", "TextureParams", "TextureState", "Checkpoints", "fit_neus_init", "fit_body_sdf",
           "body_sdf_bank", "body_views", "body_view_cameras", "render_body", "load_neus", "render_rays",
           "render_views", "train_texture", "TextureCameraSampler", "face_anchor", "extract_mesh",
           "vertex_colors", "save_ply", "render_head_closeup"]


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    if not name.startswith("_"):  # a submodule not imported yet (`avatarclip_core.<package>.<module>` as before)
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
