"""Stage 1: text → body shape parameters (AvatarCLIP ShapeGen, docs/method.md §1.3, over the body model's
shape space).

Names are imported on first access (PEP 562), so ``import avatarclip_core.shape.params`` (the configuration
check) does not import torch.
"""
from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "params": ("ShapeParams",),
    "search": ("ShapeResult", "search_shape"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
