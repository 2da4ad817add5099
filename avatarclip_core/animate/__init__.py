"""Stage 6: rig transfer (body model → sculpted avatar), skinned animated glTF export, avatar video.

See `rig_transfer` (docs/method.md §5, with surface-point weights, smoothing, unposing), `gltf_export` (avatar.glb),
`gltf_validate` (Khronos validator), `video_render` (avatar.mp4 / .gif), `mesh_clean` (webbing cut, mesh checks),
`texture_bake` (xatlas UVs, baked texture), `obj_export` (OBJ + MTL + PNG) and `pipeline.animate_avatar`.

Names are imported on first access (PEP 562), so ``import avatarclip_core.animate.params`` (the configuration
check) does not import torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "gltf_export": ("build_gltf", "export_glb", "top4_weights", "joint_names", "MIXAMO_NAMES"),
    "mesh_clean": ("cut_webbing", "mesh_report", "part_labels", "webbing_counts"),
    "obj_export": ("export_obj",),
    "texture_bake": ("UVTexture", "unwrap", "bake_texture", "render_textured"),
    "gltf_validate": ("ensure_validator", "validate_glb"),
    "params": ("VideoParams",),
    "pipeline": ("animate_avatar", "bake_avatar_texture"),
    "rig_transfer": ("RiggedAvatar", "decimate", "decimate_rigged", "largest_component", "rig_avatar",
                     "smooth_weights", "transfer_weights", "unpose"),
    "video_render": ("fit_camera", "render_motion_frames", "render_video"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = ["RiggedAvatar", "rig_avatar", "transfer_weights", "smooth_weights", "unpose", "largest_component",
           "decimate", "decimate_rigged", "build_gltf", "export_glb", "top4_weights", "validate_glb",
           "ensure_validator", "VideoParams", "fit_camera", "render_motion_frames", "render_video",
           "animate_avatar", "bake_avatar_texture", "joint_names", "MIXAMO_NAMES", "cut_webbing", "mesh_report",
           "part_labels", "webbing_counts", "export_obj", "UVTexture", "unwrap", "bake_texture", "render_textured"]


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
