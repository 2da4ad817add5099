"""The 22-joint body skeleton shared by every body model, motion and export (docs/design.md §3).

Convention (SMPL's): a pose is (..., 22, 3) local axis-angle rotations in radians; every joint's rest
orientation is the identity in the avatar frame (y up, body faces +z, x to the body's left), so the zero
pose is the rest pose, which is a T-pose for every body model. A joint's rotation acts in its parent's
frame; global transforms come from `forward_kinematics`, vertices from `linear_blend_skinning`.
"""
from __future__ import annotations

import roma
import torch

JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist",
)
PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)
NUM_JOINTS = len(JOINT_NAMES)
JOINT_INDEX = {name: i for i, name in enumerate(JOINT_NAMES)}
# Left/right partner of every joint, for mirroring poses.
MIRROR = tuple(JOINT_INDEX[n.replace("left_", "TMP_").replace("right_", "left_").replace("TMP_", "right_")]
               for n in JOINT_NAMES)


def check_pose(pose: torch.Tensor, name: str = "pose") -> None:
    """Raise ValueError unless `pose` has shape (..., 22, 3) and only finite values."""
    if pose.ndim < 2 or tuple(pose.shape[-2:]) != (NUM_JOINTS, 3):
        raise ValueError(f"{name} must have shape (..., {NUM_JOINTS}, 3) axis-angle in radians, "
                         f"got {tuple(pose.shape)}")
    if not torch.isfinite(pose).all():
        raise ValueError(f"{name} contains NaN or inf values")


def forward_kinematics(pose: torch.Tensor, rest_joints: torch.Tensor,
                       root_translation: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Global joint transforms of a posed skeleton (SMPL kinematics, Loper et al. 2015, §2).

    Args:
        pose: (..., 22, 3) float, local axis-angle per joint in radians (index 0 = global orient).
        rest_joints: (..., 22, 3) or (22, 3) float, joint positions of the rest (T-)pose in metres.
        root_translation: optional (..., 3) metres, added to every transform.
    Returns:
        transforms: (..., 22, 4, 4) global rigid transforms of the joints' frames (rotation + joint
            position), and ``skinning``: (..., 22, 4, 4) transforms that map rest-pose points to posed
            points (transforms · rest-offset), the matrices used by LBS.
    Raises:
        ValueError: on a pose of the wrong shape or with non-finite values.
    """
    check_pose(pose)
    batch = pose.shape[:-2]
    rest_joints = rest_joints.to(pose).expand(*batch, NUM_JOINTS, 3)
    rot = roma.rotvec_to_rotmat(pose)  # (..., 22, 3, 3)
    offsets = rest_joints.clone()
    parents = list(PARENTS)
    offsets[..., 1:, :] = rest_joints[..., 1:, :] - rest_joints[..., parents[1:], :]
    glob_rot = [rot[..., 0, :, :]]
    glob_pos = [rest_joints[..., 0, :]]
    for j in range(1, NUM_JOINTS):
        p = parents[j]
        glob_rot.append(glob_rot[p] @ rot[..., j, :, :])
        glob_pos.append(glob_pos[p] + (glob_rot[p] @ offsets[..., j, :, None])[..., 0])
    R = torch.stack(glob_rot, dim=-3)
    t = torch.stack(glob_pos, dim=-2)
    if root_translation is not None:
        t = t + root_translation.to(t)[..., None, :]
    transforms = _homogeneous(R, t)
    # Skinning transform: x_posed = R (x_rest - J_rest) + t.
    skin_t = t - (R @ rest_joints[..., None])[..., 0]
    return transforms, _homogeneous(R, skin_t)


def _homogeneous(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(*R.shape[:-2], 4, 4, dtype=R.dtype, device=R.device)
    out[..., :3, :3] = R
    out[..., :3, 3] = t
    out[..., 3, 3] = 1.0
    return out


def linear_blend_skinning(rest_vertices: torch.Tensor, weights: torch.Tensor,
                          skinning: torch.Tensor) -> torch.Tensor:
    """Pose vertices by linear blend skinning.

    Args:
        rest_vertices: (..., V, 3) or (V, 3) float, rest-pose vertices in metres.
        weights: (V, 22) float, non-negative skinning weights summing to 1 per vertex.
        skinning: (..., 22, 4, 4) skinning transforms from `forward_kinematics`.
    Returns:
        (..., V, 3) posed vertices.
    """
    blended = torch.einsum("vj,...jab->...vab", weights.to(skinning), skinning)  # (..., V, 4, 4)
    v = rest_vertices.to(skinning)
    return (blended[..., :3, :3] @ v[..., None])[..., 0] + blended[..., :3, 3]


def rotations_aligning(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Smallest rotation (axis-angle, (..., 3)) taking direction `src` (..., 3) onto `dst` (..., 3)."""
    a = torch.nn.functional.normalize(src, dim=-1)
    b = torch.nn.functional.normalize(dst, dim=-1)
    axis = torch.linalg.cross(a, b)
    sin = axis.norm(dim=-1, keepdim=True)
    cos = (a * b).sum(-1, keepdim=True)
    angle = torch.atan2(sin, cos)
    return torch.where(sin > 1e-8, axis / sin.clamp_min(1e-12) * angle, torch.zeros_like(axis))


def mirror_pose(pose: torch.Tensor) -> torch.Tensor:
    """Left-right mirror of a (..., 22, 3) pose about the avatar's x = 0 plane (swap sides, flip y, z)."""
    out = pose[..., list(MIRROR), :].clone()
    out[..., 1:] = -out[..., 1:]
    return out


def heading_yaw(R: torch.Tensor) -> torch.Tensor:
    """Heading (yaw about +y, radians, 0 = facing +z) of global pelvis orientations R (..., 3, 3) → (...).

    The yaw of the pelvis' forward axis (R·z) and lateral axis (R·x) averaged as vectors, so that it stays
    defined when the body bends far forward or lies down. A body turned by yaw_rotmat(a) has heading a."""
    f, l = R[..., :, 2], R[..., :, 0]
    return torch.atan2(f[..., 0] - l[..., 2], f[..., 2] + l[..., 0])


def yaw_rotmat(yaw: torch.Tensor) -> torch.Tensor:
    """(...,) yaw angles (radians, about +y) → (..., 3, 3) rotation matrices. Differentiable."""
    c, s = torch.cos(yaw), torch.sin(yaw)
    z, o = torch.zeros_like(yaw), torch.ones_like(yaw)
    return torch.stack([torch.stack([c, z, s], -1), torch.stack([z, o, z], -1), torch.stack([-s, z, c], -1)], -2)
