"""A body frozen at a few shapes in a file (body/precomputed.py) stands in for anny where anny cannot be installed
(the GPU benchmark machine, bench/gpu.sh)."""
import os
import subprocess
from pathlib import Path

import pytest
import torch

from avatarclip_core.body import get_body_model, stand_pose
from avatarclip_core.body.precomputed import PrecomputedBody, save_precomputed_body
from avatarclip_core.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def stored(anny_body, tmp_path_factory):
    shapes = torch.stack([anny_body.default_shape(), torch.tensor([0.2, 0.6, 0.3, 0.7, 0.55, 0.4])])
    path = save_precomputed_body(tmp_path_factory.mktemp("body") / "body.npz", anny_body, shapes)
    return path, shapes


def test_precomputed_body_poses_like_anny(anny_body, stored):
    path, shapes = stored
    body = get_body_model("precomputed", body_file=path)
    assert isinstance(body, PrecomputedBody) and body.source == "anny" and body.shape_names == anny_body.shape_names
    assert torch.equal(body.default_shape(), shapes[0]) and torch.equal(body.sample_shapes(3), shapes[[0, 1, 0]])
    a, b = anny_body(shape=shapes[1], pose=stand_pose()), body(shape=shapes[1], pose=stand_pose())
    assert torch.allclose(a.vertices, b.vertices, atol=1e-5) and torch.allclose(a.joints, b.joints, atol=1e-5)
    assert torch.equal(body.faces, anny_body.faces) and torch.equal(body.skin_weights, anny_body.skin_weights)
    with pytest.raises(ValueError, match="not among the 2 shapes stored"):
        body.rest(torch.full((1, 6), 0.33))


def test_run_config_needs_the_body_file(stored, tmp_path):
    path, _ = stored
    conf = load_config("tiny", overrides={"run.body": "precomputed", "run.body_file": str(path)})
    assert conf.run.body == "precomputed"
    with pytest.raises(ConfigError, match="body_file"):
        load_config("tiny", overrides={"run.body": "precomputed", "run.body_file": str(tmp_path / "none.npz")})


def test_gpu_sh_dry_run_uses_the_precomputed_body_and_the_oracle(tmp_path):
    env = {**os.environ, "AVATARCLIP_GPU_PREP": str(tmp_path)}
    missing = subprocess.run(["bash", "bench/gpu.sh", "--dry-run"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert missing.returncode == 2 and "run python bench/gpu_prep.py" in missing.stderr
    (tmp_path / "body.npz").write_bytes(b"")
    (tmp_path / "wheels").mkdir()
    proc = subprocess.run(["bash", "bench/gpu.sh", "--dry-run"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = dict(ln.split(":", 1) for ln in proc.stdout.splitlines())
    assert "--no-index --no-deps" in lines["install"] and str(tmp_path / "wheels") in lines["install"]
    for part in ("--preset fast", "--clip oracle:color", "--body precomputed", str(tmp_path / "body.npz"),
                 "--device cuda", "--no-notebooks", "AVATARCLIP_TEST_ENCODERS=1"):
        assert part in lines["pipeline"], part
    assert "--memory-presets small full" in lines["bench"] and "--scale gpu" in lines["bench"]
    smoke = subprocess.run(["bash", "bench/gpu.sh", "--dry-run", "--device", "cpu", "--smoke"], cwd=ROOT, env=env,
                           capture_output=True, text=True).stdout
    assert "--preset tiny" in smoke and "--device cpu" in smoke and "--scale tiny" in smoke
