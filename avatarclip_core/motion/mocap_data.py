"""The CMU mocap training data of the motion priors and the pose library: every clip retargeted to the
22-joint skeleton at 30 fps, with the held-out split by clip (docs/method.md, Motion priors).

Shared by `scripts/build_pose_library.py` and `scripts/build_motion_priors.py` so that both use the same
retarget and the same split (`split_clips` with the same seed and test fraction).
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .bvh_retarget import DEFAULT_REST_JOINTS, RetargetedClip, direction_errors, retarget_bvh
from .pose_library import split_clips

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "cmu_mocap"


@dataclass
class MocapDataset:
    """Retargeted clips with their metadata.

    Attributes:
        rows: clips.csv rows (dicts: cmu_clip_id, path (relative to the data folder), category, cmu_description,
            true_fps, skeleton, …; rows of extra/clips.csv get path "extra/…" and true_fps = their fps).
        clips: one `RetargetedClip` per row: poses (T, 22, 3) axis-angle at 30 fps (global orientation, head,
            wrists and toes included), root_translation (T, 3) metres in the avatar frame (zero = standing as in
            the rest pose at the origin; `bvh_retarget` module docstring).
        splits: 'train' | 'test' per clip (`split_clips(ids, test_fraction, seed)`).
        test_fraction, seed: the split settings.
        bone_error: per skeleton type, [mean°, max°, mean°, max°, …] per clip of `direction_errors` (the 21 bones
            and the end segments of head, hands and toes).
        seconds: wall time of the retarget.
    """

    rows: list[dict]
    clips: list[RetargetedClip]
    splits: list[str]
    test_fraction: float
    seed: int
    bone_error: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def clip_ids(self) -> list[str]:
        return [r["cmu_clip_id"] for r in self.rows]

    def bone_stats(self) -> dict[str, dict]:
        """{skeleton type: {mean_deg, max_deg}} of the retarget's bone-direction error over all clips."""
        return {k: dict(mean_deg=round(sum(v[0::2]) / len(v[0::2]), 2), max_deg=round(max(v[1::2]), 2))
                for k, v in self.bone_error.items()}

    def split_poses(self, split: str) -> list[torch.Tensor]:
        """(T_c, 22, 3) pose tensors of every clip in `split` ('train' | 'test'), file order."""
        return [c.poses for c, s in zip(self.clips, self.splits) if s == split]


def read_clip_rows(data: str | os.PathLike | None = None, extra: bool = False) -> list[dict]:
    """Rows of `<data>/clips.csv` (and, with `extra`, of `<data>/extra/clips.csv`, paths prefixed "extra/" and
    `true_fps` set from their `fps`). Raises FileNotFoundError when a clips.csv is missing."""
    data = Path(data) if data is not None else DEFAULT_DATA
    if not (data / "clips.csv").exists():
        raise FileNotFoundError(f"{data}/clips.csv not found: pass the cmu_mocap folder (--data)")
    with open(data / "clips.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if extra:
        if not (data / "extra" / "clips.csv").exists():
            raise FileNotFoundError(f"{data}/extra/clips.csv not found")
        with open(data / "extra" / "clips.csv", newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                rows.append({**r, "path": f"extra/{r['path']}", "true_fps": r.get("true_fps") or r["fps"]})
    return rows


def load_mocap(data: str | os.PathLike | None = None, test_fraction: float = 0.15, seed: int = 0,
               progress: bool = True, extra: bool = False) -> MocapDataset:
    """Retarget every clip of `<data>/clips.csv` (with its true fps) onto `DEFAULT_REST_JOINTS` at 30 fps.

    Args:
        data: the cmu_mocap folder (default ../shared/data/cmu_mocap next to the repository).
        test_fraction, seed: held-out split by clip (`split_clips`).
        extra: also the clips of `<data>/extra/clips.csv` (46 clips on four skeletons; `read_clip_rows`).
    Raises:
        FileNotFoundError: when clips.csv is missing.
    """
    import time

    data = Path(data) if data is not None else DEFAULT_DATA
    rows = read_clip_rows(data, extra)
    splits = split_clips([r["cmu_clip_id"] for r in rows], test_fraction, seed)
    t0 = time.time()
    clips, bone_err = [], {}
    for row in tqdm(rows, desc="retarget", disable=not progress):
        clip = retarget_bvh(data / row["path"], DEFAULT_REST_JOINTS, fps=float(row["true_fps"]))
        err = direction_errors(clip, DEFAULT_REST_JOINTS).rad2deg()
        bone_err.setdefault(clip.skeleton_type, []).extend([float(err.mean()), float(err.max())])
        clips.append(clip)
    return MocapDataset(rows, clips, splits, test_fraction, seed, bone_err, time.time() - t0)
