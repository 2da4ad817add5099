"""Tests of the open motion priors (avatarclip_core/motion/priors.py) and the pose/motion generators
(avatarclip_core/motion/generators.py): docs/method.md §6.1, §6.2 and Motion priors."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from avatarclip_core import skeleton
from avatarclip_core.motion import (MotionOptimizer, MotionParams, PoseParams, generate_motion, generate_poses,
                                    interpolate_motion, load_motion_vae, load_pose_vae, retrieve_poses)
from avatarclip_core.motion.bvh_retarget import DEFAULT_REST_JOINTS, retarget_bvh
from avatarclip_core.motion.pose_library import load_pose_library
from avatarclip_core.motion.metrics import motion_statistics
from avatarclip_core.motion.priors import (MOTION_VAE_PATH, POSE_VAE_PATH, axis_angle_to_rot6d, integrate_root,
                                           joint_positions, motion_features, mpjpe_mm, rot6d_to_rotmat,
                                           within_limits)

torch.set_num_threads(1)
DATA = Path(os.environ.get("AVATARCLIP_CMU_MOCAP",
                           Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cmu_mocap"))
FIGURES = json.loads((POSE_VAE_PATH.parent / "motion_priors.json").read_text())


@pytest.fixture(scope="module")
def pose_vae():
    return load_pose_vae()


@pytest.fixture(scope="module")
def motion_vae():
    return load_motion_vae()


@pytest.fixture(scope="module")
def body():
    from avatarclip_core.body import get_body_model

    return get_body_model("anny")


# ----------------------------------------------------------------------------------------------- priors
def test_priors_load_small_and_decode_shapes(pose_vae, motion_vae):
    for path in (POSE_VAE_PATH, MOTION_VAE_PATH):
        assert path.stat().st_size < 5e6
    z = torch.randn(3, 32)
    poses = pose_vae.decode(z)
    assert poses.shape == (3, 22, 3) and torch.equal(poses[:, 0], torch.zeros(3, 3))
    mu, logvar = pose_vae.encode(poses)
    assert mu.shape == logvar.shape == (3, 32)
    D = motion_vae.latent_dim  # the global code plus the per-frame codes
    assert D == motion_vae.config["latent_dim"] + 60 * motion_vae.config.get("frame_latent_dim", 0)
    m, root = motion_vae.decode_motion(torch.randn(2, D))
    assert m.shape == (2, 60, 22, 3) and torch.isfinite(m).all() and root.shape == (2, 60, 3)
    assert torch.equal(motion_vae.decode(torch.zeros(1, D)), motion_vae.decode_motion(torch.zeros(1, D))[0])
    with pytest.raises(ValueError, match="z must be"):
        motion_vae.decode_features(torch.zeros(1, D + 1))
    mu, logvar = motion_vae.encode(m, root)
    assert mu.shape == logvar.shape == (2, D)
    # gradients reach the latent although the weights are frozen
    z = torch.zeros(1, 32, requires_grad=True)
    pose_vae.decode(z).pow(2).sum().backward()
    assert z.grad.abs().sum() > 0 and not any(p.requires_grad for p in pose_vae.parameters())
    with pytest.raises(ValueError, match="60"):
        motion_vae.encode(torch.zeros(1, 30, 22, 3))


def test_motion_vae_per_frame_codes_reach_the_decoder_and_survive_save_load(tmp_path):
    """The hierarchical latent: z = [global code, one code per frame]; each part changes the decoded motion,
    the encoder gives every frame its own posterior, and the layout is restored from the saved config."""
    from avatarclip_core.motion.priors import MotionVAE, load_motion_vae, save_prior

    torch.manual_seed(0)
    m = MotionVAE(num_frames=8, latent_dim=4, width=16, num_layers=1, num_heads=2, ff_dim=32,
                  frame_latent_dim=2).eval()
    assert m.latent_dim == 4 + 8 * 2
    poses = torch.randn(3, 8, 22, 3) * 0.3
    mu, logvar = m.encode(poses, torch.randn(3, 8, 3) * 0.1)
    assert mu.shape == logvar.shape == (3, 20)
    assert not torch.allclose(mu[:, 4:6], mu[:, 6:8])  # frames 0 and 1 have their own codes
    z = torch.zeros(1, 20, requires_grad=True)
    f = m.decode_features(z)
    f[0, 5].sum().backward()
    assert z.grad[0, :4].abs().sum() > 0 and z.grad[0, 4 + 2 * 5:4 + 2 * 6].abs().sum() > 0
    bumped = z.detach().clone()
    bumped[0, 4 + 2 * 5] = 1.0
    assert not torch.allclose(m.decode_features(bumped), f.detach())
    back = load_motion_vae(save_prior(m, tmp_path / "m.pt"))
    assert back.latent_dim == 20 and back.config["frame_latent_dim"] == 2
    assert torch.allclose(back.decode_features(bumped), m.decode_features(bumped), atol=1e-2)  # float16 weights


def test_rot6d_round_trip_and_fk_match_skeleton():
    g = torch.Generator().manual_seed(0)
    aa = torch.randn(4, 22, 3, generator=g) * 0.7
    R = rot6d_to_rotmat(axis_angle_to_rot6d(aa))
    import roma

    assert torch.allclose(R, roma.rotvec_to_rotmat(aa), atol=1e-5)
    ours = joint_positions(R, DEFAULT_REST_JOINTS)
    tr, _ = skeleton.forward_kinematics(aa, DEFAULT_REST_JOINTS)
    assert torch.allclose(ours, tr[..., :3, 3], atol=1e-5)


@pytest.mark.skipif(not (DATA / "clips.csv").exists(), reason=f"CMU mocap data not at {DATA}")
def test_pose_vae_heldout_reconstruction(pose_vae):
    recorded = FIGURES["pose_vae"]["heldout_mpjpe_mm"]
    assert recorded < 20.0  # stated bound: held-out MPJPE below 2 cm on the anny skeleton
    lib = load_pose_library()
    assert FIGURES["split"]["test_clips"] == [i for i, s in zip(lib.clip_ids, lib.splits) if s == "test"]
    c = lib.splits.index("test")
    clip = retarget_bvh(DATA / lib.clip_paths[c], DEFAULT_REST_JOINTS, fps=_true_fps(lib.clip_ids[c]))
    poses = clip.poses[:: max(1, clip.poses.shape[0] // 40)][:40]
    with torch.no_grad():
        mu, _ = pose_vae.encode(poses)
        err = float(mpjpe_mm(pose_vae.decode_rotmat(mu), rot6d_to_rotmat(axis_angle_to_rot6d(poses[:, 1:])),
                             DEFAULT_REST_JOINTS))
    assert err < max(25.0, 2.5 * recorded), err


def _true_fps(clip_id: str) -> float:
    from avatarclip_core.motion.mocap_data import read_clip_table

    return next(r for r in read_clip_table(DATA) if r["cmu_clip_id"] == clip_id)["true_fps"]


def test_pose_samples_within_joint_limits(pose_vae):
    lim = pose_vae.extra["joint_limits"]
    recorded = FIGURES["pose_vae"]["samples_within_limits"]
    with torch.no_grad():
        samples = pose_vae.decode(torch.randn(1000, 32, generator=torch.Generator().manual_seed(1)))
    got = within_limits(samples, lim["lo"], lim["hi"])
    assert got["joints"] >= recorded["joints"] - 0.02 and got["poses"] >= recorded["poses"] - 0.05
    assert got["poses"] > 0.7  # most decoded N(0, I) samples are plausible everywhere
    # an implausible pose (knee bent backwards by 2 rad) is outside the limits
    bad = torch.zeros(1, 22, 3)
    bad[0, skeleton.JOINT_INDEX["left_knee"], 0] = -2.0
    assert within_limits(bad, lim["lo"], lim["hi"])["poses"] == 0.0


def test_motion_features_round_trip():
    """motion_features → integrate_root gives back the global orientation and root trajectory, re-based to face
    +z at x = z = 0 in frame 0; the features do not depend on the start heading or position."""
    import roma

    g = torch.Generator().manual_seed(4)
    T = 20
    poses = torch.randn(2, T, 22, 3, generator=g) * 0.2
    yaw = torch.cumsum(torch.full((2, T), 0.1), 1) + torch.tensor([[0.0], [2.5]])
    G = skeleton.yaw_rotmat(yaw) @ roma.rotvec_to_rotmat(poses[:, :, 0])
    poses[:, :, 0] = roma.rotmat_to_rotvec(G)
    root = torch.cumsum(torch.randn(2, T, 3, generator=g) * 0.03, 1) + torch.tensor([1.0, 0.0, -2.0])
    f = motion_features(poses, root)
    assert f.shape == (2, T, 136)
    R, r = integrate_root(f)
    y0 = skeleton.heading_yaw(G[:, 0])
    undo = skeleton.yaw_rotmat(-y0)[:, None]
    assert torch.allclose(R[:, :, 0], undo @ G, atol=1e-5)
    assert torch.allclose(R[:, :, 1:], roma.rotvec_to_rotmat(poses[:, :, 1:]), atol=1e-5)
    want = (undo @ (root - root[:, :1] * torch.tensor([1.0, 0.0, 1.0]))[..., None])[..., 0]
    assert torch.allclose(r, want, atol=1e-5)  # metres
    # turning the whole clip about +y and moving it horizontally changes nothing
    spin = skeleton.yaw_rotmat(torch.tensor(1.3))
    moved = poses.clone()
    moved[:, :, 0] = roma.rotmat_to_rotvec(spin @ G)
    assert torch.allclose(motion_features(moved, (spin @ root[..., None])[..., 0] + torch.tensor([5.0, 0.0, -3.0])),
                          f, atol=1e-4)


def test_motion_samples_move_along_a_root_trajectory(motion_vae):
    """Decoded N(0, I) samples (temperature 1): livelier than the earlier prior's (jitter 0.17 × the data's), as
    recorded, without flips in 99 % of joint-frames, along a root trajectory in metres."""
    rec = FIGURES["motion_vae"]
    data_jitter = rec["statistics"]["heldout_data"]["jitter_m_s2"]
    assert rec["jitter_ratio_samples_to_data"] > 0.3 and rec["heldout_mpjpe_mm"] < 95.0  # this build: 0.57, 76.3 mm
    with torch.no_grad():
        z = torch.randn(64, motion_vae.latent_dim, generator=torch.Generator().manual_seed(2))
        R = motion_vae.decode_rotmat(z)
        poses, root = motion_vae.decode_motion(z)
    st = motion_statistics(R, DEFAULT_REST_JOINTS)
    assert 0.3 * data_jitter < st["jitter_m_s2"] < 2.0 * data_jitter, (st, data_jitter)
    assert abs(st["jitter_m_s2"] / data_jitter - rec["jitter_ratio_samples_to_data"]) < 0.1  # as recorded
    assert st["ang_speed_p99_rad_s"] < 30.0  # < 1 rad per frame at 30 fps in 99 % of joints-frames
    assert torch.equal(root[:, 0, [0, 2]], torch.zeros(64, 2))
    speed = (root[:, 1:, [0, 2]] - root[:, :-1, [0, 2]]).norm(dim=-1) * 30  # m/s
    assert 0.1 < float(speed.mean()) < 3.0  # the data: 0.53 m/s
    # single-frame spikes: the data has them too (max 65 m/s at retarget seams, 99.9th percentile 3.5 m/s)
    assert float(speed.quantile(0.999)) < 10.0 and float(speed.max()) < 30.0
    assert float(root[..., 1].abs().max()) < 1.0  # root height within a metre of standing
    # frame 0 faces +z up to the small heading the decoded pelvis tilt itself carries
    assert float(skeleton.heading_yaw(rot6d_to_rotmat(axis_angle_to_rot6d(poses[:, 0, 0]))).abs().mean()) < 0.2


def test_motion_prior_targets():
    """The issue's bars: samples' jitter within 2× of the data's, held-out MPJPE not worse than the earlier prior's."""
    rec = FIGURES["motion_vae"]
    assert 0.5 <= rec["jitter_ratio_samples_to_data"] <= 2.0
    assert rec["heldout_mpjpe_mm"] <= 77.8  # the earlier prior without root


def test_pose_library_is_balanced():
    """No category holds more than the library's cap (30 %), every category contributes."""
    from collections import Counter

    lib = load_pose_library()
    counts = Counter(lib.categories[c] for c in lib.clip.tolist())
    cap = lib.settings["max_fraction"]
    assert cap <= 0.3 and max(counts.values()) <= cap * len(lib) + 1e-9, counts
    assert set(counts) == set(lib.categories) and len(counts) >= 6
    assert lib.settings["categories"] == dict(sorted(counts.items()))
    plain = lib.settings["categories_plain_farthest_point"]  # the previous, unbalanced method on the same poses
    assert max(plain, key=plain.get) == "dance" and plain["dance"] > cap * sum(plain.values())


# ----------------------------------------------------------------------------------------------- generators
def test_params_validate_generators():
    with pytest.raises(ValueError, match="generator"):
        PoseParams(generator="vposer").validate()
    with pytest.raises(ValueError, match="num_iterations"):
        PoseParams(num_iterations=-1).validate()
    with pytest.raises(ValueError, match="init_pose"):
        PoseParams(init_pose="a").validate()
    with pytest.raises(ValueError, match="generator"):
        MotionParams(generator="realnvp").validate()
    with pytest.raises(ValueError, match="num_frames"):
        MotionParams(generator="optimize", num_frames=30).validate()
    with pytest.raises(ValueError, match="recon_coef"):
        MotionParams(recon_coef=()).validate()
    with pytest.raises(ValueError, match="num_starts"):
        PoseParams(num_starts=0).validate()
    with pytest.raises(ValueError, match="prior_weight"):
        PoseParams(prior_weight=-1).validate()
    # the optimisers' fields do not change the library-embedding cache key
    assert PoseParams(generator="flow", lr=0.1, num_starts=3, prior_weight=0.0).render_key() == PoseParams().render_key()


def _wrist_height(body, poses):
    """(K,) lower wrist height minus head height (metres)."""
    J = body.forward(pose=poses).joints
    return torch.minimum(J[:, 20, 1], J[:, 21, 1]) - J[:, skeleton.JOINT_INDEX["head"], 1]


@pytest.mark.parametrize("generator", ["optimize", "latent", "flow"])
def test_pose_generators_raise_the_oracle_score(body, generator):
    """The optimisers improve the CLIP(-oracle) score of their runs and return them sorted."""
    from avatarclip_core.guidance.test_encoders import PoseOracle
    from avatarclip_core.motion.generators import POSE_GENERATOR_FUNCTIONS, clip_pose_scores
    from avatarclip_core.motion.retrieval import _cameras, text_embedding

    enc = PoseOracle()
    params = PoseParams(generator=generator, top_k=2, num_starts=2, num_iterations=0, lr=0.05, image_size=48,
                        azimuths_deg=(0.0,), init_std=0.3, init_pose="rest", sigma=1.0)
    fn = POSE_GENERATOR_FUNCTIONS[generator]
    _, s0 = fn(enc, "walking", body, params, progress=False, generator=torch.Generator().manual_seed(0))
    params.num_iterations = 10
    poses, s1 = fn(enc, "walking", body, params, progress=False, generator=torch.Generator().manual_seed(0))
    assert s1.mean() > s0.mean() + 0.02 and (s1[:-1] >= s1[1:]).all()
    fresh = clip_pose_scores(enc, body, poses, text_embedding(enc, "walking"), _cameras(params), 48, sigma=1.0)
    assert torch.allclose(fresh, s1, atol=1e-5)


#: the smallest settings at which "optimize" and "latent" reach the target for seeds 0, 1, 2 (docs/method.md §6.1)
RAISE = dict(top_k=1, num_starts=16, num_iterations=20, lr=0.1, image_size=48, azimuths_deg=(0.0,))


@pytest.mark.parametrize("generator", ["optimize", "latent", "flow"])
def test_optimisers_raise_both_arms_under_the_pose_oracle(body, generator):
    """'raising both arms' → both wrists above the head (FK of the returned candidates)."""
    from avatarclip_core.guidance.test_encoders import PoseOracle
    from avatarclip_core.motion.generators import POSE_GENERATOR_FUNCTIONS

    params = PoseParams(generator=generator, **RAISE)
    poses, scores = POSE_GENERATOR_FUNCTIONS[generator](PoseOracle(), "raising both arms", body, params,
                                                        progress=False, generator=torch.Generator().manual_seed(0))
    assert poses.shape == (1, 22, 3)
    margin = _wrist_height(body, poses)
    assert (margin > 0).all(), margin  # metres above the head joint


def test_multi_start_selection_keeps_the_best_starts(body, monkeypatch):
    """num_starts > top_k: every start is scored once (hard edges) and only the top_k best are optimised."""
    from avatarclip_core.guidance.test_encoders import PoseOracle
    from avatarclip_core.motion import generators

    seen = []
    real = generators.clip_pose_scores

    def spy(encoder, body_, poses, *a, **k):
        seen.append((poses.shape[0], a[-1] if len(a) >= 6 else k.get("sigma")))
        return real(encoder, body_, poses, *a, **k)

    monkeypatch.setattr(generators, "clip_pose_scores", spy)
    params = PoseParams(generator="latent", top_k=2, num_starts=6, num_iterations=0, image_size=32,
                        azimuths_deg=(0.0,), batch_size=4)
    poses, scores = generators.optimize_pose_latents(PoseOracle(), "raising both arms", body, params,
                                                     progress=False, generator=torch.Generator().manual_seed(3))
    assert [n for n, _ in seen] == [4, 2, 2] and seen[0][1] == 0.0 and seen[-1][1] == params.sigma
    z = torch.randn(6, 32, generator=torch.Generator().manual_seed(3))
    from avatarclip_core.motion.priors import load_pose_vae
    from avatarclip_core.motion.retrieval import _cameras, text_embedding

    all_scores = real(PoseOracle(), body, load_pose_vae().decode(z), text_embedding(PoseOracle(), "raising both arms"),
                      _cameras(params), 32, sigma=0.0)
    best = load_pose_vae().decode(z[all_scores.argsort(descending=True)[:2]])
    d = (poses[:, None] - best[None]).abs().amax((-1, -2))  # (2 returned, 2 best)
    assert (d.min(1).values < 1e-5).all() and (d.min(0).values < 1e-5).all()


def test_pose_flow_is_invertible_with_exact_log_density():
    from avatarclip_core.motion.flow import POSE_FLOW_PATH, PoseFlow, load_pose_flow
    from avatarclip_core.motion.priors import PoseVAE

    assert POSE_FLOW_PATH.stat().st_size < 2e6
    flow = load_pose_flow()
    u = torch.randn(4, 32, generator=torch.Generator().manual_seed(0))
    z, logdet = flow(u)
    back, logdet_inv = flow.inverse(z)
    assert torch.allclose(back, u, atol=1e-4) and torch.allclose(logdet_inv, -logdet, atol=1e-3)
    jac = torch.autograd.functional.jacobian(lambda x: flow(x[None])[0][0], u[0])
    assert abs(float(torch.linalg.slogdet(jac).logabsdet) - float(logdet[0])) < 1e-3
    normal = torch.distributions.Normal(0.0, 1.0)
    assert torch.allclose(flow.log_prob(z), normal.log_prob(u).sum(-1) - logdet, atol=1e-3)
    # the shipped figures: the flow explains held-out poses better than the VAE's N(0, I) and samples more valid poses
    fig = json.loads((POSE_FLOW_PATH.parent / "motion_priors.json").read_text())["pose_flow"]
    ll, smp = fig["loglik_nats_per_dim"], fig["samples"]
    assert ll["flow_heldout"] > ll["vae_prior_heldout"] + 0.2
    assert smp["flow"]["within_limits"]["poses"] > smp["vae_prior"]["within_limits"]["poses"]
    assert smp["flow"]["nearest_heldout_mpjpe_mm"] < smp["vae_prior"]["nearest_heldout_mpjpe_mm"]
    assert fig["vae_fingerprint"] == flow.extra["vae_fingerprint"]
    with pytest.raises(ValueError, match="build_pose_flow.py"):  # a flow is tied to the VAE it was trained on
        load_pose_flow(vae=PoseVAE())
    assert PoseFlow().mask.sum(0).min() >= 1  # complementary masks: every coordinate is transformed


def test_motion_optimizer_two_candidates(body):
    from avatarclip_core.guidance.test_encoders import PoseOracle

    cands = torch.zeros(2, 22, 3)
    cands[0, skeleton.JOINT_INDEX["left_shoulder"], 2] = 1.0
    cands[0, skeleton.JOINT_INDEX["right_shoulder"], 2] = -1.0
    cands[1, skeleton.JOINT_INDEX["left_knee"], 0] = 1.0
    params = MotionParams(generator="optimize", num_iterations=30, lr=0.1, image_size=32, clip_coef=0.001)
    opt = MotionOptimizer(params, PoseOracle(), body)
    poses, root = opt.run(cands, "raising both arms", progress=False, generator=torch.Generator().manual_seed(0))
    assert poses.shape == (60, 22, 3) and root.shape == (60, 3) and torch.isfinite(poses).all()
    assert torch.isfinite(root).all() and torch.equal(root[0, [0, 2]], torch.zeros(2))  # the decoded trajectory
    assert float(poses[:, 0].abs().max()) > 0  # with the decoded global orientation
    h = opt.history
    assert len(h) == 30 and h[-1]["recon"] < 0.4 * h[0]["recon"] and h[0]["clip"] > 0
    # the motion passes near each candidate (min over frames of the 6D error)
    six = axis_angle_to_rot6d(poses[:, 1:])
    err = (six[None] - axis_angle_to_rot6d(cands[:, 1:])[:, None]).pow(2).mean((-1, -2)).min(1).values
    assert (err < 0.06).all(), err


def test_generate_motion_dispatch():
    cands = torch.randn(3, 22, 3, generator=torch.Generator().manual_seed(3)) * 0.3
    a, _ = generate_motion(cands, MotionParams())
    b, _ = interpolate_motion(cands, MotionParams())
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="encoder"):
        generate_motion(cands, MotionParams(generator="optimize", num_iterations=1))
    m, r = generate_motion(cands[:1], MotionParams(generator="optimize", num_iterations=3, clip_coef=0.0),
                           progress=False)
    assert m.shape == (60, 22, 3) and r.shape == (60, 3)
