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

    The heading is `skeleton.heading_yaw` (pelvis forward and lateral axes averaged, defined when the body
    bends far forward). Args: poses (..., 22, 3) axis-angle. Returns a
    copy with the same shape, joints 1–21 unchanged.
    """
    skeleton.check_pose(poses)
    R = roma.rotvec_to_rotmat(poses[..., 0, :])
    yaw = skeleton.heading_yaw(R)
    out = poses.clone()
    out[..., 0, :] = roma.rotmat_to_rotvec(skeleton.yaw_rotmat(-yaw) @ R)
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


def balanced_selection(poses: torch.Tensor, groups: torch.Tensor, max_count: int, min_distance: float,
                       max_fraction: float = 0.3) -> tuple[torch.Tensor, dict]:
    """Distinct poses with no group (category) dominating: farthest-point selection within each group, quotas
    water-filled so that no group holds more than `max_fraction` of the result, cross-group duplicates removed.

    1. Each group g runs `farthest_point_selection` (up to `max_count` poses, stopping below `min_distance`):
       its capacity n_g, in coarse-to-fine order.
    2. Quotas q_g = min(n_g, L) with the largest level L for which Σ q_g ≤ max_count and L ≤ max_fraction · Σ q_g:
       small groups keep all their distinct poses, large ones are capped at the same level.
    3. The groups' prefixes are interleaved by relative rank (rank / q_g), so any prefix of the result is a
       proportionally balanced, coarser cover; walking it in that order, a pose closer than `min_distance` to
       one already kept (another group's near-duplicate, e.g. a plain standing pose) is dropped; then, while a
       group holds more than `max_fraction` of the result, its last pose is dropped.
    Every pair of chosen poses is then farther apart than `min_distance`. Deterministic.

    Args:
        poses: (N, 22, 3) axis-angle. groups: (N,) int64 group id per pose.
        max_count: most poses wanted. min_distance: radians (mean |Δθ|, `pose_distance`).
        max_fraction: largest share of the result one group may hold, in (0, 1].
    Returns:
        indices (M,) int64 into `poses` in selection order, and {'capacity', 'quota', 'kept'}: dicts per group id.
    Raises:
        ValueError: on mismatched shapes, max_fraction outside (0, 1], or the errors of `farthest_point_selection`.
    """
    if groups.shape != poses.shape[:1]:
        raise ValueError(f"groups must be ({poses.shape[0]},), got {tuple(groups.shape)}")
    if not 0.0 < max_fraction <= 1.0:
        raise ValueError(f"max_fraction must be in (0, 1], got {max_fraction}")
    ids = sorted(set(groups.tolist()))
    order = {}
    for g in ids:
        members = torch.nonzero(groups == g)[:, 0]
        sel, _ = farthest_point_selection(poses[members], max_count, min_distance)
        order[g] = members[sel]
    capacity = {g: len(order[g]) for g in ids}

    def total(level):
        return sum(min(n, level) for n in capacity.values())

    level = 1
    while (level < max(capacity.values()) and total(level + 1) <= max_count
           and level + 1 <= max_fraction * total(level + 1)):
        level += 1
    quota = {g: min(n, level) for g, n in capacity.items()}
    ranked = sorted(((r / quota[g], ids.index(g), int(i)) for g in ids for r, i in enumerate(order[g][:quota[g]])))
    cand = torch.tensor([i for _, _, i in ranked], dtype=torch.long)
    flat = poses[cand].reshape(len(cand), -1)
    keep = torch.zeros(len(cand), dtype=torch.bool)
    nearest = torch.full((len(cand),), float("inf"))
    for k in range(len(cand)):
        if nearest[k] > min_distance:
            keep[k] = True
            nearest = torch.minimum(nearest, (flat - flat[k]).abs().mean(1))
    chosen = cand[keep].tolist()
    while len(ids) > 1:
        counts = {g: int((groups[chosen] == g).sum()) for g in ids}
        top = max(ids, key=lambda g: counts[g])
        if counts[top] <= max_fraction * len(chosen):
            break
        last = max(k for k, i in enumerate(chosen) if int(groups[i]) == top)
        chosen.pop(last)
    chosen = torch.tensor(chosen, dtype=torch.long)
    kept = {g: int((groups[chosen] == g).sum()) for g in ids}
    return chosen, dict(capacity=capacity, quota=quota, kept=kept)


def split_clips(clip_ids: list[str], test_fraction: float = 0.15, seed: int = 0,
                categories: list[str] | None = None) -> list[str]:
    """'train' / 'test' per clip, a held-out split by clip (never by frame), deterministic given `seed`.

    Without `categories`: round(test_fraction · N) clips, drawn by `numpy.random.default_rng(seed).permutation`,
    are 'test'. With `categories` (one per clip) the split is stratified: in each category of n clips,
    round(test_fraction · n) of them (at least 1 when n ≥ 3, none when n < 3 so that rare material stays in
    training) drawn by a generator seeded with (seed, CRC-32 of the category name), so a category's split does
    not depend on the other categories. The list follows `clip_ids`' order.
    Raises ValueError unless 0 ≤ test_fraction < 1, or when `categories` has another length than `clip_ids`."""
    import zlib

    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    if categories is None:
        order = np.random.default_rng(seed).permutation(len(clip_ids))
        test = set(order[:int(round(test_fraction * len(clip_ids)))].tolist())
        return ["test" if i in test else "train" for i in range(len(clip_ids))]
    if len(categories) != len(clip_ids):
        raise ValueError(f"need one category per clip: {len(categories)} categories for {len(clip_ids)} clips")
    test = set()
    for cat in sorted(set(categories)):
        members = [i for i, c in enumerate(categories) if c == cat]
        n = len(members)
        n_test = 0 if n < 3 or test_fraction == 0 else max(1, int(round(test_fraction * n)))
        order = np.random.default_rng([seed, zlib.crc32(cat.encode())]).permutation(n)
        test |= {members[k] for k in order[:n_test].tolist()}
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
