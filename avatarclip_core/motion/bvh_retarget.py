"""Retarget BVH motion capture onto the 22-joint skeleton (docs/design.md §3) by bone directions in world space.

Method (docs/method.md, Motion priors, "Retargeting"): the BVH file is parsed with `bvhio`; world joint positions
come from the BVH forward kinematics (`read_bvh`, checked against bvhio's own hierarchy in the tests); each of
our 22 joints is mapped to a BVH joint, an end site or a point between two BVH joints
(`SKELETON_MAPS`); positions are resampled to 30 fps and converted to the avatar frame (metres, y up, the
body faces +z, x = the body's left). Then, for OUR T-pose skeleton, every joint's global rotation is chosen
so that its rest child-bone direction(s) land on the observed ones:

- two directions where available, so that the twist is defined: pelvis (up = pelvis→spine1, and the
  hips vector right_hip→left_hip), spine3 (spine3→neck and the collar vector), hips and shoulders (the limb
  direction and the knee / elbow bend-plane normal; where the limb is nearly straight the normal is
  undefined and the previous frame's normal is kept);
- a single direction with the minimal rotation relative to the parent elsewhere (a pure swing, no twist);
- joints without a child in the 22-joint skeleton (head, wrists, toes) stay at their rest orientation.

Local rotations are local_j = G_parent⁻¹ · G_j (SMPL kinematics). Nothing uses the BVH's rest pose, so the
result does not depend on it (T-pose, A-pose, z-up rests all give the same poses).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import roma
import torch

from .. import skeleton

# Rest (T-pose) joint positions of the default anny body (`get_body_model("anny").rest(default_shape())`,
# anny 0.6.2), metres, avatar frame. Used when no rest skeleton is given, so that retargeting needs no
# body model; the pose library records the skeleton it was built with.
DEFAULT_REST_JOINTS = torch.tensor([
    [0.0000, 0.0803, 0.0000], [0.1006, 0.0453, -0.0095], [-0.1033, 0.0453, -0.0095],
    [-0.0014, 0.1736, 0.0031], [0.1337, -0.3437, 0.0227], [-0.1364, -0.3437, 0.0227],
    [-0.0014, 0.2793, -0.0089], [0.1753, -0.7423, -0.0136], [-0.1780, -0.7423, -0.0136],
    [-0.0014, 0.4002, -0.0494], [0.1720, -0.7875, 0.1251], [-0.1748, -0.7875, 0.1251],
    [-0.0014, 0.5660, -0.0100], [0.0592, 0.5388, -0.0004], [-0.0578, 0.5325, -0.0029],
    [-0.0004, 0.6146, 0.0040], [0.1602, 0.4738, -0.0003], [-0.1629, 0.4738, -0.0003],
    [0.4127, 0.4738, -0.0003], [-0.4155, 0.4738, -0.0003], [0.6399, 0.4738, -0.0003],
    [-0.6426, 0.4738, -0.0003],
])

# Our joint → BVH source: a joint name, ("end", joint) for that joint's end site, or ("mix", a, b, w) for
# the point (1 - w)·a + w·b (a and b on one rigid body). Pelvis and spine points are placed so that the
# pelvis→hip and spine proportions resemble anny's/SMPL's: this keeps the directions of the bones that hang
# off the two-direction joints (pelvis→hips, spine3→collars) close to the data (mean bone error ≈ 1-2°).
_ICLONE = {
    "pelvis": ("mix", "CC_Base_Pelvis", "CC_Base_Waist", 0.1), "left_hip": "CC_Base_L_Thigh",
    "right_hip": "CC_Base_R_Thigh",
    "spine1": "CC_Base_Waist", "left_knee": "CC_Base_L_Calf", "right_knee": "CC_Base_R_Calf",
    "spine2": ("mix", "CC_Base_Spine01", "CC_Base_Spine02", 0.5),
    "left_ankle": "CC_Base_L_Foot", "right_ankle": "CC_Base_R_Foot",
    "spine3": ("mix", "CC_Base_Spine02", "CC_Base_NeckTwist01", 0.2),
    "left_foot": "CC_Base_L_ToeBase", "right_foot": "CC_Base_R_ToeBase", "neck": "CC_Base_NeckTwist01",
    "left_collar": "CC_Base_L_Clavicle", "right_collar": "CC_Base_R_Clavicle", "head": "CC_Base_Head",
    "left_shoulder": "CC_Base_L_Upperarm", "right_shoulder": "CC_Base_R_Upperarm",
    "left_elbow": "CC_Base_L_Forearm", "right_elbow": "CC_Base_R_Forearm",
    "left_wrist": "CC_Base_L_Hand", "right_wrist": "CC_Base_R_Hand",
}
_DAZ = {
    "pelvis": ("mix", "hip", "abdomen", 0.28), "left_hip": "lThigh", "right_hip": "rThigh",
    "spine1": ("mix", "hip", "abdomen", 0.6),
    "left_knee": "lShin", "right_knee": "rShin", "spine2": "abdomen", "left_ankle": "lFoot",
    "right_ankle": "rFoot", "spine3": "chest", "left_foot": ("end", "lFoot"), "right_foot": ("end", "rFoot"),
    "neck": "neck", "left_collar": "lCollar", "right_collar": "rCollar", "head": "head",
    "left_shoulder": "lShldr", "right_shoulder": "rShldr", "left_elbow": "lForeArm",
    "right_elbow": "rForeArm", "left_wrist": "lHand", "right_wrist": "rHand",
}
# Our own export (`bvh_export.write_bvh`, metres): identity map, so motion.bvh files can be read back.
_OURS = {name: name for name in skeleton.JOINT_NAMES}
SKELETON_MAPS: dict[str, dict] = {"iclone_cc3": _ICLONE, "cgspeed_daz": _DAZ, "avatarclip22": _OURS}
# Scale from each skeleton's BVH units to metres (both CMU conversions are in centimetres: leg ≈ 80-95 cm).
UNIT_SCALE: dict[str, float] = {"iclone_cc3": 0.01, "cgspeed_daz": 0.01, "avatarclip22": 1.0}

_J = skeleton.JOINT_INDEX
# Rest bend-plane normals (avatar frame): knee flexion moves the shin to -z (normal thigh × shin = +x);
# elbow flexion moves the forearm to +z (left arm along +x: normal -y; right arm along -x: normal +y).
_BEND = {  # joint: (child, grandchild, rest normal)
    "left_hip": ("left_knee", "left_ankle", (1.0, 0.0, 0.0)),
    "right_hip": ("right_knee", "right_ankle", (1.0, 0.0, 0.0)),
    "left_shoulder": ("left_elbow", "left_wrist", (0.0, -1.0, 0.0)),
    "right_shoulder": ("right_elbow", "right_wrist", (0.0, 1.0, 0.0)),
}
_MIN_BEND = 0.2  # rad: below this limb bend the bend plane is treated as undefined


@dataclass
class BvhClip:
    """World-space joint positions of one BVH file, as parsed by bvhio.

    Attributes:
        names: BVH joint names in file (depth-first) order.
        parents: parent index per joint (-1 for the root).
        positions: (F, J, 3) float64 world joint positions, BVH units and BVH world frame.
        end_sites: (F, J, 3) float64 world end-site positions (meaningful for leaf joints only).
        frame_time: seconds per frame from the BVH header.
    """

    names: list[str]
    parents: list[int]
    positions: np.ndarray
    end_sites: np.ndarray
    frame_time: float


@dataclass
class RetargetedClip:
    """A BVH clip on the 22-joint skeleton.

    Attributes:
        poses: (T, 22, 3) float32 local axis-angle (radians), SMPL order, zero = our T-pose.
        root_translation: (T, 3) float32 metres, pelvis displacement in the avatar frame (added to the
            rest pelvis position by `skeleton.forward_kinematics`).
        fps: frames per second of `poses` (30 by default).
        joints: (T, 22, 3) float32 observed joint positions (metres, avatar frame) the poses were solved
            from; bone lengths are the BVH's, not ours.
        skeleton_type: key of `SKELETON_MAPS` used.
    """

    poses: torch.Tensor
    root_translation: torch.Tensor
    fps: float
    joints: torch.Tensor
    skeleton_type: str


def _quat_wxyz_to_matrix(q: np.ndarray) -> np.ndarray:
    q = torch.as_tensor(q, dtype=torch.float64)
    return roma.unitquat_to_rotmat(roma.quat_normalize(q[..., [1, 2, 3, 0]])).numpy()  # roma: xyzw


def read_bvh(path: str | os.PathLike) -> BvhClip:
    """Parse a BVH file with bvhio and compute world joint and end-site positions for every frame.

    bvhio parses the file and turns each frame's rotation channels into a quaternion (intrinsic Euler in the
    file's channel order, degrees); the world transforms are then composed here with standard BVH kinematics,
    vectorised over frames: R_world[j] = R_world[parent] · R_local[j]; p_world[j] = p_world[parent] +
    R_world[parent] · p_local[j], where p_local is the OFFSET, or the position channels where the joint has
    them; end site = p_world[j] + R_world[j] · end-site OFFSET. bvhio's own world transforms
    (`readAsHierarchy`, `Joint.loadPose(frame)`, `.PositionWorld`) give the same positions (measured on CMU
    clips of all five skeletons of ../shared/data/cmu_mocap: max difference 1.4e-4 BVH units, float32 in
    bvhio) but cost 2–60 ms per frame in Python (about 2.5 h for the 150 CMU clips, against 100 s here), so
    they serve only as the reference of the tests.

    Args:
        path: a .bvh file (any skeleton, any channel order; units and world frame as in the file).
    Returns:
        `BvhClip` with names and parents in file (depth-first) order, positions and end_sites (F, J, 3)
        float64 in BVH units and the BVH world frame, and the header's frame time (seconds).
    Raises:
        FileNotFoundError: when `path` does not exist. SyntaxError (bvhio) on a malformed file.
    """
    import bvhio

    if not os.path.exists(path):
        raise FileNotFoundError(f"BVH file not found: {path}")
    bvh = bvhio.readAsBvh(str(path))
    layout = bvh.Root.layout()
    joints = [j for j, _, _ in layout]
    names = [j.Name for j in joints]
    index = {id(j): i for i, j in enumerate(joints)}
    parents = [-1] * len(joints)
    for i, j in enumerate(joints):
        for c in j.Children:
            parents[index[id(c)]] = i
    pos = np.array([[(k.Position.x, k.Position.y, k.Position.z) for k in j.Keyframes] for j in joints])
    quat = np.array([[(k.Rotation.w, k.Rotation.x, k.Rotation.y, k.Rotation.z) for k in j.Keyframes]
                     for j in joints])
    pos, rot = pos.transpose(1, 0, 2), _quat_wxyz_to_matrix(quat.transpose(1, 0, 2))  # (F, J, 3), (F, J, 3, 3)
    end = np.array([(j.EndSite.x, j.EndSite.y, j.EndSite.z) for j in joints])
    F, J = pos.shape[:2]
    wr = np.zeros((F, J, 3, 3))
    wp = np.zeros((F, J, 3))
    for j in range(J):
        p = parents[j]
        if p < 0:
            wr[:, j], wp[:, j] = rot[:, j], pos[:, j]
        else:
            wr[:, j] = wr[:, p] @ rot[:, j]
            wp[:, j] = wp[:, p] + (wr[:, p] @ pos[:, j, :, None])[..., 0]
    ends = wp + (wr @ end[None, :, :, None])[..., 0]
    return BvhClip(names, parents, wp, ends, float(bvh.FrameTime))


def detect_skeleton(names: list[str]) -> str:
    """Key of `SKELETON_MAPS` whose joints all occur in `names`; ValueError naming the joints otherwise."""
    have = set(names)
    for key, mapping in SKELETON_MAPS.items():
        needed = {v if isinstance(v, str) else v[1] for v in mapping.values()}
        needed |= {v[2] for v in mapping.values() if not isinstance(v, str) and v[0] == "mix"}
        if needed <= have:
            return key
    raise ValueError(f"unknown BVH skeleton (joints {names[:8]}…): add a joint map for it to "
                     f"SKELETON_MAPS (known: {list(SKELETON_MAPS)})")


def map_joints(clip: BvhClip, skeleton_type: str | None = None) -> tuple[np.ndarray, str]:
    """(F, 22, 3) float64 positions of our 22 joints (SMPL order) in BVH units and the BVH world frame, and the
    skeleton key (`skeleton_type`, or `detect_skeleton(clip.names)` when None).

    Raises ValueError on an unknown `skeleton_type` or an undetectable skeleton."""
    skeleton_type = skeleton_type or detect_skeleton(clip.names)
    if skeleton_type not in SKELETON_MAPS:
        raise ValueError(f"skeleton_type={skeleton_type!r} is unknown; use one of {list(SKELETON_MAPS)}")
    idx = {n: i for i, n in enumerate(clip.names)}
    out = []
    for name in skeleton.JOINT_NAMES:
        src = SKELETON_MAPS[skeleton_type][name]
        if isinstance(src, str):
            out.append(clip.positions[:, idx[src]])
        elif src[0] == "end":
            out.append(clip.end_sites[:, idx[src[1]]])
        else:
            _, a, b, w = src
            out.append((1 - w) * clip.positions[:, idx[a]] + w * clip.positions[:, idx[b]])
    return np.stack(out, axis=1), skeleton_type


def resample(x: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    """Linearly resample (F, ...) frames from `fps_in` to `fps_out` (times k / fps_out within the clip).

    Returns (n, ...) float64 with n = ⌊(F − 1) · fps_out / fps_in⌋ + 1.
    Raises ValueError unless both rates are > 0."""
    if fps_in <= 0 or fps_out <= 0:
        raise ValueError(f"frame rates must be positive, got fps_in={fps_in}, fps_out={fps_out}")
    F = x.shape[0]
    n = int(np.floor((F - 1) * fps_out / fps_in + 1e-6)) + 1
    t = np.arange(n) * fps_in / fps_out
    i0 = np.clip(np.floor(t).astype(int), 0, F - 1)
    i1 = np.clip(i0 + 1, 0, F - 1)
    w = (t - i0).reshape(-1, *([1] * (x.ndim - 1)))
    return (1 - w) * x[i0] + w * x[i1]


def _frame(primary: torch.Tensor, secondary: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) orthonormal frame with columns (primary, secondary ⟂ primary, primary × secondary)."""
    e1 = torch.nn.functional.normalize(primary, dim=-1)
    s = secondary - (secondary * e1).sum(-1, keepdim=True) * e1
    e2 = torch.nn.functional.normalize(s, dim=-1)
    return torch.stack([e1, e2, torch.linalg.cross(e1, e2)], dim=-1)


def _ffill(vectors: torch.Tensor, valid: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """Replace invalid rows of (T, 3) `vectors` by the last valid row before them (else by `fallback`)."""
    T = vectors.shape[0]
    idx = torch.where(valid, torch.arange(T), torch.full((T,), -1))
    last = torch.cummax(idx, dim=0).values
    return torch.where((last >= 0)[:, None], vectors[last.clamp_min(0)], fallback)


def solve_rotations(joints: torch.Tensor, rest_joints: torch.Tensor | None = None) -> torch.Tensor:
    """Local axis-angle rotations that put OUR rest skeleton's bones along observed bone directions.

    Args:
        joints: (T, 22, 3) observed joint positions (any units), avatar frame (y up, faces +z), frames in
            time order (used to keep the twist of a straight limb from the previous frame).
        rest_joints: (22, 3) our T-pose joint positions (default `DEFAULT_REST_JOINTS`).
    Returns:
        (T, 22, 3) float32 local axis-angle rotations (radians); head, wrists and toes are zero.
    Raises:
        ValueError: on wrong shapes or non-finite input.
    """
    if joints.ndim != 3 or tuple(joints.shape[1:]) != (22, 3):
        raise ValueError(f"joints must be (T, 22, 3), got {tuple(joints.shape)}")
    if not torch.isfinite(joints).all():
        raise ValueError("joints contain NaN/inf values")
    P = joints.detach().to(torch.float64).cpu()
    R = (DEFAULT_REST_JOINTS if rest_joints is None else rest_joints).detach().to(P).cpu()
    if tuple(R.shape) != (22, 3):
        raise ValueError(f"rest_joints must be (22, 3), got {tuple(R.shape)}")
    T = P.shape[0]
    eye = torch.eye(3, dtype=P.dtype).expand(T, 3, 3)
    G: list[torch.Tensor | None] = [None] * 22

    def vec(x, a, b):
        return x[..., _J[b], :] - x[..., _J[a], :]

    # Two-direction joints on the torso.
    G[0] = _frame(vec(P, "pelvis", "spine1"), vec(P, "right_hip", "left_hip")) @ \
        _frame(vec(R, "pelvis", "spine1"), vec(R, "right_hip", "left_hip")).T
    children = {j: [c for c in range(22) if skeleton.PARENTS[c] == j] for j in range(22)}
    for j in range(1, 22):
        name = skeleton.JOINT_NAMES[j]
        parent = G[skeleton.PARENTS[j]]
        if name == "spine3":
            G[j] = _frame(vec(P, "spine3", "neck"), vec(P, "right_collar", "left_collar")) @ \
                _frame(vec(R, "spine3", "neck"), vec(R, "right_collar", "left_collar")).T
        elif name in _BEND:
            child, grand, n_rest = _BEND[name]
            limb, lower = vec(P, name, child), vec(P, child, grand)
            normal = torch.linalg.cross(limb, lower)
            bend = torch.atan2(normal.norm(dim=-1), (limb * lower).sum(-1))
            n_rest = torch.tensor(n_rest, dtype=P.dtype)
            # Fallback normal: the one a zero-twist (parent-relative) rotation would give.
            n_fallback = (parent @ n_rest)
            normal = _ffill(normal, bend > _MIN_BEND, n_fallback)
            G[j] = _frame(limb, normal) @ _frame(vec(R, name, child), n_rest).T
        elif len(children[j]) == 1:
            c = children[j][0]
            d_obs = (parent.transpose(-1, -2) @ (P[:, c] - P[:, j])[..., None])[..., 0]
            d_rest = (R[c] - R[j]).expand_as(d_obs)
            G[j] = parent @ roma.rotvec_to_rotmat(skeleton.rotations_aligning(d_rest, d_obs))
        else:  # head, wrists, toes: rest orientation relative to the parent
            G[j] = parent @ eye
    local = [G[0]] + [G[skeleton.PARENTS[j]].transpose(-1, -2) @ G[j] for j in range(1, 22)]
    return roma.rotmat_to_rotvec(torch.stack(local, dim=1)).to(torch.float32)


def retarget_bvh(path: str | os.PathLike, rest_joints: torch.Tensor | None = None, fps: float | None = None,
                 target_fps: float = 30.0, skeleton_type: str | None = None) -> RetargetedClip:
    """Retarget one BVH file on a skeleton of `SKELETON_MAPS` to the 22-joint skeleton.

    Mapped skeletons: the iClone CC3 and cgspeed Daz conversions of ../shared/data/cmu_mocap and our own
    `write_bvh` export; the other skeletons of extra/ (cmu31, cmu31_asfnames, cgspeed_max) raise ValueError.

    Args:
        path: BVH file.
        rest_joints: (22, 3) our T-pose joints in metres (default `DEFAULT_REST_JOINTS`, the anny body).
        fps: true capture rate of the file; default 1 / header frame time (some cgspeed files state 120 fps
            in the header but are 60 fps: pass clips.csv's `true_fps`).
        target_fps: output rate (30, as AvatarCLIP's motions).
        skeleton_type: key of `SKELETON_MAPS`; detected from the joint names by default.
    Returns:
        RetargetedClip with poses (T, 22, 3) float32 local axis-angle (radians), root_translation (T, 3)
        float32 metres (pelvis displacement from our rest pelvis, avatar frame), joints (T, 22, 3) float32
        metres, fps = target_fps.
    Raises:
        FileNotFoundError (missing file), SyntaxError (malformed BVH), ValueError (unknown skeleton, bad frame
        rates).
    """
    clip = read_bvh(path)
    pos, skeleton_type = map_joints(clip, skeleton_type)
    fps_in = fps if fps is not None else 1.0 / clip.frame_time
    pos = resample(pos, fps_in, target_fps) * UNIT_SCALE[skeleton_type]
    # Both conversions are y-up, right-handed worlds; the avatar frame is y-up and right-handed with x =
    # the body's left, so only the units change (the heading stays as captured).
    joints = torch.as_tensor(pos, dtype=torch.float64)
    rest = DEFAULT_REST_JOINTS if rest_joints is None else torch.as_tensor(rest_joints)
    poses = solve_rotations(joints, rest)
    root = (joints[:, 0] - rest[0].to(joints)).to(torch.float32)
    return RetargetedClip(poses, root, float(target_fps), joints.to(torch.float32), skeleton_type)


def bone_direction_error(poses: torch.Tensor, joints: torch.Tensor,
                         rest_joints: torch.Tensor | None = None) -> torch.Tensor:
    """Angle (radians) between each of the 21 bones of FK(poses, rest_joints) and of observed `joints`.

    Bone-length normalised by construction (directions only). Args: poses (T, 22, 3) axis-angle (radians),
    joints (T, 22, 3) (any units, avatar frame), rest_joints (22, 3) metres (default `DEFAULT_REST_JOINTS`).
    Returns (T, 21) float64 angles in [0, π] for the bones parent(j)→j, j = 1..21.
    """
    rest = (DEFAULT_REST_JOINTS if rest_joints is None else rest_joints).to(torch.float64)
    tr, _ = skeleton.forward_kinematics(poses.to(torch.float64), rest)
    fk = tr[..., :3, 3]
    par = list(skeleton.PARENTS[1:])
    a = fk[:, 1:] - fk[:, par]
    b = joints.to(torch.float64)[:, 1:] - joints.to(torch.float64)[:, par]
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1).clamp(-1, 1)
    return torch.acos(cos)
