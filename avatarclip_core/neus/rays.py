"""Silhouette-limited ray selection of the texture stage (docs/method.md §3.4)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..render.rasterizer import dilate_mask


@dataclass
class RaySelection:
    """Which pixels of a side×side full-FoV grid get rays.

    Attributes: side (grid size in px); mask (side, side) bool, the dilated silhouette resized (nearest);
    index (N,) long flat indices of the rendered pixels (row-major), N ≤ max_ray_num.
    """

    side: int
    mask: torch.Tensor
    index: torch.Tensor


def select_rays(silhouette: torch.Tensor, max_ray_num: int, dilation: int = 10,
                use_silhouettes: bool = True) -> RaySelection:
    """Choose the ray grid for one texture step.

    With silhouettes: dilate the (S, S) body silhouette by `dilation` 3×3 iterations, r = dilated area
    fraction, side = min(S, ⌊√(max_ray_num / r)⌋); rays go through the pixels of a side×side grid (same FoV)
    whose nearest-resized dilated mask is on, at most max_ray_num (the side shrinks until this holds).
    Without silhouettes (or an empty silhouette): the full grid with side = min(S, ⌊√max_ray_num⌋).

    Args: silhouette (S, S) bool/float (>0.5 = body). Returns RaySelection.
    Raises: ValueError if silhouette is not square 2-D or max_ray_num < 1.
    """
    if silhouette.ndim != 2 or silhouette.shape[0] != silhouette.shape[1]:
        raise ValueError(f"silhouette must be a square (S, S) mask, got {tuple(silhouette.shape)}")
    if max_ray_num < 1:
        raise ValueError(f"max_ray_num must be ≥ 1, got {max_ray_num}")
    S = silhouette.shape[0]
    sil = silhouette > 0.5
    if not use_silhouettes or not sil.any():
        side = min(S, int(math.isqrt(max_ray_num)))
        mask = torch.ones(side, side, dtype=torch.bool, device=silhouette.device)
        return RaySelection(side, mask, torch.arange(side * side, device=silhouette.device))
    dil = dilate_mask(sil, dilation)
    r = dil.float().mean().item()
    side = min(S, int(math.floor(math.sqrt(max_ray_num / r))))
    while True:
        small = F.interpolate(dil.float()[None, None], size=(side, side), mode="nearest-exact")[0, 0] > 0.5
        n = int(small.sum())
        if n <= max_ray_num or side <= 1:
            break
        side -= 1
    return RaySelection(side, small, small.reshape(-1).nonzero()[:, 0])
