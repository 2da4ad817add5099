"""Build the pose flow (`motion.flow.PoseFlow`, RealNVP over the pose VAE's 32-d latent; docs/method.md §6.1 and
"Pose flow") on the pose VAE shipped in avatarclip_core/assets. Writes assets/pose_flow.pt, the "pose_flow" entry of
motion_priors.json and the "Pose flow" section of MOTION_PRIORS.md. Deterministic given --seed (and --threads).

Run it after every rebuild of the pose VAE (scripts/build_motion_priors.py): the flow records the VAE's fingerprint
and `load_pose_flow` refuses a flow trained on another VAE.

    python scripts/build_pose_flow.py [--data ../shared/data/cmu_mocap] [--cache clips.pt] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from avatarclip_core import skeleton  # noqa: E402
from avatarclip_core.io import atomic_write_json, atomic_write_text  # noqa: E402
from avatarclip_core.motion.bvh_retarget import DEFAULT_REST_JOINTS  # noqa: E402
from avatarclip_core.motion.priors import (axis_angle_to_rot6d, joint_positions, rot6d_to_rotmat,  # noqa: E402
                                           save_prior, within_limits)

from build_motion_priors import FLOW_SECTION, _lr, _r, add_data_args, load_dataset  # noqa: E402  (the priors' schedule and rounding; same folder)

REST = DEFAULT_REST_JOINTS


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
               command="python scripts/build_pose_flow.py " + " ".join(argv if argv is not None else sys.argv[1:]),
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


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(ap)
    ap.add_argument("--num-samples", type=int, default=2000, help="decoded samples for the figures")
    ap.add_argument("--flow-steps", type=int, default=1500)
    ap.add_argument("--flow-hidden", type=int, default=128, help="width of the flow's s/t nets (reference 256)")
    ap.add_argument("--flow-batch", type=int, default=256)
    ap.add_argument("--flow-lr", type=float, default=1e-3)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    ds = load_dataset(args)
    ids, splits, clips = ds.clip_ids, ds.splits, [c.poses for c in ds.clips]
    build_flow(args, ids, splits, clips, argv)


if __name__ == "__main__":
    main()
