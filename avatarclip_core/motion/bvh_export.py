"""Write a motion on the 22-joint skeleton as BVH (stage 5's `motion.bvh`, docs/design.md §2).

Hierarchy: the 22 joints with SMPL names (`skeleton.JOINT_NAMES`) and parents, OFFSETs from the rest
(T-pose) joints; root `pelvis` with 6 channels (Xposition Yposition Zposition Zrotation Xrotation Yrotation),
every other joint 3 (Zrotation Xrotation Yrotation, the CMU order). Rotation channels are intrinsic Euler
angles in degrees, R = Rz·Rx·Ry, converted with scipy.spatial.transform.Rotation ('ZXY'), each channel
unwrapped over time. End sites continue the head, wrists and toes. Units: metres by default (`scale=1`, so
Blender imports it at the right size); `scale=100` writes centimetres. The root position channels hold the
absolute pelvis position (rest pelvis + root translation). Frame = avatar frame (y up, faces +z).

The text is written here, not with `bvhio.writeBvh`: bvhio's writer derives each frame's Euler angles from
that frame's quaternion alone (`Pose.getEuler`, float32), so it cannot write channels unwrapped over time —
a turning capture then jumps by 360° between frames (17 such jumps on a retargeted CMU salsa clip, none
here), which players that interpolate Euler channels show as a spin. It re-reads to the same joint positions
(within 3e-6 m); the file is read back with bvhio (`bvh_retarget.read_bvh`) in the tests.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from .. import skeleton
from ..io import atomic_write_text

ROTATION_ORDER = "ZXY"
_END_SITES = {"head": None, "left_wrist": 0.35, "right_wrist": 0.35, "left_foot": 0.5, "right_foot": 0.5}


def _end_site(j: int, rest: np.ndarray) -> np.ndarray:
    name = skeleton.JOINT_NAMES[j]
    bone = rest[j] - rest[skeleton.PARENTS[j]]
    if name == "head":
        return np.array([0.0, 1.2 * np.linalg.norm(bone), 0.0])  # top of the head, straight up
    return _END_SITES[name] * bone


def write_bvh(path: str | os.PathLike, poses: torch.Tensor, root_translation: torch.Tensor | None, fps: float,
              rest_joints: torch.Tensor, scale: float = 1.0) -> Path:
    """Write a (T, 22, 3) motion as a BVH file, atomically (`io.atomic_write_text`, UTF-8).

    Joints in depth-first order from `pelvis` (children in SMPL index order), OFFSETs and values with 6
    decimals, `Frames: T`, `Frame Time: 1/fps` (8 decimals), one line per frame: the root's 3 positions, then
    3 rotation angles (degrees, `ROTATION_ORDER`) per joint in hierarchy order.

    Args:
        path: output file (.bvh); parent folders are created.
        poses: (T, 22, 3) local axis-angle, radians, SMPL order (zero = T-pose).
        root_translation: (T, 3) metres added to the rest pelvis position, or None (zeros).
        fps: frames per second (> 0); written as Frame Time 1/fps.
        rest_joints: (22, 3) (or (1, 22, 3)) rest joint positions in metres (avatar frame), e.g.
            body.rest(shape)[1][0].
        scale: multiplies every length (1 = metres, 100 = centimetres).
    Returns:
        The written path.
    Raises:
        ValueError: on bad shapes, non-finite values, fps ≤ 0 or scale ≤ 0.
    """
    poses = torch.as_tensor(poses).detach().cpu().to(torch.float64)
    skeleton.check_pose(poses, "poses")
    if poses.ndim != 3:
        raise ValueError(f"poses must be (T, 22, 3), got {tuple(poses.shape)}")
    T = poses.shape[0]
    rest = torch.as_tensor(rest_joints).detach().cpu().to(torch.float64)
    if rest.ndim == 3 and rest.shape[0] == 1:
        rest = rest[0]
    if tuple(rest.shape) != (22, 3) or not torch.isfinite(rest).all():
        raise ValueError(f"rest_joints must be a finite (22, 3) tensor in metres, got {tuple(rest.shape)}")
    root = torch.zeros(T, 3, dtype=torch.float64) if root_translation is None else \
        torch.as_tensor(root_translation).detach().cpu().to(torch.float64)
    if tuple(root.shape) != (T, 3) or not torch.isfinite(root).all():
        raise ValueError(f"root_translation must be a finite ({T}, 3) tensor in metres, got {tuple(root.shape)}")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0 (1 = metres, 100 = centimetres), got {scale}")
    rest_np = rest.numpy()
    children = {j: [c for c in range(22) if skeleton.PARENTS[c] == j] for j in range(22)}
    lines = ["HIERARCHY"]
    order: list[int] = []

    def fmt(v):
        return " ".join(f"{x * scale:.6f}" for x in v)

    def emit(j: int, depth: int) -> None:
        ind = "  " * depth
        order.append(j)
        p = skeleton.PARENTS[j]
        offset = rest_np[j] if p < 0 else rest_np[j] - rest_np[p]
        lines.append(f"{ind}{'ROOT' if p < 0 else 'JOINT'} {skeleton.JOINT_NAMES[j]}")
        lines.append(f"{ind}{{")
        lines.append(f"{ind}  OFFSET {fmt(offset)}")
        rot = " ".join(f"{a}rotation" for a in ROTATION_ORDER)
        lines.append(f"{ind}  CHANNELS 6 Xposition Yposition Zposition {rot}" if p < 0
                     else f"{ind}  CHANNELS 3 {rot}")
        for c in children[j]:
            emit(c, depth + 1)
        if not children[j]:
            lines.extend([f"{ind}  End Site", f"{ind}  {{", f"{ind}    OFFSET {fmt(_end_site(j, rest_np))}",
                      f"{ind}  }}"])
        lines.append(f"{ind}}}")

    emit(0, 0)
    eul = Rotation.from_rotvec(poses[:, order].reshape(-1, 3).numpy()).as_euler(ROTATION_ORDER, degrees=True)
    eul = np.unwrap(eul.reshape(T, 22, 3), period=360.0, axis=0)
    pos = (rest[0] + root).numpy() * scale
    lines += ["MOTION", f"Frames: {T}", f"Frame Time: {1.0 / fps:.8f}"]
    for t in range(T):
        lines.append(" ".join([f"{x:.6f}" for x in pos[t]] + [f"{x:.6f}" for x in eul[t].reshape(-1)]))
    return atomic_write_text(path, "\n".join(lines) + "\n")
