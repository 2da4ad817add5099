"""Tests of avatarclip_core.motion: BVH retarget, pose library, retrieval, interpolation, BVH export."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import roma
import torch

from avatarclip_core import skeleton
from avatarclip_core.motion import (DEFAULT_REST_JOINTS, MotionParams, PoseParams, anchor_frames,
                                    bone_direction_error, interpolate_motion, load_pose_library, pose_distance,
                                    rank_poses, read_bvh, remove_heading, retarget_bvh, suppress_duplicates,
                                    write_bvh)
from avatarclip_core.motion.bvh_retarget import solve_rotations
from avatarclip_core.motion.pose_library import LIBRARY_PATH, farthest_point_selection, split_clips

torch.set_num_threads(1)
DATA = Path(os.environ.get("AVATARCLIP_CMU_MOCAP",
                           Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cmu_mocap"))
needs_data = pytest.mark.skipif(not (DATA / "clips.csv").exists(), reason=f"CMU mocap data not at {DATA}")
ICLONE_CLIP, DAZ_CLIP = "cc3_iclone/002/002_03.bvh", "daz_cgspeed/salsa/10.bvh"


def _fk_joints(poses, rest=DEFAULT_REST_JOINTS, root=None):
    tr, _ = skeleton.forward_kinematics(poses.double(), rest.double(), None if root is None else root.double())
    return tr[..., :3, 3]


def _random_poses(n, scale=0.6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 22, 3, generator=g, dtype=torch.float64) * scale


# ----------------------------------------------------------------------------------------------- retarget
@needs_data
@pytest.mark.parametrize("path", [ICLONE_CLIP, DAZ_CLIP])
def test_read_bvh_world_positions_match_bvhio_hierarchy(path):
    import bvhio

    clip = read_bvh(DATA / path)
    root = bvhio.readAsHierarchy(str(DATA / path))
    joints = [j for j, _, _ in root.layout()]
    assert [j.Name for j in joints] == clip.names
    for f in (0, clip.positions.shape[0] // 2):
        root.loadPose(f, recursive=True)
        ref = np.array([tuple(j.PositionWorld) for j in joints])
        assert np.abs(ref - clip.positions[f]).max() < 1e-3  # BVH units (cm)


def test_solve_rotations_recovers_positions_of_its_own_skeleton():
    poses = _random_poses(16, 0.5)
    joints = _fk_joints(poses)
    solved = solve_rotations(joints)
    assert solved.shape == (16, 22, 3) and solved.dtype == torch.float32
    assert (_fk_joints(solved) - joints).abs().max() < 1e-4
    for j in ("head", "left_wrist", "right_wrist", "left_foot", "right_foot"):
        assert solved[:, skeleton.JOINT_INDEX[j]].abs().max() == 0  # leaves stay at rest


def test_retarget_is_independent_of_heading_and_reads_our_own_bvh(tmp_path):
    poses = _random_poses(6, 0.4, seed=3).float()
    root = torch.randn(6, 3) * 0.2
    write_bvh(tmp_path / "m.bvh", poses, root, 30.0, DEFAULT_REST_JOINTS)
    clip = retarget_bvh(tmp_path / "m.bvh")
    assert clip.skeleton_type == "avatarclip22" and clip.poses.shape == (6, 22, 3)
    assert (_fk_joints(clip.poses) - _fk_joints(poses)).abs().max() < 1e-4
    moved = clip.root_translation.double() - root.double()  # our root starts at the origin, on the foot level
    assert (moved - moved[0]).abs().max() < 1e-4
    # a yaw of the whole capture changes only the root rotation
    yaw = roma.rotvec_to_rotmat(torch.tensor([0.0, 1.1, 0.0], dtype=torch.float64))
    base = solve_rotations(clip.joints.double())  # leaves at rest (no end-segment orientations given)
    turned = solve_rotations((yaw @ clip.joints.double()[..., None])[..., 0])
    assert torch.allclose(turned[:, 1:], base[:, 1:], atol=1e-4)
    assert torch.allclose(remove_heading(turned), remove_heading(base), atol=1e-4)


# ----------------------------------------------------------------------------------------------- library
def test_pose_library_file_is_small_finite_and_distinct():
    assert LIBRARY_PATH.exists() and LIBRARY_PATH.stat().st_size < 2e6
    lib = load_pose_library()
    N = len(lib)
    assert 100 <= N <= 5000 and lib.poses.shape == (N, 22, 3) and lib.poses.dtype == torch.float32
    assert torch.isfinite(lib.poses).all()
    flat = lib.poses.reshape(N, -1)
    d = torch.cdist(flat, flat, p=1) / flat.shape[1] + torch.eye(N) * 1e9  # mean |Δθ| between all pairs
    assert float(d.min()) > lib.settings["min_distance"] >= 0.05
    assert all(lib.splits[c] == "train" for c in lib.clip.tolist())  # held-out clips contribute nothing
    assert "test" in lib.splits and len(lib.clip_ids) == len(lib.splits) == len(lib.descriptions)
    assert torch.allclose(remove_heading(lib.poses[:200]), lib.poses[:200], atol=1e-4)  # faces +z
    assert lib.describe(0).startswith(lib.clip_ids[int(lib.clip[0])])
    assert len(lib.fingerprint) == 16


def test_farthest_point_selection_and_split_are_deterministic():
    poses = _random_poses(300, 0.3, seed=1).float()
    idx, dist = farthest_point_selection(poses, 50, 0.05)
    assert len(set(idx.tolist())) == len(idx) == 50 and (dist[1:-1] >= dist[2:]).all()
    sel = poses[idx].reshape(50, -1)
    d = torch.cdist(sel, sel, p=1) / 66 + torch.eye(50) * 1e9
    assert float(d.min()) >= float(dist[-1]) - 1e-6
    assert torch.equal(idx, farthest_point_selection(poses, 50, 0.05)[0])
    s = split_clips([f"c{i}" for i in range(40)], 0.25, seed=0)
    assert s.count("test") == 10 and s == split_clips([f"c{i}" for i in range(40)], 0.25, seed=0)
    # stratified: 25 % of each category of ≥ 3 clips (at least one), none of a smaller one; a category's split
    # does not change when another category's clips are added
    cats = ["a"] * 20 + ["b"] * 3 + ["c"] * 2
    s = split_clips([f"c{i}" for i in range(25)], 0.25, seed=0, categories=cats)
    assert s[:20].count("test") == 5 and s[20:23].count("test") == 1 and s[23:].count("test") == 0
    s2 = split_clips([f"c{i}" for i in range(30)], 0.25, seed=0, categories=cats + ["d"] * 5)
    assert s2[:25] == s
    with pytest.raises(ValueError, match="one category per clip"):
        split_clips(["a", "b"], 0.2, categories=["x"])


def test_remove_heading_undoes_any_yaw():
    poses = _random_poses(8, 0.4, seed=5).float()
    yaw = torch.zeros(8, 3)
    yaw[:, 1] = torch.linspace(-3.0, 3.0, 8)
    turned = poses.clone()
    turned[:, 0] = roma.rotmat_to_rotvec(roma.rotvec_to_rotmat(yaw) @ roma.rotvec_to_rotmat(poses[:, 0]))
    a, b = remove_heading(poses), remove_heading(turned)
    assert roma.rotmat_geodesic_distance(roma.rotvec_to_rotmat(a[:, 0]), roma.rotvec_to_rotmat(b[:, 0])).max() < 1e-4


# ----------------------------------------------------------------------------------------------- ranking
def test_duplicate_suppression_keeps_order_and_distinct_poses():
    base = _random_poses(6, 0.5, seed=2).float()
    poses = torch.cat([base[:3], base[:3] + 0.03, base[3:]])  # indices 3..5 duplicate 0..2 (Δ = 0.03 rad)
    order = torch.tensor([0, 3, 1, 4, 6, 2, 5, 7, 8])
    kept = suppress_duplicates(poses, order, 0.07, top_k=5)
    assert kept.tolist() == [0, 1, 6, 2, 7]  # order kept, duplicates 3 and 4 dropped
    for i in range(len(kept)):
        for j in range(i):
            assert float(pose_distance(poses[kept[i]], poses[kept[j]])) > 0.07


def test_ranking_sorted_by_score_and_fewer_than_k_downstream(tmp_path):
    poses = torch.zeros(50, 22, 3)
    poses[10] = 0.2
    poses[20] = -0.2  # only three distinct poses (mean |Δθ| ≥ 0.2) in the whole set
    scores = torch.linspace(0, 1, 50).flip(0)
    scores[20] = 2.0
    idx = rank_poses(scores, poses, PoseParams(top_k=5, pre_topk=40))
    assert idx.tolist() == [20, 0, 10]  # K' = 3 < 5, sorted by score descending
    assert (scores[idx][:-1] >= scores[idx][1:]).all()
    motion, root = interpolate_motion(poses[idx], MotionParams(num_frames=60))
    assert motion.shape == (60, 22, 3) and root.shape == (60, 3)
    assert torch.equal(motion[anchor_frames(3, 60)], poses[idx])
    write_bvh(tmp_path / "motion.bvh", motion, root, 30.0, DEFAULT_REST_JOINTS)
    assert (tmp_path / "motion.bvh").stat().st_size > 0


# ----------------------------------------------------------------------------------------------- motion
def test_interpolation_passes_through_anchors_and_is_smooth():
    cands = _random_poses(5, 0.6, seed=4).float()
    assert anchor_frames(5, 60).tolist() == [0, 14, 29, 44, 59]
    for ease, factor in ((False, 1.0), (True, 1.5)):
        motion, root = interpolate_motion(cands, MotionParams(num_frames=60, ease=ease))
        assert torch.equal(motion[[0, 14, 29, 44, 59]], cands) and torch.equal(root, torch.zeros(60, 3))
        R = roma.rotvec_to_rotmat(motion.double())
        step = roma.rotmat_geodesic_distance(R[1:], R[:-1])  # (59, 22) per-frame angular change
        Rc = roma.rotvec_to_rotmat(cands.double())
        seg = roma.rotmat_geodesic_distance(Rc[1:], Rc[:-1]) / torch.tensor([14, 15, 15, 15.0])[:, None]
        assert float(step.max()) <= factor * float(seg.max()) + 1e-4
    static, _ = interpolate_motion(cands[:1], MotionParams(num_frames=10))
    assert torch.equal(static, cands[:1].expand(10, -1, -1))


def test_motion_params_validate():
    with pytest.raises(ValueError, match="num_frames"):
        MotionParams(num_frames=0).validate()
    with pytest.raises(ValueError, match="fps"):
        MotionParams(fps=-1).validate()
    with pytest.raises(ValueError, match="pre_topk"):
        PoseParams(top_k=5, pre_topk=3).validate()
    with pytest.raises(ValueError, match="dup_threshold"):
        PoseParams(dup_threshold=-0.1).validate()
    with pytest.raises(ValueError, match="num_frames"):
        interpolate_motion(torch.zeros(9, 22, 3), MotionParams(num_frames=8))
    with pytest.raises(ValueError):
        interpolate_motion(torch.zeros(0, 22, 3))


def test_bvh_export_round_trip_through_bvhio(tmp_path):
    import bvhio

    poses = _random_poses(7, 1.0, seed=6).float()
    root = torch.randn(7, 3) * 0.3
    path = write_bvh(tmp_path / "out" / "motion.bvh", poses, root, 30.0, DEFAULT_REST_JOINTS)
    assert not [p for p in path.parent.iterdir() if p.name != "motion.bvh"]  # no temp files left
    bvh = bvhio.readAsBvh(str(path))
    assert bvh.FrameCount == 7 and abs(bvh.FrameTime - 1 / 30) < 1e-6
    worst = 0.0
    for j, _, _ in bvh.Root.layout():
        q = torch.tensor([(k.Rotation.x, k.Rotation.y, k.Rotation.z, k.Rotation.w) for k in j.Keyframes],
                         dtype=torch.float64)
        ref = roma.rotvec_to_rotmat(poses[:, skeleton.JOINT_INDEX[j.Name]].double())
        worst = max(worst, float(roma.rotmat_geodesic_distance(roma.unitquat_to_rotmat(q), ref).max()))
    assert worst < 1e-4
    hier = bvhio.readAsHierarchy(str(path))
    joints = {j.Name: j for j, _, _ in hier.layout()}
    fk = _fk_joints(poses, root=root)
    for f in (0, 6):
        hier.loadPose(f, recursive=True)
        got = torch.tensor([tuple(joints[n].PositionWorld) for n in skeleton.JOINT_NAMES], dtype=torch.float64)
        assert (got - fk[f]).abs().max() < 1e-4
    cm = write_bvh(tmp_path / "cm.bvh", poses, root, 30.0, DEFAULT_REST_JOINTS, scale=100.0)
    assert abs(read_bvh(cm).positions[3, 0, 1] - 100 * float(fk[3, 0, 1])) < 1e-2
    with pytest.raises(ValueError, match="fps"):
        write_bvh(tmp_path / "bad.bvh", poses, root, 0.0, DEFAULT_REST_JOINTS)


# ----------------------------------------------------------------------------------------------- retrieval
@pytest.fixture(scope="module")
def body():
    from avatarclip_core.body import get_body_model

    return get_body_model("anny")


def test_default_rest_joints_are_the_anny_rest_skeleton(body):
    _, joints = body.rest(body.default_shape())
    assert torch.allclose(joints[0], DEFAULT_REST_JOINTS, atol=2e-3)


def _wrists_above_head(body, poses):
    J = body.forward(pose=poses).joints
    head = J[:, skeleton.JOINT_INDEX["head"], 1]
    return torch.maximum(J[:, 20, 1], J[:, 21, 1]) > head, torch.minimum(J[:, 20, 1], J[:, 21, 1]) > head


def test_retrieval_with_pose_oracle_raising_arms_vs_walking(body, tmp_path, monkeypatch):
    from avatarclip_core.guidance.test_encoders import PoseOracle
    from avatarclip_core.motion import retrieval, retrieve_poses

    enc = PoseOracle()
    params = PoseParams(library_limit=128, image_size=64, azimuths_deg=(-30.0, 0.0, 30.0), batch_size=16)
    poses, scores, idx = retrieve_poses(enc, "raising both arms", body, params, cache_dir=tmp_path, progress=False)
    assert poses.shape[0] == scores.shape[0] == idx.shape[0] and 1 <= poses.shape[0] <= 5
    assert (scores[:-1] >= scores[1:]).all() and (idx < 128).all()
    one_up, both_up = _wrists_above_head(body, poses)
    assert one_up.float().mean() > 0.5 and both_up[0]
    motion, _ = interpolate_motion(poses, MotionParams())
    m_one, _ = _wrists_above_head(body, motion)
    assert m_one.float().mean() > 0.5  # most frames of the motion have a hand above the head
    cached = list((tmp_path / "pose_embeddings").glob("*.pt"))
    assert len(cached) == 1

    # the second prompt reuses the cached embeddings: rendering must not run again
    def no_render(*a, **k):
        raise AssertionError("library re-rendered despite the cache")

    monkeypatch.setattr(retrieval, "render_poses", no_render)
    w_poses, w_scores, w_idx = retrieve_poses(enc, "walking", body, params, cache_dir=tmp_path, progress=False)
    # the oracle's "walking" is leg spread (the arms do not count; the balanced library's prefix also holds jumps
    # and climbs with the arms up): the walking poses spread the feet far wider than the raising-arms poses
    def feet_apart(p):
        J = body.forward(pose=p).joints
        return (J[:, 7, [0, 2]] - J[:, 8, [0, 2]]).norm(dim=-1).mean()

    assert feet_apart(w_poses) > 2 * feet_apart(poses)
    lib = load_pose_library()
    assert all(pose_distance(w_poses[i], w_poses[j]) > 0.07 for i in range(len(w_poses)) for j in range(i))
    assert torch.equal(w_poses, lib.poses[w_idx])


def test_render_pose_images(body):
    from avatarclip_core.motion import render_pose_images

    poses = torch.zeros(2, 22, 3)
    poses[1, skeleton.JOINT_INDEX["left_shoulder"], 2] = 1.2  # left arm up
    img = render_pose_images(body, poses, image_size=48)
    assert img.shape == (2, 48, 48, 3) and float(img.min()) >= 0 and float(img.max()) <= 1
    fg = (img < 0.99).any(-1)  # white background
    assert 0.03 < float(fg[0].float().mean()) < 0.5
    rows = torch.nonzero(fg[1].any(1)).squeeze(1)
    rows0 = torch.nonzero(fg[0].any(1)).squeeze(1)
    assert rows.min() < rows0.min()  # the raised arm reaches above the head
