"""The pose library (codebook) of distinct poses from CMU mocap, shipped in `avatarclip_core/assets`.

AvatarCLIP's VPoserCodebook (docs/method.md §6.1) retrieves from a codebook of AMASS poses whose construction is
not in its repository; ours is built by `scripts/build_pose_library.py` from ../shared/data/cmu_mocap
(retargeted with `bvh_retarget`, heading normalised so that the body faces +z, farthest-point selection
under the mean |Δθ| distance). See avatarclip_core/assets/POSE_LIBRARY.md for settings and counts.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import roma
import torch

from .. import skeleton

LIBRARY_PATH = Path(__file__).resolve().parent.parent / "assets" / "pose_library.npz"


def pose_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute axis-angle difference (radians) over all 22×3 components: (..., 22, 3) → (...).

    The distance of AvatarCLIP's duplicate suppression (docs/method.md §6.1: mean |Δ axis-angle| > 0.07 rad).
    Broadcasts like `a - b`.
    """
    return (a - b).abs().mean(dim=(-1, -2))


def remove_heading(poses: torch.Tensor) -> torch.Tensor:
    """Rotate the global orientation (joint 0) about +y so that the body faces +z; tilt is kept.

    The heading is the yaw of the pelvis' forward axis (R·z) and lateral axis (R·x), averaged as vectors,
    so it stays defined when the body bends far forward. Args: poses (..., 22, 3) axis-angle. Returns a
    copy with the same shape, joints 1–21 unchanged.
    """
    skeleton.check_pose(poses)
    R = roma.rotvec_to_rotmat(poses[..., 0, :])
    f, l = R[..., :, 2], R[..., :, 0]
    yaw = torch.atan2(f[..., 0] - l[..., 2], f[..., 2] + l[..., 0])
    axis = torch.zeros_like(poses[..., 0, :])
    axis[..., 1] = -yaw
    out = poses.clone()
    out[..., 0, :] = roma.rotmat_to_rotvec(roma.rotvec_to_rotmat(axis) @ R)
    return out


def farthest_point_selection(poses: torch.Tensor, max_count: int, min_distance: float,
                             start: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy farthest-point selection of distinct poses under `pose_distance`.

    Starts at `start` (default: the pose closest to the mean pose) and repeatedly adds the pose farthest
    from everything chosen, until `max_count` poses are chosen or the farthest is closer than
    `min_distance` (radians). Every pair of chosen poses is then farther apart than `min_distance`.
    Deterministic (ties → lowest index).

    Args:
        poses: (N, 22, 3) axis-angle. Returns: (indices (M,) int64, their selection distances (M,)).
    Raises:
        ValueError: on an empty input, max_count < 1 or a negative min_distance.
    """
    if poses.ndim != 3 or poses.shape[0] == 0:
        raise ValueError(f"poses must be a non-empty (N, 22, 3) tensor, got {tuple(poses.shape)}")
    if max_count < 1 or min_distance < 0:
        raise ValueError(f"need max_count >= 1 and min_distance >= 0, got {max_count}, {min_distance}")
    flat = poses.reshape(poses.shape[0], -1)
    if start is None:
        start = int((flat - flat.mean(0)).abs().mean(1).argmin())
    chosen, dists = [start], [float("inf")]
    nearest = (flat - flat[start]).abs().mean(1)
    while len(chosen) < max_count:
        i = int(nearest.argmax())
        d = float(nearest[i])
        if d <= min_distance:
            break
        chosen.append(i)
        dists.append(d)
        nearest = torch.minimum(nearest, (flat - flat[i]).abs().mean(1))
    return torch.tensor(chosen), torch.tensor(dists)


def split_clips(clip_ids: list[str], test_fraction: float = 0.15, seed: int = 0) -> list[str]:
    """'train' / 'test' per clip, a held-out split by clip (never by frame), deterministic given `seed`.

    round(test_fraction · N) clips, drawn by `numpy.random.default_rng(seed).permutation`, are 'test'; the list
    follows `clip_ids`' order. Raises ValueError unless 0 ≤ test_fraction < 1."""
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    order = np.random.default_rng(seed).permutation(len(clip_ids))
    n_test = int(round(test_fraction * len(clip_ids)))
    test = set(order[:n_test].tolist())
    return ["test" if i in test else "train" for i in range(len(clip_ids))]


@dataclass
class PoseLibrary:
    """Distinct poses with their provenance.

    Attributes:
        poses: (N, 22, 3) float32 local axis-angle (radians), heading removed (body faces +z).
        clip: (N,) int64 index into the clip table; frame: (N,) int64 frame index at `fps`;
        mirrored: (N,) bool, True for left-right mirrored copies (`skeleton.mirror_pose`).
        clip_ids / clip_paths / categories / descriptions / splits: per-clip tables (CMU id, path in
            ../shared/data/cmu_mocap, coarse category, CMU description, 'train' | 'test').
        rest_joints: (22, 3) float32 rest skeleton the poses were solved for (metres).
        settings: the build settings and counts (dict).
    """

    poses: torch.Tensor
    clip: torch.Tensor
    frame: torch.Tensor
    mirrored: torch.Tensor
    clip_ids: list[str]
    clip_paths: list[str]
    categories: list[str]
    descriptions: list[str]
    splits: list[str]
    rest_joints: torch.Tensor
    settings: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.poses.shape[0]

    @property
    def fingerprint(self) -> str:
        """Short SHA-256 of the pose array (a cache key for embeddings)."""
        return hashlib.sha256(self.poses.numpy().astype(np.float32).tobytes()).hexdigest()[:16]

    def describe(self, i: int) -> str:
        """Human-readable provenance of pose `i`, e.g. '05_02 frame 120 (dance: …)'."""
        c = int(self.clip[i])
        m = " mirrored" if bool(self.mirrored[i]) else ""
        return f"{self.clip_ids[c]} frame {int(self.frame[i])}{m} ({self.categories[c]}: {self.descriptions[c]})"

    def save(self, path: str | os.PathLike) -> Path:
        """Write the library as a compressed .npz (atomic; strings as fixed-width unicode arrays)."""
        from ..io import atomic_write

        arrays = dict(
            poses=self.poses.numpy().astype(np.float32), clip=self.clip.numpy().astype(np.int16),
            frame=self.frame.numpy().astype(np.int32), mirrored=self.mirrored.numpy().astype(bool),
            clip_ids=np.array(self.clip_ids), clip_paths=np.array(self.clip_paths),
            categories=np.array(self.categories), descriptions=np.array(self.descriptions),
            splits=np.array(self.splits), rest_joints=self.rest_joints.numpy().astype(np.float32),
            settings=np.array(json.dumps(self.settings, sort_keys=True)),
        )

        def write(p):
            with open(p, "wb") as f:
                np.savez_compressed(f, **arrays)

        return atomic_write(path, write)


def load_pose_library(path: str | os.PathLike | None = None) -> PoseLibrary:
    """Load the pose library (default: the one shipped in avatarclip_core/assets/pose_library.npz).

    Raises:
        FileNotFoundError: when the file is missing (build it with scripts/build_pose_library.py).
    """
    path = Path(path) if path is not None else LIBRARY_PATH
    if not path.exists():
        raise FileNotFoundError(f"pose library not found at {path}; build it with "
                                f"`python scripts/build_pose_library.py`")
    with np.load(path, allow_pickle=False) as z:
        return PoseLibrary(
            poses=torch.from_numpy(z["poses"].astype(np.float32)),
            clip=torch.from_numpy(z["clip"].astype(np.int64)),
            frame=torch.from_numpy(z["frame"].astype(np.int64)),
            mirrored=torch.from_numpy(z["mirrored"].astype(bool)),
            clip_ids=z["clip_ids"].tolist(), clip_paths=z["clip_paths"].tolist(),
            categories=z["categories"].tolist(), descriptions=z["descriptions"].tolist(),
            splits=z["splits"].tolist(), rest_joints=torch.from_numpy(z["rest_joints"].astype(np.float32)),
            settings=json.loads(str(z["settings"])),
        )
