"""Motion quality per generator (docs/method.md "Root motion and foot contact"): foot skating (m/s while in
contact), floor float and penetration (cm), jitter (m/s²) vs the captured data, joint-limit violations and
generation time, before ("raw") and after ("contact") the stage-5 post-process (`motion.apply_contact`).

Rows (the generators come from their one declaration, `motion.params.POSE_GENERATORS` / `MOTION_GENERATORS`):
* every pose generator → "interpolate" motion, on a fixed prompt set under the pose oracle (`oracle:pose`,
  guidance/test_encoders.py) with small settings (library_limit, 64 px renders, few Adam steps);
* every other motion generator on the "library" candidates of the same prompts;
* decoded prior samples: motion VAE N(0, I) samples, and pose VAE samples slerped by the interpolation;
* the data: 60-frame windows of held-out CMU clips (the pose library's split), with their captured root (floor
  aligned by one constant height, `contact.align_floor`), raw and through the post-process.
Figures per row: skating / jitter / violations / times are means over the row's motions; float and penetration
are the worst (max) over them. Metrics: `motion.metrics` (skating: foot joints within 5 cm of the floor in two
consecutive frames; joint limits: the pose VAE's).

Usage: AVATARCLIP_TEST_ENCODERS=1 python bench/motion.py [--threads 1] [--iterations 30]
       [--motion-iterations 150] [--samples 16] [--clips 6] [--json out.json]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("AVATARCLIP_TEST_ENCODERS", "1")  # the pose oracle is a test encoder

from avatarclip_core.body import get_body_model  # noqa: E402
from avatarclip_core.guidance.factory import load_encoder  # noqa: E402
from avatarclip_core.motion import (ContactParams, MotionParams, PoseParams, apply_contact,  # noqa: E402
                                    generate_motion, generate_poses, interpolate_motion, load_motion_vae,
                                    load_pose_vae)
from avatarclip_core.motion.contact import align_floor  # noqa: E402
from avatarclip_core.motion.metrics import motion_metrics  # noqa: E402
from avatarclip_core.motion.mocap_data import DEFAULT_DATA  # noqa: E402
from avatarclip_core.motion.params import MOTION_GENERATORS, POSE_GENERATORS  # noqa: E402
from avatarclip_core.motion.bvh_retarget import retarget_bvh  # noqa: E402
from avatarclip_core.motion.pose_library import load_pose_library  # noqa: E402

PROMPTS = ("raising both arms", "walking", "squatting")
FPS = 30.0


def score(poses, root, rest, limits, contact: ContactParams, gen_s: float) -> dict:
    """Raw and post-processed figures of one motion."""
    raw = motion_metrics(poses, root, rest, FPS, limits)
    t0 = time.perf_counter()
    out = apply_contact(poses, root, rest, FPS, contact)
    t_contact = time.perf_counter() - t0
    return {"raw": raw, "contact": motion_metrics(out.poses, out.root_translation, rest, FPS, limits),
            "gen_s": gen_s, "contact_s": t_contact}


def summarise(name: str, runs: list[dict]) -> dict:
    def mean(part, key):
        return sum(r[part][key] for r in runs) / len(runs)

    def worst(part, key):
        return max(r[part][key] for r in runs)

    return {"row": name, "n": len(runs),
            **{f"{k}_{p}": mean(p, k) for p in ("raw", "contact") for k in ("foot_skate_m_s", "jitter_m_s2",
                                                                           "joint_limit_violations")},
            **{f"{k}_{p}": worst(p, k) for p in ("raw", "contact") for k in ("max_float_cm", "max_penetration_cm")},
            "gen_s": sum(r["gen_s"] for r in runs) / len(runs),
            "contact_s": sum(r["contact_s"] for r in runs) / len(runs)}


def data_windows(n_clips: int, rest) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """60-frame windows (stride 30) of the first `n_clips` held-out clips of the pose library's split."""
    lib = load_pose_library()
    test_ids = [c for c, s in zip(lib.clip_ids, lib.splits) if s == "test"][:n_clips]
    with open(DEFAULT_DATA / "clips.csv", newline="", encoding="utf-8") as f:
        rows = {r["cmu_clip_id"]: r for r in csv.DictReader(f)}
    out = []
    for cid in test_ids:
        clip = retarget_bvh(DEFAULT_DATA / rows[cid]["path"], rest, fps=float(rows[cid]["true_fps"]))
        root = align_floor(clip.poses, clip.root_translation, rest)
        for s in range(0, clip.poses.shape[0] - 59, 30):
            out.append((clip.poses[s:s + 60], root[s:s + 60]))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iterations", type=int, default=30, help="Adam steps of the optimising pose generators")
    ap.add_argument("--motion-iterations", type=int, default=150, help="Adam steps of the optimising motion generators")
    ap.add_argument("--samples", type=int, default=16, help="decoded prior samples per prior")
    ap.add_argument("--clips", type=int, default=6, help="held-out CMU clips for the data rows")
    ap.add_argument("--json", default="", help="also write the figures here")
    args = ap.parse_args(argv)
    print("command: AVATARCLIP_TEST_ENCODERS=1 python bench/motion.py " + " ".join(sys.argv[1:] if argv is None
                                                                                   else argv))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t_start = time.time()
    body = get_body_model("anny")
    rest = body.rest(body.default_shape()[None])[1][0]
    pose_vae = load_pose_vae()
    limits = (pose_vae.extra["joint_limits"]["lo"], pose_vae.extra["joint_limits"]["hi"])
    contact = ContactParams()
    encoder = load_encoder("oracle:pose")
    pose_params = dict(top_k=5, library_limit=96, image_size=64, azimuths_deg=(-30.0, 0.0, 30.0), batch_size=16,
                       num_iterations=args.iterations)
    cache = tempfile.mkdtemp(prefix="bench_motion_")
    generate_poses(encoder, "standing", body, PoseParams(**pose_params), cache_dir=cache, progress=False)  # embeddings

    rows, candidates = [], {}
    for pg in POSE_GENERATORS:
        runs = []
        try:
            for i, prompt in enumerate(PROMPTS):
                timings = {}
                poses, _, _ = generate_poses(encoder, prompt, body, PoseParams(generator=pg, **pose_params),
                                             cache_dir=cache, progress=False, timings=timings,
                                             generator=torch.Generator().manual_seed(i))
                t0 = time.perf_counter()
                motion, root = interpolate_motion(poses, MotionParams())
                runs.append(score(motion, root, rest, limits, contact,
                                  timings["seconds"] + time.perf_counter() - t0))
                candidates.setdefault(pg, {})[prompt] = poses
            rows.append(summarise(f"poses {pg} → interpolate", runs))
        except (FileNotFoundError, ValueError) as e:  # e.g. a generator whose weights are not built
            rows.append({"row": f"poses {pg} → interpolate", "error": str(e)})
    for mg in MOTION_GENERATORS:
        if mg == "interpolate" or "library" not in candidates:
            continue
        runs = []
        for i, prompt in enumerate(PROMPTS):
            timings = {}
            motion, root = generate_motion(candidates["library"][prompt],
                                           MotionParams(generator=mg, num_iterations=args.motion_iterations,
                                                        image_size=64),
                                           encoder=encoder, text=prompt, body=body, progress=False,
                                           generator=torch.Generator().manual_seed(i),
                                           pose_params=PoseParams(**pose_params), timings=timings)
            runs.append(score(motion, root, rest, limits, contact, timings["seconds"]))
        rows.append(summarise(f"poses library → {mg}", runs))

    gen = torch.Generator().manual_seed(1)
    motion_vae = load_motion_vae()
    runs = []
    for _ in range(args.samples):
        t0 = time.perf_counter()
        with torch.no_grad():
            motion = motion_vae.decode(torch.randn(1, motion_vae.latent_dim, generator=gen))[0]
        runs.append(score(motion, torch.zeros(len(motion), 3), rest, limits, contact, time.perf_counter() - t0))
    rows.append(summarise("motion VAE samples", runs))
    runs = []
    for _ in range(args.samples):
        t0 = time.perf_counter()
        with torch.no_grad():
            poses = pose_vae.decode(torch.randn(5, pose_vae.latent_dim, generator=gen))
        motion, root = interpolate_motion(poses, MotionParams())
        runs.append(score(motion, root, rest, limits, contact, time.perf_counter() - t0))
    rows.append(summarise("pose VAE samples → interpolate", runs))

    windows = data_windows(args.clips, rest)
    runs = [score(p, r, rest, limits, contact, 0.0) for p, r in windows]
    data = summarise(f"CMU held-out data ({args.clips} clips)", runs)
    rows.append(data)

    ref = data["jitter_m_s2_raw"]
    print(f"\nprompts {PROMPTS} under oracle:pose; {args.iterations} / {args.motion_iterations} Adam steps; "
          f"{args.samples} prior samples; {len(windows)} data windows; raw → after the contact post-process")
    print("| source | n | foot skate m/s | max float cm | max penetration cm | jitter m/s² | jitter / data "
          "| joint-limit violations % | generation s | contact s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['row']} | — | unavailable: {r['error'][:80]} |||||||| ")
            continue

        def two(key, f="{:.2f}"):
            return f"{f.format(r[key + '_raw'])} → {f.format(r[key + '_contact'])}"

        print(f"| {r['row']} | {r['n']} | {two('foot_skate_m_s', '{:.3f}')} | {two('max_float_cm', '{:.1f}')} "
              f"| {two('max_penetration_cm', '{:.1f}')} | {two('jitter_m_s2')} "
              f"| {r['jitter_m_s2_raw'] / ref:.2f} → {r['jitter_m_s2_contact'] / ref:.2f} "
              f"| {100 * r['joint_limit_violations_raw']:.1f} → {100 * r['joint_limit_violations_contact']:.1f} "
              f"| {r['gen_s']:.2f} | {r['contact_s']:.3f} |")
    print(f"\ntotal {time.time() - t_start:.0f} s, {args.threads} thread(s)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
