"""`get_body_model(name)`: the one place that builds body models (cached per process)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from ..paths import smpl_dir as default_smpl_dir
from .base import BodyModel

BODY_MODELS = ("anny", "smpl", "precomputed")


def get_body_model(name: str = "anny", smpl_dir: str | Path | None = None, body_file: str | Path | None = None
                   ) -> BodyModel:
    """Return the body model called `name`.

    Args:
        name: "anny" (default; open, needs no download), "smpl" (needs the licensed SMPL files) or "precomputed"
            (a body frozen at a few shapes in `body_file`, for machines without anny; `body.precomputed`).
        smpl_dir: folder holding `smpl/SMPL_NEUTRAL.pkl` or `SMPL_NEUTRAL.npz` (default: `paths.smpl_dir()`).
        body_file: the .npz of "precomputed".
    Raises:
        ValueError: unknown name, or "precomputed" without a `body_file`.
        FileNotFoundError: "smpl" without the licensed files, "precomputed" without its file (the message says
            what to do).
    """
    if name not in BODY_MODELS:
        raise ValueError(f"unknown body model {name!r}; use one of {BODY_MODELS} (anny needs no download)")
    if name == "precomputed" and not body_file:
        raise ValueError("body model 'precomputed' needs its file: set run.body_file (bench/gpu_prep.py writes one)")
    where = {"smpl": lambda: str(Path(smpl_dir or default_smpl_dir()).resolve()),
             "precomputed": lambda: str(Path(body_file).expanduser().resolve())}.get(name, lambda: "")()
    return _build(name, where)


@lru_cache(maxsize=4)
def _build(name: str, where: str) -> BodyModel:
    if name == "precomputed":
        from .precomputed import PrecomputedBody

        return PrecomputedBody(where)
    if name == "anny":
        from .anny_body import AnnyBody

        return AnnyBody()
    from .smpl_body import SmplBody

    return SmplBody(where)
