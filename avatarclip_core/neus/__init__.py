"""Stages 2–3 of AvatarCLIP (docs/method.md §2–§4): NeuS fields and volume renderer, NeuS init on the coarse
body, CLIP sculpting + texturing, marching-cubes export with vertex colours."""
from .fields import ColorNetwork, NeusModel, SDFNetwork, VarianceNetwork, positional_encoding
from .init import (body_sdf_bank, body_view_cameras, body_views, fit_body_sdf, fit_neus_init, load_neus,
                   render_body)
from .mesh import extract_mesh, render_head_closeup, save_ply, vertex_colors
from .params import NeusInitParams, NeusModelParams, TextureParams
from .renderer import render_rays, render_views
from .sampler import TextureCameraSampler, face_anchor
from .texture import TextureState, train_texture
from .training import Checkpoints

__all__ = ["NeusModel", "SDFNetwork", "ColorNetwork", "VarianceNetwork", "positional_encoding",
           "NeusInitParams", "NeusModelParams", "TextureParams", "TextureState", "Checkpoints", "fit_neus_init", "fit_body_sdf", "body_sdf_bank", "body_views",
           "body_view_cameras", "render_body",
           "load_neus", "render_rays", "render_views", "train_texture", "TextureCameraSampler", "face_anchor",
           "extract_mesh", "vertex_colors", "save_ply", "render_head_closeup"]
