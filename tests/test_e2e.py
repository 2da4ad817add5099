"""End to end, as a user runs it: `avatarclip run` executes the six notebooks under papermill (tiny preset),
with oracle encoders standing in for CLIP (docs/design.md §4), and fails fast on bad input."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import trimesh

from avatarclip_core.video import read_video

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "avatarclip_core", "run", "--preset", "tiny"]


def run_cli(*args, exp_root, timeout=900):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([*CLI, "--exp-root", str(exp_root), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def redness(rgb: np.ndarray) -> float:
    """Mean R − (G + B)/2 over foreground (non-black) pixels/vertices, colours in [0, 1]."""
    rgb = rgb.reshape(-1, 3).astype(np.float64)
    fg = rgb.max(1) > 0.02
    rgb = rgb[fg]
    return float((rgb[:, 0] - 0.5 * (rgb[:, 1] + rgb[:, 2])).mean())


@pytest.fixture(scope="module")
def red_run(tmp_path_factory):
    exp = tmp_path_factory.mktemp("exp")
    start = time.time()
    proc = run_cli("--run", "red", "--clip", "oracle:color", "--shape", "a person", "--appearance", "red",
                   "--motion", "raising both arms", "--set", "texture.ablation.add_no_texture=false",
                   exp_root=exp)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return exp / "red", time.time() - start, exp, proc.stdout


def test_all_six_notebooks_leave_every_artifact(red_run):
    run, _, _, _ = red_run
    expected = ["run.conf", "01_shape/shape.json", "01_shape/body.ply", "01_shape/preview.png",
                "02_neus_init/views/cameras.json", "02_neus_init/ckpt.pt", "02_neus_init/preview.png",
                "03_texture/progress.mp4", "03_texture/avatar.ply", "04_poses/candidates.npz",
                "04_poses/candidate_00.png", "05_motion/motion.npz", "05_motion/motion.bvh",
                "05_motion/preview.mp4", "06_video/avatar.glb", "06_video/avatar.mp4"]
    for rel in expected:
        assert (run / rel).is_file() and (run / rel).stat().st_size > 0, rel
    assert list((run / "03_texture").glob("ckpt_*.pt")) and list((run / "03_texture" / "progress").glob("*.png"))
    assert len(list((run / "02_neus_init" / "views").glob("*.png"))) == len(
        json.loads((run / "02_neus_init/views/cameras.json").read_text())["frames"])
    for nb in ("01_coarse_shape", "02_neus_init", "03_clip_texturing", "04_pose_retrieval", "05_motion",
               "06_video_render"):
        executed = json.loads((run / "notebooks" / f"{nb}.ipynb").read_text())
        assert executed["metadata"]["papermill"]["exception"] is None or \
            executed["metadata"]["papermill"]["exception"] is False
    for stage in ("01_shape", "02_neus_init", "03_texture", "04_poses", "05_motion", "06_video"):
        manifest = json.loads((run / stage / "manifest.json").read_text())
        assert manifest["stage"] == stage and manifest["wall_time_s"] >= 0 and manifest["inputs_hash"]
    poses = np.load(run / "04_poses/candidates.npz")["poses"]
    assert poses.ndim == 3 and poses.shape[1:] == (22, 3) and 1 <= len(poses) <= 5
    motion = np.load(run / "05_motion/motion.npz")
    assert motion["poses"].shape == (60, 22, 3) and motion["root_translation"].shape == (60, 3)
    assert motion["foot_contact"].shape == (60, 4) and motion["root_translation"].any()  # the body moves, grounded
    contact = json.loads((run / "05_motion/manifest.json").read_text())["figures"]["contact"]
    assert contact["after"]["max_float_cm"] < 2 and contact["after"]["max_penetration_cm"] < 2
    # feet planted part of the time; skating stays below a captured walk's (0.93 m/s; tests/test_contact.py). The
    # raw motion's skating is no reference: a floating foot is never "in contact", so hovering reads as 0 m/s.
    assert max(contact["contact_fraction"].values()) > 0.2 and contact["after"]["foot_skate_m_s"] < 0.9
    frames, fps = read_video(run / "06_video/avatar.mp4")
    assert len(frames) == 60 and fps == pytest.approx(float(motion["fps"]))
    assert frames.std() > 5  # not a blank video: the avatar is visible and moves
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 0.5


def test_red_prompt_makes_the_avatar_redder(red_run):
    run, _, _, _ = red_run
    progress = sorted((run / "03_texture" / "progress").glob("*.png"))
    assert progress[0].name == "000000.png"
    first = iio.imread(progress[0])[..., :3] / 255.0
    last = iio.imread(progress[-1])[..., :3] / 255.0
    half = first.shape[1] // 2  # left half: the unlit texture head
    assert redness(last[:, :half]) > redness(first[:, :half]) + 0.1
    mesh = trimesh.load(run / "03_texture/avatar.ply", process=False)
    colors = np.asarray(mesh.visual.vertex_colors)[:, :3] / 255.0
    assert redness(colors) > 0.1


def test_second_run_is_a_noop(red_run):
    run, _, exp, _ = red_run
    before = {s: json.loads((run / s / "manifest.json").read_text())["finished"]
              for s in ("01_shape", "03_texture", "06_video")}
    start = time.time()
    proc = run_cli("--run", "red", "--clip", "oracle:color", "--shape", "a person", "--appearance", "red",
                   "--motion", "raising both arms", "--set", "texture.ablation.add_no_texture=false",
                   exp_root=exp)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("skipped") == 6
    after = {s: json.loads((run / s / "manifest.json").read_text())["finished"] for s in before}
    assert after == before and time.time() - start < 30


def test_the_run_prints_its_estimated_time_per_stage_first(red_run):
    out = red_run[3]
    estimate = out.index("estimated time on CPU (an estimate")
    assert estimate < out.index("== 01_coarse_shape ==")  # before the first stage starts
    lines = out[estimate:].splitlines()[1:8]
    assert [ln.split()[0] for ln in lines] == ["01_shape", "02_neus_init", "03_texture", "04_poses", "05_motion",
                                               "06_video", "total"]
    assert all("~" in ln for ln in lines) and "80 steps × (400 rays + 1 CLIP image(s))" in lines[2]


def test_eval_scores_the_red_avatar_with_another_model_only(red_run):
    from avatarclip_core.evaluate import evaluate_run
    from avatarclip_core.guidance.test_encoders import ColorOracle

    run, _, exp, _ = red_run
    cli = [sys.executable, "-m", "avatarclip_core", "eval", "red", "--exp-root", str(exp), "--clip", "oracle:color"]
    start = time.time()
    refused = subprocess.run(cli, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "guided this avatar" in refused.stderr and "--force" in refused.stderr
    assert time.time() - start < 20 and not (run / "eval.json").exists()
    from avatarclip_core.__main__ import main

    assert main([*cli[3:], "--force"]) == 0  # in this process: torch is loaded already
    figures = json.loads((run / "eval.json").read_text())["evaluations"]["color-oracle"]
    assert figures["r_precision"] == 1.0 and figures["rank_mean"] == 1.0 and figures["views"] == 8
    assert figures["distractors"] == 24 and figures["clip_score"] > 0.5 and len(figures["clip_score_per_view"]) == 8
    assert figures["prompt"] == "a 3D rendering of red in unreal engine"
    manifest = json.loads((run / "03_texture/manifest.json").read_text())
    assert figures["stage03_inputs_hash"] == manifest["inputs_hash"]
    assert manifest["evaluations"]["color-oracle"] == figures  # also in the scored stage's manifest
    blue = evaluate_run(run, ColorOracle(), prompt="a blue person", force=True, write=False)
    assert blue["r_precision"] < 0.5 and blue["clip_score"] < figures["clip_score"] - 0.5


def test_motion_file_drives_the_avatar_and_skips_stage_4(red_run, tmp_path):
    """`--motion-file`: one CLI run of stages 04-06 on a copy of the red run; stage 4 is skipped, stage 5
    retargets the user's BVH (Mixamo names, fingers, centimetres) onto the run's stage-1 body, stage 6 animates."""
    import shutil

    import torch
    from test_retarget import _mixamo_rig, _motion, _write_rig

    from avatarclip_core.body import get_body_model
    from avatarclip_core.motion import retarget_bvh

    run = red_run[0]
    exp = tmp_path / "exp"
    shutil.copytree(run, exp / "mf", ignore=shutil.ignore_patterns(".cache", "notebooks"))
    poses, root = _motion(T=20, seed=4)
    bvh = _write_rig(tmp_path / "my clip.bvh", poses, root, *_mixamo_rig(), scale=100.0)
    before = json.loads((exp / "mf/06_video/manifest.json").read_text())["inputs_hash"]
    # In-process stages: the notebooks themselves are exercised by red_run; three more kernels cost minutes on CI.
    proc = run_cli("--run", "mf", "--clip", "oracle:color", "--stages", "04,05,06", "--motion-file", str(bvh),
                   "--no-notebooks", exp_root=exp)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "[04_poses] not needed" in proc.stdout and "== 04_pose_retrieval ==" not in proc.stdout
    m5 = json.loads((exp / "mf/05_motion/manifest.json").read_text())
    assert m5["inputs"]["file_sha256"] and m5["inputs"]["prompts"] == {} and list(m5["upstream"]) == ["01_shape"]
    assert m5["figures"]["skeleton"] == "mixamo" and m5["figures"]["unit"] == "cm"
    # motion.npz = the retarget of the file onto the stage-1 body
    body = get_body_model("anny")
    shape = torch.tensor(json.loads((exp / "mf/01_shape/shape.json").read_text())["shape"])
    _, rest = body.rest(shape[None])
    clip = retarget_bvh(bvh, rest[0])
    motion = np.load(exp / "mf/05_motion/motion.npz")
    assert motion["poses"].shape == (20, 22, 3) and np.allclose(motion["poses"], clip.poses.numpy(), atol=1e-5)
    assert np.allclose(motion["root_translation"], clip.root_translation.numpy(), atol=1e-5)
    assert np.abs(motion["root_translation"][-1, 2] - motion["root_translation"][0, 2]) > 0.3  # it walks forward
    # stage 6 re-ran on the new motion: GLB and video of 20 frames
    m6 = json.loads((exp / "mf/06_video/manifest.json").read_text())
    assert m6["inputs_hash"] != before or m6["upstream"]["05_motion"] == m5["inputs_hash"]
    assert m6["upstream"]["05_motion"] == m5["inputs_hash"]
    frames, _ = read_video(exp / "mf/06_video/avatar.mp4")
    assert len(frames) == 20 and frames.std() > 5
    glb = trimesh.load(exp / "mf/06_video/avatar.glb")
    assert len(glb.geometry) >= 1 and (exp / "mf/06_video/avatar.glb").stat().st_size > 10_000


def test_size_oracle_tall_picks_taller_body_than_short(tmp_path):
    heights = {}
    for word in ("tall", "short"):
        proc = run_cli("--run", word, "--clip", "oracle:size", "--shape", f"a {word} person", "--stages", "01",
                       exp_root=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        heights[word] = json.loads((tmp_path / word / "01_shape/manifest.json").read_text())["figures"]["height_m"]
    assert heights["tall"] > heights["short"] + 0.1


@pytest.mark.parametrize("args, message", [
    (["--shape", "   ", "--stages", "01"], "prompts.shape is empty"),
    (["--preset", "huge", "--shape", "x"], "unknown preset 'huge'"),
    (["--shape", "x", "--set", "texture.schedule.iterations=-3"], "iterations"),
    (["--shape", "x", "--body", "smpl", "--stages", "01"], "SMPL_NEUTRAL"),
    (["--stages", "05", "--motion-file", "no/such/clip.bvh"], "no such file"),
    (["--stages", "05", "--motion-file", "clip.txt"], "motion.file"),
])
def test_bad_input_fails_fast_with_a_clear_error(tmp_path, args, message):
    start = time.time()
    proc = run_cli("--clip", "oracle:size", *args, exp_root=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert time.time() - start < 60
    assert not (tmp_path / "demo" / "01_shape").exists()  # nothing ran


def test_missing_clip_weights_fail_within_seconds(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "AVATARCLIP_CACHE": str(tmp_path / "cache")}
    start = time.time()
    proc = subprocess.run([*CLI, "--exp-root", str(tmp_path), "--shape", "a tall person", "--appearance", "a knight",
                           "--motion", "walking"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "ViT-B-32" in proc.stderr and str(tmp_path / "cache") in proc.stderr
    assert time.time() - start < 30
