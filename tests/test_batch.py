"""Batch generation on Ray (docs/batch.md): a 4-row prompts CSV with one invalid row on a local 2-CPU Ray,
interrupted with Ctrl-C mid-way and re-run; the summary, the gallery and the once-per-batch pose embeddings."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from avatarclip_core import stages

ROWS = [("knight", "a tall person", "a knight in armour", "raising both arms", "", ""),
        ("wizard", "a short person", "a wizard in a <b>blue</b> robe", "waving", "", ""),
        ("broken", "a person", "a robot", "walking", "-5", ""),        # refused before any work
        ("dancer", "a thin person", "a dancer in red", "dancing", "40", ""),
        ("nosmpl", "a person", "a clown", "jumping", "", "smpl")]       # fails inside its stages (no SMPL files)


def manifests(root: Path) -> dict[Path, dict]:
    return {p: json.loads(p.read_text()) for p in sorted(root.glob("*/0*/manifest.json"))}


def test_batch_on_local_ray_resumes_isolates_failures_and_builds_a_gallery(tmp_path):
    prompts = tmp_path / "crowd.csv"
    with open(prompts, "w", newline="") as f:
        csv.writer(f).writerows([("name", "shape", "appearance", "motion", "texture.schedule.iterations", "run.body"),
                                 *ROWS])
    root = tmp_path / "crowd"
    env = {**os.environ, "AVATARCLIP_CACHE": str(tmp_path / "cache"), "RAY_AUTH_MODE": "disabled"}
    cmd = [sys.executable, "-m", "avatarclip_core", "batch", str(prompts), "--run-root", str(root), "--preset", "tiny",
           "--clip", "tiny", "--device", "cpu", "--workers", "2", "--set", f"run.smpl_dir={tmp_path / 'no_smpl'}"]

    # Ctrl-C once about a third of the 18 stages have finished. The child gets SIGINT's default action back, as in
    # a terminal: under a background job (`cmd &`, as CI may run us) SIGINT is inherited ignored, and Python then
    # never raises KeyboardInterrupt.
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 600
    while len(manifests(root)) < 6 and first.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert first.poll() is None, first.stderr.read()[-3000:]
    os.killpg(first.pid, signal.SIGINT)
    first.wait(timeout=120)
    before = {p: m["finished"] for p, m in manifests(root).items()}
    assert 6 <= len(before) < 18

    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 1, again.stderr[-3000:]  # two rows did not finish
    assert "[broken] invalid: texture.schedule.iterations = -5" in again.stderr
    assert "[nosmpl] failed: 01_shape: FileNotFoundError" in again.stderr
    after = manifests(root)
    assert len(after) == 18  # 3 rows × 6 stages, each with every artifact (manifests verify them)
    assert all(after[p]["finished"] == t for p, t in before.items())  # finished stages were not redone
    for name in ("knight", "wizard", "dancer"):
        assert all((root / name / s / "manifest.json").is_file() for s in stages.FOLDERS)
        assert (root / name / "06_video" / "avatar.glb").stat().st_size > 0
    assert not (root / "broken").exists()

    with open(root / "summary.csv", newline="") as f:
        summary = {r["name"]: r for r in csv.DictReader(f)}
    assert [summary[n]["status"] for n in ("knight", "wizard", "broken", "dancer", "nosmpl")] == \
        ["ok", "ok", "invalid", "ok", "failed"]
    assert "SMPL" in summary["nosmpl"]["error"]
    assert "iterations = -5" in summary["broken"]["error"] and float(summary["dancer"]["03_texture.seconds"]) > 0
    assert "iterations = 40" in (root / "dancer" / "run.conf").read_text()  # the row's own override
    page = (root / "index.html").read_text()
    assert page.count("class='card avatar'") == 3 and page.count("class='card failed'") == 2
    assert "&lt;b&gt;blue&lt;/b&gt;" in page and "<b>blue</b>" not in page  # prompts are escaped
    assert all((root / name / "06_video" / "avatar.gif").is_file() for name in ("knight", "wizard", "dancer"))

    # the pose-library embeddings were computed once for the batch, before any row's stage 04 started
    cached = list((tmp_path / "cache" / "pose_embeddings").glob("*.pt"))
    assert len(cached) == 1
    starts = [time.mktime(time.strptime(m["finished"], "%Y-%m-%dT%H:%M:%S")) - m["wall_time_s"]
              for p, m in after.items() if p.parent.name == "04_poses"]
    assert cached[0].stat().st_mtime <= min(starts) + 1.0  # (manifest times have 1 s resolution)


def test_batch_notebook_runs_a_table_and_shows_the_gallery_inline(tmp_path):
    import papermill as pm

    from avatarclip_core.paths import shipped_dir

    out = tmp_path / "batch.ipynb"
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    pm.execute_notebook(str(shipped_dir("notebooks") / "batch.ipynb"), str(out), kernel_name="python3",
                        progress_bar=False, cwd=str(tmp_path),
                        parameters=dict(batch_name="nb", preset="tiny", clip_model="tiny", workers=2,
                                        exp_root=str(tmp_path / "exp"),
                                        prompts_csv="name,shape,appearance,motion\nsolo,a tall person,a red person,"
                                                    "raising both arms"))
    html_out = "".join("".join(o.get("data", {}).get("text/html", "")) for c in json.loads(out.read_text())["cells"]
                       if c["cell_type"] == "code" for o in c.get("outputs", []))
    assert "class='card avatar' data-run='solo'" in html_out and "data:image/gif;base64," in html_out
    assert (tmp_path / "exp" / "nb" / "solo" / "06_video" / "avatar.glb").is_file()
    assert (tmp_path / "exp" / "nb" / "index.html").is_file() and (tmp_path / "exp" / "nb" / "summary.csv").is_file()


def test_summary_says_a_stage_the_row_leaves_out_was_not_needed(tmp_path):
    """A row with a motion file skips stage 4: summary.csv says "not needed" there, and the row is ok."""
    from avatarclip_core.batch import NOT_NEEDED, BatchRow, row_status, write_summary

    ok = {"status": "ok"}
    own = BatchRow("own_clip", {"shape": "a person", "appearance": "a clown", "motion": ""},
                   results={"04_poses": {"status": NOT_NEEDED, "stage": "04_poses"}, "05_motion": ok})
    failed = BatchRow("broken", {"shape": "a person", "appearance": "a clown", "motion": "waving"},
                      results={"04_poses": {"status": "skipped", "stage": "04_poses", "error": "upstream 01 failed"},
                               "05_motion": ok})
    (tmp_path / "own_clip" / "05_motion").mkdir(parents=True)
    (tmp_path / "own_clip" / "05_motion" / "manifest.json").write_text(json.dumps({"wall_time_s": 1.5}))
    assert row_status(own) == ("ok", "") and row_status(failed) == ("failed", "upstream 01 failed")
    write_summary([own, failed], tmp_path, ["04_poses", "05_motion"])
    with open(tmp_path / "summary.csv", newline="") as f:
        rows = {r["name"]: r for r in csv.DictReader(f)}
    assert rows["own_clip"]["04_poses.seconds"] == "not needed" and rows["own_clip"]["05_motion.seconds"] == "1.5"
    assert rows["broken"]["04_poses.seconds"] == "" and rows["broken"]["status"] == "failed"
