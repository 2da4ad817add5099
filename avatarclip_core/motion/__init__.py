"""Motion: BVH retargeting, the pose library, stage 4 (text → poses by CLIP retrieval) and stage 5
(poses → motion by interpolation or the MotionOptimizer, BVH export), the open pose/motion priors.
docs/method.md §6; docs/design.md §2 (04_poses, 05_motion).

Names are imported on first access (PEP 562), so ``import avatarclip_core.motion.params`` (the configuration
check) does not import torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "bvh_export": ("write_bvh",),
    "bvh_retarget": ("DEFAULT_REST_JOINTS", "RetargetedClip", "bone_direction_error", "read_bvh", "retarget_bvh"),
    "params": ("MotionParams", "PoseParams"),
    "interpolation": ("anchor_frames", "interpolate_motion"),
    "pose_library": ("PoseLibrary", "load_pose_library", "pose_distance", "remove_heading"),
    "retrieval": ("library_embeddings", "rank_poses", "render_pose_images", "retrieve_poses",
                  "suppress_duplicates"),
    "priors": ("MotionVAE", "PoseVAE", "load_motion_vae", "load_pose_vae"),
    "generators": ("MotionOptimizer", "clip_pose_scores", "generate_motion", "generate_poses",
                   "optimize_pose_latents", "optimize_poses"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = ["write_bvh", "DEFAULT_REST_JOINTS", "RetargetedClip", "bone_direction_error", "read_bvh", "retarget_bvh",
           "MotionParams", "anchor_frames", "interpolate_motion", "PoseLibrary", "load_pose_library",
           "pose_distance", "remove_heading", "PoseParams", "library_embeddings", "rank_poses",
           "render_pose_images", "retrieve_poses", "suppress_duplicates", "MotionVAE", "PoseVAE",
           "load_motion_vae", "load_pose_vae", "MotionOptimizer", "clip_pose_scores", "generate_motion",
           "generate_poses", "optimize_pose_latents", "optimize_poses"]


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
