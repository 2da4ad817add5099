"""`get_body_model(name)`: the one place that builds body models (cached per process)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from ..paths import smpl_dir as default_smpl_dir
from .base import BodyModel

BODY_MODELS = ("anny", "smpl")


def get_body_model(name: str = "anny", smpl_dir: str | Path | None = None) -> BodyModel:
    """Return the body model called `name`.

    Args:
        name: "anny" (default; open, needs no download) or "smpl" (needs the licensed SMPL files).
        smpl_dir: folder holding `smpl/SMPL_NEUTRAL.pkl` or `SMPL_NEUTRAL.npz` (default: `paths.smpl_dir()`).
    Raises:
        ValueError: unknown name.
        FileNotFoundError: "smpl" without the licensed files (the message says where to put them).
    """
    if name not in BODY_MODELS:
        raise ValueError(f"unknown body model {name!r}; use one of {BODY_MODELS} (anny needs no download)")
    return _build(name, str(Path(smpl_dir or default_smpl_dir()).resolve()) if name == "smpl" else "")


@lru_cache(maxsize=4)
def _build(name: str, smpl_dir: str) -> BodyModel:
    if name == "anny":
        from .anny_body import AnnyBody

        return AnnyBody()
    from .smpl_body import SmplBody

    return SmplBody(smpl_dir)
