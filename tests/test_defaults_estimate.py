"""The default preset follows the hardware (fast with a CUDA GPU, cpu without) and every run's time is estimated
per stage from loop counts × per-step costs (avatarclip_core/estimate.py)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from avatarclip_core import config, device
from avatarclip_core.config import load_config, load_run_config
from avatarclip_core.estimate import COSTS, estimate_stages, format_estimate

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("gpu, preset", [(True, "fast"), (False, "cpu")])
def test_a_new_run_starts_from_the_preset_of_its_hardware(monkeypatch, tmp_path, gpu, preset):
    monkeypatch.setattr(device, "cuda_available", lambda dev="auto": gpu if dev == "auto" else dev.startswith("cuda"))
    assert config.default_preset() == preset
    assert load_run_config(tmp_path / "new").preset == preset
    assert load_run_config(tmp_path / "new", overrides={"run.device": "cpu"}).preset == "cpu"  # device named
    assert load_run_config(tmp_path / "new", preset="tiny").preset == "tiny"                  # preset named


def test_device_names_decide_without_looking_and_no_gpu_stays_torch_free():
    assert device.cuda_available("cpu") is False and device.cuda_available("cuda:1") is True
    code = "import sys; from avatarclip_core.device import cuda_available; print(cuda_available(), 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}).stdout.split()
    assert out == ["False", "False"]


def test_cpu_preset_is_estimated_under_30_minutes_with_vit_b32_and_says_it_is_rougher():
    conf = load_config("cpu")
    assert conf.run.clip_model == "ViT-B-32"
    est = estimate_stages(conf, "cpu")
    assert sum(t for t, _ in est.values()) < 30 * 60
    assert estimate_stages(load_config("small"), "cpu")["03"][0] > 100 * est["03"][0]
    text = (ROOT / "confs" / "cpu.conf").read_text()
    assert "LOWER QUALITY" in text and "30,000" in text


def test_estimates_scale_with_the_loop_counts_and_the_device():
    base = load_config("tiny", overrides={"run.clip_model": "ViT-B-32"})
    twice = load_config("tiny", overrides={"run.clip_model": "ViT-B-32", "texture.schedule.iterations": 160,
                                       "texture.schedule.end_iter": 160})
    t1, t2 = estimate_stages(base, "cpu")["03"][0], estimate_stages(twice, "cpu")["03"][0]
    fixed = COSTS["cpu"]["fixed"]["03"] + COSTS["cpu"]["mesh"] * (48 / 256) ** 3
    assert t2 - fixed == pytest.approx(2 * (t1 - fixed), rel=1e-6)
    assert estimate_stages(base, "cuda")["03"][0] < t1 / 10
    assert estimate_stages(load_config("tiny", overrides={"run.clip_model": "ViT-L-14"}), "cpu")["03"][0] > 5 * t1
    text = format_estimate(base, "cpu", ["02", "03"])
    assert "an estimate" in text and "02_neus_init" in text and "03_texture" in text and "01_shape" not in text
    assert text.splitlines()[-1].split()[0] == "total" and "preset tiny" in text


def test_cli_says_which_preset_it_picked_and_that_cpu_is_rougher(tmp_path, monkeypatch, capsys, anny_body):
    from avatarclip_core.__main__ import main

    monkeypatch.setattr(device, "cuda_available", lambda dev="auto": False)  # a machine without a GPU
    rc = main(["run", "--exp-root", str(tmp_path), "--clip", "oracle:color", "--stages", "01", "--shape", "a person",
               "--no-notebooks", "--set", "shape.num_candidates=1", "--set", "shape.image_size=32"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "preset cpu: no CUDA GPU found" in out and "LOWER QUALITY" in out and "150 texture steps" in out
    assert out.index("LOWER QUALITY") < out.index("estimated time on CPU") < out.index("finished stages 01")
    assert "01_shape" in out and "2 candidate renders through CLIP" in out and "02_neus_init" not in out
    assert load_run_config(tmp_path / "demo").preset == "cpu"  # the run keeps the preset it started with
