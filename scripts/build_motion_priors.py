"""Train the open pose and motion priors on CMU mocap (docs/method.md, Motion priors; replaces VPoser and the
motion VAE of docs/method.md §6 / §6.2). Writes avatarclip_core/assets/{pose_vae.pt, motion_vae.pt, motion_priors.json,
MOTION_PRIORS.md}. Deterministic given --seed (and --threads).

Steps: retarget every clip (`mocap_data.load_mocap`, the same retarget and held-out split by clip as the pose
library: `split_clips` with the same seed and test fraction, checked against pose_library.npz); training
poses = every frame of the training clips plus left-right mirrored copies; the global orientation is not
modelled. Pose VAE (`PoseVAE`, 32-d latent): loss = Σ 6D squared error + w_joint·Σ joint squared error (m²,
FK on the anny rest skeleton) + β·KL. Motion VAE (`MotionVAE`, 60-frame windows at 30 fps, 256-d latent): the
same per frame, plus a 6D velocity term, + β·KL. Figures on the held-out clips: MPJPE (mm), joint-limit rates
of decoded N(0, I) samples, foot-skate / jitter / angular speed of decoded samples vs the data.

    python scripts/build_motion_priors.py [--data ../shared/data/cmu_mocap] [--seed 0] [--threads 2]
    python scripts/build_motion_priors.py --only flow [--threads 1]   # the pose flow alone, on the shipped pose VAE

The pose flow (`motion.flow.PoseFlow`, RealNVP over the pose VAE's latent) is its own step (`build_flow`): it loads
the pose VAE from --out, fits the flow to posterior samples of the VAE for the training poses by maximum likelihood and
writes pose_flow.pt plus its section of motion_priors.json ("pose_flow") and MOTION_PRIORS.md. A full build runs it
last, on the VAE it has just trained.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avatarclip_core import skeleton  # noqa: E402
from avatarclip_core.io import atomic_write_json, atomic_write_text  # noqa: E402
from avatarclip_core.motion.bvh_retarget import DEFAULT_REST_JOINTS  # noqa: E402
from avatarclip_core.motion.mocap_data import load_mocap  # noqa: E402
from avatarclip_core.motion.pose_library import load_pose_library  # noqa: E402
from avatarclip_core.motion.metrics import motion_statistics  # noqa: E402
from avatarclip_core.motion.priors import (ASSETS, MotionVAE, PoseVAE, axis_angle_to_rot6d,  # noqa: E402
                                           joint_limits, joint_positions, mpjpe_mm, rot6d_to_rotmat,
                                           rotmat_to_rot6d, save_prior, within_limits)

REST = DEFAULT_REST_JOINTS


def _lr(step, steps, lr):
    """Linear warm-up (first 2 %) then cosine decay to 5 %."""
    warm = max(1, steps // 50)
    if step < warm:
        return lr * (step + 1) / warm
    t = (step - warm) / max(1, steps - warm)
    return lr * (0.05 + 0.95 * 0.5 * (1 + torch.cos(torch.tensor(t * torch.pi)).item()))


def _kl(mu, logvar):
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)


def _recon_loss(R_pred, R_true, w_joint):
    """Per-sample loss: Σ 6D squared error + w_joint · Σ squared joint error (m²); (..., 21, 3, 3) inputs."""
    e6 = (rotmat_to_rot6d(R_pred) - rotmat_to_rot6d(R_true)).pow(2).sum((-1, -2))
    ej = (joint_positions(R_pred, REST) - joint_positions(R_true, REST)).pow(2).sum((-1, -2))
    return e6 + w_joint * ej


def train_pose_vae(train, args, gen):
    """train: (N, 22, 3). Returns (model, seconds, final losses)."""
    model = PoseVAE(latent_dim=32, hidden=512)
    opt = torch.optim.Adam(model.parameters(), lr=args.pose_lr)
    R_all = rot6d_to_rotmat(axis_angle_to_rot6d(train[:, 1:]))
    t0, hist = time.time(), []
    model.train()
    for step in (bar := tqdm(range(args.pose_steps), desc="pose VAE")):
        for g in opt.param_groups:
            g["lr"] = _lr(step, args.pose_steps, args.pose_lr)
        idx = torch.randint(0, train.shape[0], (args.pose_batch,), generator=gen)
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


def windows(clips, length, stride):
    """(W, length, 22, 3) windows of every clip longer than `length` frames, every `stride` frames."""
    out = [c[s:s + length] for c in clips for s in range(0, c.shape[0] - length + 1, stride)]
    return torch.stack(out) if out else torch.zeros(0, length, 22, 3)


def train_motion_vae(train, args, gen):
    """train: (W, 60, 22, 3) windows. Returns (model, seconds, final losses)."""
    model = MotionVAE(num_frames=60, latent_dim=256, width=args.motion_width, num_layers=2, num_heads=4,
                      ff_dim=2 * args.motion_width)
    opt = torch.optim.AdamW(model.parameters(), lr=args.motion_lr, weight_decay=1e-4)
    t0, hist = time.time(), []
    model.train()
    for step in (bar := tqdm(range(args.motion_steps), desc="motion VAE")):
        for g in opt.param_groups:
            g["lr"] = _lr(step, args.motion_steps, args.motion_lr)
        x = train[torch.randint(0, train.shape[0], (args.motion_batch,), generator=gen)]
        R_true = rot6d_to_rotmat(axis_angle_to_rot6d(x[:, :, 1:]))
        R_pred, mu, logvar = model(x)
        rec = _recon_loss(R_pred, R_true, args.w_joint).mean()
        d6p, d6t = rotmat_to_rot6d(R_pred), rotmat_to_rot6d(R_true)
        vel = ((d6p[:, 1:] - d6p[:, :-1]) - (d6t[:, 1:] - d6t[:, :-1])).pow(2).sum((-1, -2)).mean()
        kl = _kl(mu, logvar).mean()
        loss = rec + args.w_vel * vel + args.motion_beta * kl
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        hist.append((rec.item(), vel.item(), kl.item()))
        if step % 100 == 0:
            bar.set_postfix(rec=f"{rec.item():.4f}", vel=f"{vel.item():.4f}", kl=f"{kl.item():.1f}")
    model.eval()
    tail = torch.tensor(hist[-100:]).mean(0).tolist()
    return model, time.time() - t0, dict(recon=round(tail[0], 5), vel=round(tail[1], 5), kl=round(tail[2], 3))


def _load_clips(args):
    """(clip ids, splits, pose tensors (T_c, 22, 3), retarget seconds) from `load_mocap`, or from --cache."""
    cache = Path(args.cache) if args.cache else None
    if cache is not None and cache.exists():
        blob = torch.load(cache, weights_only=False)
        return blob["ids"], blob["splits"], blob["clips"], blob["seconds"]
    ds = load_mocap(args.data, args.test_fraction, args.seed)
    ids, splits, clips, t_retarget = ds.clip_ids, ds.splits, [c.poses for c in ds.clips], ds.seconds
    if cache is not None:
        torch.save(dict(ids=ids, splits=splits, clips=clips, seconds=t_retarget), cache)
    return ids, splits, clips, t_retarget


def _r(d, n=3):
    return {k: round(v, n) if isinstance(v, float) else v for k, v in d.items()}


# ----------------------------------------------------------------------------------------------- pose flow
def _nearest_mpjpe_mm(a, b, chunk=64):
    """Mean over the poses of `a` of the MPJPE (mm) to their nearest pose in `b`; (N, 22, 3) FK joints each (m)."""
    best = [((a[i:i + chunk, None] - b[None]).norm(dim=-1).mean(-1)).min(1).values for i in range(0, len(a), chunk)]
    return float(torch.cat(best).mean()) * 1000.0


def build_flow(args, ids, splits, clips, argv):
    """Train `PoseFlow` on posterior samples z ~ q(z | pose) of the pose VAE in --out for the training poses
    (+ mirrors) and write
    pose_flow.pt, the "pose_flow" entry of motion_priors.json and the "Pose flow" section of MOTION_PRIORS.md.
    Figures: held-out log-likelihood (nats per latent dimension) under the flow vs the VAE's N(0, I) prior; decoded
    samples of both: joint-limit rates and nearest-pose MPJPE to the held-out poses (and back: coverage)."""
    from avatarclip_core.motion.flow import POSE_FLOW_PATH, PoseFlow, vae_fingerprint
    from avatarclip_core.motion.priors import load_pose_vae

    t0 = time.time()
    out = Path(args.out)
    gen = torch.Generator().manual_seed(args.seed + 1)
    vae = load_pose_vae(out / "pose_vae.pt")
    lo, hi = vae.extra["joint_limits"]["lo"], vae.extra["joint_limits"]["hi"]
    train = torch.cat([c for c, s in zip(clips, splits) if s == "train"])
    train = torch.cat([train, skeleton.mirror_pose(train)])
    test = torch.cat([c for c, s in zip(clips, splits) if s == "test"])
    with torch.no_grad():
        mu_logvar = [vae.encode(train[i:i + 4096]) for i in range(0, len(train), 4096)]
        z_train = torch.cat([m for m, _ in mu_logvar])
        sd_train = torch.cat([(0.5 * lv).exp() for _, lv in mu_logvar])
        z_test = torch.cat([vae.encode(test[i:i + 4096])[0] for i in range(0, len(test), 4096)])
    flow = PoseFlow(dim=vae.latent_dim, hidden=args.flow_hidden, mask_seed=args.seed)
    flow.shift.copy_(z_train.mean(0))
    flow.scale.copy_(z_train.std(0))
    opt = torch.optim.Adam(flow.parameters(), lr=args.flow_lr)
    hist = []
    for step in (bar := tqdm(range(args.flow_steps), desc="pose flow")):
        for g in opt.param_groups:
            g["lr"] = _lr(step, args.flow_steps, args.flow_lr)
        idx = torch.randint(0, len(z_train), (args.flow_batch,), generator=gen)
        # posterior samples z ~ q(z | pose), not only the means: the flow fits the latents the decoder was trained
        # on, and the noise keeps it from collapsing onto the training points (held-out likelihood)
        z = z_train[idx] + sd_train[idx] * torch.randn(len(idx), flow.dim, generator=gen)
        nll = -flow.log_prob(z).mean()
        opt.zero_grad()
        nll.backward()
        torch.nn.utils.clip_grad_norm_(flow.parameters(), 10.0)
        opt.step()
        hist.append(nll.item())
        if step % 250 == 0 or step == args.flow_steps - 1:
            with torch.no_grad():
                bar.set_postfix(nll=f"{nll.item():.2f}", heldout=f"{-flow.log_prob(z_test[::8]).mean().item():.2f}")
    t_train = time.time() - t0
    flow.eval()
    with torch.no_grad():  # the figures are those of the shipped float16 weights
        for v in flow.state_dict().values():
            v.copy_(v.half().float())
    d = vae.latent_dim
    with torch.no_grad():
        normal = torch.distributions.Normal(0.0, 1.0)
        ll = dict(flow_heldout=float(flow.log_prob(z_test).mean()) / d,
                  flow_train=float(flow.log_prob(z_train[::20]).mean()) / d,
                  vae_prior_heldout=float(normal.log_prob(z_test).sum(-1).mean()) / d)
        n = args.num_samples
        R_test = rot6d_to_rotmat(axis_angle_to_rot6d(test[::4, 1:]))
        J_test = joint_positions(R_test, REST)
        samples = {}
        for name, z in (("flow", flow.sample(n, gen)), ("vae_prior", torch.randn(n, d, generator=gen))):
            R = vae.decode_rotmat(z)
            J = joint_positions(R, REST)
            samples[name] = dict(within_limits=_r(within_limits(vae.decode(z), lo, hi)),
                                 nearest_heldout_mpjpe_mm=round(_nearest_mpjpe_mm(J, J_test), 1),
                                 heldout_coverage_mpjpe_mm=round(_nearest_mpjpe_mm(J_test[::4], J), 1))
    fig = dict(config=flow.config, vae_fingerprint=vae_fingerprint(vae), train_latents=len(z_train),
               heldout_latents=len(z_test), loglik_nats_per_dim=_r(ll), samples=samples, num_samples=n,
               final_nll_per_dim=round(sum(hist[-200:]) / len(hist[-200:]) / d, 3), train_seconds=round(t_train, 1),
               command="python scripts/build_motion_priors.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               settings=dict(steps=args.flow_steps, batch=args.flow_batch, lr=args.flow_lr, hidden=args.flow_hidden, seed=args.seed,
                             threads=args.threads))
    print("pose flow:", fig)
    path = save_prior(flow, out / POSE_FLOW_PATH.name, vae_fingerprint=fig["vae_fingerprint"], figures=fig)
    fig["file_mb"] = round(path.stat().st_size / 1e6, 2)
    record_path = out / "motion_priors.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    record["pose_flow"] = fig
    atomic_write_json(record_path, record)
    f, v = samples["flow"], samples["vae_prior"]
    section = f"""{FLOW_SECTION}
RealNVP over the pose VAE's 32-d latent (`motion.flow.PoseFlow`, the role of AvatarCLIP's VPoserRealNVP; docs/method.md
§6.1): {flow.config['num_blocks']} affine coupling blocks with fixed random masks in complementary pairs, s/t nets
Linear(32→{flow.config['hidden']})–LeakyReLU–Linear–LeakyReLU–Linear(→32) (s with Tanh), then a fixed affine layer (the
training latents' mean and std); not text-conditioned. Trained by `{fig['command'].strip()}`: maximum likelihood on
posterior samples z ~ q(z | pose) of the VAE for the {len(z_train)} training poses (mirrors included), Adam lr {args.flow_lr} (warm-up, cosine),
batch {args.flow_batch}, {args.flow_steps} steps, {t_train:.0f} s ({args.threads} threads). Trained on the pose VAE with
fingerprint `{fig['vae_fingerprint']}` (`load_pose_flow` checks it: retrain the flow whenever the VAE changes).

| | flow | VAE prior N(0, I) |
|---|---|---|
| held-out log-likelihood of the {len(z_test)} held-out latents, nats per dim | {ll['flow_heldout']:.3f} | {ll['vae_prior_heldout']:.3f} |
| decoded samples ({n}): joints / whole poses within the joint limits | {f['within_limits']['joints']:.1%} / {f['within_limits']['poses']:.1%} | {v['within_limits']['joints']:.1%} / {v['within_limits']['poses']:.1%} |
| MPJPE of a sample to its nearest held-out pose, mm (realism) | {f['nearest_heldout_mpjpe_mm']} | {v['nearest_heldout_mpjpe_mm']} |
| MPJPE of a held-out pose to its nearest sample, mm (coverage) | {f['heldout_coverage_mpjpe_mm']} | {v['heldout_coverage_mpjpe_mm']} |

`pose_flow.pt` ({fig['file_mb']} MB, float16). Training log-likelihood {ll['flow_train']:.3f} nats per dim.
"""
    md_path = out / "MOTION_PRIORS.md"
    md = md_path.read_text() if md_path.exists() else ""
    if FLOW_SECTION in md:  # replace the old section, keep the ones after it
        head, rest = md.split(FLOW_SECTION, 1)
        tail = rest[rest.index("\n## ") + 1:] if "\n## " in rest else ""
    else:  # a fresh MOTION_PRIORS.md: before the licence section
        head, tail = (md.split("## Licence", 1)[0], "## Licence" + md.split("## Licence", 1)[1]) \
            if "## Licence" in md else (md, "")
    atomic_write_text(md_path, head.rstrip("\n") + "\n\n" + section + ("\n" + tail if tail else ""))
    print(f"wrote {path} ({fig['file_mb']} MB) and its figures in {time.time() - t0:.0f} s")
    return fig


FLOW_SECTION = "## Pose flow (`pose_flow.pt`)"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="cmu_mocap folder (default ../shared/data/cmu_mocap)")
    ap.add_argument("--out", default=str(ASSETS), help="output folder (default avatarclip_core/assets)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-fraction", type=float, default=0.15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default=None, help="optional .pt file caching the retargeted clips")
    ap.add_argument("--pose-steps", type=int, default=6000)
    ap.add_argument("--pose-batch", type=int, default=256)
    ap.add_argument("--pose-lr", type=float, default=1e-3)
    ap.add_argument("--pose-beta", type=float, default=5e-3, help="KL weight (per-sample sums)")
    ap.add_argument("--motion-steps", type=int, default=3000)
    ap.add_argument("--motion-batch", type=int, default=32)
    ap.add_argument("--motion-lr", type=float, default=5e-4)
    ap.add_argument("--motion-beta", type=float, default=2e-3, help="KL weight (vs per-frame sums)")
    ap.add_argument("--motion-width", type=int, default=128)
    ap.add_argument("--window-stride", type=int, default=10, help="frames between training windows")
    ap.add_argument("--w-joint", type=float, default=10.0, help="weight of the joint-position term (per m²)")
    ap.add_argument("--w-vel", type=float, default=10.0, help="weight of the 6D velocity term (motion)")
    ap.add_argument("--num-samples", type=int, default=2000, help="N(0, I) pose samples for the limit figures")
    ap.add_argument("--only", choices=("all", "flow"), default="all",
                    help="'flow': train only the pose flow, on the pose VAE already in --out")
    ap.add_argument("--flow-steps", type=int, default=1500)
    ap.add_argument("--flow-hidden", type=int, default=128, help="width of the flow's s/t nets (reference 256)")
    ap.add_argument("--flow-batch", type=int, default=256)
    ap.add_argument("--flow-lr", type=float, default=1e-3)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)
    out = Path(args.out)
    t_start = time.time()

    # ------------------------------------------------------------------ data and split
    ids, splits, clips, t_retarget = _load_clips(args)
    if args.only == "flow":
        build_flow(args, ids, splits, clips, argv)
        return
    lib = load_pose_library()
    same_split = lib.clip_ids == ids and lib.splits == splits
    if lib.settings.get("seed") == args.seed and not same_split:
        raise SystemExit("the held-out split differs from pose_library.npz's: rebuild the library or check --seed")
    train_clips = [c for c, s in zip(clips, splits) if s == "train"]
    test_clips = [c for c, s in zip(clips, splits) if s == "test"]
    train_poses = torch.cat(train_clips)
    train_poses = torch.cat([train_poses, skeleton.mirror_pose(train_poses)])
    test_poses = torch.cat(test_clips)
    print(f"{len(train_clips)} train / {len(test_clips)} test clips; {len(train_poses)} training poses "
          f"(with mirrors), {len(test_poses)} held-out poses; retarget {t_retarget:.0f} s")

    # ------------------------------------------------------------------ pose VAE
    pose_vae, t_pose, pose_loss = train_pose_vae(train_poses, args, gen)
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
    print("pose VAE:", pose_fig)

    # ------------------------------------------------------------------ motion VAE
    mirrored = [skeleton.mirror_pose(c) for c in train_clips]
    train_w = windows(train_clips + mirrored, 60, args.window_stride)
    test_w = windows(test_clips, 60, 30)
    motion_vae, t_motion, motion_loss = train_motion_vae(train_w, args, gen)
    with torch.no_grad():
        Rw = rot6d_to_rotmat(axis_angle_to_rot6d(test_w[:, :, 1:]))
        recon = torch.cat([motion_vae.decode_rotmat(motion_vae.encode(test_w[i:i + 64])[0])
                           for i in range(0, len(test_w), 64)])
        motion_mpjpe = float(mpjpe_mm(recon, Rw, REST))
        zs = torch.randn(256, 256, generator=gen)
        samp = torch.cat([motion_vae.decode_rotmat(zs[i:i + 64]) for i in range(0, 256, 64)])
        stats = dict(heldout_data=_r(motion_statistics(Rw, REST)), heldout_recon=_r(motion_statistics(recon, REST)),
                     samples=_r(motion_statistics(samp, REST)))
    motion_fig = dict(heldout_mpjpe_mm=round(motion_mpjpe, 2), train_windows=len(train_w),
                      heldout_windows=len(test_w), train_seconds=round(t_motion, 1), final_losses=motion_loss,
                      statistics=stats, num_samples=256)
    print("motion VAE:", motion_fig)

    # ------------------------------------------------------------------ write
    out.mkdir(parents=True, exist_ok=True)
    save_prior(pose_vae, out / "pose_vae.pt", joint_limits=dict(lo=lo, hi=hi), figures=pose_fig)
    save_prior(motion_vae, out / "motion_vae.pt", figures=motion_fig)
    sizes = {n: round((out / n).stat().st_size / 1e6, 2) for n in ("pose_vae.pt", "motion_vae.pt")}
    test_ids = [i for i, s in zip(ids, splits) if s == "test"]
    record = dict(
        command="python scripts/build_motion_priors.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        settings={k: v for k, v in vars(args).items() if k not in ("out", "cache")},
        split=dict(method="split_clips by clip (same as pose_library.npz)", same_as_pose_library=same_split,
                   train_clips=len(train_clips), test_clips=test_ids),
        data=dict(retarget_seconds=round(t_retarget, 1), train_poses_with_mirrors=len(train_poses),
                  heldout_poses=len(test_poses), fps=30),
        pose_vae=dict(config=pose_vae.config, **pose_fig), motion_vae=dict(config=motion_vae.config, **motion_fig),
        file_mb=sizes, machine=f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
                                f"{args.threads} threads", total_seconds=round(time.time() - t_start, 1),
    )
    atomic_write_json(out / "motion_priors.json", record)
    s = stats
    md = f"""# Motion priors (`pose_vae.pt`, `motion_vae.pt`)

Open replacements for AvatarCLIP's VPoser and motion VAE (docs/method.md §6, §6.2), trained on CMU mocap by
`{record['command'].strip()}` (deterministic given `--seed` and `--threads`; every number below is in
`motion_priors.json`). Load with `avatarclip_core.motion.priors.load_pose_vae()` / `load_motion_vae()`.

## Data and split
The 104 CMU clips of `../shared/data/cmu_mocap`, retargeted to the 22-joint skeleton at 30 fps exactly as for
the pose library (`mocap_data.load_mocap`). Held-out split **by clip**, the pose library's
(`split_clips`, seed {args.seed}, {args.test_fraction:.0%}; identical to pose_library.npz: {same_split}):
{len(train_clips)} train, {len(test_clips)} test clips ({', '.join(test_ids)}). Training poses: every
training frame plus its left-right mirror ({len(train_poses)}); held-out: every test frame ({len(test_poses)}).
The global orientation and root translation are not modelled (decoded poses are upright, facing +z).
Errors are measured on the anny body's default skeleton (`DEFAULT_REST_JOINTS`, FK, 22 joints, root fixed).

## Pose VAE (VPoser-like)
MLP VAE over the 21 body joints' rotations in 6D; 32-d latent, hidden {pose_vae.config['hidden']}, LeakyReLU,
dropout {pose_vae.config['dropout']}. Loss per pose: Σ 6D² + {args.w_joint}·Σ joint error² (m²) + {args.pose_beta}·KL;
Adam lr {args.pose_lr} (warm-up, cosine), batch {args.pose_batch}, {args.pose_steps} steps.
- Held-out MPJPE (posterior mean): **{pose_fig['heldout_mpjpe_mm']} mm** (training subset {pose_fig['train_mpjpe_mm']} mm).
- Joint limits: per joint and axis-angle component, the training data's 0.5–99.5th percentiles ± 0.05 rad.
  Decoded N(0, I) samples ({args.num_samples}): {pose_fig['samples_within_limits']['joints']:.1%} of joints and
  {pose_fig['samples_within_limits']['poses']:.1%} of whole poses within limits (held-out data:
  {pose_fig['heldout_data_within_limits']['joints']:.1%} / {pose_fig['heldout_data_within_limits']['poses']:.1%}).
- Training time: {t_pose:.0f} s ({args.threads} threads).

## Motion VAE (ACTOR-like)
Transformer VAE over 60-frame windows (2 s at 30 fps) of the same 21 joints in 6D: width
{motion_vae.config['width']}, {motion_vae.config['num_layers']} encoder + {motion_vae.config['num_layers']} decoder
layers, {motion_vae.config['num_heads']} heads, FF {motion_vae.config['ff_dim']}, GELU; μ/σ query tokens; 256-d latent;
decoder queries = sinusoidal PE of frames 0…59 attending to the latent. Loss per window: per-frame mean of
(Σ 6D² + {args.w_joint}·Σ joint²) + {args.w_vel}·Σ 6D-velocity error² + {args.motion_beta}·KL; AdamW lr {args.motion_lr},
batch {args.motion_batch}, {args.motion_steps} steps; {len(train_w)} training windows (stride {args.window_stride}, mirrors
included), {len(test_w)} held-out windows (stride 30).
- Held-out MPJPE (posterior mean): **{motion_fig['heldout_mpjpe_mm']} mm**.
- Foot-skate (`motion.metrics.motion_statistics`: mean horizontal speed of ankles/toes within 5 cm of the window's
  lowest foot joint, heights above the joints' rest heights; root fixed, so stance feet of walking slide in the data
  too), jitter (mean joint acceleration), angular speed:

| | foot-skate m/s | jitter m/s² | angular speed p99 / max rad/s |
|---|---|---|---|
| held-out data | {s['heldout_data']['foot_skate_m_s']} | {s['heldout_data']['jitter_m_s2']} | {s['heldout_data']['ang_speed_p99_rad_s']} / {s['heldout_data']['ang_speed_max_rad_s']} |
| held-out reconstructions | {s['heldout_recon']['foot_skate_m_s']} | {s['heldout_recon']['jitter_m_s2']} | {s['heldout_recon']['ang_speed_p99_rad_s']} / {s['heldout_recon']['ang_speed_max_rad_s']} |
| decoded N(0, I) samples (256) | {s['samples']['foot_skate_m_s']} | {s['samples']['jitter_m_s2']} | {s['samples']['ang_speed_p99_rad_s']} / {s['samples']['ang_speed_max_rad_s']} |

- Training time: {t_motion:.0f} s ({args.threads} threads).

## Files
`pose_vae.pt` ({sizes['pose_vae.pt']} MB), `motion_vae.pt` ({sizes['motion_vae.pt']} MB): torch.save dicts
{{kind, config, state_dict (float16), figures}} (+ `joint_limits` {{lo, hi}} (21, 3) rad for the pose VAE).
Total build time {record['total_seconds']:.0f} s on {record['machine']} (retarget {t_retarget:.0f} s).

## Licence and acknowledgement
Trained on the CMU Graphics Lab Motion Capture Database (mocap.cs.cmu.edu; created with funding from NSF
EIA-0196217). CMU's terms: free for research; may be included in commercially-sold products, not resold directly.
"""
    atomic_write_text(out / "MOTION_PRIORS.md", md)
    print(f"wrote {out}/pose_vae.pt, motion_vae.pt, motion_priors.json, MOTION_PRIORS.md in "
          f"{record['total_seconds']:.0f} s")
    build_flow(args, ids, splits, clips, argv)


if __name__ == "__main__":
    main()
