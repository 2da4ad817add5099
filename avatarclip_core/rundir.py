"""The run folder `exp/<run>/` (docs/design.md §2): per-stage folders, manifests, skip/resume/invalidate.

Each stage has a folder (`01_shape` … `06_video`). `stage(...)` runs a stage body under these rules:
- a stage whose `manifest.json` records the same inputs hash is finished: it is skipped (no-op);
- a stage folder holding `started.json` with the same inputs hash is an interrupted run: the body runs again
  and resumes from whatever checkpoints it left in the folder;
- a stage whose inputs changed (config section, prompts, seed, body, CLIP model, or an upstream manifest) has
  its folder moved aside into the run's stage cache `.cache/<stage>/<old inputs hash>/` (nothing computed is
  deleted, and stale checkpoints never leak into the new run); coming back to inputs seen before restores that
  folder instead of recomputing it (`avatarclip gc` empties the cache); downstream stages see the new upstream
  hash and re-run (or are restored) in turn;
- a finished stage whose recorded artifacts (size and SHA-256 of every file, in the manifest) are missing or
  changed is damaged: its folder goes to the cache as `<hash>-damaged` and the stage runs again; a stage that
  reads a damaged upstream stage stops with `UpstreamMissing` naming the file and the stage to re-run.
A run folder is used by one process at a time (`run_lock`).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import socket
import time
import uuid
from contextlib import contextmanager
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


class RunLocked(RuntimeError):
    """Another live process is using this run folder (the message names it and what to do)."""

    def _render_traceback_(self):
        return [f"\x1b[31mRunLocked\x1b[0m: {self}"]


LOCK_ENV = "AVATARCLIP_RUN_LOCK"  # token of the lock a parent process holds (papermill kernels inherit it)
_held: dict[Path, list] = {}      # lock file → [token, nesting depth] of the locks this process holds


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@contextmanager
def run_lock(root: str | os.PathLike, token: str | None = None):
    """Hold `<root>/.lock` while the block runs: one process per run folder (docs/design.md §2).

    The lock file records pid, host, start time and command line. Re-entrant within a process, and for child
    processes that inherit the holder's token through $AVATARCLIP_RUN_LOCK (the notebooks `avatarclip run`
    executes). A lock whose process is gone (same host, pid not alive) is stale and taken over. `token` (default:
    a fresh one) lets one process hold several run folders under one token that its workers inherit (`batch`).

    Raises: RunLocked naming the holder when another live process holds the lock (or one on another host).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    lock = (root / ".lock").resolve()
    if lock in _held:
        _held[lock][1] += 1
        try:
            yield
        finally:
            _held[lock][1] -= 1
        return
    token = token or uuid.uuid4().hex
    me = {"pid": os.getpid(), "host": socket.gethostname(), "token": token, "since": time.strftime("%Y-%m-%d %H:%M:%S"),
          "command": " ".join(os.sys.argv)[:300]}
    inherited = False
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(lock.read_text())
            except (OSError, ValueError):
                holder = {}
            if holder.get("token") and holder.get("token") == os.environ.get(LOCK_ENV):
                inherited = True  # our parent holds it (e.g. `avatarclip run` executing this notebook)
                break
            same_host = holder.get("host") == me["host"]
            if holder and same_host and isinstance(holder.get("pid"), int) and _alive(holder["pid"]):
                raise RunLocked(f"run folder {root} is in use by pid {holder['pid']} on {holder['host']} since "
                                f"{holder.get('since')} ({holder.get('command', '')!r}); wait for it to finish or "
                                "use another run name (--run / run_name)") from None
            if holder and not same_host:
                raise RunLocked(f"run folder {root} is locked by pid {holder.get('pid')} on host {holder.get('host')} "
                                f"since {holder.get('since')}; if that run is over, delete {lock}") from None
            lock.unlink(missing_ok=True)  # stale: its process is gone (or the file is unreadable)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    else:  # pragma: no cover - three races lost in a row
        raise RunLocked(f"could not take the lock {lock}; another process keeps re-creating it")
    _held[lock] = [token, 1]
    previous = os.environ.get(LOCK_ENV)
    if not inherited:
        os.environ[LOCK_ENV] = token
    try:
        yield
    finally:
        del _held[lock]
        if not inherited:
            if previous is None:
                os.environ.pop(LOCK_ENV, None)
            else:
                os.environ[LOCK_ENV] = previous
            try:
                if json.loads(lock.read_text()).get("token") == token:
                    lock.unlink()
            except (OSError, ValueError):
                pass


def file_sha256(path: Path) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def artifact_records(folder: Path) -> dict:
    """{relative path: {"bytes": size, "sha256": hex}} of every file in a stage folder except its bookkeeping
    (manifest.json, started.json) and temporary files of interrupted atomic writes."""
    return {f.relative_to(folder).as_posix(): {"bytes": f.stat().st_size, "sha256": file_sha256(f)}
            for f in sorted(Path(folder).rglob("*"))
            if f.is_file() and f.name not in ("manifest.json", "started.json") and ".tmp" not in f.name}


def damaged_artifacts(folder: Path, records: dict) -> list[str]:
    """The recorded artifacts of `folder` that are missing or whose size or hash changed ("name (missing)")."""
    bad = []
    for rel, rec in records.items():
        f = Path(folder) / rel
        if not f.is_file():
            bad.append(f"{rel} (missing)")
        elif f.stat().st_size != rec["bytes"] or file_sha256(f) != rec["sha256"]:
            bad.append(f"{rel} (changed)")
    return bad


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
        """The stage's manifest.json, or None if the stage has not finished (or the manifest is unreadable)."""
        path = self.path(stage) / "manifest.json"
        try:
            return json.loads(path.read_text()) if path.is_file() else None
        except (OSError, ValueError):
            return None

    def damaged(self, stage: str) -> list[str]:
        """Artifacts of a finished stage that are missing or changed since its manifest was written ([] if intact
        or not finished)."""
        manifest = self.manifest(stage)
        return damaged_artifacts(self.path(stage), manifest.get("artifacts", {})) if manifest else []

    def require(self, stage: str) -> dict:
        """Manifest of a finished, intact upstream stage; raises UpstreamMissing (a FileNotFoundError) saying which
        stage to run first, or which of its files is missing or damaged and how to re-run it."""
        manifest = self.manifest(stage)
        run_it = (f"notebook {_stages.get(stage).notebook}.ipynb or `avatarclip run --stages {stage[:2]}`")
        if manifest is None:
            raise UpstreamMissing(f"stage {stage} has not finished in {self.root}; run it first ({run_it})")
        bad = self.damaged(stage)
        if bad:
            raise UpstreamMissing(f"stage {stage} in {self.root} is damaged: {', '.join(bad[:3])}"
                                  f"{' …' if len(bad) > 3 else ''}; re-run it ({run_it})")
        return manifest

    def write_run_conf(self, text: str) -> Path:
        """Write the resolved configuration to `run.conf` at the run root."""
        return atomic_write_text(self.root / "run.conf", text)

    def status(self, stage: str, inputs: dict) -> str:
        """'done' (finished with these inputs, artifacts intact), 'damaged' (finished with these inputs, an
        artifact missing or changed), 'resume' (interrupted with these inputs), 'cached' (the stage cache holds a
        folder of these inputs), 'stale' (the folder is of other inputs) or 'new'."""
        h = self._hash(stage, inputs)
        manifest = self.manifest(stage)
        if manifest is not None and manifest.get("inputs_hash") == h:
            return "damaged" if self.damaged(stage) else "done"
        if self._started_hash(self.path(stage)) == h:
            return "resume"
        if self.cached(stage, h) is not None:
            return "cached"
        return "stale" if self.path(stage).exists() else "new"

    @property
    def cache_root(self) -> Path:
        """`.cache/` of the run: stage folders moved aside, one per inputs hash."""
        return self.root / ".cache"

    def cached(self, stage: str, h: str) -> Path | None:
        """The cached folder of `stage` with inputs hash `h` (finished or interrupted), or None."""
        folder = self.cache_root / stage / h
        return folder if folder.is_dir() else None

    @staticmethod
    def _started_hash(folder: Path) -> str | None:
        try:
            return json.loads((folder / "started.json").read_text()).get("inputs_hash")
        except (OSError, ValueError):
            return None

    def _move_aside(self, stage: str, suffix: str = "") -> Path:
        """Move the stage folder into the cache under the inputs hash it was computed with; returns the new path."""
        folder = self.path(stage)
        old = (self.manifest(stage) or {}).get("inputs_hash") or self._started_hash(folder) or "unknown"
        dest = self.cache_root / stage / f"{old}{suffix}"
        if dest.exists():  # an older copy of the same inputs: keep the newer one under a unique name
            dest = dest.with_name(f"{dest.name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(folder, dest)
        return dest

    @staticmethod
    def upstream_of(stage: str, inputs: dict) -> tuple[str, ...]:
        """The earlier stages `stage` reads: `inputs["upstream"]` when the inputs name them (a stage driven by a
        user file, `pipeline.stage_inputs`), else the stage table's."""
        return tuple(inputs["upstream"]) if "upstream" in inputs else UPSTREAM[stage]

    def _hash(self, stage: str, inputs: dict) -> str:
        upstream = {s: (self.manifest(s) or {}).get("inputs_hash") for s in self.upstream_of(stage, inputs)}
        return inputs_hash({"inputs": inputs, "upstream": upstream})

    def stage(self, stage: str, inputs: dict, body: Callable[[Path], dict], seed: int = 0,
              log: Callable[[str], None] = print, settings: dict | None = None) -> dict:
        """Run `body(stage_folder) -> figures` under the skip/resume/cache rules; return the manifest.

        Args:
            inputs: everything the stage's result depends on (config sections, prompts, seed, models).
            body: does the work, writes only into the folder it is given, returns key figures (JSON-able).
            settings: the run's settings when it ran (preset, prompts, run section), recorded in the manifest but
                not hashed, so each stage's manifest says what it ran with.
        Raises:
            UpstreamMissing (a FileNotFoundError): an upstream stage has not finished or is damaged.
            RunLocked: another process uses this run folder.
        """
        with run_lock(self.root):
            for up in self.upstream_of(stage, inputs):
                self.require(up)
            folder = self.path(stage)
            state = self.status(stage, inputs)
            h = self._hash(stage, inputs)
            if state == "done":
                log(f"[{stage}] already finished with these inputs — skipped (delete {folder} to force a re-run)")
                return self.manifest(stage)
            if state == "damaged":
                bad = self.damaged(stage)
                moved = self._move_aside(stage, "-damaged")
                log(f"[{stage}] {', '.join(bad[:3])} — the old folder is kept in {moved}; running the stage again")
            if state in ("stale", "cached") and folder.exists():
                moved = self._move_aside(stage)
                log(f"[{stage}] inputs changed — the previous result is kept in {moved}")
            if state == "cached":
                os.replace(self.cached(stage, h), folder)
                if self.status(stage, inputs) == "done":
                    log(f"[{stage}] restored the result of these inputs from the stage cache — skipped")
                    return self.manifest(stage)
                log(f"[{stage}] restored an interrupted run of these inputs from the stage cache — resuming")
            if state == "resume":
                log(f"[{stage}] resuming an interrupted run from its checkpoints")
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_json(folder / "started.json", {"inputs_hash": h, "started": time.time()})
            start = time.time()
            figures = body(folder) or {}
            manifest = {
                "stage": stage, "inputs_hash": h, "inputs": inputs, "seed": seed, "settings": settings or {},
                "upstream": {s: (self.manifest(s) or {}).get("inputs_hash") for s in self.upstream_of(stage, inputs)},
                "wall_time_s": round(time.time() - start, 3), "figures": figures, "versions": _versions(),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "artifacts": artifact_records(folder),
            }
            atomic_write_json(folder / "manifest.json", manifest)
            (folder / "started.json").unlink(missing_ok=True)
            return manifest

    def clear_cache(self) -> int:
        """Delete the run's stage cache; returns the bytes freed."""
        if not self.cache_root.is_dir():
            return 0
        freed = sum(f.stat().st_size for f in self.cache_root.rglob("*") if f.is_file())
        shutil.rmtree(self.cache_root)
        return freed


def _versions() -> dict:
    from . import __version__

    out = {"avatarclip": __version__, "python": platform.python_version()}
    try:
        import torch

        out["torch"] = torch.__version__
    except ImportError:  # pragma: no cover
        pass
    return out
