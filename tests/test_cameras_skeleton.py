import math

import pytest
import torch

from avatarclip_core import skeleton
from avatarclip_core.cameras import Cameras, eye_from_angles, look_at, orbit_cameras, unit_sphere_near_far


def test_look_at_is_opengl_and_orthonormal():
    c2w = look_at(torch.tensor([0.0, 0.0, 2.0]))
    R = c2w[:3, :3]
    assert torch.allclose(R.T @ R, torch.eye(3), atol=1e-6) and torch.det(R) > 0
    # Camera on +z looking at the origin: −z_cam points to the origin, +y_cam is world up, +x_cam is world +x.
    assert torch.allclose(-R[:, 2], torch.tensor([0.0, 0.0, -1.0]))
    assert torch.allclose(R[:, 1], torch.tensor([0.0, 1.0, 0.0])) and torch.allclose(R[:, 0], torch.tensor([1.0, 0, 0]))
    with pytest.raises(ValueError, match="coincide"):
        look_at(torch.zeros(3))


def test_eye_from_angles_front_side_top():
    assert torch.allclose(eye_from_angles(2.0, 0.0, 0.0), torch.tensor([0.0, 0.0, 2.0]), atol=1e-6)
    assert torch.allclose(eye_from_angles(2.0, 0.0, 90.0), torch.tensor([2.0, 0.0, 0.0]), atol=1e-6)
    assert eye_from_angles(2.0, 30.0, 0.0)[1] == pytest.approx(1.0, abs=1e-6)


def test_rays_and_projection_agree():
    cams = orbit_cameras(2.2, [-20.0, 20.0], [0.0, 140.0])
    H, W = 24, 32
    o, d = cams.rays(H, W)
    points = o + 1.7 * d  # points along the ray of every pixel centre
    uv, depth = cams.project(points.reshape(len(cams), -1, 3), H, W)
    v, u = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    assert torch.allclose(uv[0], torch.stack([u, v], -1).reshape(-1, 2).float(), atol=1e-3)
    assert (depth > 0).all()
    near, far = unit_sphere_near_far(o, d)
    assert torch.allclose(far - near, torch.full_like(near, 2.0), atol=1e-5)  # rays through the centre region
    with pytest.raises(ValueError, match="fov_deg"):
        Cameras(cams.c2w, fov_deg=190.0)


def test_fk_zero_pose_is_rest_and_lbs_identity():
    rest = torch.randn(22, 3)
    T, skin = skeleton.forward_kinematics(torch.zeros(22, 3), rest)
    assert torch.allclose(T[:, :3, 3], rest, atol=1e-6)
    v = torch.randn(50, 3)
    w = torch.softmax(torch.randn(50, 22), -1)
    assert torch.allclose(skeleton.linear_blend_skinning(v, w, skin), v, atol=1e-6)


def test_fk_rotates_children_about_the_joint():
    rest = torch.zeros(22, 3)
    for j, p in enumerate(skeleton.PARENTS[1:], start=1):
        rest[j] = rest[p] + torch.tensor([0.0, 0.1, 0.0])
    pose = torch.zeros(22, 3)
    pose[0] = torch.tensor([0.0, 0.0, math.pi / 2])  # root 90° about z: +y → −x
    T, _ = skeleton.forward_kinematics(pose, rest, root_translation=torch.tensor([1.0, 0, 0]))
    assert torch.allclose(T[3, :3, 3], torch.tensor([1.0 - 0.1, 0.0, 0.0]), atol=1e-6)
    with pytest.raises(ValueError, match=r"\(\.\.\., 22, 3\)"):
        skeleton.forward_kinematics(torch.zeros(21, 3), rest)


def test_mirror_pose_is_an_involution_and_swaps_sides():
    pose = torch.randn(4, 22, 3)
    assert torch.allclose(skeleton.mirror_pose(skeleton.mirror_pose(pose)), pose)
    m = skeleton.mirror_pose(pose)
    L, R = skeleton.JOINT_INDEX["left_elbow"], skeleton.JOINT_INDEX["right_elbow"]
    assert torch.allclose(m[:, L, 0], pose[:, R, 0]) and torch.allclose(m[:, L, 1:], -pose[:, R, 1:])
