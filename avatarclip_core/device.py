"""Device resolution, the one copy shared by the pipeline and CLIP loading (docs/design.md §3, "Devices")."""
from __future__ import annotations

import torch

from .config import ConfigError

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """The torch device for a `run.device` value (or a `device=` argument).

    Args:
        device: "auto" or None → CUDA when available, else CPU; "cpu", "cuda", "cuda:N" or a torch.device → as
            given.
    Returns:
        torch.device.
    Raises:
        ConfigError (a ValueError): a CUDA device was asked for but no CUDA GPU is visible.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"run.device = {str(device)!r} but no CUDA GPU is visible; use run.device = auto or cpu")
    return dev
