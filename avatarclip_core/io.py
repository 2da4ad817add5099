"""Atomic file writes: every artifact goes to a temporary name in its folder, then `os.replace` (docs/design.md §2),
so an interrupted run never leaves a half-written file behind."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def atomic_write(path: str | os.PathLike, write_fn: Callable[[str], Any]) -> Path:
    """Call `write_fn(tmp_path)` to write a file, then rename it onto `path`.

    The temporary file keeps `path`'s suffix (libraries such as imageio pick the format from it).
    Creates parent folders. On any exception the temporary file is removed and the error re-raised.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; artifacts get the usual permissions
    try:
        write_fn(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write `data` to `path` atomically."""
    return atomic_write(path, lambda p: Path(p).write_bytes(data))


def atomic_write_text(path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    return atomic_write(path, lambda p: Path(p).write_text(text, encoding="utf-8"))


def atomic_write_json(path, obj: Any) -> Path:
    """Write `obj` as indented JSON to `path` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_save_torch(obj: Any, path) -> Path:
    """`torch.save(obj, path)` atomically."""
    import torch

    return atomic_write(path, lambda p: torch.save(obj, p))


def atomic_save_npz(path, **arrays) -> Path:
    """`numpy.savez(path, **arrays)` atomically (the file keeps the .npz name)."""
    import numpy as np

    def write(p):
        with open(p, "wb") as f:
            np.savez(f, **arrays)

    return atomic_write(path, write)
