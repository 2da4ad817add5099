"""Motion: BVH retargeting (any humanoid skeleton, `bvh_mapping`), the pose library, stage 4 (text → poses by CLIP retrieval) and stage 5
(poses → motion by interpolation or the MotionOptimizer, BVH export), the open pose/motion priors.
docs/method.md §6; docs/design.md §2 (04_poses, 05_motion).

Names are imported on first access (PEP 562), so ``import avatarclip_core.motion.params`` (the configuration
check) does not import torch.
"""
from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "bvh_export": ("write_bvh",),
    "contact": ("ContactResult", "align_floor", "apply_contact", "contact_root", "detect_contact", "floor_height",
                "foot_clearance", "ground_root", "lock_feet", "two_bone_ik"),
    "metrics": ("foot_skate", "floor_figures", "jitter", "joint_accelerations", "joint_limit_violations",
                "motion_metrics"),
    "bvh_retarget": ("DEFAULT_REST_JOINTS", "RetargetedClip", "bone_direction_error", "direction_errors",
                     "end_direction_error", "read_bvh", "retarget_bvh"),
    "bvh_mapping": ("SkeletonMapError", "load_joint_map", "map_skeleton"),
    "params": ("ContactParams", "MotionParams", "PoseParams"),
    "interpolation": ("anchor_frames", "interpolate_motion"),
    "pose_library": ("PoseLibrary", "load_pose_library", "pose_distance", "remove_heading"),
    "retrieval": ("library_embeddings", "rank_poses", "render_pose_images", "retrieve_poses",
                  "suppress_duplicates"),
    "priors": ("MotionVAE", "PoseVAE", "load_motion_vae", "load_pose_vae"),
    "generators": ("MotionOptimizer", "clip_pose_scores", "generate_motion", "generate_poses",
                   "flow_poses", "optimize_pose_latents", "optimize_poses"),
    "flow": ("PoseFlow", "load_pose_flow"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
