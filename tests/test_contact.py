"""Root motion and foot contact (avatarclip_core/motion/contact.py), the motion metrics (motion/metrics.py) and
the floor in the videos (animate/floor.py): docs/method.md "Root motion and foot contact"."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from avatarclip_core import skeleton
from avatarclip_core.config import ConfigError
from avatarclip_core.motion import ContactParams, MotionParams, interpolate_motion
from avatarclip_core.motion.bvh_retarget import DEFAULT_REST_JOINTS as REST
from avatarclip_core.motion.bvh_retarget import read_bvh, retarget_bvh
from avatarclip_core.motion.contact import (LEG_JOINTS, align_floor, apply_contact, contact_root, detect_contact,
                                            foot_clearance, lock_feet, two_bone_ik, world_joints)
from avatarclip_core.motion.metrics import (foot_skate, jitter, joint_accelerations, joint_limit_violations,
                                           motion_metrics)
from avatarclip_core.motion.mocap_data import DEFAULT_DATA
from avatarclip_core.motion.pose_library import load_pose_library

torch.set_num_threads(1)
FPS = 30.0
J = skeleton.JOINT_INDEX


@pytest.fixture(scope="module")
def interpolated():
    """60 frames slerped through 5 library poses spread over the library (standing, stepping, dancing): a
    generated motion with a zero root, as stage 5's "interpolate" makes it."""
    lib = load_pose_library()
    idx = torch.linspace(0, len(lib.poses) - 1, 5).long()
    poses, root = interpolate_motion(lib.poses[idx], MotionParams(num_frames=60))
    assert not root.any()
    return poses, root


@pytest.fixture(scope="module")
def walk_clip():
    """A CMU walk (02_01) retargeted by the mocap loader's path and fps, its floor aligned to ours."""
    with open(DEFAULT_DATA / "clips.csv", newline="", encoding="utf-8") as f:
        row = next(r for r in csv.DictReader(f) if r["cmu_clip_id"] == "02_01")
    clip = retarget_bvh(DEFAULT_DATA / row["path"], REST, fps=float(row["true_fps"]))
    return clip.poses, align_floor(clip.poses, clip.root_translation, REST)


def _joints(poses, root):
    return world_joints(poses.double(), root.double(), REST.double())[0]


def test_contact_grounds_plants_and_changes_only_the_legs(interpolated, walk_clip):
    poses, root = interpolated
    out = apply_contact(poses, root, REST, FPS)
    assert out.root_from_contact and out.poses.dtype == poses.dtype
    p0, p1 = _joints(poses, root), _joints(out.poses, out.root_translation)
    low0, low1 = foot_clearance(p0, REST).min(1).values, foot_clearance(p1, REST).min(1).values
    assert low0.abs().max() > 0.05  # the generated motion hovers / sinks …
    assert low1.abs().max() < 0.02  # … the lowest foot is on the floor in every frame after the contact step
    assert foot_clearance(p1, REST).min() > -0.02  # and no foot joint sinks
    # the body travels: the root moves horizontally, every frame finite
    assert out.root_translation[:, [0, 2]].abs().max() > 0.05 and torch.isfinite(out.root_translation).all()
    # only the hips, knees and ankles rotate differently; everything else is bit-identical
    others = [j for j in range(22) if j not in LEG_JOINTS]
    assert torch.equal(out.poses[:, others], poses[:, others])
    assert (out.poses[:, list(LEG_JOINTS)] - poses[:, list(LEG_JOINTS)]).abs().max() > 1e-3
    # foot skating in contact: below the generated motion's and below the captured walk's (the same metric)
    skate0, skate1 = foot_skate(p0, REST, FPS), foot_skate(p1, REST, FPS)
    data_poses, data_root = walk_clip
    data_skate = foot_skate(_joints(data_poses, data_root), REST, FPS)
    assert skate1 < 0.75 * skate0 and skate1 < data_skate, (skate0, skate1, data_skate)
    # feet the post-process itself detects as in contact stay put (< 5 cm/s)
    c = out.contact[1:] & out.contact[:-1]
    feet = p1[:, [7, 8, 10, 11]][..., [0, 2]]
    assert c.sum() > 20 and ((feet[1:] - feet[:-1]).norm(dim=-1) * FPS)[c].mean() < 0.05


def test_contact_keeps_a_given_root_and_off_means_off(walk_clip):
    poses, root = walk_clip
    poses, root = poses[:90], root[:90]
    out = apply_contact(poses, root, REST, FPS)
    assert not out.root_from_contact
    assert torch.equal(out.root_translation[:, [0, 2]], root[:, [0, 2]])  # the captured path is kept
    assert foot_clearance(_joints(out.poses, out.root_translation), REST).min(1).values.abs().max() < 0.02
    off = apply_contact(poses, root, REST, FPS, ContactParams(enabled=False))
    assert torch.equal(off.poses, poses) and torch.equal(off.root_translation, root)
    with pytest.raises(ValueError, match="root_translation"):
        apply_contact(poses, root[:10], REST, FPS)


def test_auto_replaces_a_generator_root_that_makes_the_feet_skate(interpolated):
    """A generator's root that travels while the legs do not step (a CLIP-optimised prior motion can) is replaced
    by the contact-driven one under "auto"; "keep" keeps it and skates."""
    poses, _ = interpolated
    travelling = torch.zeros(poses.shape[0], 3)
    travelling[:, 2] = torch.arange(poses.shape[0]) / FPS  # 1 m/s forward
    auto = apply_contact(poses, travelling, REST, FPS)
    keep = apply_contact(poses, travelling, REST, FPS, ContactParams(root="keep"))
    assert auto.root_from_contact and not keep.root_from_contact
    assert torch.equal(keep.root_translation[:, [0, 2]], travelling[:, [0, 2]])
    skate_auto = foot_skate(_joints(auto.poses, auto.root_translation), REST, FPS)
    skate_keep = foot_skate(_joints(keep.poses, keep.root_translation), REST, FPS)
    assert skate_auto < 0.5 * skate_keep, (skate_auto, skate_keep)
    # "contact" replaces the horizontal root rather than adding to it: the same result as from a zero root
    forced = apply_contact(poses, travelling, REST, FPS, ContactParams(root="contact"))
    zero = apply_contact(poses, torch.zeros_like(travelling), REST, FPS, ContactParams(root="contact"))
    assert torch.allclose(forced.root_translation, zero.root_translation, atol=1e-6)


def test_contact_root_plants_the_stance_foot():
    """Stepping in place with the root fixed: the contact-driven root makes the body walk over the stance foot."""
    T = 60
    t = torch.arange(T) / FPS
    s, c = torch.sin(2 * np.pi * t), torch.cos(2 * np.pi * t)
    poses = torch.zeros(T, 22, 3)
    poses[:, J["left_hip"], 0], poses[:, J["right_hip"], 0] = -0.4 * s, 0.4 * s  # legs swing back and forth
    poses[:, J["left_knee"], 0] = 0.6 * c.clamp_min(0)  # a leg is bent (lifted) while it swings forward
    poses[:, J["right_knee"], 0] = 0.6 * (-c).clamp_min(0)
    root = contact_root(poses, REST, FPS)
    assert root[-1, 2] > 0.5 and root[:, 1].abs().max() == 0  # walks forward (+z), height left to grounding
    p = _joints(poses, root)
    c = foot_clearance(p, REST)
    lowest = c.argmin(1)
    feet = p[:, [7, 8, 10, 11]][..., [0, 2]]
    v = (feet[1:] - feet[:-1]).norm(dim=-1) * FPS
    same = lowest[1:] == lowest[:-1]  # frames where the same joint stays the lowest
    planted = v[torch.arange(T - 1)[same], lowest[1:][same]]
    assert planted.median() < 0.02 and v.max() > 0.5  # the stance joint stays, the swing foot moves


def test_detect_contact_hysteresis_and_flicker():
    T = 40
    joints = REST.double().expand(T, 22, 3).clone()
    h = torch.full((T,), 0.10, dtype=torch.float64)
    h[5:25] = 0.04  # between height_on (3 cm) and height_off (5 cm): not entered from above …
    h[10:20] = 0.01  # … entered below 3 cm, and kept while under 5 cm (frames 20–24)
    h[30], h[31] = 0.0, 0.0  # a 2-frame touch: dropped (min_frames 3)
    joints[:, 7, 1] += h
    c = detect_contact(joints, REST, FPS)[:, 0]
    assert c[10:25].all() and not c[:10].any() and not c[25:].any()
    moving = joints.clone()
    moving[:, 7, 0] += torch.arange(T) * 0.05  # 1.5 m/s: never in contact whatever the height
    assert not detect_contact(moving, REST, FPS)[:, 0].any()
    with pytest.raises(ConfigError, match="height_off"):
        ContactParams(height_on=0.1, height_off=0.05).validate()
    assert MotionParams.from_dict({"contact.height_on": 0.02}).contact.height_on == 0.02


def test_two_bone_ik_reaches_and_keeps_bone_lengths():
    g = torch.Generator().manual_seed(0)
    n = 64
    hip = torch.randn(n, 3, generator=g, dtype=torch.float64) * 0.1
    thigh = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=-1) * 0.4
    axis = torch.nn.functional.normalize(torch.linalg.cross(thigh, torch.randn(n, 3, generator=g,
                                                                                 dtype=torch.float64)), dim=-1)
    bend = torch.rand(n, generator=g, dtype=torch.float64) * 1.5 + 0.1
    import roma

    shin = (roma.rotvec_to_rotmat(axis * bend[:, None]) @ thigh[..., None])[..., 0] * (0.38 / 0.4)
    knee, ankle = hip + thigh, hip + thigh + shin
    # reachable targets: the ankle moved by up to 10 cm
    target = ankle + torch.randn(n, 3, generator=g, dtype=torch.float64) * 0.05
    swing, bend_r = two_bone_ik(hip, knee, ankle, target, axis)
    k2 = hip + (swing @ thigh[..., None])[..., 0]
    a2 = k2 + (swing @ bend_r @ shin[..., None])[..., 0]
    assert torch.allclose((k2 - hip).norm(dim=-1), thigh.norm(dim=-1)) and torch.allclose((a2 - k2).norm(dim=-1),
                                                                                          shin.norm(dim=-1))
    reach = (target - hip).norm(dim=-1) < 0.4 + 0.38 - 1e-3
    assert reach.sum() > 40 and (a2 - target).norm(dim=-1)[reach].max() < 1e-6
    # the knee turns about its hinge axis only
    assert torch.allclose(roma.rotmat_to_rotvec(bend_r), roma.rotmat_to_rotvec(bend_r).norm(dim=-1, keepdim=True)
                          * axis * torch.sign((roma.rotmat_to_rotvec(bend_r) * axis).sum(-1, keepdim=True)),
                          atol=1e-9)
    # an unreachable target: the leg straightens towards it, lengths kept
    far = hip + torch.nn.functional.normalize(target - hip, dim=-1) * 2.0
    swing, bend_r = two_bone_ik(hip, knee, ankle, far, axis)
    a3 = hip + (swing @ thigh[..., None])[..., 0] + (swing @ bend_r @ shin[..., None])[..., 0]
    direction = torch.nn.functional.normalize(a3 - hip, dim=-1)
    assert torch.allclose(direction, torch.nn.functional.normalize(far - hip, dim=-1), atol=1e-6)
    assert ((a3 - hip).norm(dim=-1) > (ankle - hip).norm(dim=-1) - 1e-9).all()


def test_lock_feet_holds_a_sliding_foot():
    """A standing pose whose left foot slides 20 cm sideways while on the floor: locking holds it."""
    T = 30
    poses = torch.zeros(T, 22, 3)
    poses[:, J["left_hip"], 2] = torch.linspace(0, 0.4, T)  # the left leg swings out: the foot slides
    root = torch.zeros(T, 3)
    contact = torch.zeros(T, 4, dtype=torch.bool)
    contact[:, [0, 2]] = True  # left ankle and toe in contact throughout
    out = lock_feet(poses, root, REST, contact, blend_frames=2)
    p0, p1 = _joints(poses, root), _joints(out, root)
    slide0 = (p0[:, 7, [0, 2]] - p0[0, 7, [0, 2]]).norm(dim=-1).max()
    slide1 = (p1[:, 7, [0, 2]] - p1[0, 7, [0, 2]]).norm(dim=-1).max()
    assert slide0 > 0.1 and slide1 < 0.005
    assert torch.equal(out[:, [j for j in range(22) if j not in LEG_JOINTS]],
                       poses[:, [j for j in range(22) if j not in LEG_JOINTS]])
    assert torch.equal(out[:, [J["right_hip"], J["right_knee"], J["right_ankle"]]],
                       poses[:, [J["right_hip"], J["right_knee"], J["right_ankle"]]])  # the free leg is untouched


def test_metrics_on_known_motions():
    T = 31
    still = REST.double().expand(T, 22, 3).clone()
    assert foot_skate(still, REST, FPS) == 0.0 and jitter(still, FPS) == 0.0
    sliding = still.clone()
    sliding[..., 0] += (torch.arange(T, dtype=torch.float64) * 0.01)[:, None]  # 0.3 m/s along x, on the floor
    assert foot_skate(sliding, REST, FPS) == pytest.approx(0.3)
    lifted = still.clone()
    lifted[..., 1] += 0.10
    figs = motion_metrics(torch.zeros(T, 22, 3), torch.tensor([[0.0, 0.1, 0.0]]).expand(T, 3), REST, FPS)
    assert figs["max_float_cm"] == pytest.approx(10.0, abs=1e-4) and figs["max_penetration_cm"] == 0.0
    assert foot_skate(lifted, REST, FPS) == 0.0  # 10 cm up: not in contact
    accel = still.clone()
    accel[..., 1] += (0.5 * 2.0 * (torch.arange(T, dtype=torch.float64) / FPS) ** 2)[:, None]  # 2 m/s² upwards
    assert jitter(accel, FPS) == pytest.approx(2.0, rel=1e-6)
    acc = joint_accelerations(accel, FPS)  # the per joint-frame terms jitter averages
    assert acc.shape == (T - 2, 22) and torch.allclose(acc, torch.full_like(acc, 2.0))
    lo, hi = -torch.ones(21, 3), torch.ones(21, 3)
    bad = torch.zeros(4, 22, 3)
    bad[0, 5, 0] = 2.0
    assert joint_limit_violations(bad, lo, hi) == pytest.approx(1 / (4 * 21))


def test_bvh_carries_the_root_trajectory(interpolated, tmp_path):
    from avatarclip_core.motion import write_bvh

    poses, root = interpolated
    out = apply_contact(poses, root, REST, FPS)
    path = write_bvh(tmp_path / "m.bvh", out.poses, out.root_translation, FPS, REST)
    clip = read_bvh(path)
    names = list(clip.names)
    pelvis = torch.as_tensor(clip.positions[:, names.index("pelvis")])
    assert torch.allclose(pelvis.double(), (REST[0] + out.root_translation).double(), atol=1e-5)
