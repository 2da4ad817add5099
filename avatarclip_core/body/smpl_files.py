"""Where the licensed SMPL files are looked for (`find_smpl_file`), torch-free so the command line can check them
before importing torch; `smpl_body` (the SMPL body model) uses and re-exports it."""
from __future__ import annotations

from pathlib import Path

__all__ = ["SMPL_FILES", "find_smpl_file"]

SMPL_FILES = ("SMPL_NEUTRAL.npz", "SMPL_NEUTRAL.pkl", "smpl/SMPL_NEUTRAL.npz", "smpl/SMPL_NEUTRAL.pkl")


def find_smpl_file(smpl_dir: str | Path) -> Path:
    """Return the SMPL neutral model file in `smpl_dir`.

    Raises:
        FileNotFoundError: naming the folder searched, the accepted file names and that `body = anny` needs nothing.
    """
    smpl_dir = Path(smpl_dir)
    for name in SMPL_FILES:
        if (smpl_dir / name).is_file():
            return smpl_dir / name
    raise FileNotFoundError(
        f"body=smpl needs the licensed SMPL neutral model, but none of {list(SMPL_FILES)} is in {smpl_dir}. "
        "Register at https://smpl.is.tue.mpg.de, download SMPL (v1.1, Python), and put SMPL_NEUTRAL.pkl (or a "
        f"converted SMPL_NEUTRAL.npz) in {smpl_dir}/ — or use body=anny (the default), which needs no download.")
