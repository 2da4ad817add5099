"""Background augmentation of the texture stage (docs/method.md §3.5): one of four backgrounds per step,
uniformly: 0 white, 1 grey Gaussian noise N(0.5, 0.2²) clamped to [0, 1], 2 blurred 0.2/0.8 checkerboard
(square side H // randint(10..19), Gaussian blur kernel 5×9, σ ~ U(0.1, 2.0)), 3 none (black).
Composited into colour head 2 only."""
from __future__ import annotations

import torch
from torchvision.transforms.functional import gaussian_blur

BACKGROUND_MODES = ("white", "noise", "checker", "black")


def sample_background_mode(generator: torch.Generator | None = None) -> int:
    """Uniform draw in {0, 1, 2, 3} (indices into BACKGROUND_MODES)."""
    return int(torch.randint(0, 4, (1,), generator=generator))


def make_background(mode: int, height: int, width: int, generator: torch.Generator | None = None,
                    device="cpu") -> torch.Tensor:
    """Background image (H, W, 3) float in [0, 1] for augmentation `mode` (see module docstring).

    Random numbers come from `generator` (CPU); the result is moved to `device`.
    Raises ValueError for a mode outside 0..3.
    """
    if mode not in (0, 1, 2, 3):
        raise ValueError(f"background mode must be 0 (white), 1 (noise), 2 (checker) or 3 (black); got {mode}")
    if mode == 0:
        img = torch.ones(height, width, 3)
    elif mode == 1:
        noise = 0.5 + 0.2 * torch.randn(height, width, 1, generator=generator)
        img = noise.clamp(0, 1).expand(height, width, 3).contiguous()
    elif mode == 2:
        side = max(1, height // int(torch.randint(10, 20, (1,), generator=generator)))
        ii = torch.arange(height)[:, None] // side
        jj = torch.arange(width)[None, :] // side
        board = torch.where((ii + jj) % 2 == 0, 0.2, 0.8).float()
        sigma = float(0.1 + 1.9 * torch.rand(1, generator=generator))
        board = gaussian_blur(board[None, None], [5, 9], [sigma, sigma])[0, 0]
        img = board[..., None].expand(height, width, 3).contiguous()
    else:
        img = torch.zeros(height, width, 3)
    return img.to(device)
