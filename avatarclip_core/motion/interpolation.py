"""Stage 5, first version: a smooth motion through the ranked pose candidates (docs/method.md §6.2
MotionInterpolation, adapted): candidates are placed at evenly spaced anchor frames (0, 14, 29, 44, 59 for
K = 5 and 60 frames, as the reference) and every joint's rotation is interpolated between consecutive
anchors by quaternion slerp (optionally eased in/out). Works for any K' ≥ 1 (K' = 1 gives a static motion),
so fewer retrieved candidates than requested never break it.
"""
from __future__ import annotations

import roma
import torch

from .. import skeleton
from .params import MOTION_GENERATORS, MotionParams  # torch-free home (motion/params.py), importable from here


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
