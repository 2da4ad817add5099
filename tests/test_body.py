import math

import pytest
import torch

from avatarclip_core import skeleton
from avatarclip_core.body import get_body_model, stand_pose
from conftest import write_synthetic_smpl


def test_anny_rest_is_t_pose_in_avatar_frame(anny_body):
    v, j = anny_body.rest(anny_body.default_shape())
    assert v.shape == (1, 13718, 3) and j.shape == (1, 22, 3)
    assert anny_body.faces.shape == (27420, 3)
    height = (v[0, :, 1].max() - v[0, :, 1].min()).item()
    assert 1.5 < height < 1.8  # average adult, metres
    # Centred: pelvis on the y axis, vertical middle at 0; y is up (head above pelvis above feet).
    assert abs(j[0, 0, 0]) < 1e-5 and abs(j[0, 0, 2]) < 1e-5
    assert abs(v[0, :, 1].max() + v[0, :, 1].min()) < 1e-4
    J = skeleton.JOINT_INDEX
    assert j[0, J["head"], 1] > j[0, J["pelvis"], 1] > j[0, J["left_ankle"], 1]
    # Faces +z: toes are in front of the ankles; left is +x.
    assert j[0, J["left_foot"], 2] > j[0, J["left_ankle"], 2] + 0.05
    assert j[0, J["left_hip"], 0] > 0 > j[0, J["right_hip"], 0]
    # T-pose: both arm chains horizontal along ±x.
    for side, sign in (("left", 1), ("right", -1)):
        arm = j[0, J[f"{side}_wrist"]] - j[0, J[f"{side}_shoulder"]]
        arm = arm / arm.norm()
        assert arm[0] * sign > math.cos(math.radians(3))


def test_anny_skinning_weights(anny_body):
    w = anny_body.skin_weights
    assert w.shape == (13718, 22)
    assert (w >= 0).all() and torch.allclose(w.sum(1), torch.ones(13718), atol=1e-5)
    # Every joint drives some vertices (fingers folded into the wrists).
    assert (w.max(0).values > 0.4).all()


def test_anny_pose_moves_only_the_posed_chain(anny_body):
    pose = torch.zeros(22, 3)
    pose[skeleton.JOINT_INDEX["left_elbow"], 1] = math.pi / 2  # bend the left forearm
    rest = anny_body()
    posed = anny_body(pose=pose)
    moved = (posed.vertices - rest.vertices).norm(dim=-1)[0] > 1e-4
    w_arm = anny_body.skin_weights[:, [skeleton.JOINT_INDEX["left_elbow"], skeleton.JOINT_INDEX["left_wrist"]]].sum(1)
    assert (moved == (w_arm > 1e-4)).float().mean() > 0.999
    wrist = posed.joints[0, skeleton.JOINT_INDEX["left_wrist"]]
    elbow = posed.joints[0, skeleton.JOINT_INDEX["left_elbow"]]
    # Rotating +90° about y turns the +x forearm into −z.
    d = (wrist - elbow) / (wrist - elbow).norm()
    assert d[2] < -0.99


def test_stand_pose_fits_unit_sphere_for_all_bounded_shapes(anny_body):
    lo, hi = anny_body.shape_bounds()
    corners = torch.stack([lo, hi, anny_body.default_shape()])
    corners[0, 4], corners[1, 1] = hi[4], hi[1]  # tallest: oldest adult bound and largest height
    mesh = anny_body(shape=corners, pose=stand_pose())
    assert mesh.vertices.norm(dim=-1).max() < 0.99


def test_anny_shape_validation(anny_body):
    with pytest.raises(ValueError, match="phenotypes must lie in"):
        anny_body.rest(torch.tensor([[0.5, 0.5, 0.5, 0.5, 1.5, 0.5]]))
    with pytest.raises(ValueError, match=r"\(B, 6\)"):
        anny_body.rest(torch.zeros(1, 10))


def test_unknown_body_model():
    with pytest.raises(ValueError, match="unknown body model 'smplx'"):
        get_body_model("smplx")


def test_missing_smpl_file_error_says_where(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        get_body_model("smpl", smpl_dir=tmp_path)
    assert str(tmp_path) in str(err.value) and "anny" in str(err.value)


def test_smpl_adapter_on_synthetic_model(tmp_path):
    _, joints = write_synthetic_smpl(tmp_path)
    body = get_body_model("smpl", smpl_dir=tmp_path)
    assert body.shape_names[0] == "beta_0" and body.skin_weights.shape[1] == 22
    assert torch.allclose(body.skin_weights.sum(1), torch.ones(body.num_vertices))
    v, j = body.rest(torch.zeros(1, 10))
    # Joints regressed from the shaped template, then centred: offsets between joints are preserved.
    expected = torch.as_tensor(joints[:22], dtype=torch.float32)
    assert torch.allclose(j[0] - j[0, :1], expected - expected[:1], atol=1e-5)
    pose = torch.zeros(22, 3)
    pose[skeleton.JOINT_INDEX["left_shoulder"], 2] = math.pi / 2  # raise the left arm (+x → +y)
    mesh = body(pose=pose)
    d = mesh.joints[0, skeleton.JOINT_INDEX["left_elbow"]] - mesh.joints[0, skeleton.JOINT_INDEX["left_shoulder"]]
    r = j[0, skeleton.JOINT_INDEX["left_elbow"]] - j[0, skeleton.JOINT_INDEX["left_shoulder"]]
    assert torch.allclose(d, torch.stack([-r[1], r[0], r[2]]), atol=1e-5)  # rest bone rotated 90° about z
    assert d[1] > 0.2
    # Betas change the shape.
    v2, _ = body.rest(torch.ones(1, 10))
    assert (v2 - v).abs().max() > 1e-3
