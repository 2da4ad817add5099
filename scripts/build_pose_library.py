"""Build avatarclip_core/assets/pose_library.npz from ../shared/data/cmu_mocap (docs/method.md, Motion priors and §6.1).

Steps: retarget every clip of clips.csv and extra/clips.csv to the 22-joint skeleton at 30 fps
(`mocap_data.load_mocap`: `bvh_retarget.retarget_bvh` with the tables' true fps), hold out a split by clip
stratified by category (`split_clips`), take the training clips' frames (every `--stride`-th), remove the heading
so the body faces +z, optionally add left-right mirrored copies, and pick distinct poses per category with
`pose_library.balanced_selection` (farthest-point selection under the mean |Δθ| distance within each category, no
category above `--max-fraction` of the library). Deterministic given --seed. Writes the .npz and
avatarclip_core/assets/POSE_LIBRARY.md (settings, category histogram before/after, split, licence).

    python scripts/build_pose_library.py [--data ../shared/data/cmu_mocap] [--max-poses 3000] [--cache clips.pt]
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avatarclip_core import skeleton  # noqa: E402
from avatarclip_core.io import atomic_write_text  # noqa: E402
from avatarclip_core.motion.bvh_retarget import DEFAULT_REST_JOINTS  # noqa: E402
from avatarclip_core.motion.mocap_data import load_mocap  # noqa: E402
from avatarclip_core.motion.pose_library import (LIBRARY_PATH, PoseLibrary, balanced_selection,  # noqa: E402
                                                  farthest_point_selection, remove_heading)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cmu_mocap"))
    ap.add_argument("--out", default=str(LIBRARY_PATH))
    ap.add_argument("--max-poses", type=int, default=3000)
    ap.add_argument("--min-distance", type=float, default=0.05, help="rad, mean |Δθ| between library poses")
    ap.add_argument("--stride", type=int, default=2, help="take every n-th frame at 30 fps")
    ap.add_argument("--test-fraction", type=float, default=0.15)
    ap.add_argument("--no-mirror", action="store_true")
    ap.add_argument("--max-fraction", type=float, default=0.3,
                    help="largest share of the library one category may take (balanced_selection)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=None, help="optional .pt file caching the retargeted clips "
                    "(the same file as build_motion_priors.py --cache)")
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    cache = Path(args.cache) if args.cache else None
    if cache is not None and cache.exists():
        ds = torch.load(cache, weights_only=False)["ds"]
    else:
        try:
            ds = load_mocap(args.data, args.test_fraction, args.seed)
        except FileNotFoundError as e:
            raise SystemExit(str(e))
        if cache is not None:
            torch.save(dict(ds=ds), cache)
    rows, ids, splits = ds.rows, ds.clip_ids, ds.splits
    poses, clip_idx, frames, n_frames = [], [], [], Counter()
    for c, clip in enumerate(ds.clips):
        n_frames[splits[c]] += clip.poses.shape[0]
        if splits[c] != "train":
            continue
        sel = torch.arange(0, clip.poses.shape[0], args.stride)
        poses.append(clip.poses[sel])
        clip_idx.append(torch.full((len(sel),), c))
        frames.append(sel)
    t_retarget = ds.seconds
    bone_stats = ds.bone_stats()
    poses = remove_heading(torch.cat(poses))
    clip_idx, frames = torch.cat(clip_idx), torch.cat(frames)
    mirrored = torch.zeros(len(poses), dtype=torch.bool)
    if not args.no_mirror:
        poses = torch.cat([poses, skeleton.mirror_pose(poses)])
        clip_idx, frames = clip_idx.repeat(2), frames.repeat(2)
        mirrored = torch.cat([mirrored, torch.ones_like(mirrored)])
    n_candidates = len(poses)
    cat_names = sorted(set(ds.categories))
    groups = torch.tensor([cat_names.index(rows[int(c)]["category"]) for c in clip_idx])
    t1 = time.time()
    chosen, info = balanced_selection(poses, groups, args.max_poses, args.min_distance, args.max_fraction)
    t_select = time.time() - t1
    # the same pose set under plain farthest-point selection (the previous method), for the histogram
    plain, _ = farthest_point_selection(poses, args.max_poses, args.min_distance)
    flat = poses[chosen].reshape(len(chosen), -1)
    d = torch.cdist(flat, flat, p=1) / flat.shape[1] + torch.eye(len(chosen)) * 1e9
    min_pair = float(d.min())
    lib_poses = poses[chosen].contiguous()

    def hist(idx):
        h = Counter(rows[int(clip_idx[i])]["category"] for i in idx)
        return {c: h.get(c, 0) for c in cat_names}

    cats, cats_plain = hist(chosen), hist(plain)
    cand_hist = hist(range(len(poses)))
    clip_hist = {c: sum(1 for r, s in zip(rows, splits) if r["category"] == c and s == "train") for c in cat_names}
    capacity = {cat_names[g]: n for g, n in info["capacity"].items()}
    settings = dict(
        source="CMU Graphics Lab Motion Capture Database (mocap.cs.cmu.edu), clips.csv + extra/clips.csv",
        data_clips=len(rows), skipped_clips=ds.skipped, selection="balanced_selection (per-category farthest-point, "
        "water-filled quotas, cross-category duplicates removed)", max_fraction=args.max_fraction,
        train_clips_per_category=clip_hist, candidates_per_category=cand_hist,
        categories_plain_farthest_point=cats_plain, category_capacity=capacity, min_pair_distance=round(min_pair, 4), train_clips=splits.count("train"), test_clips=splits.count("test"),
        frames_30fps=dict(n_frames), stride=args.stride, mirror=not args.no_mirror, seed=args.seed,
        candidates=n_candidates, max_poses=args.max_poses, min_distance=args.min_distance,
        poses=len(chosen), categories=cats,
        retarget_seconds=round(t_retarget, 1), select_seconds=round(t_select, 1),
        heading="removed (body faces +z), tilt kept", fps=30, retarget_bone_direction_error=bone_stats,
    )
    lib = PoseLibrary(lib_poses, clip_idx[chosen], frames[chosen], mirrored[chosen], ids,
                      [r["path"] for r in rows], [r["category"] for r in rows],
                      [r["cmu_description"] for r in rows], splits, DEFAULT_REST_JOINTS.clone(), settings)
    out = lib.save(args.out)
    test_ids = [i for i, s in zip(ids, splits) if s == "test"]
    skipped = (f"; {len(ds.skipped)} clips left out because their skeleton cannot be retargeted yet: "
               f"{', '.join(sorted(ds.skipped))}" if ds.skipped else "")
    extremities = [skeleton.JOINT_INDEX[n] for n in ("head", "left_wrist", "right_wrist", "left_foot", "right_foot")]
    whole_body = ("Head, wrists and toes are rotated as in the capture (whole body)."
                  if float(lib_poses[:, extremities].abs().max()) > 0 else
                  "Head, wrists and toes are at rest (the retarget leaves joints without a child in the 22-joint "
                  "skeleton unrotated).")
    table = "\n".join(f"| {c} | {clip_hist[c]} | {cand_hist[c]} | {capacity[c]} | {cats_plain[c]} | **{cats[c]}** |"
                      for c in cat_names)
    md = f"""# Pose library (`pose_library.npz`)

Distinct body poses for text-driven pose retrieval (stage 4; AvatarCLIP's VPoserCodebook, docs/method.md §6.1,
adapted to open data). Built by `python scripts/build_pose_library.py` (deterministic given `--seed`).

## From what
{len(rows)} clips of the CMU Graphics Lab Motion Capture Database as BVH (`../shared/data/cmu_mocap`, clips.csv
and extra/clips.csv; skeletons: {', '.join(sorted(bone_stats))}){skipped}, retargeted to the 22-joint SMPL-order
skeleton (`avatarclip_core/motion/bvh_retarget.py`: bone directions in world space, 30 fps, rest skeleton = the
default anny body's T-pose joints, stored as `rest_joints`). Retarget check over all frames of all clips
(`bvh_retarget.direction_errors`: angle between each of the 21 bones of FK(retargeted pose) and of the mapped BVH
joints, bone lengths normalised, and between the end segments of head, hands and toes where the source has them):
{'; '.join(f"{k}: mean {v['mean_deg']}°, max {v['max_deg']}°" for k, v in bone_stats.items())}.
{whole_body}

## How
- Held-out split by clip, stratified by category (`split_clips`, seed {args.seed}, {args.test_fraction:.0%} of each
  category of at least 3 clips): {splits.count('train')} train and {splits.count('test')} test clips; only training
  clips contribute poses. Test clips: {', '.join(test_ids)}.
- Frames at 30 fps: {n_frames['train']} train, {n_frames['test']} test. One training frame in {args.stride} is
  taken, its global heading removed (body faces +z, pelvis tilt kept);
  {'left-right mirrored copies added (`skeleton.mirror_pose`)' if not args.no_mirror else 'no mirroring'}:
  {n_candidates} candidates.
- Category-balanced selection (`pose_library.balanced_selection`): greedy farthest-point selection under the mean
  |Δθ| over the 22×3 axis-angle components within each category (stopping below {args.min_distance} rad), quotas
  water-filled so that no category holds more than {args.max_fraction:.0%} of the library (at most
  {args.max_poses} poses; small categories keep all their distinct poses), the categories interleaved by relative rank and near-duplicates
  across categories dropped: **{len(chosen)} poses**, every pair more than {min_pair:.3f} rad apart
  (> {args.min_distance}). Selection order is kept in the file: a prefix (`PoseParams.library_limit`) is a
  coarser, still balanced cover of the same pose space.
- Root translation is not stored (library poses are single frames, heading removed).

| category | training clips | candidates | distinct (capacity) | plain farthest-point (before) | **library (after)** |
|---|---|---|---|---|---|
{table}
| total | {sum(clip_hist.values())} | {n_candidates} | {sum(capacity.values())} | {sum(cats_plain.values())} | **{len(chosen)}** |

  "Plain farthest-point" is the previous method (one selection over all candidates) on the same candidates:
  it favours varied material, so dance dominated the old library (2,488 of 3,000 poses from the 104-clip data).
- Times on the build machine (2 shared CPU cores): retarget {t_retarget:.0f} s, selection {t_select:.0f} s.

## Contents (numpy .npz, no pickles)
`poses` float32 (N, 22, 3) local axis-angle; `clip` int16 (N,) index into the clip tables; `frame` int32 (N,)
frame at 30 fps; `mirrored` bool (N,); per clip: `clip_ids` (CMU id), `clip_paths`, `categories`,
`descriptions` (CMU), `splits` ('train'/'test'); `rest_joints` float32 (22, 3); `settings` (JSON string).
Load with `avatarclip_core.motion.load_pose_library()`.

## Licence and acknowledgement
CMU's terms: "This data is free for use in research projects. You may include this data in commercially-sold
products, but you may not resell this data directly, even in converted form."
The data used in this project was obtained from mocap.cs.cmu.edu. The database was created with funding from
NSF EIA-0196217.
"""
    atomic_write_text(Path(args.out).with_name("POSE_LIBRARY.md"), md)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB): {len(chosen)} poses from {n_candidates} "
          f"candidates; retarget {t_retarget:.0f} s, selection {t_select:.0f} s")


if __name__ == "__main__":
    main()
