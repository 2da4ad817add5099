"""Where things are: the presets and notebooks shipped with the package, the run root, the SMPL folder, caches.

One rule for every entry point (CLI, notebooks, tests), so a run started from the command line and one started in
a notebook with the same name are the same folder (docs/packaging.md):

- shipped data: `confs/*.conf` and `notebooks/*.ipynb` are top-level folders of the repository and are installed
  inside the package (`avatarclip_core/confs`, `avatarclip_core/notebooks`, see pyproject.toml); a checkout uses
  its own folders, a regular (non-editable) install the installed copies.
- the project folder: the nearest folder at or above the working directory that holds `pyproject.toml` or `.git`
  (a checkout, or the user's own project), else the working directory itself (Colab's /content).
- the run root: `$AVATARCLIP_EXP`, else `<project folder>/exp`.
- the SMPL folder: an explicit value (`run.smpl_dir`, `--smpl-dir`), else `$AVATARCLIP_SMPL_DIR`, else
  `<project folder>/smpl_models`.
- caches: `$AVATARCLIP_CACHE`, else `~/.cache/avatarclip`.
"""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT = PACKAGE_DIR.parent


def shipped_dir(name: str) -> Path:
    """Folder of shipped data `name` ("confs" or "notebooks"): the checkout's top-level folder when running from a
    checkout (editable install), else the copy installed inside the package.

    Raises:
        FileNotFoundError: neither exists (a broken install; the message says how to reinstall).
    """
    if name not in ("confs", "notebooks"):
        raise ValueError(f"unknown shipped folder {name!r}; use 'confs' or 'notebooks'")
    checkout = _CHECKOUT / name
    if checkout.is_dir() and (_CHECKOUT / "pyproject.toml").is_file():
        return checkout
    installed = Path(str(resources.files("avatarclip_core") / name))
    if installed.is_dir():
        return installed
    raise FileNotFoundError(f"avatarclip's {name}/ folder is missing from {PACKAGE_DIR}; reinstall the package "
                            "(pip install --force-reinstall avatarclip) or run from a checkout")


def project_dir(start: str | os.PathLike | None = None) -> Path:
    """The project folder the user works in: nearest folder at or above `start` (default: the working directory)
    holding `pyproject.toml` or `.git`, else `start` itself. Absolute."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() or (folder / ".git").exists():
            return folder
    return here


def exp_root(explicit: str | os.PathLike | None = None) -> Path:
    """Folder holding the runs: `explicit` if given, else `$AVATARCLIP_EXP`, else `<project_dir()>/exp`.
    Absolute; not created here."""
    value = explicit or os.environ.get("AVATARCLIP_EXP")
    return Path(value).expanduser().resolve() if value else project_dir() / "exp"


def smpl_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Folder of the licensed SMPL files: `explicit`, else `$AVATARCLIP_SMPL_DIR`, else
    `<project_dir()>/smpl_models`. Absolute; may not exist (the SMPL body model says what to put there)."""
    value = explicit or os.environ.get("AVATARCLIP_SMPL_DIR")
    return Path(value).expanduser().resolve() if value else project_dir() / "smpl_models"


def cache_root() -> Path:
    """avatarclip's cache folder: `$AVATARCLIP_CACHE`, else `~/.cache/avatarclip`. Absolute; not created here."""
    env = os.environ.get("AVATARCLIP_CACHE")
    return Path(env).expanduser().resolve() if env else Path("~/.cache/avatarclip").expanduser()


def node_prefixes() -> list[Path]:
    """Folders whose `node_modules/` may hold the JavaScript tools (glTF validator, 3D viewer), in order:
    `$AVATARCLIP_NODE_PREFIX`, the project folder, the checkout, the cache root."""
    out = [Path(p) for p in [os.environ.get("AVATARCLIP_NODE_PREFIX")] if p]
    out += [project_dir(), _CHECKOUT, cache_root()]
    return list(dict.fromkeys(p.resolve() for p in out))


def find_node_file(relative: str) -> Path | None:
    """First existing `<prefix>/node_modules/<relative>` over `node_prefixes()`, or None."""
    for prefix in node_prefixes():
        path = prefix / "node_modules" / relative
        if path.is_file():
            return path
    return None
