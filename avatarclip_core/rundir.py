"""The run folder `exp/<run>/` (docs/design.md §2): per-stage folders, manifests, skip/resume/invalidate.

Each stage has a folder (`01_shape` … `06_video`). `stage(...)` runs a stage body under these rules:
- a stage whose `manifest.json` records the same inputs hash is finished: it is skipped (no-op);
- a stage folder holding `started.json` with the same inputs hash is an interrupted run: the body runs again
  and resumes from whatever checkpoints it left in the folder;
- a stage whose inputs changed (config section, prompts, seed, body, CLIP model, or an upstream manifest) has
  its folder emptied first, so stale checkpoints never leak into the new run; downstream stages see the new
  upstream hash and re-run in turn.
"""
from __future__ import annotations

import hashlib
import json
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import stages as _stages
from .io import atomic_write_json, atomic_write_text

STAGES = _stages.FOLDERS
UPSTREAM = {s.folder: s.upstream for s in _stages.STAGES}  # which earlier stages each stage reads


class UpstreamMissing(FileNotFoundError):
    """An earlier stage this one reads has not finished (the message names it and how to run it)."""

    def _render_traceback_(self):  # Jupyter shows the one-line message instead of a traceback
        return [f"\x1b[31mUpstreamMissing\x1b[0m: {self}"]


def inputs_hash(inputs: dict) -> str:
    """Stable 16-hex-digit hash of a JSON-serialisable dict."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class RunDir:
    """An `exp/<run>/` folder. `root` is created on first use."""

    root: Path

    def __post_init__(self):
        self.root = Path(self.root)

    def path(self, stage: str) -> Path:
        """Folder of `stage` (one of STAGES); raises ValueError for an unknown stage name."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
        return self.root / stage

    def manifest(self, stage: str) -> dict | None:
        """The stage's manifest.json, or None if the stage has not finished."""
        path = self.path(stage) / "manifest.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def require(self, stage: str) -> dict:
        """Manifest of a finished upstream stage; raises UpstreamMissing (a FileNotFoundError) saying which stage
        to run first."""
        manifest = self.manifest(stage)
        if manifest is None:
            raise UpstreamMissing(f"stage {stage} has not finished in {self.root}; run it first "
                                    f"(notebook {_stages.get(stage).notebook}.ipynb or `avatarclip run --stages {stage[:2]}`)")
        return manifest

    def write_run_conf(self, text: str) -> Path:
        """Write the resolved configuration to `run.conf` at the run root."""
        return atomic_write_text(self.root / "run.conf", text)

    def status(self, stage: str, inputs: dict) -> str:
        """'done' (finished with these inputs), 'resume' (interrupted with these inputs), 'stale' or 'new'."""
        h = self._hash(stage, inputs)
        manifest = self.manifest(stage)
        if manifest is not None and manifest.get("inputs_hash") == h:
            return "done"
        started = self.path(stage) / "started.json"
        if started.is_file() and json.loads(started.read_text()).get("inputs_hash") == h:
            return "resume"
        return "stale" if self.path(stage).exists() else "new"

    def _hash(self, stage: str, inputs: dict) -> str:
        upstream = {s: (self.manifest(s) or {}).get("inputs_hash") for s in UPSTREAM[stage]}
        return inputs_hash({"inputs": inputs, "upstream": upstream})

    def stage(self, stage: str, inputs: dict, body: Callable[[Path], dict], seed: int = 0,
              log: Callable[[str], None] = print, settings: dict | None = None) -> dict:
        """Run `body(stage_folder) -> figures` under the skip/resume/invalidate rules; return the manifest.

        Args:
            inputs: everything the stage's result depends on (config sections, prompts, seed, models).
            body: does the work, writes only into the folder it is given, returns key figures (JSON-able).
            settings: the run's settings when it ran (preset, prompts, run section), recorded in the manifest but
                not hashed, so each stage's manifest says what it ran with.
        Raises:
            FileNotFoundError: an upstream stage has not finished.
        """
        for up in UPSTREAM[stage]:
            self.require(up)
        folder = self.path(stage)
        state = self.status(stage, inputs)
        if state == "done":
            log(f"[{stage}] already finished with these inputs — skipped (delete {folder} to force a re-run)")
            return self.manifest(stage)
        if state == "stale":
            log(f"[{stage}] inputs changed — clearing {folder}")
            shutil.rmtree(folder)
        if state == "resume":
            log(f"[{stage}] resuming an interrupted run from its checkpoints")
        folder.mkdir(parents=True, exist_ok=True)
        h = self._hash(stage, inputs)
        atomic_write_json(folder / "started.json", {"inputs_hash": h, "started": time.time()})
        start = time.time()
        figures = body(folder) or {}
        manifest = {
            "stage": stage, "inputs_hash": h, "inputs": inputs, "seed": seed, "settings": settings or {},
            "upstream": {s: (self.manifest(s) or {}).get("inputs_hash") for s in UPSTREAM[stage]},
            "wall_time_s": round(time.time() - start, 3), "figures": figures, "versions": _versions(),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        atomic_write_json(folder / "manifest.json", manifest)
        (folder / "started.json").unlink(missing_ok=True)
        return manifest


def _versions() -> dict:
    from . import __version__

    out = {"avatarclip": __version__, "python": platform.python_version()}
    try:
        import torch

        out["torch"] = torch.__version__
    except ImportError:  # pragma: no cover
        pass
    return out
