"""Retargeting any humanoid BVH (avatarclip_core.motion.bvh_retarget / bvh_mapping, docs/method.md "Retargeting"):
every skeleton of ../shared/data/cmu_mocap, Mixamo-, SMPL-named and our own exports written here (renamed joints,
fingers, twist bones), whole-body directions, units, up axis, root translation, unmappable skeletons."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import roma
import torch
from scipy.spatial.transform import Rotation

from avatarclip_core import skeleton
from avatarclip_core.animate.gltf_export import MIXAMO_NAMES
from avatarclip_core.motion import DEFAULT_REST_JOINTS, remove_heading, retarget_bvh, write_bvh
from avatarclip_core.motion.bvh_mapping import LEAVES, SkeletonMapError, parse_name
from avatarclip_core.motion.bvh_retarget import direction_errors, end_direction_error

torch.set_num_threads(1)
DATA = Path(os.environ.get("AVATARCLIP_CMU_MOCAP",
                           Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cmu_mocap"))
needs_data = pytest.mark.skipif(not (DATA / "clips.csv").exists(), reason=f"CMU mocap data not at {DATA}")
J = skeleton.JOINT_INDEX
# (path, label, true fps, source frame range): ~30 frames at 30 fps each.
CLIPS = [("cc3_iclone/002/002_03.bvh", "iclone_cc3", 60.0, (0, 60)),
         ("daz_cgspeed/salsa/10.bvh", "cgspeed_daz", 60.0, (200, 260)),
         ("extra/cmu31/009/09_12.bvh", "cmu31", 120.0, (400, 520)),
         ("extra/cmu31_asfnames/016/16_01.bvh", "cmu31_asfnames", 30.0, (60, 90)),
         ("extra/cgspeed_max/131/131_03.bvh", "cgspeed_max", 120.0, (300, 420))]
SMPL_NAMES = ("Pelvis", "L_Hip", "R_Hip", "Spine1", "L_Knee", "R_Knee", "Spine2", "L_Ankle", "R_Ankle", "Spine3",
              "L_Foot", "R_Foot", "Neck", "L_Collar", "R_Collar", "Head", "L_Shoulder", "R_Shoulder", "L_Elbow",
              "R_Elbow", "L_Wrist", "R_Wrist")


def _fk(poses, root=None, rest=DEFAULT_REST_JOINTS):
    tr, _ = skeleton.forward_kinematics(poses.double(), rest.double(), None if root is None else root.double())
    return tr


def _motion(T=30, seed=0):
    """A smooth random motion (T, 22, 3) with a walking root, moderate joint angles."""
    g = torch.Generator().manual_seed(seed)
    knots = torch.randn(4, 22, 3, generator=g, dtype=torch.float64) * 0.35
    t = torch.linspace(0, 3, T, dtype=torch.float64)
    i0 = t.floor().long().clamp(max=2)
    w = (t - i0)[:, None, None]
    poses = (1 - w) * knots[i0] + w * knots[i0 + 1]
    root = torch.stack([0.1 * torch.sin(t), 0.02 * torch.cos(3 * t), 0.4 * t], dim=-1)
    return poses, root


def _write_rig(path, poses, root, names, extras, rest=DEFAULT_REST_JOINTS, scale=1.0, world=None):
    """Write a BVH of our skeleton with joints renamed (`names[j]`) and extra joints: `extras[our joint]` =
    [(name, offset in metres, children [(name, offset)…])…] hanging off that joint with constant zero rotations
    (fingers, twist bones, head top, toe ends). `world` (3, 3) rotates the whole capture (z-up files)."""
    rest = rest.double().numpy()
    T = poses.shape[0]
    world = np.eye(3) if world is None else world
    glob = roma.rotvec_to_rotmat(poses[:, 0])
    poses = poses.clone()
    poses[:, 0] = roma.rotmat_to_rotvec(torch.as_tensor(world) @ glob)
    lines, cols = ["HIERARCHY"], []
    kids = {j: [c for c in range(22) if skeleton.PARENTS[c] == j] for j in range(22)}

    def fmt(v):
        return " ".join(f"{x * scale:.6f}" for x in v)

    def extra(name, off, sub, d):
        ind = "  " * d
        lines.extend([f"{ind}JOINT {name}", f"{ind}{{", f"{ind}  OFFSET {fmt(off)}",
                      f"{ind}  CHANNELS 3 Zrotation Xrotation Yrotation"])
        cols.append(None)
        for n2, o2 in sub:
            extra(n2, o2, [], d + 1)
        if not sub:
            lines.extend([f"{ind}  End Site", f"{ind}  {{", f"{ind}    OFFSET {fmt(np.asarray(off) * 0.5)}",
                          f"{ind}  }}"])
        lines.append(f"{ind}}}")

    def emit(j, d):
        ind = "  " * d
        p = skeleton.PARENTS[j]
        lines.extend([f"{ind}{'ROOT' if p < 0 else 'JOINT'} {names[j]}", f"{ind}{{",
                      f"{ind}  OFFSET {fmt(world @ rest[j] if p < 0 else rest[j] - rest[p])}",
                      f"{ind}  CHANNELS {6 if p < 0 else 3} {'Xposition Yposition Zposition ' if p < 0 else ''}"
                      f"Zrotation Xrotation Yrotation"])
        cols.append(j)
        for c in kids[j]:
            emit(c, d + 1)
        for name, off, sub in extras.get(skeleton.JOINT_NAMES[j], []):
            extra(name, off, sub, d + 1)
        if not kids[j] and not extras.get(skeleton.JOINT_NAMES[j]):
            lines.extend([f"{ind}  End Site", f"{ind}  {{", f"{ind}    OFFSET {fmt([0, 0.05, 0])}", f"{ind}  }}"])
        lines.append(f"{ind}}}")

    emit(0, 0)
    eul = {j: Rotation.from_rotvec(poses[:, j].numpy()).as_euler("ZXY", degrees=True) for j in range(22)}
    pos = (torch.as_tensor(world) @ (torch.as_tensor(rest[0]) + root)[..., None])[..., 0].numpy() * scale
    lines += ["MOTION", f"Frames: {T}", "Frame Time: 0.0333333"]
    for t in range(T):
        vals = [f"{x:.6f}" for x in pos[t]]
        for c in cols:
            vals += [f"{x:.6f}" for x in (eul[c][t] if c is not None else (0.0, 0.0, 0.0))]
        lines.append(" ".join(vals))
    Path(path).write_text("\n".join(lines) + "\n")
    return path


def _hand_extras(side, sign):
    """Fingers (index, middle, pinky, thumb; Mixamo-like names) and a forearm twist bone for one side."""
    f = lambda name, off: (f"{side}Hand{name}1", off, [(f"{side}Hand{name}2", [sign * 0.03, 0, 0])])
    return [f("Index", [sign * 0.09, 0.0, 0.025]), f("Middle", [sign * 0.095, 0.0, 0.0]),
            f("Pinky", [sign * 0.08, 0.0, -0.03]), f("Thumb", [sign * 0.03, -0.01, 0.04])]


def _mixamo_rig():
    names = list(MIXAMO_NAMES)
    extras = {"left_wrist": [(f"mixamorig:{n}", o, [(f"mixamorig:{c}", co) for c, co in s]) for n, o, s in
                             _hand_extras("Left", 1)],
              "right_wrist": [(f"mixamorig:{n}", o, [(f"mixamorig:{c}", co) for c, co in s]) for n, o, s in
                              _hand_extras("Right", -1)],
              "head": [("mixamorig:HeadTop_End", [0, 0.18, 0.02], [])],
              "left_foot": [("mixamorig:LeftToe_End", [0, 0, 0.06], [])],
              "right_foot": [("mixamorig:RightToe_End", [0, 0, 0.06], [])]}
    return names, extras


def _smpl_rig():
    extras = {"left_wrist": [("L_Hand", [0.08, 0, 0], [])], "right_wrist": [("R_Hand", [-0.08, 0, 0], [])],
              "left_elbow": [("L_ForearmTwist", [0.1, 0, 0], [])], "right_elbow": [("R_ForearmTwist", [-0.1, 0, 0], [])],
              "left_hip": [("L_ThighRoll", [0, -0.15, 0], [])], "right_hip": [("R_ThighRoll", [0, -0.15, 0], [])],
              "head": [("HeadTop", [0, 0.17, 0], [])]}
    return list(SMPL_NAMES), extras


def _leaf_globals(poses, rest=DEFAULT_REST_JOINTS):
    return _fk(poses, rest=rest)[:, [J[n] for n in LEAVES], :3, :3]


# ----------------------------------------------------------------------------------------------- names
def test_parse_name_sides_and_classes():
    assert parse_name("mixamorig:LeftUpLeg")[:2] == ("L", "upleg")
    assert parse_name("CC_Base_R_Hand") == ("R", "hand", "hand")
    assert parse_name("lfemur")[:2] == ("L", "femur") and parse_name("rhumerus")[:2] == ("R", "humerus")
    assert parse_name("lowerback")[0] is None and parse_name("Bip01 L Foot") == ("L", "foot", "foot")
    assert parse_name("thigh_l")[:2] == ("L", "thigh") and parse_name("L_Wrist")[2] == "hand"
    assert parse_name("LeftHandIndex1")[2] == "finger" and parse_name("RThumb")[2] == "thumb"
    assert parse_name("CC_Base_L_ForearmTwist01")[2] == "twist" and parse_name("leftEye") == ("L", "eye", "eye")


# ----------------------------------------------------------------------------------------------- the data
@needs_data
@pytest.mark.parametrize("path,label,fps,frames", CLIPS, ids=[c[1] for c in CLIPS])
def test_each_data_skeleton_reproduces_whole_body_directions(path, label, fps, frames):
    clip = retarget_bvh(DATA / path, fps=fps, frames=frames)
    assert clip.skeleton_type == label and clip.fps == 30.0 and 28 <= clip.poses.shape[0] <= 31
    err = direction_errors(clip)  # (T, 21 + E) radians: 21 bones + the end segments the source has
    has_end = ~torch.isnan(clip.end_directions).any(dim=(0, 2))
    assert has_end[:3].all()  # head and both hands
    assert err.shape[1] == 21 + int(has_end.sum())
    assert math.degrees(float(err.mean())) < 5.0
    ends = end_direction_error(clip.poses, clip.end_directions, clip.end_rest)[:, has_end]
    assert math.degrees(float(ends.max())) < 0.5  # head, hands, toes point where the capture's do
    # the leaves move: head and wrists are not at rest relative to their parents
    for leaf in ("head", "left_wrist", "right_wrist"):
        assert float(clip.poses[:, J[leaf]].norm(dim=-1).max()) > math.radians(3)
    # avatar frame: y up, x = the body's left once the heading is removed; metres
    tr = _fk(remove_heading(clip.poses))
    fk = tr[..., :3, 3]
    assert (fk[:, J["head"], 1] > fk[:, 0, 1] + 0.3).all()
    assert (fk[:, J["left_hip"], 0] > fk[:, J["right_hip"], 0]).all()
    legs = (clip.joints[:, 1] - clip.joints[:, 4]).norm(dim=-1) + (clip.joints[:, 4] - clip.joints[:, 7]).norm(dim=-1)
    assert 0.7 < float(legs.mean()) < 1.1
    # root translation: starts at the origin horizontally, strides scaled by our leg / the source's
    root = clip.root_translation.double()
    assert root[0, [0, 2]].abs().max() < 1e-6
    moved = clip.joints[:, 0].double() - clip.joints[0, 0].double()
    assert torch.allclose(root[:, [0, 2]], clip.leg_scale * moved[:, [0, 2]], atol=1e-4)
    assert 0.7 < clip.leg_scale < 1.3


@needs_data
def test_cmu_clip_hanging_from_bars_has_both_wrists_above_the_head():
    # cmu31 01_12 "playground - climb, pull up, dangle, sit, …": in BVH frames 261-381 both hand joints are
    # ≥ 0.31 m above the head joint (found by scanning the cmu31 clips); 120 fps → 30 frames at 30 fps.
    clip = retarget_bvh(DATA / "extra/cmu31/001/01_12.bvh", fps=120.0, frames=(261, 381))
    fk = _fk(clip.poses)[..., :3, 3]
    head = fk[:, J["head"], 1]
    assert (fk[:, J["left_wrist"], 1] > head + 0.1).all() and (fk[:, J["right_wrist"], 1] > head + 0.1).all()
    # and the hands continue upwards (the hand segments point up, not folded down)
    G = _fk(clip.poses)[:, [J["left_wrist"], J["right_wrist"]], :3, :3]
    hand_dirs = (G @ clip.end_rest[1:3].double()[None, :, :, None])[..., 0]
    assert (hand_dirs[..., 1] > 0.5).float().mean() > 0.9


# ----------------------------------------------------------------------------------------------- written rigs
@pytest.mark.parametrize("rig", ["mixamo", "smpl", "ours"])
def test_renamed_rigs_with_fingers_and_twist_bones_recover_the_motion(tmp_path, rig):
    poses, root = _motion()
    if rig == "ours":
        path = write_bvh(tmp_path / "ours.bvh", poses, root, 30.0, DEFAULT_REST_JOINTS)
        label = "avatarclip22"
    else:
        names, extras = _mixamo_rig() if rig == "mixamo" else _smpl_rig()
        path = _write_rig(tmp_path / f"{rig}.bvh", poses, root, names, extras, scale=100.0)
        label = "mixamo" if rig == "mixamo" else "generic"
    clip = retarget_bvh(path)
    assert clip.skeleton_type == label and clip.poses.shape == (30, 22, 3)
    assert clip.mapping.unit == ("m" if rig == "ours" else "cm")
    # same skeleton → the same joint positions (up to the root convention) and the same end-segment orientations
    fk_got, fk_true = _fk(clip.poses)[..., :3, 3], _fk(poses)[..., :3, 3]
    assert (fk_got - fk_true).abs().max() < 1e-3
    R_got, R_true = _leaf_globals(clip.poses), _leaf_globals(poses)
    ang = roma.rotmat_geodesic_distance(R_got, R_true).rad2deg()
    if rig == "mixamo":  # fingers, head top and toe ends: every leaf orientation, twist included
        assert float(ang.max()) < 0.5
    else:  # hands without finger spread still carry their twist through the hand's own rotation
        assert float(ang.max()) < 0.5
    assert math.degrees(float(direction_errors(clip).max())) < 0.5
    # root translation = the written one, moved to start at the origin and onto the foot level
    d = clip.root_translation.double() - root
    assert (d - d[0]).abs().max() < 1e-3


def test_units_and_up_axis_are_detected(tmp_path):
    poses, root = _motion(T=12, seed=2)
    names, extras = _smpl_rig()
    zup = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # avatar y → file z
    got = {}
    for unit, scale, world in (("m", 1.0, None), ("cm", 100.0, None), ("inch", 1 / 0.0254, None), ("m", 1.0, zup)):
        clip = retarget_bvh(_write_rig(tmp_path / f"{unit}{world is None}.bvh", poses, root, names, extras,
                                       scale=scale, world=world))
        assert clip.mapping.unit == unit and abs(clip.unit_scale * scale - 1) < 1e-9
        got[(unit, world is None)] = clip
    ref = got[("m", True)]
    assert ref.mapping.up.tolist() == [0, 1, 0] and got[("m", False)].mapping.up.tolist() == [0, 0, 1]
    for clip in got.values():
        assert roma.rotmat_geodesic_distance(roma.rotvec_to_rotmat(clip.poses), roma.rotvec_to_rotmat(ref.poses)
                                             ).max() < 1e-3
        assert (clip.root_translation - ref.root_translation).abs().max() < 1e-4  # metres


def test_unmappable_skeleton_lists_missing_joints_and_a_map_fixes_it(tmp_path):
    poses, root = _motion(T=6, seed=1)
    names = list(SMPL_NAMES)
    names[J["left_wrist"]], names[J["right_wrist"]] = "Bone_017", "Bone_021"
    path = _write_rig(tmp_path / "odd.bvh", poses, root, names, {})
    with pytest.raises(SkeletonMapError) as e:
        retarget_bvh(path)
    msg = str(e.value)
    assert "left_wrist" in msg and "right_wrist" in msg and "Bone_017" in msg and "L_Elbow" in msg
    assert "motion.joint_map" in msg and '"joints"' in msg
    clip = retarget_bvh(path, joint_map={"left_wrist": "Bone_017", "right_wrist": "Bone_021"})
    assert (_fk(clip.poses)[..., :3, 3] - _fk(poses)[..., :3, 3]).abs().max() < 1e-3
    # the same map from a JSON file; unknown keys and names are reported, not KeyErrors
    import json

    (tmp_path / "map.json").write_text(json.dumps({"joints": {"left_wrist": "Bone_017", "right_wrist": "Bone_021"},
                                                    "unit_scale": 1.0}))
    assert torch.allclose(retarget_bvh(path, joint_map=tmp_path / "map.json").poses, clip.poses)
    with pytest.raises(SkeletonMapError, match="Nope"):
        retarget_bvh(path, joint_map={"left_wrist": "Nope"})
    with pytest.raises(SkeletonMapError, match="left_hand"):
        retarget_bvh(path, joint_map={"left_hand": "Bone_017"})


def test_sides_from_rest_geometry_when_names_have_none():
    # our skeleton, the right limbs first in the file and no side in any name: the toes' direction tells left
    from avatarclip_core.motion.bvh_mapping import map_skeleton

    order = [0, 2, 5, 8, 11, 1, 4, 7, 10, 3, 6, 9, 12, 15, 14, 17, 19, 21, 13, 16, 18, 20]
    base = {"pelvis": "Root", "spine1": "Spine1", "spine2": "Spine2", "spine3": "Chest", "neck": "Neck", "head": "Head"}
    part = {"hip": "UpLeg", "knee": "Knee", "ankle": "Ankle", "foot": "Toe", "collar": "Clavicle",
            "shoulder": "Arm", "elbow": "Elbow", "wrist": "Wrist"}
    names, parents = [], []
    for j in order:
        n = skeleton.JOINT_NAMES[j]
        names.append(base.get(n) or f"{part[n.split('_')[1]]}{'A' if n.startswith('right') else 'B'}")
        parents.append(-1 if j == 0 else order.index(skeleton.PARENTS[j]))
    rest = DEFAULT_REST_JOINTS.double().numpy()[order]
    smap = map_skeleton(names, parents, rest, rest + np.array([0, 0, 0.05]), rest[None])
    assert smap.sources["left_hip"] == "UpLegB" and smap.sources["right_wrist"] == "WristA"
    assert smap.sources["left_collar"] == "ClavicleB" and smap.sources["left_foot"] == "ToeB"


def test_motion_file_is_checked_before_any_work(tmp_path):
    from avatarclip_core.config import ConfigError, load_config
    from avatarclip_core.pipeline import check_motion_file

    poses, root = _motion(T=4, seed=3)
    names = list(SMPL_NAMES)
    names[J["head"]] = "Skull_top"
    bad = _write_rig(tmp_path / "nohead.bvh", poses, root, names, {})
    with pytest.raises(ConfigError, match=r"motion.file.*could not find \['head'\].*Skull_top.*motion.joint_map"):
        check_motion_file(load_config("tiny", overrides={"motion.file": str(bad)}))
    (tmp_path / "broken.bvh").write_text("HIERARCHY\nROOT x {\n")
    with pytest.raises(ConfigError, match="broken.bvh"):
        check_motion_file(load_config("tiny", overrides={"motion.file": str(tmp_path / "broken.bvh")}))
    (tmp_path / "map.json").write_text('{"joints": {"head": "Skull_top"}}')
    check_motion_file(load_config("tiny", overrides={"motion.file": str(bad), "motion.joint_map": str(tmp_path / "map.json")}))
