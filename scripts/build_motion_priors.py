"""Train the open pose and motion priors on CMU mocap (docs/method.md, Motion priors; replaces VPoser and the
motion VAE of docs/method.md §6 / §6.2). Writes avatarclip_core/assets/{pose_vae.pt, motion_vae.pt, motion_priors.json,
MOTION_PRIORS.md}. Deterministic given --seed (and --threads).

Steps: retarget every clip of clips.csv and extra/clips.csv (`mocap_data.load_mocap`, the same retarget and
held-out split by clip, stratified by category, as the pose library — checked against pose_library.npz);
training material = the training clips plus their left-right mirrors, drawn with category-balanced weights
(`category_weights`). Pose VAE (`PoseVAE`, 32-d latent, global orientation not modelled): loss = Σ 6D squared
error + w_joint·Σ joint squared error (m², FK on the anny rest skeleton) + β·KL. Motion VAE (`MotionVAE`,
60-frame windows at 30 fps, `motion_features`: pelvis tilt + 21 joints in 6D, heading rate, root velocity in
the heading frame, root height): per frame the 6D and joint terms (22 joints, heading frame), the standardised
root features, the integrated root trajectory, joint velocity and acceleration terms, + β·KL with free bits
(`--frame-latent k`: a k-d code per frame besides the global one, its KL weighted by `--frame-beta`; progress
lines with held-out MPJPE and sample jitter every `--eval-every` steps).
Figures on the held-out clips: MPJPE (mm; body frame as before, and in the world with the decoded root),
joint-limit rates of decoded N(0, I) pose samples, foot-skate / jitter / angular speed of decoded N(0, I) motion
samples (temperature 1) vs the data.

    python scripts/build_motion_priors.py [--data ../shared/data/cmu_mocap] [--seed 0] [--threads 1]

Then rebuild the pose flow on the new pose VAE: `python scripts/build_pose_flow.py` (it refuses a stale VAE).
`--parts motion` retrains the motion VAE alone: pose_vae.pt and pose_flow.pt stay as they are, and their figures
(motion_priors.json, MOTION_PRIORS.md) are carried over from the previous build in --out.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import Counter
from pathlib import Path

import torch
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avatarclip_core import skeleton  # noqa: E402
from avatarclip_core.io import atomic_write_json, atomic_write_text  # noqa: E402
from avatarclip_core.motion.bvh_retarget import DEFAULT_REST_JOINTS  # noqa: E402
from avatarclip_core.motion.mocap_data import category_weights, load_mocap  # noqa: E402
from avatarclip_core.motion.pose_library import load_pose_library  # noqa: E402
from avatarclip_core.motion.metrics import motion_statistics  # noqa: E402
from avatarclip_core.motion.priors import (ASSETS, ROOT_FEATURES, MotionVAE, PoseVAE,  # noqa: E402
                                           axis_angle_to_rot6d, integrate_root, joint_limits, joint_positions,
                                           motion_features, mpjpe_mm, rot6d_to_rotmat,
                                           rotmat_to_rot6d, save_prior, within_limits)

REST = DEFAULT_REST_JOINTS
FLOW_SECTION = "## Pose flow (`pose_flow.pt`)"  # written by build_pose_flow.py, kept by --parts motion
POSE_SETTINGS = ("pose_steps", "pose_batch", "pose_lr", "pose_beta", "w_joint", "num_samples", "seed", "threads")


def _lr(step, steps, lr):
    """Linear warm-up (first 2 %) then cosine decay to 5 %."""
    warm = max(1, steps // 50)
    if step < warm:
        return lr * (step + 1) / warm
    t = (step - warm) / max(1, steps - warm)
    return lr * (0.05 + 0.95 * 0.5 * (1 + torch.cos(torch.tensor(t * torch.pi)).item()))


def _kl(mu, logvar, free_bits=0.0):
    """Per-sample KL(q ‖ N(0, I)) summed over the latent; with free bits, each dimension's batch-mean KL below
    `free_bits` nats is not penalised (Kingma et al. 2016)."""
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)
    if free_bits > 0:
        return kl.mean(0).clamp_min(free_bits).sum().expand(mu.shape[0])
    return kl.sum(-1)


def _recon_loss(R_pred, R_true, w_joint):
    """Per-sample loss: Σ 6D squared error + w_joint · Σ squared joint error (m²); (..., 21 | 22, 3, 3) inputs."""
    e6 = (rotmat_to_rot6d(R_pred) - rotmat_to_rot6d(R_true)).pow(2).sum((-1, -2))
    ej = (joint_positions(R_pred, REST) - joint_positions(R_true, REST)).pow(2).sum((-1, -2))
    return e6 + w_joint * ej


def train_pose_vae(train, weights, args, gen):
    """train: (N, 22, 3), weights: (N,) sampling weights. Returns (model, seconds, final losses)."""
    model = PoseVAE(latent_dim=32, hidden=512)
    opt = torch.optim.Adam(model.parameters(), lr=args.pose_lr)
    R_all = rot6d_to_rotmat(axis_angle_to_rot6d(train[:, 1:]))
    t0, hist = time.time(), []
    model.train()
    for step in (bar := tqdm(range(args.pose_steps), desc="pose VAE")):
        for g in opt.param_groups:
            g["lr"] = _lr(step, args.pose_steps, args.pose_lr)
        idx = torch.multinomial(weights, args.pose_batch, replacement=True, generator=gen)
        R_pred, mu, logvar = model(train[idx])
        rec, kl = _recon_loss(R_pred, R_all[idx], args.w_joint).mean(), _kl(mu, logvar).mean()
        loss = rec + args.pose_beta * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        hist.append((rec.item(), kl.item()))
        if step % 200 == 0:
            bar.set_postfix(rec=f"{rec.item():.4f}", kl=f"{kl.item():.1f}")
    model.eval()
    tail = torch.tensor(hist[-200:]).mean(0).tolist()
    return model, time.time() - t0, dict(recon=round(tail[0], 5), kl=round(tail[1], 3))


def windows(feats, length, stride):
    """(W, length, 136) windows of every (T_c, 136) feature clip of ≥ `length` frames, every `stride` frames,
    and the clip index of each window (W,)."""
    out, owner = [], []
    for c, f in enumerate(feats):
        for s in range(0, f.shape[0] - length + 1, stride):
            out.append(f[s:s + length])
            owner.append(c)
    if not out:
        return torch.zeros(0, length, feats[0].shape[-1]), torch.zeros(0, dtype=torch.long)
    return torch.stack(out), torch.tensor(owner)


def clip_features(poses, root, fps=30.0):
    """(T, 136) `motion_features` of a whole clip: poses (T, 22, 3), root (T, 3) metres."""
    return motion_features(poses[None], root[None], fps)[0]


def mirror_root(root):
    """Root trajectory of the left-right mirrored clip (x → −x, as `skeleton.mirror_pose`)."""
    out = root.clone()
    out[..., 0] = -out[..., 0]
    return out


def motion_terms(model, pred, true, args):
    """Loss terms of a batch of decoded (B, T, 136) vs true features: dict of per-window scalars (batch means)."""
    B, T = true.shape[:2]
    Rp, Rt = rot6d_to_rotmat(pred[..., :132].reshape(B, T, 22, 6)), rot6d_to_rotmat(true[..., :132].reshape(B, T, 22, 6))
    e6 = (rotmat_to_rot6d(Rp) - rotmat_to_rot6d(Rt)).pow(2).sum((-1, -2)).mean()
    # joints in the heading frame, the root at its height (x = z = 0)
    h = torch.zeros(B, T, 3)
    pp = joint_positions(Rp, REST) + torch.stack([h[..., 0], pred[..., 135], h[..., 2]], -1)[:, :, None]
    pt = joint_positions(Rt, REST) + torch.stack([h[..., 0], true[..., 135], h[..., 2]], -1)[:, :, None]
    joint = (pp - pt).pow(2).sum((-1, -2)).mean()
    vel = ((pp[:, 1:] - pp[:, :-1]) - (pt[:, 1:] - pt[:, :-1])).pow(2).sum((-1, -2)).mean()
    acc = ((pp[:, 2:] - 2 * pp[:, 1:-1] + pp[:, :-2]) - (pt[:, 2:] - 2 * pt[:, 1:-1] + pt[:, :-2])
           ).pow(2).sum((-1, -2)).mean()
    root = ((pred[..., 132:] - true[..., 132:]) / model.feature_std).pow(2).sum(-1).mean()
    _, rp = integrate_root(pred, model.fps)
    _, rt = integrate_root(true, model.fps)
    traj = (rp - rt).pow(2).sum(-1).mean()
    return dict(rot6d=e6, joint=joint, vel=vel, acc=acc, root=root, traj=traj)


def motion_progress(model, heldout, gen):
    """Held-out MPJPE (mm, body frame) and decoded-sample / data jitter of the model in eval mode — the two
    figures the build is judged on, shown while it trains. heldout: (W, 60, 136)."""
    def body(f):
        return rot6d_to_rotmat(f[..., 6:132].reshape(*f.shape[:2], 21, 6))

    was_training = model.training
    model.eval()
    with torch.no_grad():
        rec = model.decode_features(model.encode_features(heldout)[0])
        smp = model.decode_features(torch.randn(len(heldout), model.latent_dim, generator=gen))
        out = dict(mpjpe_mm=float(mpjpe_mm(body(rec), body(heldout), REST)),
                   jitter_ratio=motion_statistics(body(smp), REST)["jitter_m_s2"]
                   / motion_statistics(body(heldout), REST)["jitter_m_s2"])
    model.train(was_training)
    return out


def train_motion_vae(train, weights, args, gen, heldout=None):
    """train: (W, 60, 136) feature windows, weights: (W,) sampling weights; heldout: optional (W', 60, 136)
    windows for the `--eval-every` progress lines. Returns (model, seconds, losses)."""
    model = MotionVAE(num_frames=60, latent_dim=256, width=args.motion_width, num_layers=args.motion_layers,
                      num_heads=4, ff_dim=2 * args.motion_width, dropout=args.motion_dropout,
                      frame_latent_dim=args.frame_latent)
    frame_beta = args.motion_beta if args.frame_beta is None else args.frame_beta
    eval_gen = torch.Generator().manual_seed(args.seed + 2)
    root = train[..., 132:].reshape(-1, len(ROOT_FEATURES))
    model.feature_mean.copy_(root.mean(0))
    model.feature_std.copy_(root.std(0).clamp_min(1e-3))
    opt = torch.optim.AdamW(model.parameters(), lr=args.motion_lr, weight_decay=1e-4)
    w = dict(rot6d=1.0, joint=args.w_joint, vel=args.w_vel, acc=args.w_acc, root=args.w_root, traj=args.w_traj)
    t0, hist = time.time(), []
    model.train()
    for step in (bar := tqdm(range(args.motion_steps), desc="motion VAE")):
        for g in opt.param_groups:
            g["lr"] = _lr(step, args.motion_steps, args.motion_lr)
        x = train[torch.multinomial(weights, args.motion_batch, replacement=True, generator=gen)]
        pred, mu, logvar = model(x)
        terms = motion_terms(model, pred, x, args)
        G = model.global_dim
        terms["kl"] = _kl(mu[:, :G], logvar[:, :G], args.free_bits).mean()
        terms["kl_frames"] = _kl(mu[:, G:], logvar[:, G:], args.free_bits).mean()
        loss = (sum(w[k] * v for k, v in terms.items() if k not in ("kl", "kl_frames"))
                + args.motion_beta * terms["kl"] + frame_beta * terms["kl_frames"])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        hist.append([v.item() for v in terms.values()])
        if step % 100 == 0:
            bar.set_postfix({k: f"{v.item():.4g}" for k, v in terms.items()})
        if heldout is not None and args.eval_every and (step + 1) % args.eval_every == 0:
            p = motion_progress(model, heldout, eval_gen)
            tqdm.write(f"step {step + 1}: held-out MPJPE {p['mpjpe_mm']:.2f} mm, "
                       f"sample/data jitter {p['jitter_ratio']:.3f}")
    model.eval()
    tail = torch.tensor(hist[-100:]).mean(0).tolist()
    return model, time.time() - t0, {k: round(v, 5) for k, v in zip(terms, tail)}


def _r(d, n=3):
    return {k: round(v, n) if isinstance(v, float) else v for k, v in d.items()}


def pose_part(train_poses, pose_w, test_poses, args):
    """Train and evaluate the pose VAE (seeded by args.seed alone, so the result is the same in this or a second
    process). Returns (model, joint-limit lo, hi (21, 3) rad, figures)."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    pose_vae, t_pose, pose_loss = train_pose_vae(train_poses, pose_w, args, gen)
    lo, hi = joint_limits(train_poses)
    with torch.no_grad():
        R_test = rot6d_to_rotmat(axis_angle_to_rot6d(test_poses[:, 1:]))
        mu, _ = pose_vae.encode(test_poses)
        pose_mpjpe = float(mpjpe_mm(pose_vae.decode_rotmat(mu), R_test, REST))
        R_train = rot6d_to_rotmat(axis_angle_to_rot6d(train_poses[::20, 1:]))
        mu_tr, _ = pose_vae.encode(train_poses[::20])
        pose_mpjpe_train = float(mpjpe_mm(pose_vae.decode_rotmat(mu_tr), R_train, REST))
        samples = pose_vae.decode(torch.randn(args.num_samples, 32, generator=gen))
    pose_fig = dict(
        heldout_mpjpe_mm=round(pose_mpjpe, 2), train_mpjpe_mm=round(pose_mpjpe_train, 2),
        heldout_poses=len(test_poses), train_seconds=round(t_pose, 1), final_losses=pose_loss,
        samples_within_limits=_r(within_limits(samples, lo, hi)),
        heldout_data_within_limits=_r(within_limits(test_poses, lo, hi)),
        train_data_within_limits=_r(within_limits(train_poses, lo, hi)), num_samples=args.num_samples,
        joint_limits="per joint and axis-angle component: training data's 0.5–99.5th percentiles ± 0.05 rad",
    )
    return pose_vae, lo, hi, pose_fig


def _stats_row(name, d):
    return (f"| {name} | {d['foot_skate_m_s']} | {d['jitter_m_s2']} | "
            f"{d['ang_speed_p99_rad_s']} / {d['ang_speed_max_rad_s']} |")


def add_data_args(ap: argparse.ArgumentParser) -> None:
    """The data, split and thread options shared by the prior builders (this script, build_pose_flow.py)."""
    ap.add_argument("--data", default=None, help="cmu_mocap folder (default ../shared/data/cmu_mocap)")
    ap.add_argument("--out", default=str(ASSETS), help="assets folder, read and written (default avatarclip_core/assets)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-fraction", type=float, default=0.15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", default=None, help="optional .pt file caching the retargeted clips")


def load_dataset(args):
    """`mocap_data.load_mocap` with the builders' options, or the retargeted clips of --cache (written on first use)."""
    cache = Path(args.cache) if args.cache else None
    if cache is not None and cache.exists():
        return torch.load(cache, weights_only=False)["ds"]
    ds = load_mocap(args.data, args.test_fraction, args.seed)
    if cache is not None:
        torch.save(dict(ds=ds), cache)
    return ds


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(ap)
    ap.add_argument("--max-upweight", type=float, default=10.0, help="category balance cap (category_weights)")
    ap.add_argument("--pose-steps", type=int, default=6000)
    ap.add_argument("--pose-batch", type=int, default=256)
    ap.add_argument("--pose-lr", type=float, default=1e-3)
    ap.add_argument("--pose-beta", type=float, default=5e-3, help="KL weight (per-sample sums)")
    ap.add_argument("--motion-steps", type=int, default=6000)
    ap.add_argument("--motion-batch", type=int, default=32)
    ap.add_argument("--motion-lr", type=float, default=5e-4)
    ap.add_argument("--motion-beta", type=float, default=2e-4, help="KL weight (vs per-frame sums)")
    ap.add_argument("--free-bits", type=float, default=0.0, help="nats per latent dimension not penalised")
    ap.add_argument("--frame-latent", type=int, default=0,
                    help="per-frame latent size of the motion VAE (0: a single global code; MotionVAE)")
    ap.add_argument("--frame-beta", type=float, default=None,
                    help="KL weight of the per-frame codes (default: --motion-beta)")
    ap.add_argument("--eval-every", type=int, default=1000,
                    help="print held-out MPJPE and sample jitter every this many motion steps (0: never)")
    ap.add_argument("--motion-width", type=int, default=128)
    ap.add_argument("--motion-layers", type=int, default=2)
    ap.add_argument("--motion-dropout", type=float, default=0.1)
    ap.add_argument("--window-stride", type=int, default=10, help="frames between training windows")
    ap.add_argument("--w-joint", type=float, default=10.0, help="weight of the joint-position term (per m²)")
    ap.add_argument("--w-vel", type=float, default=100.0, help="weight of the joint-velocity term (m² per frame²)")
    ap.add_argument("--w-acc", type=float, default=100.0, help="weight of the joint-acceleration term")
    ap.add_argument("--w-root", type=float, default=1.0, help="weight of the standardised root features")
    ap.add_argument("--w-traj", type=float, default=1.0, help="weight of the integrated root trajectory (per m²)")
    ap.add_argument("--num-samples", type=int, default=2000, help="N(0, I) pose samples for the limit figures")
    ap.add_argument("--parts", default="pose,motion",
                    help="priors to train; 'motion' keeps pose_vae.pt, pose_flow.pt and their figures in --out "
                         "(motion_priors.json, MOTION_PRIORS.md) and retrains the motion VAE only")
    ap.add_argument("--jobs", type=int, default=1, choices=(1, 2),
                    help="2: train the pose VAE in a second process (each with --threads), same results")
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)
    out = Path(args.out)
    parts = set(args.parts.split(","))
    t_start = time.time()

    # ------------------------------------------------------------------ data and split
    ds = load_dataset(args)
    ids, splits, cats, t_retarget = ds.clip_ids, ds.splits, ds.categories, ds.seconds
    lib = load_pose_library()
    same_split = lib.clip_ids == ids and lib.splits == splits
    if lib.settings.get("seed") == args.seed and not same_split:
        raise SystemExit("the held-out split differs from pose_library.npz's: rebuild the library or check --seed")
    tr = [i for i, s in enumerate(splits) if s == "train"]
    te = [i for i, s in enumerate(splits) if s == "test"]
    train_clips = [ds.clips[i].poses for i in tr]
    train_poses = torch.cat(train_clips)
    train_poses = torch.cat([train_poses, skeleton.mirror_pose(train_poses)])
    pose_cats = [cats[i] for i in tr for _ in range(ds.clips[i].poses.shape[0])] * 2
    test_poses = torch.cat([ds.clips[i].poses for i in te])
    print(f"{len(tr)} train / {len(te)} test clips; {len(train_poses)} training poses "
          f"(with mirrors), {len(test_poses)} held-out poses; retarget {t_retarget:.0f} s")
    cat_frames = {k: v for k, v in sorted(Counter(c for c in pose_cats[:len(pose_cats) // 2]).items())}
    pose_w = category_weights(pose_cats, args.max_upweight)
    cat_mass = {c: round(float(pose_w[[k == c for k in pose_cats]].sum()), 3) for c in cat_frames}
    record = dict(
        command="python scripts/build_motion_priors.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        settings={k: v for k, v in vars(args).items() if k not in ("out", "cache")},
        split=dict(method="split_clips by clip, stratified by category (same as pose_library.npz)",
                   same_as_pose_library=same_split, train_clips=len(tr), test_clips=[ids[i] for i in te],
                   test_clips_per_category=dict(sorted(Counter(cats[i] for i in te).items()))),
        pose_library=dict(poses=len(lib), max_fraction=lib.settings.get("max_fraction"),
                          categories_after=lib.settings.get("categories"),
                          categories_before_plain_farthest_point=lib.settings.get("categories_plain_farthest_point")),
        data=dict(clips=len(ids), skipped_clips=ds.skipped, retarget_seconds=round(t_retarget, 1),
                  train_poses_with_mirrors=len(train_poses), heldout_poses=len(test_poses), fps=30,
                  train_frames_per_category=cat_frames, train_sampling_mass_per_category=cat_mass),
    )

    # an earlier build's pose VAE (and the pose flow trained on it) kept as they are with --parts motion
    old_path = out / "motion_priors.json"
    old = json.loads(old_path.read_text()) if old_path.exists() else {}
    kept_pose = None
    if "pose" not in parts and "pose_vae" in old and (out / "pose_vae.pt").exists():
        kept_pose = dict(old["pose_vae"])
        kept_pose.setdefault("command", old.get("command"))
        kept_pose.setdefault("settings", {k: old.get("settings", {}).get(k) for k in POSE_SETTINGS})
        record["pose_vae"] = kept_pose
        if "pose_flow" in old:
            record["pose_flow"] = old["pose_flow"]

    # ------------------------------------------------------------------ pose VAE (in a second process with --jobs 2)
    pose_job = None
    if "pose" in parts and args.jobs > 1 and "motion" in parts:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"))
        pose_job = pool.submit(pose_part, train_poses, pose_w, test_poses, args)
    elif "pose" in parts:
        pose_result = pose_part(train_poses, pose_w, test_poses, args)

    # ------------------------------------------------------------------ motion VAE
    if "motion" in parts:
        torch.manual_seed(args.seed + 1)
        gen = torch.Generator().manual_seed(args.seed + 1)
        feats = [clip_features(ds.clips[i].poses, ds.clips[i].root_translation) for i in tr]
        feats += [clip_features(skeleton.mirror_pose(ds.clips[i].poses), mirror_root(ds.clips[i].root_translation))
                  for i in tr]
        train_w, owner = windows(feats, 60, args.window_stride)
        motion_w = category_weights([cats[tr[int(o) % len(tr)]] for o in owner], args.max_upweight)
        test_w, _ = windows([clip_features(ds.clips[i].poses, ds.clips[i].root_translation) for i in te], 60, 30)
        motion_vae, t_motion, motion_loss = train_motion_vae(train_w, motion_w.float(), args, gen, test_w)
        with torch.no_grad():
            def body(f):  # (B, 60, 136) → body rotations (B, 60, 21, 3, 3)
                return rot6d_to_rotmat(f[..., 6:132].reshape(*f.shape[:2], 21, 6))

            rec_f = torch.cat([motion_vae.decode_features(motion_vae.encode_features(test_w[i:i + 64])[0])
                               for i in range(0, len(test_w), 64)])
            zs = torch.randn(256, motion_vae.latent_dim, generator=gen)
            smp_f = torch.cat([motion_vae.decode_features(zs[i:i + 64]) for i in range(0, 256, 64)])
            motion_mpjpe = float(mpjpe_mm(body(rec_f), body(test_w), REST))
            (Rg_t, root_t), (Rg_r, root_r), (Rg_s, root_s) = (integrate_root(f) for f in (test_w, rec_f, smp_f))
            pos_t = joint_positions(Rg_t, REST) + root_t[:, :, None]
            pos_r = joint_positions(Rg_r, REST) + root_r[:, :, None]
            world_mpjpe = float((pos_r - pos_t).norm(dim=-1).mean() * 1000)
            root_err = float((root_r - root_t).norm(dim=-1).mean())
            stats = dict(heldout_data=_r(motion_statistics(body(test_w), REST)),
                         heldout_recon=_r(motion_statistics(body(rec_f), REST)),
                         samples=_r(motion_statistics(body(smp_f), REST)))
            world = dict(heldout_data=_r(motion_statistics(Rg_t, REST, root=root_t)),
                         heldout_recon=_r(motion_statistics(Rg_r, REST, root=root_r)),
                         samples=_r(motion_statistics(Rg_s, REST, root=root_s)))

            def root_summary(root):
                speed = (root[:, 1:, [0, 2]] - root[:, :-1, [0, 2]]).norm(dim=-1).mean() * 30
                return dict(mean_speed_m_s=round(float(speed), 3), height_mean_m=round(float(root[..., 1].mean()), 3),
                            height_std_m=round(float(root[..., 1].std()), 3),
                            distance_2s_m=round(float((root[:, -1, [0, 2]] - root[:, 0, [0, 2]]).norm(dim=-1).mean()), 3))

            roots = dict(heldout_data=root_summary(root_t), heldout_recon=root_summary(root_r),
                         samples=root_summary(root_s))
        motion_fig = dict(heldout_mpjpe_mm=round(motion_mpjpe, 2), heldout_mpjpe_world_mm=round(world_mpjpe, 2),
                          heldout_root_error_m=round(root_err, 3), train_windows=len(train_w),
                          heldout_windows=len(test_w), train_seconds=round(t_motion, 1), final_losses=motion_loss,
                          statistics=stats, statistics_world=world, root=roots, num_samples=256,
                          jitter_ratio_samples_to_data=round(stats["samples"]["jitter_m_s2"]
                                                             / stats["heldout_data"]["jitter_m_s2"], 3))
        print("motion VAE:", json.dumps(motion_fig))
        out.mkdir(parents=True, exist_ok=True)
        save_prior(motion_vae, out / "motion_vae.pt", figures=motion_fig)
        record["motion_vae"] = dict(config=motion_vae.config, **motion_fig)
    if "pose" in parts:
        if pose_job is not None:
            pose_result = pose_job.result()
            pool.shutdown()
        pose_vae, lo, hi, pose_fig = pose_result
        t_pose = pose_fig["train_seconds"]
        print("pose VAE:", pose_fig)
        out.mkdir(parents=True, exist_ok=True)
        save_prior(pose_vae, out / "pose_vae.pt", joint_limits=dict(lo=lo, hi=hi), figures=pose_fig)
        record["pose_vae"] = dict(config=pose_vae.config, **pose_fig)

    # ------------------------------------------------------------------ write
    if kept_pose is not None and "motion" in parts:
        pose_fig, t_pose = kept_pose, kept_pose["train_seconds"]
        ps = argparse.Namespace(**kept_pose["settings"])
        pose_note = (f" (the pose VAE by `{kept_pose['command'].strip()}`, kept by `--parts motion` together with the "
                     f"pose flow trained on it)")
    else:
        ps, pose_note = argparse.Namespace(**{k: getattr(args, k) for k in POSE_SETTINGS}), ""
    if parts != {"pose", "motion"} and kept_pose is None:
        atomic_write_json(out / "motion_priors.json", record)
        print(f"wrote {out} ({', '.join(sorted(parts))} only; no MOTION_PRIORS.md)")
        return
    sizes = {n: round((out / n).stat().st_size / 1e6, 2) for n in ("pose_vae.pt", "motion_vae.pt")}
    record.update(file_mb=sizes, machine=f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
                                        f"{args.threads} threads", total_seconds=round(time.time() - t_start, 1))
    atomic_write_json(out / "motion_priors.json", record)
    s, sw, ro = stats, world, roots
    pcfg = record["pose_vae"]["config"]
    skipped = (f" {len(ds.skipped)} clips of the tables were left out because their skeleton cannot be retargeted "
               f"yet ({', '.join(sorted(ds.skipped))})." if ds.skipped else "")
    k = motion_vae.config.get("frame_latent_dim", 0)
    frame_beta = args.motion_beta if args.frame_beta is None else args.frame_beta
    frame_codes = f" plus a {k}-d code per frame (N(0, I) prior; z has {motion_vae.latent_dim} numbers)" if k else ""
    frame_query = " and that frame's projected code" if k else ""
    frame_kl = f" + {frame_beta}·KL of the frame codes" if k else ""
    md = f"""# Motion priors (`pose_vae.pt`, `motion_vae.pt`)

Open replacements for AvatarCLIP's VPoser and motion VAE (docs/method.md §6, §6.2), trained on CMU mocap by
`{record['command'].strip()}`{pose_note} (deterministic given `--seed` and `--threads`; every number below is in
`motion_priors.json`). Load with `avatarclip_core.motion.priors.load_pose_vae()` / `load_motion_vae()`.

## Data and split
{len(ids)} CMU clips of `../shared/data/cmu_mocap` (clips.csv and extra/clips.csv), retargeted to the 22-joint
skeleton at 30 fps exactly as for the pose library (`mocap_data.load_mocap`).{skipped} Held-out split **by clip**,
stratified by category, the pose library's (`split_clips`, seed {args.seed}, {args.test_fraction:.0%}; identical to
pose_library.npz: {same_split}): {len(tr)} train, {len(te)} test clips ({', '.join(ids[i] for i in te)}).
Training material: every training frame plus its left-right mirror ({len(train_poses)} poses), drawn with
category-balanced weights (`mocap_data.category_weights`: equal mass per category, no item more than
{args.max_upweight:g}× its uniform rate). Training frames and sampling mass per category:
{', '.join(f"{c} {n} ({cat_mass[c]:.0%})" for c, n in cat_frames.items())}. Held-out: every test frame
({len(test_poses)}). Errors are measured on the anny body's default skeleton (`DEFAULT_REST_JOINTS`, FK, 22 joints).

## Pose VAE (VPoser-like)
MLP VAE over the 21 body joints' rotations (head, wrists and toes included) in 6D; 32-d latent, hidden
{pcfg['hidden']}, LeakyReLU, dropout {pcfg['dropout']}; the global orientation is not modelled. Loss per
pose: Σ 6D² + {ps.w_joint}·Σ joint error² (m²) + {ps.pose_beta}·KL; Adam lr {ps.pose_lr} (warm-up, cosine), batch
{ps.pose_batch}, {ps.pose_steps} steps.
- Held-out MPJPE (posterior mean, root fixed): **{pose_fig['heldout_mpjpe_mm']} mm** (training subset {pose_fig['train_mpjpe_mm']} mm).
- Joint limits: per joint and axis-angle component, the training data's 0.5–99.5th percentiles ± 0.05 rad.
  Decoded N(0, I) samples ({ps.num_samples}): {pose_fig['samples_within_limits']['joints']:.1%} of joints and
  {pose_fig['samples_within_limits']['poses']:.1%} of whole poses within limits (held-out data:
  {pose_fig['heldout_data_within_limits']['joints']:.1%} / {pose_fig['heldout_data_within_limits']['poses']:.1%}).
- Training time: {t_pose:.0f} s ({ps.threads} threads).

## Motion VAE (ACTOR-like, with root)
Transformer VAE over 60-frame windows (2 s at 30 fps) of `motion_features` (docs/method.md, Motion priors): per
frame the pelvis tilt (global orientation without its heading) and the 21 body joints in 6D, the heading rate
(rad/s), the root velocity in the heading frame (x, z; m/s) and the root height (m), 136 numbers; decoding
integrates the rates to the global orientation and a root trajectory (`integrate_root`). Width
{motion_vae.config['width']}, {motion_vae.config['num_layers']} encoder + {motion_vae.config['num_layers']} decoder layers,
{motion_vae.config['num_heads']} heads, FF {motion_vae.config['ff_dim']}, GELU; μ/σ query tokens; {motion_vae.config['latent_dim']}-d global latent{frame_codes}; decoder queries =
sinusoidal PE of frames 0…59 plus the projected latent{frame_query}, attending to it. Loss per window (per-frame means): Σ 6D²
(22 joints) + {args.w_joint}·Σ joint² (m², heading frame, root height included) + {args.w_vel}·Σ joint-velocity² +
{args.w_acc}·Σ joint-acceleration² (m² per frame², per frame²) + {args.w_root}·Σ standardised root-feature² +
{args.w_traj}·‖integrated root − true‖² (m²) + {args.motion_beta}·KL{frame_kl} (free bits {args.free_bits} nats per dimension);
AdamW lr {args.motion_lr}, batch {args.motion_batch}, {args.motion_steps} steps; {len(train_w)} training windows (stride
{args.window_stride}, mirrors included, category-balanced), {len(test_w)} held-out windows (stride 30).
- Held-out MPJPE (posterior mean; body frame: zero global orientation, root fixed, as before):
  **{motion_fig['heldout_mpjpe_mm']} mm**; in the world, with the decoded global orientation and root trajectory
  (both start facing +z at x = z = 0): {motion_fig['heldout_mpjpe_world_mm']} mm; mean root position error
  {motion_fig['heldout_root_error_m']} m.
- Foot-skate (mean horizontal speed of ankles/toes within 5 cm of the window's lowest foot joint), jitter (mean
  joint acceleration), angular speed. Body frame (root fixed, so stance feet of walking slide in the data too):

| body frame | foot-skate m/s | jitter m/s² | angular speed p99 / max rad/s |
|---|---|---|---|
{_stats_row('held-out data', s['heldout_data'])}
{_stats_row('held-out reconstructions', s['heldout_recon'])}
{_stats_row('decoded N(0, I) samples (256, temperature 1)', s['samples'])}

  In the world (decoded global orientation and root trajectory):

| world | foot-skate m/s | jitter m/s² | angular speed p99 / max rad/s |
|---|---|---|---|
{_stats_row('held-out data', sw['heldout_data'])}
{_stats_row('held-out reconstructions', sw['heldout_recon'])}
{_stats_row('decoded N(0, I) samples (256, temperature 1)', sw['samples'])}

  Sample jitter / data jitter (body frame): **{motion_fig['jitter_ratio_samples_to_data']}**. Root: mean horizontal speed
  {ro['heldout_data']['mean_speed_m_s']} m/s in the data, {ro['samples']['mean_speed_m_s']} m/s in samples; root height
  {ro['heldout_data']['height_mean_m']} ± {ro['heldout_data']['height_std_m']} m vs {ro['samples']['height_mean_m']} ±
  {ro['samples']['height_std_m']} m (0 = standing as in the rest pose).
- Training time: {t_motion:.0f} s ({args.threads} threads).

## Files
`pose_vae.pt` ({sizes['pose_vae.pt']} MB), `motion_vae.pt` ({sizes['motion_vae.pt']} MB): torch.save dicts
{{kind, config, state_dict (float16), figures}} (+ `joint_limits` {{lo, hi}} (21, 3) rad for the pose VAE; the motion
VAE's state dict holds its root-feature `feature_mean` / `feature_std`).
Total build time {record['total_seconds']:.0f} s on {record['machine']} (retarget {t_retarget:.0f} s).

## Licence and acknowledgement
Trained on the CMU Graphics Lab Motion Capture Database (mocap.cs.cmu.edu; created with funding from NSF
EIA-0196217). CMU's terms: free for research; may be included in commercially-sold products, not resold directly.
"""
    old_md = (out / "MOTION_PRIORS.md").read_text() if (out / "MOTION_PRIORS.md").exists() else ""
    if "pose_flow" in record and FLOW_SECTION in old_md:  # the kept pose flow's section (build_pose_flow.py)
        flow = FLOW_SECTION + old_md.split(FLOW_SECTION, 1)[1].split("\n## ", 1)[0].rstrip("\n")
        head, tail = md.split("## Licence", 1)
        md = head + flow + "\n\n## Licence" + tail
    atomic_write_text(out / "MOTION_PRIORS.md", md)
    written = "motion_vae.pt" if kept_pose is not None else "pose_vae.pt, motion_vae.pt"
    print(f"wrote {out}/{written}, motion_priors.json, MOTION_PRIORS.md in {record['total_seconds']:.0f} s")


if __name__ == "__main__":
    main()
