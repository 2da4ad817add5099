"""Nothing lost, nothing silently wrong (docs/design.md §2): the run lock, the stage cache instead of deletion,
artifact hashes in manifests, damaged checkpoints, NaN losses, bounds on absurd settings."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from avatarclip_core.config import ConfigError, load_config
from avatarclip_core.neus.params import ScheduleParams
from avatarclip_core.neus.training import Checkpoints, TrainingDiverged, train
from avatarclip_core.rundir import LOCK_ENV, RunDir, RunLocked, UpstreamMissing, run_lock


def quiet(_):
    pass


# ----------------------------------------------------------------------------------------------- run lock
def test_second_process_is_refused_while_the_first_holds_the_run(tmp_path):
    root = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from avatarclip_core.rundir import run_lock
        with run_lock({str(root)!r}):
            print("held", flush=True)
            time.sleep(30)
        """)], stdout=subprocess.PIPE, text=True, env={k: v for k, v in os.environ.items() if k != LOCK_ENV})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLocked, match=f"in use by pid {holder.pid}"):
            with run_lock(root):
                pass
        # a stage of that run is refused too, before its folder is touched
        with pytest.raises(RunLocked):
            RunDir(root).stage("01_shape", {}, lambda f: {}, log=quiet)
        assert not (root / "01_shape").exists()
    finally:
        holder.kill()
        holder.wait()
    # the holder died without releasing: its lock is stale and taken over
    assert (root / ".lock").is_file()
    with run_lock(root):
        assert json.loads((root / ".lock").read_text())["pid"] == os.getpid()
    assert not (root / ".lock").exists()


def test_lock_is_reentrant_and_inherited_by_child_processes(tmp_path):
    root = tmp_path / "run"
    with run_lock(root):
        with run_lock(root):  # nested in one process
            pass
        assert (root / ".lock").is_file()
        child = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
            from avatarclip_core.rundir import run_lock
            with run_lock({str(root)!r}):
                print("child ran")
            """)], capture_output=True, text=True, timeout=60)  # inherits $AVATARCLIP_RUN_LOCK
        assert child.returncode == 0 and "child ran" in child.stdout, child.stderr
        assert (root / ".lock").is_file()  # the child did not release the parent's lock
    assert not (root / ".lock").exists() and LOCK_ENV not in os.environ


# ----------------------------------------------------------------------------------------------- stage cache
def test_changed_inputs_move_the_old_result_aside_and_coming_back_restores_it(tmp_path):
    run = RunDir(tmp_path / "r")
    calls = []

    def body(folder):
        calls.append(folder.name)
        (folder / "avatar.ply").write_text(f"result {len(calls)}")
        return {"n": len(calls)}

    first = run.stage("01_shape", {"prompt": "knight"}, body, log=quiet)
    run.stage("01_shape", {"prompt": "wizard"}, body, log=quiet)
    assert calls == ["01_shape", "01_shape"]
    kept = run.cache_root / "01_shape" / first["inputs_hash"]
    assert (kept / "avatar.ply").read_text() == "result 1"  # the knight is kept, not deleted
    again = run.stage("01_shape", {"prompt": "knight"}, body, log=quiet)
    assert len(calls) == 2 and again["inputs_hash"] == first["inputs_hash"]  # restored, not recomputed
    assert (run.path("01_shape") / "avatar.ply").read_text() == "result 1"
    assert run.clear_cache() > 0 and not run.cache_root.exists()


# ----------------------------------------------------------------------------------------------- damaged files
def test_damaged_artifacts_rerun_the_stage_and_stop_its_readers(tmp_path):
    run = RunDir(tmp_path / "r")
    calls = []

    def body(folder):
        calls.append(1)
        (folder / "shape.json").write_text(json.dumps({"shape": [0.5]}))
        return {}

    m = run.stage("01_shape", {}, body, log=quiet)
    assert m["artifacts"]["shape.json"]["bytes"] == len(json.dumps({"shape": [0.5]}))
    (run.path("01_shape") / "shape.json").write_text("{not json")
    with pytest.raises(UpstreamMissing, match=r"01_shape .* damaged: shape.json \(changed\); re-run it"):
        run.stage("02_neus_init", {}, lambda f: {}, log=quiet)
    assert not run.path("02_neus_init").exists()
    assert run.status("01_shape", {}) == "damaged"
    run.stage("01_shape", {}, body, log=quiet)
    assert len(calls) == 2 and json.loads((run.path("01_shape") / "shape.json").read_text()) == {"shape": [0.5]}
    assert list((run.cache_root / "01_shape").glob("*-damaged"))  # the damaged folder is kept for inspection
    (run.path("01_shape") / "shape.json").unlink()
    with pytest.raises(UpstreamMissing, match=r"shape.json \(missing\)"):
        run.require("01_shape")


def test_a_truncated_checkpoint_is_moved_aside_and_the_previous_one_used(tmp_path):
    ck = Checkpoints(tmp_path, numbered=True)
    ck.save({"step": 40}, 40)
    ck.save({"step": 60}, 60)
    newest = tmp_path / "ckpt_000060.pt"
    newest.write_bytes(newest.read_bytes()[:100])
    with pytest.warns(UserWarning, match="ckpt_000060.pt cannot be read"):
        assert ck.load("cpu")["step"] == 40
    assert (tmp_path / "ckpt_000060.pt.damaged").is_file() and ck.latest().name == "ckpt_000040.pt"


def test_nan_loss_stops_training_without_saving(tmp_path):
    w = torch.nn.Parameter(torch.ones(()))
    opt = torch.optim.SGD([w], lr=0.1)
    saved = []
    schedule = ScheduleParams(iterations=10, end_iter=10, warm_up_end=0, save_every=2, val_every=100)

    def step(s):
        return {"loss": float("nan") if s == 4 else 1.0}

    with pytest.raises(TrainingDiverged, match=r"loss = nan at step 5.*learning rate"):
        train(step, opt, schedule, save=saved.append, progress=False)
    assert saved == [2, 4]


# ----------------------------------------------------------------------------------------------- absurd values
def test_absurd_schedules_are_refused_at_configuration_time():
    with pytest.raises(ConfigError, match=r"texture.schedule.iterations = 1000000000 is invalid"):
        load_config("tiny", overrides={"texture.schedule.iterations": 1e9})
    with pytest.raises(ConfigError, match=r"iterations = 100 is invalid: use at most end_iter=80"):
        load_config("tiny", overrides={"texture.schedule.iterations": 100})


def test_absurd_value_on_a_finished_run_leaves_it_intact(tmp_path):
    run = RunDir(tmp_path / "exp" / "done")
    run.stage("01_shape", {}, lambda f: (f / "body.ply").write_text("ply") and {}, log=quiet)
    before = {p: p.read_bytes() for p in run.root.rglob("*") if p.is_file()}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "avatarclip_core", "run", "--run", "done", "--exp-root",
                          str(tmp_path / "exp"), "--preset", "tiny", "--appearance", "x",
                          "--set", "texture.schedule.iterations=1e9", "--stages", "03"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "texture.schedule.iterations = 1000000000" in out.stderr + out.stdout
    assert {p: p.read_bytes() for p in run.root.rglob("*") if p.is_file()} == before
    assert time.perf_counter() - t0 < 30


def test_cli_refuses_a_run_in_use_and_gc_empties_the_stage_cache(tmp_path):
    exp = tmp_path / "exp"
    run = RunDir(exp / "busy")
    run.stage("01_shape", {"v": 1}, lambda f: (f / "a.txt").write_text("1") and {}, log=quiet)
    run.stage("01_shape", {"v": 2}, lambda f: (f / "a.txt").write_text("2") and {}, log=quiet)
    assert run.cache_root.is_dir()
    env = {k: v for k, v in os.environ.items() if k != LOCK_ENV}
    cmd = [sys.executable, "-m", "avatarclip_core"]
    with run_lock(run.root):
        t0 = time.perf_counter()
        busy = subprocess.run(cmd + ["run", "--run", "busy", "--exp-root", str(exp), "--preset", "tiny", "--shape", "x",
                                     "--stages", "01"], capture_output=True, text=True, timeout=120, env=env)
        elapsed = time.perf_counter() - t0
    assert busy.returncode == 2 and f"in use by pid {os.getpid()}" in busy.stderr, busy.stderr
    assert len(busy.stderr.strip().splitlines()) == 1 and elapsed < 10
    gc = subprocess.run(cmd + ["gc", "--exp-root", str(exp)], capture_output=True, text=True, timeout=120, env=env)
    assert gc.returncode == 0 and "freed" in gc.stdout and not run.cache_root.exists()
    assert (run.path("01_shape") / "a.txt").read_text() == "2"  # the current result is untouched
