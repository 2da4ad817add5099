"""Stage 6: rig transfer (body model → sculpted avatar), skinned animated glTF export, avatar video.

See `rig_transfer` (docs/method.md §5, with surface-point weights, smoothing, unposing), `gltf_export` (avatar.glb),
`gltf_validate` (Khronos validator), `video_render` (avatar.mp4 / .gif) and `pipeline.animate_avatar`.
"""
from .gltf_export import build_gltf, export_glb, top4_weights
from .gltf_validate import ensure_validator, validate_glb
from .params import VideoParams
from .pipeline import animate_avatar
from .rig_transfer import (RiggedAvatar, decimate, decimate_rigged, largest_component, rig_avatar, smooth_weights, transfer_weights,
                           unpose)
from .video_render import fit_camera, render_motion_frames, render_video

__all__ = ["RiggedAvatar", "rig_avatar", "transfer_weights", "smooth_weights", "unpose", "largest_component",
           "decimate", "decimate_rigged", "build_gltf", "export_glb", "top4_weights", "validate_glb", "ensure_validator",
           "VideoParams", "fit_camera", "render_motion_frames", "render_video", "animate_avatar"]
