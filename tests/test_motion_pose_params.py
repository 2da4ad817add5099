"""Stage 5 renders with the run's pose-render settings (the `poses` section), not PoseParams' class defaults;
generation timing is returned explicitly (`timings`), not kept on the functions."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from avatarclip_core.cameras import orbit_cameras
from avatarclip_core.motion import (MotionOptimizer, MotionParams, PoseParams, generate_motion, generate_poses,
                                    generators, interpolate_motion)


class _StubEncoder:
    """Just enough of an encoder for `text_embedding`; the image side is replaced by `_record_scores`."""

    name = "stub"

    def encode_text(self, texts):
        return torch.ones(len(texts), 4)


@pytest.fixture
def recorded(monkeypatch):
    """Replace generators.clip_pose_scores by a recorder of its camera and colour arguments."""
    calls = []

    def fake(encoder, body, poses, text_e, cameras, image_size, color=(0.78, 0.68, 0.6), background=0.0,
             sigma=0.5):
        calls.append(dict(cameras=cameras, image_size=image_size, color=tuple(color), background=background,
                          sigma=sigma))
        return torch.zeros(poses.shape[0])

    monkeypatch.setattr(generators, "clip_pose_scores", fake)
    return calls


def _cands():
    return torch.randn(2, 22, 3, generator=torch.Generator().manual_seed(0)) * 0.3


OPT = dict(generator="optimize", num_iterations=2, clip_coef=0.001, image_size=32, azimuth_deg=-30.0)


def test_motion_optimizer_renders_with_the_given_pose_params(recorded):
    params = MotionParams(**OPT)
    pose_params = PoseParams(distance=3.1, elevation_deg=10.0, fov_deg=45.0, color=(0.2, 0.3, 0.4), background=0.5)
    MotionOptimizer(params, _StubEncoder(), object(), pose_params=pose_params).run(
        _cands(), "raising both arms", progress=False, generator=torch.Generator().manual_seed(0))
    assert len(recorded) == 2
    want = orbit_cameras(3.1, [10.0], [-30.0], 45.0)
    for call in recorded:
        cams = call["cameras"]
        assert len(cams) == 1 and cams.fov_deg == pytest.approx(45.0)
        assert torch.allclose(cams.c2w, want.c2w, atol=1e-6)
        assert float(cams.eye.norm()) == pytest.approx(3.1, abs=1e-5)
        assert call["color"] == pytest.approx((0.2, 0.3, 0.4)) and call["background"] == 0.5
        assert call["image_size"] == 32 and call["sigma"] == params.sigma  # these stay MotionParams'


def test_motion_optimizer_default_cameras_are_the_pose_params_defaults(recorded):
    MotionOptimizer(MotionParams(**OPT), _StubEncoder(), object()).run(
        _cands(), "walking", progress=False, generator=torch.Generator().manual_seed(0))
    d = PoseParams()
    want = orbit_cameras(d.distance, [d.elevation_deg], [-30.0], d.fov_deg)
    assert torch.allclose(recorded[0]["cameras"].c2w, want.c2w, atol=1e-6)
    assert recorded[0]["color"] == pytest.approx(d.color) and recorded[0]["background"] == d.background


def test_generate_motion_forwards_pose_params_and_reports_time(recorded):
    far, near = PoseParams(distance=4.0), PoseParams(distance=1.5)
    timings: dict = {}
    for pp in (far, near):
        generate_motion(_cands(), MotionParams(**OPT), encoder=_StubEncoder(), text="walking", body=object(),
                        progress=False, generator=torch.Generator().manual_seed(0), pose_params=pp, timings=timings)
    dist = [float(c["cameras"].eye.norm()) for c in recorded]
    assert dist[:2] == pytest.approx([4.0, 4.0], abs=1e-5) and dist[2:] == pytest.approx([1.5, 1.5], abs=1e-5)
    assert isinstance(timings["seconds"], float) and timings["seconds"] >= 0
    assert not hasattr(generate_motion, "last_seconds")
    # "interpolate" ignores pose_params and is unchanged
    a, _ = generate_motion(_cands(), MotionParams(), pose_params=far)
    assert torch.equal(a, interpolate_motion(_cands(), MotionParams())[0])


def test_generate_poses_reports_time_through_the_timings_dict(monkeypatch):
    out = (torch.zeros(1, 22, 3), torch.ones(1), torch.zeros(1, dtype=torch.long))
    monkeypatch.setitem(generators.POSE_GENERATOR_FUNCTIONS, "library", lambda *a, **k: out)
    timings: dict = {}
    got = generate_poses(_StubEncoder(), "walking", object(), PoseParams(), timings=timings)
    assert got is out and isinstance(timings["seconds"], float) and timings["seconds"] >= 0
    assert generate_poses(_StubEncoder(), "walking", object(), PoseParams()) is out  # timings is optional
    assert not hasattr(generate_poses, "last_seconds")


def test_run_motion_passes_the_runs_poses_section(tmp_path, monkeypatch, anny_body):
    """pipeline.run_motion hands conf.params("poses") to generate_motion, so `--set poses.distance=…` reaches
    stage 5."""
    from avatarclip_core import motion, pipeline
    from avatarclip_core.config import load_config
    from avatarclip_core.io import atomic_save_npz
    from avatarclip_core.rundir import RunDir

    conf = load_config("tiny", overrides={"poses.distance": 3.3, "motion.generator": "optimize"},
                       prompts={"motion": "raising both arms"})
    seen = {}

    def fake_generate(candidates, params, **kw):
        seen.update(kw)
        return interpolate_motion(candidates, MotionParams())

    monkeypatch.setattr(motion, "generate_motion", fake_generate)
    monkeypatch.setattr(pipeline, "load_encoder", lambda conf: _StubEncoder())
    monkeypatch.setattr(pipeline, "body_of", lambda conf: anny_body)
    monkeypatch.setattr(pipeline, "render_body_motion", lambda *a, **k: np.zeros((60, 16, 16, 3), np.uint8))
    monkeypatch.setattr(pipeline, "write_mp4", lambda *a, **k: None)
    run = RunDir(tmp_path / "run")

    def write_candidates(folder):
        atomic_save_npz(folder / "candidates.npz", poses=_cands().numpy(), scores=np.ones(2, np.float32),
                        library_index=np.zeros(2, np.int64))
        return {}

    run.stage("04_poses", {}, write_candidates, log=lambda s: None)
    pipeline.run_motion(run, conf, progress=False)
    assert seen["pose_params"] is conf.params("poses") and seen["pose_params"].distance == 3.3
    assert (run.path("05_motion") / "motion.bvh").is_file()


def test_stage5_inputs_include_the_poses_section_only_when_optimizing():
    """`--set poses.distance=…` must invalidate stage 5 when its optimiser renders with the poses cameras."""
    from avatarclip_core.config import load_config
    from avatarclip_core.pipeline import stage_inputs

    def inputs(generator, distance):
        conf = load_config("tiny", overrides={"poses.distance": distance, "motion.generator": generator},
                           prompts={"motion": "raising both arms"})
        return stage_inputs("05_motion", conf)

    assert inputs("optimize", 2.4) != inputs("optimize", 3.1)
    assert inputs("interpolate", 2.4) == inputs("interpolate", 3.1)
