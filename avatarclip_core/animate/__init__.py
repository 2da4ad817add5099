"""Stage 6: rig transfer (body model → sculpted avatar), skinned animated glTF export, avatar video.

See `rig_transfer` (docs/method.md §5, with surface-point weights, smoothing, unposing), `gltf_export` (avatar.glb),
`gltf_validate` (Khronos validator), `video_render` (avatar.mp4 / .gif), `mesh_clean` (webbing cut),
`mesh_checks` (open edges, self-intersections, limb joins),
`texture_bake` (xatlas UVs, baked texture), `obj_export` (OBJ + MTL + PNG) and `pipeline.animate_avatar`.

Names are imported on first access (PEP 562), so ``import avatarclip_core.animate.params`` (the configuration
check) does not import torch.
"""
from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "gltf_export": ("build_gltf", "export_glb", "top4_weights", "joint_names", "MIXAMO_NAMES"),
    "mesh_checks": ("mesh_report", "limb_joins", "self_intersections", "edge_counts"),
    "mesh_clean": ("cut_webbing", "orient_outward", "part_labels", "body_detachment"),
    "obj_export": ("export_obj",),
    "texture_bake": ("UVTexture", "unwrap", "bake_texture", "render_textured"),
    "gltf_validate": ("ensure_validator", "validate_glb"),
    "params": ("VideoParams",),
    "pipeline": ("animate_avatar", "bake_avatar_texture"),
    "rig_transfer": ("RiggedAvatar", "decimate", "decimate_rigged", "largest_component", "rig_avatar",
                     "smooth_weights", "transfer_weights", "unpose"),
    "video_render": ("fit_camera", "render_motion_frames", "render_video"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
