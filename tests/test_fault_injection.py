"""Fault injection: a tiny run SIGKILLed at three points inside every stage, re-run after each kill, ends with the
artifacts of an uninterrupted run (docs/design.md §2: atomic writes, resumable stages, the run lock)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from avatarclip_core import stages

PROMPTS = ["--shape", "a tall person", "--appearance", "a red person", "--motion", "raising both arms"]


def cli(exp: Path, run: str) -> list[str]:
    return [sys.executable, "-m", "avatarclip_core", "run", "--preset", "tiny", "--clip", "tiny", "--device", "cpu",
            "--no-notebooks", "--exp-root", str(exp), "--run", run, *PROMPTS]


def kill_inside(cmd: list[str], started: Path, delay: float) -> bool:
    """Start `cmd`; once it has (re)started the stage whose `started.json` is given, wait `delay` s and SIGKILL
    it. Returns False when the command finished before that."""
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    while proc.poll() is None:
        if started.is_file() and started.stat().st_mtime >= t0 - 0.01:
            time.sleep(delay)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            break
        time.sleep(0.01)
    assert proc.returncode == 0, proc.stderr.read()[-2000:]
    return False


def same_content(a: Path, b: Path) -> bool:
    """Byte equality, except for torch checkpoints (their zip records the temporary file name): equal tensors."""
    if a.suffix != ".pt":
        return a.read_bytes() == b.read_bytes()
    return _equal(torch.load(a, weights_only=False), torch.load(b, weights_only=False))


def _equal(x, y) -> bool:
    if isinstance(x, torch.Tensor):
        return isinstance(y, torch.Tensor) and x.dtype == y.dtype and torch.equal(x, y)
    if isinstance(x, dict):
        return isinstance(y, dict) and x.keys() == y.keys() and all(_equal(x[k], y[k]) for k in x)
    if isinstance(x, (list, tuple)):
        return isinstance(y, (list, tuple)) and len(x) == len(y) and all(_equal(u, v) for u, v in zip(x, y))
    if isinstance(x, np.ndarray):
        return np.array_equal(x, y)
    return x == y


def artifacts(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for s in stages.FOLDERS for p in (root / s).rglob("*")
            if p.is_file() and p.name not in ("manifest.json", ".lock")}


def test_killed_at_three_points_in_every_stage_resumes_to_the_same_artifacts(tmp_path):
    exp = tmp_path / "exp"
    ref = subprocess.run(cli(exp, "ref"), capture_output=True, text=True, timeout=900)
    assert ref.returncode == 0, ref.stderr[-3000:]
    ref_root = exp / "ref"
    durations = {s: json.loads((ref_root / s / "manifest.json").read_text())["wall_time_s"] for s in stages.FOLDERS}
    # The first run also computes the pose-library embeddings (cached for every later run), so its stage-4 time
    # overstates the re-runs': time stage 4 again on a copy of the finished run, with the cache warm.
    shutil.copytree(ref_root, exp / "warm", ignore=shutil.ignore_patterns(".cache", "04_poses"))
    warm = subprocess.run(cli(exp, "warm") + ["--stages", "04"], capture_output=True, text=True, timeout=900)
    assert warm.returncode == 0, warm.stderr[-3000:]
    durations["04_poses"] = json.loads((exp / "warm/04_poses/manifest.json").read_text())["wall_time_s"]

    root = exp / "faulty"
    kills = {}
    for folder in stages.FOLDERS:
        for fraction in (0.1, 0.4, 0.7):  # of the reference's time: a re-run can be quicker, so not too late
            killed = kill_inside(cli(exp, "faulty"), root / folder / "started.json", fraction * durations[folder])
            kills[folder] = kills.get(folder, 0) + killed
    final = subprocess.run(cli(exp, "faulty"), capture_output=True, text=True, timeout=900)
    assert final.returncode == 0, final.stderr[-3000:]
    assert all(n >= 2 for n in kills.values()), (kills, durations)  # (a stage can finish before its last, latest kill point)

    want, got = artifacts(ref_root), artifacts(root)
    leftovers = sorted(set(got) - set(want))
    assert all(".tmp" in name for name in leftovers) or not leftovers, leftovers  # at most dead temp files
    assert sorted(set(want) - set(got)) == []
    different = [name for name, path in want.items() if not same_content(path, got[name])]
    assert different == [], different
    for folder in stages.FOLDERS:
        m = json.loads((root / folder / "manifest.json").read_text())
        r = json.loads((ref_root / folder / "manifest.json").read_text())
        assert m["inputs_hash"] == r["inputs_hash"]
        assert {k: v["sha256"] for k, v in m["artifacts"].items() if not k.endswith(".pt")} == \
            {k: v["sha256"] for k, v in r["artifacts"].items() if not k.endswith(".pt")}
    assert not (root / ".lock").exists()
