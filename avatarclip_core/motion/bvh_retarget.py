"""Retarget BVH motion capture onto the 22-joint skeleton (docs/design.md §3) by bone directions in world space.

Method (docs/method.md, Motion priors, "Retargeting"): the BVH file is parsed with `bvhio`; world joint positions
and rotations come from the BVH forward kinematics (`read_bvh`, checked against bvhio's own hierarchy in the
tests); `bvh_mapping.map_skeleton` maps each of our 22 joints to a BVH joint, an end site or a mix of joints by
names and the hierarchy, and detects the units and the up axis; positions are resampled to 30 fps and converted
to the avatar frame (metres, y up, x = the body's left; the heading stays as captured). Then, for OUR T-pose
skeleton, every joint's global rotation is chosen so that its rest child-bone direction(s) land on the observed ones:

- two directions where available, so that the twist is defined: pelvis (up = pelvis→spine1, and the
  hips vector right_hip→left_hip), spine3 (spine3→neck and the collar vector), hips and shoulders (the limb
  direction and the knee / elbow bend-plane normal; where the limb is nearly straight the normal is
  undefined and the previous frame's normal is kept);
- a single direction with the minimal rotation relative to the parent elsewhere (a pure swing, no twist);
- the leaves without a child in the 22-joint skeleton (head, wrists, toes) take the orientation of the BVH
  segment that carries them (head, hand, toe — the joint whose rotation moves the head top / eyes, the finger
  bases, the toe tip): G_leaf(t) = W_seg(t) · G_parent^rest, where W_seg is that segment's BVH world rotation
  (identity in the BVH rest pose) and G_parent^rest our parent joint's global rotation when the BVH's own rest
  pose is retargeted — i.e. each end segment is neutral relative to its parent in the BVH rest pose, which holds
  for T- and A-poses alike. The end segment's direction (and twist) is then reproduced exactly.

Local rotations are local_j = G_parent⁻¹ · G_j (SMPL kinematics). Only the leaves use the BVH rest pose (and only
relative to their parent), so T-pose, A-pose or z-up rests give the same poses.

Root translation: the pelvis displacement scaled by our leg length over the source's (so strides fit our body),
horizontally from the first frame's pelvis, vertically from the source's standing height (its rest pelvis height
above its lowest foot joint, placed on the clip's foot level, the 2nd percentile of the lowest foot joint's height).
A root translation of zero is thus "standing as in the rest pose", as every generated motion is.
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
    """World-space joints of one BVH file, as parsed by bvhio.

    Attributes:
        names: BVH joint names in file (depth-first) order.
        parents: parent index per joint (-1 for the root).
        positions: (F, J, 3) float64 world joint positions, BVH units and BVH world frame.
        end_sites: (F, J, 3) float64 world end-site positions (meaningful for leaf joints only).
        frame_time: seconds per frame from the BVH header.
        rotations: (F, J, 3, 3) float64 world rotations of the joints (identity in the rest pose).
        rest_positions, rest_end_sites: (J, 3) float64 joint and end-site positions of the rest pose (the OFFSETs
            with every rotation zero and the root at its OFFSET), BVH units.
    """

    names: list[str]
    parents: list[int]
    positions: np.ndarray
    end_sites: np.ndarray
    frame_time: float
    rotations: np.ndarray | None = None
    rest_positions: np.ndarray | None = None
    rest_end_sites: np.ndarray | None = None


@dataclass
class RetargetedClip:
    """A BVH clip on the 22-joint skeleton.

    Attributes:
        poses: (T, 22, 3) float32 local axis-angle (radians), SMPL order, zero = our T-pose; index 0 is the
            global orientation.
        root_translation: (T, 3) float32 metres, avatar frame, added to the rest pelvis by
            `skeleton.forward_kinematics`: zero = standing as in the rest pose at the origin (module docstring).
        fps: frames per second of `poses` (30 by default).
        joints: (T, 22, 3) float32 observed joint positions (metres, avatar frame, the capture's own place and
            size) the poses were solved from; bone lengths are the BVH's, not ours.
        skeleton_type: a `bvh_mapping.KNOWN_SKELETONS` label or "generic".
        end_directions: (T, 5, 3) float32 observed unit directions of the end segments of the leaves
            (`bvh_mapping.LEAVES`: head, left/right wrist, left/right toe), NaN where the source has no end point.
        end_rest: (5, 3) float32 the same directions on our skeleton at rest (in the leaf's rest frame), so that
            FK(poses) reproduces `end_directions` (`end_direction_error`).
        unit_scale: metres per BVH unit (detected or given); leg_scale: our leg length / the source's.
        mapping: the `bvh_mapping.SkeletonMap` used.
    """

    poses: torch.Tensor
    root_translation: torch.Tensor
    fps: float
    joints: torch.Tensor
    skeleton_type: str
    end_directions: torch.Tensor | None = None
    end_rest: torch.Tensor | None = None
    unit_scale: float = 1.0
    leg_scale: float = 1.0
    mapping: object = None


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
        `BvhClip` with names and parents in file (depth-first) order, positions and end_sites (F, J, 3) and
        world rotations (F, J, 3, 3), float64 in BVH units and the BVH world frame, the rest pose, and the
        header's frame time (seconds).
    Raises:
        FileNotFoundError: when `path` does not exist. ValueError naming the file when bvhio cannot parse it.
    """
    import bvhio

    if not os.path.exists(path):
        raise FileNotFoundError(f"BVH file not found: {path}")
    _check_bvh_text(path)
    try:
        bvh = bvhio.readAsBvh(str(path))
        layout = bvh.Root.layout()
    except Exception as e:  # bvhio raises SyntaxError, ValueError, IndexError… on malformed files
        raise ValueError(f"{path} is not a readable BVH file ({type(e).__name__}: {e})") from None
    joints = [j for j, _, _ in layout]
    names = [j.Name for j in joints]
    index = {id(j): i for i, j in enumerate(joints)}
    parents = [-1] * len(joints)
    for i, j in enumerate(joints):
        for c in j.Children:
            parents[index[id(c)]] = i
    if not joints or not joints[0].Keyframes:
        raise ValueError(f"{path} has no motion frames")
    pos = np.array([[(k.Position.x, k.Position.y, k.Position.z) for k in j.Keyframes] for j in joints])
    quat = np.array([[(k.Rotation.w, k.Rotation.x, k.Rotation.y, k.Rotation.z) for k in j.Keyframes]
                     for j in joints])
    pos, rot = pos.transpose(1, 0, 2), _quat_wxyz_to_matrix(quat.transpose(1, 0, 2))  # (F, J, 3), (F, J, 3, 3)
    end = np.array([(j.EndSite.x, j.EndSite.y, j.EndSite.z) for j in joints])
    offsets = np.array([(j.Offset.x, j.Offset.y, j.Offset.z) for j in joints])
    F, J = pos.shape[:2]
    wr = np.zeros((F, J, 3, 3))
    wp = np.zeros((F, J, 3))
    rest = np.zeros((J, 3))
    for j in range(J):
        p = parents[j]
        if p < 0:
            wr[:, j], wp[:, j], rest[j] = rot[:, j], pos[:, j], offsets[j]
        else:
            wr[:, j] = wr[:, p] @ rot[:, j]
            wp[:, j] = wp[:, p] + (wr[:, p] @ pos[:, j, :, None])[..., 0]
            rest[j] = rest[p] + offsets[j]
    ends = wp + (wr @ end[None, :, :, None])[..., 0]
    return BvhClip(names, parents, wp, ends, float(bvh.FrameTime), wr, rest, rest + end)


def _check_bvh_text(path) -> None:
    """Raise ValueError unless the file has the BVH sections bvhio needs: HIERARCHY with balanced braces, MOTION,
    `Frames: N`, `Frame Time: t` and N data lines (bvhio loops forever on a file truncated before them)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = [ln.strip() for ln in f if ln.strip()]
    except OSError as e:
        raise ValueError(f"{path} cannot be read ({e})") from None
    heads = [i for i, ln in enumerate(lines) if ln.upper().startswith("MOTION")]
    problem = None
    if not lines or not lines[0].upper().startswith("HIERARCHY"):
        problem = "it does not start with HIERARCHY"
    elif not heads:
        problem = "it has no MOTION section"
    else:
        m = heads[0]
        hierarchy = " ".join(lines[:m])
        frames = lines[m + 1] if m + 1 < len(lines) else ""
        if hierarchy.count("{") != hierarchy.count("}") or "{" not in hierarchy:
            problem = "its HIERARCHY braces do not balance (truncated?)"
        elif not frames.lower().startswith("frames:") or m + 2 >= len(lines) or \
                not lines[m + 2].lower().startswith("frame time:"):
            problem = "MOTION is not followed by 'Frames: N' and 'Frame Time: t'"
        else:
            try:
                n = int(frames.split(":", 1)[1])
            except ValueError:
                n = -1
            have = len(lines) - (m + 3)
            if n < 1 or have < n:
                problem = f"the header says Frames: {frames.split(':', 1)[1].strip()} but {have} frame lines follow"
    if problem:
        raise ValueError(f"{path} is not a readable BVH file: {problem}")


def map_joints(clip: BvhClip, joint_map: dict | str | os.PathLike | None = None,
               rest_joints: torch.Tensor | None = None):
    """Map `clip` onto the 22 joints (`bvh_mapping.map_skeleton`, names + hierarchy + units + up axis).

    Returns ((F, 22, 3) float64 positions of our joints in BVH units and the BVH world frame, the SkeletonMap).
    Raises bvh_mapping.SkeletonMapError (a ValueError) listing the joints it could not find and how to map them."""
    from .bvh_mapping import map_skeleton

    F = clip.positions.shape[0]
    frames = clip.positions[:: max(1, F // 200)]
    rest = None if rest_joints is None else torch.as_tensor(rest_joints).detach().cpu().numpy()
    smap = map_skeleton(clip.names, clip.parents, clip.rest_positions, clip.rest_end_sites, frames, joint_map, rest)
    return smap.evaluate(clip.positions, clip.end_sites), smap


def resample(x: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    """Linearly resample (F, ...) frames from `fps_in` to `fps_out` (times k / fps_out within the clip).

    Returns (n, ...) float64 with n = ⌊(F − 1) · fps_out / fps_in + 0.001⌋ + 1.
    Raises ValueError unless both rates are > 0."""
    if fps_in <= 0 or fps_out <= 0:
        raise ValueError(f"frame rates must be positive, got fps_in={fps_in}, fps_out={fps_out}")
    F = x.shape[0]
    n = int(np.floor((F - 1) * fps_out / fps_in + 1e-3)) + 1  # tolerant of rounded frame times (0.0333333)
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


def solve_globals(joints: torch.Tensor, rest_joints: torch.Tensor | None = None,
                  leaf_globals: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """Global rotations (T, 22, 3, 3) float64 of OUR rest skeleton that put its bones along observed directions.

    See `solve_rotations` (module docstring for the method); `leaf_globals` maps leaf joint names (head, wrists,
    toes) to their (T, 3, 3) global rotations; leaves not given keep their parent's orientation (local identity).
    """
    if joints.ndim != 3 or tuple(joints.shape[1:]) != (22, 3):
        raise ValueError(f"joints must be (T, 22, 3), got {tuple(joints.shape)}")
    if not torch.isfinite(joints).all():
        raise ValueError("joints contain NaN/inf values")
    P = joints.detach().to(torch.float64).cpu()
    R = (DEFAULT_REST_JOINTS if rest_joints is None else rest_joints).detach().to(P).cpu()
    if tuple(R.shape) != (22, 3):
        raise ValueError(f"rest_joints must be (22, 3), got {tuple(R.shape)}")
    leaf_globals = leaf_globals or {}
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
            # Fallback normal: the one the zero-twist rotation gives, i.e. the smallest swing (relative to the
            # parent) taking the rest limb onto the observed one (parent · n_rest alone would be parallel to an
            # arm hanging straight down).
            limb_par = (parent @ vec(R, name, child)[..., None])[..., 0]
            swing = roma.rotvec_to_rotmat(skeleton.rotations_aligning(limb_par, limb))
            n_fallback = (swing @ (parent @ n_rest)[..., None])[..., 0]
            normal = _ffill(normal, bend > _MIN_BEND, n_fallback)
            G[j] = _frame(limb, normal) @ _frame(vec(R, name, child), n_rest).T
        elif len(children[j]) == 1:
            c = children[j][0]
            d_obs = (parent.transpose(-1, -2) @ (P[:, c] - P[:, j])[..., None])[..., 0]
            d_rest = (R[c] - R[j]).expand_as(d_obs)
            G[j] = parent @ roma.rotvec_to_rotmat(skeleton.rotations_aligning(d_rest, d_obs))
        elif name in leaf_globals:  # head, wrists, toes: the BVH end segment's orientation
            G[j] = torch.as_tensor(leaf_globals[name], dtype=P.dtype).expand_as(parent)
        else:  # no end segment in the source: rest orientation relative to the parent
            G[j] = parent.clone()
    return torch.stack(G, dim=1)


def solve_rotations(joints: torch.Tensor, rest_joints: torch.Tensor | None = None,
                    leaf_globals: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """Local axis-angle rotations that put OUR rest skeleton's bones along observed bone directions.

    Args:
        joints: (T, 22, 3) observed joint positions (any units), avatar frame (y up, faces +z), frames in
            time order (used to keep the twist of a straight limb from the previous frame).
        rest_joints: (22, 3) our T-pose joint positions (default `DEFAULT_REST_JOINTS`).
        leaf_globals: optional {leaf joint name: (T, 3, 3) global rotation} for head, wrists and toes
            (`retarget_bvh` passes the BVH end segments' orientations); leaves not given stay at rest
            relative to their parent (zero local rotation).
    Returns:
        (T, 22, 3) float32 local axis-angle rotations (radians).
    Raises:
        ValueError: on wrong shapes or non-finite input.
    """
    G = solve_globals(joints, rest_joints, leaf_globals)
    par = list(skeleton.PARENTS[1:])
    local = torch.cat([G[:, :1], G[:, par].transpose(-1, -2) @ G[:, 1:]], dim=1)
    return roma.rotmat_to_rotvec(local).to(torch.float32)


def _resample_rotations(W: np.ndarray, fps_in: float, fps_out: float) -> torch.Tensor:
    """(F, ..., 3, 3) rotations resampled like `resample` (linear blend, projected back onto SO(3))."""
    Wr = torch.as_tensor(resample(W, fps_in, fps_out))
    return roma.special_procrustes(Wr)


def retarget_bvh(path: str | os.PathLike, rest_joints: torch.Tensor | None = None, fps: float | None = None,
                 target_fps: float = 30.0, skeleton_type: str | None = None,
                 joint_map: dict | str | os.PathLike | None = None,
                 frames: tuple[int, int] | None = None) -> RetargetedClip:
    """Retarget one humanoid BVH file (any skeleton `bvh_mapping.map_skeleton` can map) to the 22-joint skeleton.

    Mapped automatically: both conversions of ../shared/data/cmu_mocap (iClone CC3, cgspeed Daz), the CMU 31-joint
    skeleton with MotionBuilder or ASF names, cgspeed's 3ds Max (Biped) names, Mixamo and SMPL names, and our
    own `write_bvh` export; anything else with recognisable hand / foot / head names and a humanoid hierarchy.

    Args:
        path: BVH file.
        rest_joints: (22, 3) our T-pose joints in metres (default `DEFAULT_REST_JOINTS`, the anny body).
        fps: true capture rate of the file; default 1 / header frame time (some cgspeed files state 120 fps
            in the header but are 60 fps: pass clips.csv's `true_fps`).
        target_fps: output rate (30, as AvatarCLIP's motions).
        skeleton_type: optional expected `KNOWN_SKELETONS` label; ValueError when the file is another skeleton.
        joint_map: user overrides of the mapping: a dict or a JSON file (`bvh_mapping.load_joint_map`).
        frames: optional (first, stop) BVH frame range to retarget (source frames, before resampling).
    Returns:
        RetargetedClip (poses (T, 22, 3) float32 axis-angle, root_translation (T, 3) float32 metres, joints,
        end-segment directions, units), fps = target_fps.
    Raises:
        FileNotFoundError (missing file), ValueError (unreadable BVH, bad frame rates or range),
        bvh_mapping.SkeletonMapError (a ValueError: the skeleton cannot be mapped; lists the missing joints).
    """
    clip = read_bvh(path)
    if frames is not None:
        a, b = frames
        if not 0 <= a < b <= clip.positions.shape[0]:
            raise ValueError(f"frames={frames} outside the clip's 0…{clip.positions.shape[0]} frames")
        clip = BvhClip(clip.names, clip.parents, clip.positions[a:b], clip.end_sites[a:b], clip.frame_time,
                       clip.rotations[a:b], clip.rest_positions, clip.rest_end_sites)
    return retarget_clip(clip, rest_joints, fps, target_fps, skeleton_type, joint_map)


def retarget_clip(clip: BvhClip, rest_joints: torch.Tensor | None = None, fps: float | None = None,
                  target_fps: float = 30.0, skeleton_type: str | None = None,
                  joint_map: dict | str | os.PathLike | None = None) -> RetargetedClip:
    """`retarget_bvh` on an already parsed `BvhClip` (same arguments and result)."""
    from .bvh_mapping import LEAVES

    rest = (DEFAULT_REST_JOINTS if rest_joints is None else torch.as_tensor(rest_joints)).to(torch.float64)
    pos, smap = map_joints(clip, joint_map, rest)
    if skeleton_type is not None and skeleton_type != smap.skeleton_type:
        raise ValueError(f"skeleton_type={skeleton_type!r} expected, but the file is {smap.skeleton_type!r}")
    fps_in = fps if fps is not None else 1.0 / clip.frame_time
    up = torch.as_tensor(smap.up_rotation)
    k = smap.unit_scale

    def to_avatar(x: np.ndarray) -> torch.Tensor:  # BVH units/world → metres, y up
        return (up @ torch.as_tensor(x, dtype=torch.float64)[..., None])[..., 0] * k

    joints = to_avatar(resample(pos, fps_in, target_fps))
    ends = to_avatar(resample(smap.evaluate(clip.positions, clip.end_sites, "ends"), fps_in, target_fps))
    W = _resample_rotations(clip.rotations[:, [smap.bodies[n] for n in LEAVES]], fps_in, target_fps)
    W = up @ W @ up.T  # BVH world → avatar frame (W = identity at the BVH rest)
    # Each end segment's neutral orientation relative to its parent: from the BVH rest pose when that is a
    # standing T- or A-pose (its own retarget gives our parents' orientations), else (rigs whose rest is no
    # pose, e.g. iClone's bones all along +y) the clip's mean orientation relative to the parent.
    rest_pos = to_avatar(smap.evaluate(clip.rest_positions[None], clip.rest_end_sites[None]))
    rest_ends = to_avatar(smap.evaluate(clip.rest_positions[None], clip.rest_end_sites[None], "ends"))
    standing = rest_is_standing(rest_pos[0])
    G_free = solve_globals(joints, rest) if not standing else None
    G_rest = solve_globals(rest_pos, rest)[0] if standing else None
    leaf_globals, end_rest = {}, torch.full((len(LEAVES), 3), float("nan"), dtype=torch.float64)
    for i, name in enumerate(LEAVES):
        par = skeleton.PARENTS[_J[name]]
        # C: the segment's rotation (as W = identity) in our skeleton: G_leaf = W · C.
        C = G_rest[par] if standing else roma.special_procrustes((W[:, i].transpose(-1, -2) @ G_free[:, par]).mean(0))
        leaf_globals[name] = W[:, i] @ C
        if name in smap.ends:
            d = rest_ends[0, i] - rest_pos[0, _J[name]]
            end_rest[i] = C.T @ (d / d.norm().clamp_min(1e-12))
    poses = solve_rotations(joints, rest, leaf_globals)
    end_dirs = torch.nn.functional.normalize(ends - joints[:, [_J[n] for n in LEAVES]], dim=-1)
    root, leg_scale = _root_translation(joints, rest)
    return RetargetedClip(poses, root.to(torch.float32), float(target_fps), joints.to(torch.float32),
                          smap.skeleton_type, end_dirs.to(torch.float32), end_rest.to(torch.float32), k, leg_scale,
                          smap)


_FEET = [_J[n] for n in ("left_ankle", "right_ankle", "left_foot", "right_foot")]


def _leg_length(j: torch.Tensor) -> torch.Tensor:
    """(...,) mean hip→knee→ankle length of both legs of (..., 22, 3) joints."""
    total = 0.0
    for h, kn, a in (("left_hip", "left_knee", "left_ankle"), ("right_hip", "right_knee", "right_ankle")):
        total = total + (j[..., _J[kn], :] - j[..., _J[h], :]).norm(dim=-1) + \
            (j[..., _J[a], :] - j[..., _J[kn], :]).norm(dim=-1)
    return total / 2


def rest_is_standing(rest: torch.Tensor) -> bool:
    """Whether (22, 3) mapped rest joints form a standing T- or A-pose: legs down and arms not raised, relative to
    the hip-centre → spine3 axis (iClone's rest, all bones along +y, is not)."""
    up = torch.nn.functional.normalize(rest[_J["spine3"]] - 0.5 * (rest[1] + rest[2]), dim=0)

    def cos(a, b):
        return float(torch.nn.functional.normalize(rest[_J[b]] - rest[_J[a]], dim=0) @ up)

    return all(cos(f"{s}_hip", f"{s}_ankle") < -0.8 and cos(f"{s}_shoulder", f"{s}_wrist") < 0.5
               and cos(f"{s}_ankle", f"{s}_foot") < 0.5 for s in ("left", "right"))


def _root_translation(joints: torch.Tensor, rest: torch.Tensor):
    """Root translation (T, 3) metres (module docstring) and the leg scale (our leg / the source's)."""
    s = float(_leg_length(rest) / _leg_length(joints).median().clamp_min(1e-9))
    pelvis = joints[:, 0]
    # The clip's foot level (a low percentile of the lowest foot joint) goes to our rest's lowest foot joint.
    foot_level = float(torch.quantile(joints[:, _FEET, 1].min(dim=1).values, 0.02))
    stand = float(rest[0, 1] - rest[_FEET, 1].min())
    target = torch.stack([s * (pelvis[:, 0] - pelvis[0, 0]),
                          s * (pelvis[:, 1] - foot_level) - stand,
                          s * (pelvis[:, 2] - pelvis[0, 2])], dim=-1)
    return target, s


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


def end_direction_error(poses: torch.Tensor, end_directions: torch.Tensor, end_rest: torch.Tensor,
                        rest_joints: torch.Tensor | None = None) -> torch.Tensor:
    """Angle (radians) between the leaves' end segments of FK(poses) and the observed ones.

    Args: poses (T, 22, 3) axis-angle (radians); end_directions (T, 5, 3) observed unit directions and end_rest
    (5, 3) their rest directions in the leaves' frames (`RetargetedClip`, `bvh_mapping.LEAVES` order: head,
    left/right wrist, left/right toe), NaN where the source has no end point; rest_joints (22, 3) metres.
    Returns (T, 5) float64 angles in [0, π], NaN for the missing end segments.
    """
    from .bvh_mapping import LEAVES

    rest = (DEFAULT_REST_JOINTS if rest_joints is None else rest_joints).to(torch.float64)
    tr, _ = skeleton.forward_kinematics(poses.to(torch.float64), rest)
    G = tr[:, [_J[n] for n in LEAVES], :3, :3]
    a = (G @ end_rest.to(torch.float64)[None, :, :, None])[..., 0]
    cos = torch.nn.functional.cosine_similarity(a, end_directions.to(torch.float64), dim=-1).clamp(-1, 1)
    return torch.acos(cos)


def direction_errors(clip: RetargetedClip, rest_joints: torch.Tensor | None = None) -> torch.Tensor:
    """(T, 21 + E) float64 radians: `bone_direction_error` of the 21 bones, then `end_direction_error` of the E
    end segments the source has (head top / eyes, finger bases, toe tips) — the retarget's whole-body check."""
    err = bone_direction_error(clip.poses, clip.joints, rest_joints)
    if clip.end_directions is None:
        return err
    ends = end_direction_error(clip.poses, clip.end_directions, clip.end_rest, rest_joints)
    return torch.cat([err, ends[:, ~torch.isnan(ends).any(0)]], dim=1)
