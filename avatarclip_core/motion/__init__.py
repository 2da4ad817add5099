"""Motion: BVH retargeting, the pose library, stage 4 (text → poses by CLIP retrieval) and stage 5
(poses → motion by interpolation or the MotionOptimizer, BVH export), the open pose/motion priors.
docs/method.md §6; docs/design.md §2 (04_poses, 05_motion)."""
from .bvh_export import write_bvh
from .bvh_retarget import DEFAULT_REST_JOINTS, RetargetedClip, bone_direction_error, read_bvh, retarget_bvh
from .interpolation import MotionParams, anchor_frames, interpolate_motion
from .pose_library import PoseLibrary, load_pose_library, pose_distance, remove_heading
from .retrieval import (PoseParams, library_embeddings, rank_poses, render_pose_images, retrieve_poses,
                        suppress_duplicates)
from .priors import MotionVAE, PoseVAE, load_motion_vae, load_pose_vae
from .generators import (MotionOptimizer, clip_pose_scores, generate_motion, generate_poses, optimize_pose_latents,
                         optimize_poses)

__all__ = [
    "write_bvh", "DEFAULT_REST_JOINTS", "RetargetedClip", "bone_direction_error", "read_bvh", "retarget_bvh",
    "MotionParams", "anchor_frames", "interpolate_motion", "PoseLibrary", "load_pose_library", "pose_distance",
    "remove_heading", "PoseParams", "library_embeddings", "rank_poses", "render_pose_images", "retrieve_poses",
    "suppress_duplicates", "MotionVAE", "PoseVAE", "load_motion_vae", "load_pose_vae", "MotionOptimizer",
    "clip_pose_scores", "generate_motion", "generate_poses", "optimize_pose_latents", "optimize_poses",
]
