"""Stage 1: text → body shape parameters (AvatarCLIP ShapeGen, docs/method.md §1.3, over the body model's
shape space).

Names are imported on first access (PEP 562), so ``import avatarclip_core.shape.params`` (the configuration
check) does not import torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "params": ("ShapeParams",),
    "search": ("ShapeResult", "search_shape"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = ["ShapeParams", "ShapeResult", "search_shape"]


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    if not name.startswith("_"):  # a submodule not imported yet (`avatarclip_core.<package>.<module>` as before)
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
