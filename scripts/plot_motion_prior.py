"""Picture of how lively motion VAE samples are against the held-out data (docs/method.md, Motion priors,
"Per-frame latents"): the distribution of joint accelerations (body frame, as `metrics.motion_statistics`'s jitter)
of the held-out CMU windows and of decoded N(0, I) samples of each given motion VAE, and the left wrist's height
over 2 s for one held-out window and two samples of each.

    python scripts/plot_motion_prior.py --cache /tmp/ds.pt --vae avatarclip_core/assets/motion_vae.pt:shipped \
        --vae old_motion_vae.pt:"global code only" --png docs/img/motion_vae_jitter.png

Same data and held-out split as `build_motion_priors.py` (its `--data/--seed/--test-fraction/--cache` options).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_motion_priors import REST, add_data_args, clip_features, load_dataset, windows  # noqa: E402

from avatarclip_core.motion.metrics import joint_accelerations  # noqa: E402
from avatarclip_core.motion.priors import joint_positions, load_motion_vae, rot6d_to_rotmat  # noqa: E402

LEFT_WRIST = 20
NUM_SAMPLES = 256


def body_joints(features: torch.Tensor) -> torch.Tensor:
    """(B, 60, 136) motion features → (B, 60, 22, 3) joints in the body frame (root fixed), metres."""
    R = rot6d_to_rotmat(features[..., 6:132].reshape(*features.shape[:2], 21, 6))
    return joint_positions(R, REST)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(ap)
    ap.add_argument("--vae", action="append", required=True, help="PATH[:LABEL] of a motion_vae.pt (repeatable)")
    ap.add_argument("--png", required=True, help="picture to write")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ds = load_dataset(args)
    test = [i for i, s in enumerate(ds.splits) if s == "test"]
    held, _ = windows([clip_features(ds.clips[i].poses, ds.clips[i].root_translation) for i in test], 60, 30)
    series = {"held-out data": body_joints(held)}
    for spec in args.vae:
        path, _, label = spec.partition(":")
        vae = load_motion_vae(path)
        gen = torch.Generator().manual_seed(args.seed)
        with torch.no_grad():
            series[f"samples: {label or Path(path).stem}"] = body_joints(
                vae.decode_features(torch.randn(NUM_SAMPLES, vae.latent_dim, generator=gen)))

    fig, (ax_hist, ax_trace) = plt.subplots(1, 2, figsize=(12, 4.2))
    bins = torch.linspace(0, 40, 81)
    t = torch.arange(60) / 30.0
    for k, (name, joints) in enumerate(series.items()):
        acc = joint_accelerations(joints, 30.0).flatten()
        colour = f"C{k}"
        ax_hist.hist(acc.clamp_max(40).numpy(), bins=bins.numpy(), histtype="step", density=True, color=colour,
                     label=f"{name} (mean {float(acc.mean()):.2f} m/s²)")
        for j in range(1 if k == 0 else 2):
            w = 3 * j + 1
            ax_trace.plot(t, joints[w, :, LEFT_WRIST, 1].numpy(), color=colour, alpha=1 - 0.4 * j,
                          label=name if j == 0 else None)
    ax_hist.set(yscale="log", xlabel="joint acceleration, m/s² (body frame; last bin ≥ 40)", ylabel="density",
                title="How much the joints accelerate")
    ax_hist.legend(fontsize=8)
    ax_trace.set(xlabel="time, s", ylabel="left wrist height, m (body frame)", title="Left wrist over 2 s")
    ax_trace.legend(fontsize=8)
    fig.tight_layout()
    Path(args.png).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(args.png).with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(args.png)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
