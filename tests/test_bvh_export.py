"""motion.bvh as written by `write_bvh`: valid BVH (bvhio reads it: names, hierarchy, channels, frame time), the same
joint positions as our forward kinematics once read back, and rotation channels unwrapped over time (the reason it
is not written with bvhio's writer, which converts every frame on its own)."""
from __future__ import annotations

import numpy as np
import roma
import torch

from avatarclip_core import skeleton
from avatarclip_core.motion import DEFAULT_REST_JOINTS, read_bvh, write_bvh


def _spin(T=90, turns=2.0):
    """A motion whose pelvis yaws through `turns` full turns while the arms wave: (T, 22, 3), (T, 3)."""
    t = torch.linspace(0, 1, T, dtype=torch.float64)
    poses = torch.zeros(T, 22, 3, dtype=torch.float64)
    yaw = roma.rotvec_to_rotmat(torch.stack([torch.zeros(T), 2 * np.pi * turns * t, torch.zeros(T)], -1))
    tilt = roma.rotvec_to_rotmat(torch.tensor([0.2, 0.0, 0.0], dtype=torch.float64))
    poses[:, 0] = roma.rotmat_to_rotvec(yaw @ tilt)
    poses[:, skeleton.JOINT_INDEX["left_shoulder"], 2] = 0.8 * torch.sin(6 * t)
    poses[:, skeleton.JOINT_INDEX["right_elbow"], 1] = 1.2 * torch.sin(4 * t)
    root = torch.stack([0.3 * t, 0.05 * torch.sin(8 * t), -0.2 * t], -1)
    return poses, root


def _motion_values(path):
    text = path.read_text().split("MOTION\n", 1)[1].splitlines()
    return np.array([[float(x) for x in line.split()] for line in text[2:]])


def test_written_bvh_is_valid_and_reads_back_to_the_same_joints(tmp_path):
    import bvhio

    poses, root = _spin()
    path = write_bvh(tmp_path / "motion.bvh", poses, root, 30.0, DEFAULT_REST_JOINTS)
    bvh = bvhio.readAsBvh(str(path))
    assert bvh.FrameCount == 90 and abs(bvh.FrameTime - 1 / 30) < 1e-8
    layout = bvh.Root.layout()
    names = [j.Name for j, _, _ in layout]
    assert sorted(names) == sorted(skeleton.JOINT_NAMES) and names[0] == "pelvis"
    index = {n: i for i, n in enumerate(names)}
    for j, _, _ in layout:
        for c in j.Children:  # the hierarchy is the 22-joint skeleton's
            assert skeleton.PARENTS[skeleton.JOINT_INDEX[c.Name]] == skeleton.JOINT_INDEX[j.Name]
        rot = ["Zrotation", "Xrotation", "Yrotation"]
        assert j.Channels == (["Xposition", "Yposition", "Zposition"] + rot if j.Name == "pelvis" else rot)
        assert (not j.Children) == (skeleton.JOINT_INDEX[j.Name] not in skeleton.PARENTS)
    tr, _ = skeleton.forward_kinematics(poses, DEFAULT_REST_JOINTS.double(), root)
    got = read_bvh(path).positions[:, [index[n] for n in skeleton.JOINT_NAMES]]
    assert np.abs(got - tr[..., :3, 3].numpy()).max() < 1e-4


def test_rotation_channels_are_unwrapped_over_time(tmp_path):
    poses, root = _spin(turns=2.0)
    v = _motion_values(write_bvh(tmp_path / "spin.bvh", poses, root, 30.0, DEFAULT_REST_JOINTS))
    assert v.shape == (90, 3 + 22 * 3)
    assert np.abs(np.diff(v[:, 3:], axis=0)).max() < 30.0  # 2 turns in 90 frames: 8° per frame, no 360° jumps
    yaw = v[:, 3:6]  # the pelvis' Z, X, Y channels
    assert np.ptp(yaw[:, 2]) > 700.0  # the yaw channel keeps counting past ±180°
