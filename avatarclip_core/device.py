"""Device resolution, the one copy shared by the pipeline and CLIP loading (docs/design.md §3, "Devices"), and
the torch-free first look for a GPU that picks the default preset (`config.default_preset`)."""
from __future__ import annotations

import glob
import os
import sys
from typing import TYPE_CHECKING

from .config import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["resolve_device", "cuda_available"]


def resolve_device(device: "str | torch.device | None" = "auto") -> "torch.device":
    """The torch device for a `run.device` value (or a `device=` argument).

    Args:
        device: "auto" or None → CUDA when available, else CPU; "cpu", "cuda", "cuda:N" or a torch.device → as
            given.
    Returns:
        torch.device.
    Raises:
        ConfigError (a ValueError): a CUDA device was asked for but no CUDA GPU is visible.
    """
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"run.device = {str(device)!r} but no CUDA GPU is visible; use run.device = auto or cpu")
    return dev


def cuda_available(device: str = "auto") -> bool:
    """Whether a run with `run.device = device` runs on a CUDA GPU ("cpu" → False, "cuda…" → True).

    For "auto" it answers as `resolve_device` will, importing torch only where a GPU may be present: with
    CUDA_VISIBLE_DEVICES empty or -1, or no GPU device node (/dev/nvidia*, /dev/dxg under WSL, /dev/kfd for
    ROCm), there is none, and the CPU-only command line stays torch-free; else `torch.cuda.is_available()`.
    """
    device = str(device or "auto").strip()
    if device != "auto":
        return device.startswith("cuda")
    if "torch" not in sys.modules:
        if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
            return False
        if not any(glob.glob(p) for p in ("/dev/nvidia[0-9]*", "/dev/dxg", "/dev/kfd")):
            return False
    import torch

    return bool(torch.cuda.is_available())
