"""Stage 5, first version: a smooth motion through the ranked pose candidates (docs/method.md §6.2
MotionInterpolation, adapted): candidates are placed at evenly spaced anchor frames (0, 14, 29, 44, 59 for
K = 5 and 60 frames, as the reference) and every joint's rotation is interpolated between consecutive
anchors by quaternion slerp (optionally eased in/out). Works for any K' ≥ 1 (K' = 1 gives a static motion),
so fewer retrieved candidates than requested never break it.
"""
from __future__ import annotations

from dataclasses import dataclass

import roma
import torch

from .. import skeleton
from ..params import Params, param


MOTION_GENERATORS = ("interpolate", "optimize")


@dataclass
class MotionParams(Params):
    """Settings of stage 5, poses → motion (docs/method.md §6.2 / §7.2 `motion_generator`).

    Attributes:
        generator: "interpolate" (default; slerp through the ranked candidates, `interpolate_motion`) or
            "optimize" (the MotionOptimizer of docs/method.md §6.2 on the motion VAE's latent,
            `generators.MotionOptimizer`; needs a CLIP encoder, the prompt and the body when clip_coef > 0,
            and num_frames = 60, the prior's window).
        num_frames: frames T of the motion (reference num_frame = 60).
        fps: frames per second (reference 30; 60 frames = 2 s).
        ease: "interpolate" only. False = constant angular speed between anchors (slerp with linear weights);
            True = smoothstep weights 3t² − 2t³ (slow in/out at every candidate, peak speed 1.5× the linear one).
        num_iterations: "optimize": Adam steps on the 256-d latent (reference 5000).
        lr: "optimize": Adam learning rate (reference 0.01).
        recon_coef: "optimize": weights of the ranked candidates in the reconstruction term (reference
            (1, 0.8, 0.6, 0.4, 0.2)); truncated to the number of candidates (fewer than 5 work).
        clip_coef: "optimize": weight of the CLIP term (reference 0.001; 0 = the reference's baseline).
        delta_coef: "optimize": weight of the (subtracted) mean squared consecutive-frame axis-angle
            difference, which sets the motion's intensity (reference 0.01; lower it if the motion is too wild).
        clip_num_part: "optimize": frames s ~ U{0 … clip_num_part − 1} and s + clip_num_part are rendered
            each step (reference 30).
        azimuth_deg: "optimize": camera azimuth of those renders, degrees, 0 = the body's front (reference NR
            azimuth 150 = front − 30°). Their camera distance, elevation and field of view, the body colour
            and the background come from the run's `PoseParams` (the `poses` section, as stage 4's renders),
            passed to `generate_motion` / `MotionOptimizer` as `pose_params`.
        image_size: "optimize": square render size in pixels fed to the encoder (reference 224).
        sigma: "optimize": silhouette edge softness (pixels) of those renders.
    """

    generator: str = param("interpolate", choices=MOTION_GENERATORS)
    num_frames: int = param(60, ge=1, fix="the reference uses 60")
    fps: float = param(30.0, gt=0, fix="a frame rate such as 30")
    ease: bool = False
    num_iterations: int = param(5000, ge=0)
    lr: float = param(0.01, gt=0, fix="an Adam learning rate such as 0.01")
    recon_coef: tuple[float, ...] = param((1.0, 0.8, 0.6, 0.4, 0.2), ge=0)
    clip_coef: float = param(0.001, ge=0)
    delta_coef: float = param(0.01, ge=0)
    clip_num_part: int = param(30, ge=1)
    azimuth_deg: float = -30.0
    image_size: int = param(224, ge=1)
    sigma: float = param(0.5, gt=0, fix="an edge softness in pixels such as 0.5")

    def relations(self):
        yield (len(self.recon_coef) >= 1, "recon_coef",
               "give one or more non-negative weights, best candidate first, e.g. (1, 0.8, 0.6, 0.4, 0.2)")
        optimize = self.generator == "optimize"
        yield (not optimize or self.num_frames == 60, "num_frames",
               "the motion prior decodes 60-frame windows: use 60 with generator 'optimize'")
        yield (not optimize or self.clip_num_part < self.num_frames, "clip_num_part",
               f"use a value < num_frames ({self.num_frames}), e.g. 30")


def anchor_frames(num_candidates: int, num_frames: int) -> torch.Tensor:
    """(K,) int64 anchor frames floor(linspace(0, T − 1, K)): (0, 14, 29, 44, 59) for K = 5, T = 60 (as the
    reference); (0,) for K = 1. Raises ValueError unless 1 ≤ K ≤ T."""
    if num_candidates < 1 or num_candidates > num_frames:
        raise ValueError(f"need 1 ≤ number of candidates ({num_candidates}) ≤ num_frames ({num_frames}); "
                         f"retrieve fewer candidates or make the motion longer")
    if num_candidates == 1:
        return torch.zeros(1, dtype=torch.long)
    return torch.floor(torch.linspace(0, num_frames - 1, num_candidates, dtype=torch.float64) + 1e-9).long()


def interpolate_motion(candidates: torch.Tensor, params: MotionParams | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Motion through the candidates in rank order.

    Args:
        candidates: (K', 22, 3) axis-angle poses (radians), K' ≥ 1, in the order they should be visited
            (stage 4's ranking). Any device/dtype.
        params: `MotionParams` (default 60 frames at 30 fps).
    Returns:
        poses (T, 22, 3) (same device/dtype as `candidates`), equal to candidate k at anchor frame k exactly
        and slerped per joint in between; root_translation (T, 3) zeros (metres).
    Raises:
        ValueError: on a bad shape, non-finite values, K' = 0 or K' > T, or invalid params.
    """
    params = (params or MotionParams()).validate()
    candidates = torch.as_tensor(candidates)
    if candidates.ndim != 3 or candidates.shape[0] == 0:
        raise ValueError(f"candidates must be (K, 22, 3) with K ≥ 1, got {tuple(candidates.shape)}")
    skeleton.check_pose(candidates, "candidates")
    T, K = params.num_frames, candidates.shape[0]
    anchors = anchor_frames(K, T).tolist()
    out = candidates[:1].expand(T, -1, -1).clone()
    if K > 1:
        q = roma.rotvec_to_unitquat(candidates.to(torch.float64))  # (K, 22, 4)
        for k in range(K - 1):
            a, b = anchors[k], anchors[k + 1]
            t = torch.arange(b - a + 1, dtype=torch.float64, device=candidates.device) / (b - a)
            if params.ease:
                t = t * t * (3 - 2 * t)
            seg = roma.unitquat_slerp(q[k], q[k + 1], t, shortest_arc=True)  # (n, 22, 4)
            out[a:b + 1] = roma.unitquat_to_rotvec(seg).to(out.dtype)
    out[anchors] = candidates  # exactly the candidates at their anchors
    root = torch.zeros(T, 3, dtype=candidates.dtype, device=candidates.device)
    return out, root
