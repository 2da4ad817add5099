"""Stages 2–3 of AvatarCLIP (docs/method.md §2–§4): NeuS fields and volume renderer, NeuS init on the coarse
body, CLIP sculpting + texturing, marching-cubes export with vertex colours.

Names are imported on first access (PEP 562), so ``import avatarclip_core.neus.params`` (the configuration
check) does not import torch.
"""
from __future__ import annotations

from ..lazy import lazy_exports

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
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
