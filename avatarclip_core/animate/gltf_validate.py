"""Run the Khronos glTF validator (`gltf-validator` npm package, `validator.validateBytes`) on a GLB file.

The validator is JavaScript (compiled from Dart by Khronos); it is installed with
`npm install --no-save --no-package-lock gltf-validator` into `<repo>/node_modules` (Makefile target
`node_modules`; `ensure_validator()` does the same) and called through a tiny node script. Needs `node` on PATH.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from ..paths import node_prefixes

_SCRIPT = r"""
const validator = require(process.argv[1]);
const fs = require('fs');
const data = new Uint8Array(fs.readFileSync(process.argv[2]));
validator.validateBytes(data, {maxIssues: 200, format: 'glb'})
  .then((report) => { process.stdout.write(JSON.stringify(report)); })
  .catch((e) => { process.stderr.write(String(e)); process.exit(2); });
"""


def validator_dir(prefix: str | os.PathLike | None = None) -> Path:
    """Folder of the `gltf-validator` package: `prefix`/node_modules/gltf-validator, with prefix from the argument,
    else $GLTF_VALIDATOR_PREFIX, else the first of `paths.node_prefixes()` that has it (else the first of those:
    where `ensure_validator` installs it)."""
    given = prefix or os.environ.get("GLTF_VALIDATOR_PREFIX")
    if given:
        return Path(given) / "node_modules" / "gltf-validator"
    candidates = [p / "node_modules" / "gltf-validator" for p in node_prefixes()]
    return next((c for c in candidates if (c / "index.js").exists()), candidates[0])


def ensure_validator(prefix: str | os.PathLike | None = None, timeout: float = 300.0) -> Path:
    """Install `gltf-validator` with npm under `prefix` (see `validator_dir`) unless it is already there.

    Returns:
        the package folder.
    Raises:
        RuntimeError: node/npm missing, or npm failed (its output is in the message).
    """
    pkg = validator_dir(prefix)
    if (pkg / "index.js").exists():
        return pkg
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise RuntimeError("the glTF validator needs node and npm on PATH (e.g. apt-get install nodejs npm)")
    res = subprocess.run(["npm", "install", "--no-save", "--no-package-lock", "--no-audit", "--no-fund",
                          "--prefix", str(pkg.parents[1]), "gltf-validator"],
                         capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0 or not (pkg / "index.js").exists():
        raise RuntimeError(f"npm install gltf-validator failed (rc {res.returncode}): {res.stderr[-2000:]}")
    return pkg


def validate_glb(path: str | os.PathLike, prefix: str | os.PathLike | None = None, timeout: float = 300.0) -> dict:
    """Validate a .glb with the Khronos validator and return its JSON report.

    The report's `issues` holds `numErrors`, `numWarnings`, `numInfos`, `numHints` and `messages`
    (each with `code`, `message`, `severity` 0 = error … 3 = hint, `pointer`).

    Raises:
        FileNotFoundError: `path` does not exist.
        RuntimeError: node or the validator package is missing (run `make node_modules` or
            `ensure_validator()`), or the validator crashed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no glTF file at {path}")
    pkg = validator_dir(prefix)
    if shutil.which("node") is None:
        raise RuntimeError("node is not on PATH; the Khronos glTF validator is a node package")
    if not (pkg / "index.js").exists():
        raise RuntimeError(f"gltf-validator is not installed at {pkg}; run `make node_modules` or "
                           "avatarclip_core.animate.gltf_validate.ensure_validator()")
    res = subprocess.run(["node", "-e", _SCRIPT, str(pkg), str(path)], capture_output=True, text=True,
                         timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"gltf-validator failed on {path} (rc {res.returncode}): {res.stderr[-2000:]}")
    return json.loads(res.stdout)
