"""Multiresolution hash-grid encoding in pure torch (Müller et al., "Instant Neural Graphics Primitives",
SIGGRAPH 2022, §3) — the `fast` preset's input encoding of the SDF network (docs/method.md, Fast path).

L levels with resolutions N_l = floor(N_min · b^l), b = exp((ln N_max − ln N_min)/(L − 1)); each level holds
a table of T feature vectors of F floats (init uniform ±1e-4). A point's feature at a level is the trilinear
interpolation of the features at the 8 corners of its grid cell; a corner indexes the table directly when
the level's (N_l + 1)³ corners fit in T, else through the spatial hash (x·1 ⊕ y·2654435761 ⊕ z·805459861)
mod T. Trilinear weights are polynomial in the position inside a cell, so the encoding is continuous and
twice differentiable almost everywhere — the eikonal term's double backward works through it.
"""
from __future__ import annotations

import math

import torch
from torch import nn

_PRIMES = (1, 2654435761, 805459861)


class HashGridEncoding(nn.Module):
    """Instant-NGP multiresolution hash encoding of 3-D points (pure torch, any device).

    Args:
        n_levels: L (16). n_features: F per level (2). log2_table_size: log2 T (15 → 32,768 entries/level).
        base_resolution: N_min (16). max_resolution: N_max (1024 ≈ 2 mm cells over the [−1, 1]³ cube).
        bound: half side of the encoded cube in metres (1.0 = the unit sphere's bounding cube); points
            outside are clamped to it. init_scale: table init U(−s, s) (1e-4).
        generator: optional torch.Generator for the table init.
    forward(x (N, 3) float, avatar frame metres) → (N, L·F) float features, level-major.
    Raises ValueError for non-positive sizes or N_max < N_min.
    """

    def __init__(self, n_levels: int = 16, n_features: int = 2, log2_table_size: int = 15,
                 base_resolution: int = 16, max_resolution: int = 1024, bound: float = 1.0,
                 init_scale: float = 1e-4, generator: torch.Generator | None = None):
        super().__init__()
        for name, v in (("n_levels", n_levels), ("n_features", n_features), ("log2_table_size", log2_table_size),
                        ("base_resolution", base_resolution)):
            if not (isinstance(v, int) and v >= 1):
                raise ValueError(f"{name} = {v!r} is invalid: use a positive integer")
        if max_resolution < base_resolution:
            raise ValueError(f"max_resolution = {max_resolution} < base_resolution = {base_resolution}: "
                             "use max_resolution ≥ base_resolution")
        self.n_levels, self.n_features, self.bound = n_levels, n_features, float(bound)
        self.table_size = 2 ** log2_table_size
        b = math.exp((math.log(max_resolution) - math.log(base_resolution)) / max(n_levels - 1, 1))
        res = [int(math.floor(base_resolution * b ** l)) for l in range(n_levels)]
        self.resolutions = res
        self.register_buffer("_res", torch.tensor(res, dtype=torch.float32), persistent=False)
        self.register_buffer("_dense", torch.tensor([(r + 1) ** 3 <= self.table_size for r in res]),
                             persistent=False)
        self.register_buffer("_stride", torch.tensor([[1, r + 1, (r + 1) ** 2] for r in res], dtype=torch.long),
                             persistent=False)
        self.register_buffer("_offsets", torch.tensor([[(c >> 0) & 1, (c >> 1) & 1, (c >> 2) & 1]
                                                       for c in range(8)], dtype=torch.long), persistent=False)
        self.register_buffer("_primes", torch.tensor(_PRIMES, dtype=torch.long), persistent=False)
        self.register_buffer("_level_base", torch.arange(n_levels, dtype=torch.long) * self.table_size,
                             persistent=False)
        table = (torch.rand(n_levels * self.table_size, n_features, generator=generator) * 2 - 1) * init_scale
        self.table = nn.Parameter(table)

    @property
    def out_dim(self) -> int:
        """L·F output features."""
        return self.n_levels * self.n_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[-1] != 3:
            raise ValueError(f"HashGridEncoding expects points (N, 3), got {tuple(x.shape)}")
        u = ((x / self.bound).clamp(-1.0, 1.0) + 1.0) * 0.5                     # (N, 3) in [0, 1]
        pos = u[:, None, :] * self._res.to(x.dtype)[None, :, None]               # (N, L, 3) grid units
        cell = pos.detach().floor().clamp_max(self._res[None, :, None] - 1).long()
        frac = pos - cell.to(pos.dtype)                                          # (N, L, 3) in [0, 1]
        corner = cell[:, :, None, :] + self._offsets[None, None]                 # (N, L, 8, 3)
        dense = (corner * self._stride[None, :, None, :]).sum(-1)
        h = corner * self._primes
        hashed = h[..., 0] ^ h[..., 1] ^ h[..., 2]
        idx = torch.where(self._dense[None, :, None], dense, hashed) % self.table_size
        idx = idx + self._level_base[None, :, None]                              # (N, L, 8)
        feats = self.table[idx.reshape(-1)].reshape(*idx.shape, self.n_features)  # (N, L, 8, F)
        # Trilinear weight of corner c = x + 2y + 4z: the product of its per-axis weights (1 − f or f). Built by
        # broadcasting rather than `.prod(-1)`, whose double backward (the eikonal term) goes through cumprod.
        ax = torch.stack([1.0 - frac, frac], -1)                                 # (N, L, 3, 2)
        w = (ax[:, :, 0, None, None, :] * ax[:, :, 1, None, :, None] * ax[:, :, 2, :, None, None])
        w = w.reshape(*frac.shape[:2], 8)                                        # (N, L, 8)
        return (feats * w[..., None]).sum(2).reshape(x.shape[0], -1)
