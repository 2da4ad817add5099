"""The CMU mocap training data of the motion priors and the pose library: every clip of clips.csv and
extra/clips.csv retargeted to the 22-joint skeleton at 30 fps, one coarse category per clip, the held-out split
by clip stratified by category (docs/method.md, Motion priors).

Shared by `scripts/build_pose_library.py` and `scripts/build_motion_priors.py` so that both use the same
retarget and the same split (`split_clips` with the same seed, test fraction and categories).
"""
from __future__ import annotations

import csv
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .bvh_retarget import DEFAULT_REST_JOINTS, RetargetedClip, direction_errors, retarget_bvh
from .pose_library import split_clips

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "cmu_mocap"

# extra/clips.csv uses its own coarse labels; they are mapped onto clips.csv's vocabulary. "other" holds plain
# walks and playground climbs, told apart by the CMU description.
_EXTRA_CATEGORY = {"run": "run_jog", "walk-style": "walk", "jump": "jump", "sit": "sit", "sports": "sports_ball"}


def coarse_category(row: dict, extra: bool) -> str:
    """The clip's coarse category in clips.csv's vocabulary (dance, walk, run_jog, jump, sit, climb_playground,
    sports_ball, martial_arts_boxing, everyday_household): clips.csv's `category` as is; extra/clips.csv's
    labels mapped (run → run_jog, walk-style → walk, sports → sports_ball, other → walk or climb_playground
    by the description)."""
    cat = row["category"]
    if not extra:
        return cat
    if cat == "other":
        d = row["cmu_description"].lower()
        return "climb_playground" if "playground" in d else "walk"
    return _EXTRA_CATEGORY.get(cat, cat)


def read_clip_table(data: str | os.PathLike | None = None, extra: bool = True) -> list[dict]:
    """The rows of `<data>/clips.csv` and (with `extra`) `<data>/extra/clips.csv`, unified: `path` relative to
    `data`, `true_fps` (float, the capture rate of the file's frames), `category` (`coarse_category`),
    `source_category` (the table's own label), `skip_frames` (1 where the file's frame 0 is an added T-pose,
    else 0). Raises FileNotFoundError when clips.csv, or with `extra` extra/clips.csv, is missing."""
    data = Path(data) if data is not None else DEFAULT_DATA
    if not (data / "clips.csv").exists():
        raise FileNotFoundError(f"{data}/clips.csv not found: pass the cmu_mocap folder (--data)")
    if extra and not (data / "extra" / "clips.csv").exists():
        raise FileNotFoundError(f"{data}/extra/clips.csv not found: pass extra=False for clips.csv alone")
    rows = []
    for table, is_extra in ((data / "clips.csv", False), (data / "extra" / "clips.csv", True))[:1 + extra]:
        with open(table, newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                r = dict(r)
                r["source_category"] = r["category"]
                r["category"] = coarse_category(r, is_extra)
                r["true_fps"] = float(r.get("true_fps") or r["fps"])
                r["skip_frames"] = 1 if "added T-pose" in r.get("notes", "") else 0
                if is_extra:
                    r["path"] = f"extra/{r['path']}"
                rows.append(r)
    return rows


@dataclass
class MocapDataset:
    """Retargeted clips with their metadata.

    Attributes:
        rows: unified clip-table rows (`read_clip_table`: cmu_clip_id, path, category, cmu_description, …),
            only the clips that loaded.
        clips: one `RetargetedClip` per row: poses (T, 22, 3) axis-angle at 30 fps (global orientation, head,
            wrists and toes included), root_translation (T, 3) metres in the avatar frame (zero = standing as in
            the rest pose at the origin; `bvh_retarget` module docstring).
        splits: 'train' | 'test' per clip (`split_clips(ids, test_fraction, seed, categories)`).
        test_fraction, seed: the split settings.
        skipped: {path: reason} of the table's clips whose skeleton cannot be retargeted (not in `rows`).
        bone_error: per skeleton type, [mean°, max°, mean°, max°, …] per clip of `direction_errors` (the 21 bones
            and the end segments of head, hands and toes).
        seconds: wall time of the retarget.
    """

    rows: list[dict]
    clips: list[RetargetedClip]
    splits: list[str]
    test_fraction: float
    seed: int
    skipped: dict[str, str] = field(default_factory=dict)
    bone_error: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def clip_ids(self) -> list[str]:
        return [r["cmu_clip_id"] for r in self.rows]

    @property
    def categories(self) -> list[str]:
        return [r["category"] for r in self.rows]

    def bone_stats(self) -> dict[str, dict]:
        """{skeleton type: {mean_deg, max_deg}} of the retarget's bone-direction error over all clips."""
        return {k: dict(mean_deg=round(sum(v[0::2]) / len(v[0::2]), 2), max_deg=round(max(v[1::2]), 2))
                for k, v in self.bone_error.items()}

    def split_poses(self, split: str) -> list[torch.Tensor]:
        """(T_c, 22, 3) pose tensors of every clip in `split` ('train' | 'test'), file order."""
        return [c.poses for c, s in zip(self.clips, self.splits) if s == split]


def load_mocap(data: str | os.PathLike | None = None, test_fraction: float = 0.15, seed: int = 0,
               progress: bool = True, extra: bool = True) -> MocapDataset:
    """Retarget every clip of the clip tables (`read_clip_table`, with its true fps) onto `DEFAULT_REST_JOINTS`
    at 30 fps; drop an added T-pose frame 0; split by clip, stratified by category.

    Clips whose skeleton `retarget_bvh` cannot map (ValueError) are left out and listed in `skipped`.

    Args:
        data: the cmu_mocap folder (default ../shared/data/cmu_mocap next to the repository).
        test_fraction, seed: held-out split by clip (`split_clips`, stratified by `category`).
        extra: also the clips of `<data>/extra/clips.csv` (46 clips on four skeletons; `read_clip_table`).
    Raises:
        FileNotFoundError: when clips.csv is missing.
    """
    import time

    data = Path(data) if data is not None else DEFAULT_DATA
    table = read_clip_table(data, extra)
    t0 = time.time()
    rows, clips, skipped, bone_err = [], [], {}, {}
    for row in tqdm(table, desc="retarget", disable=not progress):
        try:
            clip = retarget_bvh(data / row["path"], DEFAULT_REST_JOINTS, fps=row["true_fps"])
        except ValueError as e:
            skipped[row["path"]] = str(e).split(":")[0]
            continue
        k = row["skip_frames"]
        if k:
            clip = dataclasses.replace(clip, poses=clip.poses[k:], root_translation=clip.root_translation[k:],
                                       joints=clip.joints[k:], end_directions=None if clip.end_directions is None
                                       else clip.end_directions[k:])
        err = direction_errors(clip, DEFAULT_REST_JOINTS).rad2deg()
        bone_err.setdefault(clip.skeleton_type, []).extend([float(err.mean()), float(err.max())])
        rows.append(row)
        clips.append(clip)
    splits = split_clips([r["cmu_clip_id"] for r in rows], test_fraction, seed,
                         categories=[r["category"] for r in rows])
    return MocapDataset(rows, clips, splits, test_fraction, seed, skipped, bone_err, time.time() - t0)


def category_weights(categories: list[str], max_upweight: float = 10.0) -> torch.Tensor:
    """Sampling weights (N,) float64, summing to 1, that balance training items across categories.

    Each of the K categories gets the same total weight (item weight 1 / (K · N_c), inverse frequency), but no
    item weight exceeds `max_upweight` / N (N items; uniform sampling is 1 / N), so that a category of a few
    hundred frames is not memorised; the weights are then renormalised, which spreads the capped mass over all
    items proportionally.
    Raises ValueError on an empty list or max_upweight < 1."""
    if not categories or max_upweight < 1:
        raise ValueError(f"need a non-empty category list and max_upweight ≥ 1, got {len(categories)} items, "
                         f"max_upweight={max_upweight}")
    names = sorted(set(categories))
    idx = torch.tensor([names.index(c) for c in categories])
    counts = torch.bincount(idx, minlength=len(names)).double()
    w = (1.0 / (len(names) * counts))[idx]
    w = torch.minimum(w, torch.tensor(max_upweight / len(categories), dtype=torch.float64))
    return w / w.sum()
