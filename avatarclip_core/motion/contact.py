"""Root motion and foot contact (docs/method.md "Root motion and foot contact"): a root trajectory for motions
generated without one, and the contact-aware post-process that every stage-5 motion goes through.

Any motion — poses (T, 22, 3) axis-angle + root translation (T, 3) metres on a rest skeleton (22, 3), SMPL
kinematics (`skeleton.forward_kinematics`) — from the interpolation, the MotionOptimizer, a motion prior that
predicts the root, or mocap, takes the same path (`apply_contact`, settings `ContactParams`):

1. contact-driven root (`contact_root`): where the generator gave no horizontal root (or one whose grounded feet
   skate `root_skate_ratio` times faster than with this one), the root moves so that the foot joints near the
   floor stay where they are (the stance foot is planted and the body travels over it);
2. grounding (`ground_root`): a vertical root offset per frame puts the lowest foot joint on the floor;
3. contact detection (`detect_contact`): per foot joint, height and horizontal speed thresholds with hysteresis;
4. foot locking (`lock_feet`): a foot joint in contact is held at one floor position per contact by an analytic
   two-bone IK on hip–knee–ankle (`two_bone_ik`), faded in and out over a few frames;
5. grounding again (the IK moves feet by centimetres).

Only the root and the local rotations of the hips, knees and ankles (`LEG_JOINTS`) change.

The floor: the rest (T-)pose stands on it, so a foot joint touches it when it is at its own rest height. Its
`foot_clearance` is its height above that rest height (the joint's height above the floor minus its rest
ankle/toe-to-sole offset); the floor plane itself is the rest mesh's lowest point (`floor_height`, the soles),
which the videos draw.
"""
from __future__ import annotations

from dataclasses import dataclass

import roma
import torch

from .. import skeleton
from .params import ContactParams
from .priors import FOOT_JOINTS

# (hip, knee, ankle, foot) of the left and right leg (SMPL indices) and, for each, the positions of its ankle and
# foot (toe) in FOOT_JOINTS = (left ankle, right ankle, left foot, right foot).
LEGS = ((1, 4, 7, 10), (2, 5, 8, 11))
_LEG_FOOT_SLOTS = ((0, 2), (1, 3))
LEG_JOINTS = (1, 2, 4, 5, 7, 8)  # the joints whose local rotations the post-process may change


def floor_height(rest_vertices: torch.Tensor) -> float:
    """Height (y, metres, avatar frame) of the floor: the lowest point of the rest (T-pose) mesh, the soles.

    rest_vertices: (V, 3) or (1, V, 3). Raises ValueError on an empty or non-finite mesh."""
    v = torch.as_tensor(rest_vertices).reshape(-1, 3)
    if v.shape[0] == 0 or not torch.isfinite(v).all():
        raise ValueError("floor_height needs a non-empty, finite rest mesh (V, 3) in metres")
    return float(v[:, 1].min())


def foot_clearance(joints: torch.Tensor, rest_joints: torch.Tensor) -> torch.Tensor:
    """Heights above the floor of the foot joints: (..., 22, 3) joint positions (metres, avatar frame, root
    translation included) → (..., 4) joint height minus its rest height, order `FOOT_JOINTS` (left ankle, right
    ankle, left foot, right foot). 0 = touching the floor as in the rest pose, < 0 = below it."""
    rest = torch.as_tensor(rest_joints).reshape(22, 3).to(joints)
    idx = list(FOOT_JOINTS)
    return joints[..., idx, 1] - rest[idx, 1]


def world_joints(poses: torch.Tensor, root: torch.Tensor | None, rest_joints: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward kinematics (`skeleton.forward_kinematics`): poses (T, 22, 3) axis-angle radians, root (T, 3)
    metres (None = zeros), rest_joints (22, 3) → joint positions (T, 22, 3) and global rotations (T, 22, 3, 3),
    in the dtype of `poses`."""
    T, _ = skeleton.forward_kinematics(poses, torch.as_tensor(rest_joints).reshape(22, 3), root)
    return T[..., :3, 3], T[..., :3, :3]


def _check(poses, root, rest_joints):
    poses = torch.as_tensor(poses)
    if poses.ndim != 3 or poses.shape[0] == 0:
        raise ValueError(f"poses must be (T, 22, 3) axis-angle with T ≥ 1, got {tuple(poses.shape)}")
    skeleton.check_pose(poses, "poses")
    T = poses.shape[0]
    root = torch.zeros(T, 3, dtype=poses.dtype) if root is None else torch.as_tensor(root)
    if tuple(root.shape) != (T, 3) or not torch.isfinite(root).all():
        raise ValueError(f"root_translation must be a finite ({T}, 3) tensor in metres, got {tuple(root.shape)}")
    rest = torch.as_tensor(rest_joints)
    if rest.numel() != 66 or not torch.isfinite(rest).all():
        raise ValueError(f"rest_joints must be a finite (22, 3) tensor in metres, got {tuple(rest.shape)}")
    return poses, root, rest.reshape(22, 3)


# ----------------------------------------------------------------------------------------------- root
def contact_root(poses: torch.Tensor, rest_joints: torch.Tensor, fps: float = 30.0, stance_softness: float = 0.02,
                 stance_speed: float = 0.2, iterations: int = 3) -> torch.Tensor:
    """Horizontal root trajectory from foot contact (the classic contact-driven root of motion editing).

    Between frames t and t + 1 the root moves by minus the weighted mean horizontal displacement of the foot
    joints relative to the root — so the stance foot stays planted and the body travels over it; a body turning
    on one foot turns about that foot. Weights: exp(−c / stance_softness), c = the joint's height above the
    lowest foot joint of the frame, times 1 / (1 + (u / stance_speed)²), u = the joint's horizontal speed
    under the current root estimate (iteratively reweighted, `iterations` times: of a rolling foot the joint
    that can stay still — the toe when the heel rises — gets planted, not the mean of both).

    Args:
        poses: (T, 22, 3) axis-angle radians (global orientation included); rest_joints: (22, 3) metres.
        fps: frames per second (> 0). stance_softness: metres (> 0); stance_speed: m/s (> 0); iterations:
        reweighting passes (≥ 0).
    Returns:
        (T, 3) root translation in metres, avatar frame: x and z from contact, starting at 0; y = 0 (the height
        comes from `ground_root`). Same dtype as `poses`.
    Raises:
        ValueError: on bad shapes or non-finite values, or fps / stance_softness / stance_speed ≤ 0.
    """
    poses, _, rest = _check(poses, None, rest_joints)
    if not (fps > 0 and stance_softness > 0 and stance_speed > 0):
        raise ValueError(f"fps, stance_softness (m) and stance_speed (m/s) must be > 0, got {fps}, "
                         f"{stance_softness}, {stance_speed}")
    p, _ = world_joints(poses.double(), None, rest.double())
    c = foot_clearance(p, rest)
    w_height = torch.exp(-(c - c.min(dim=1, keepdim=True).values) / stance_softness)  # (T, 4), lowest = 1
    w_height = 0.5 * (w_height[1:] + w_height[:-1])
    feet = p[:, list(FOOT_JOINTS)][..., [0, 2]]  # (T, 4, 2) relative to the root
    dq = feet[1:] - feet[:-1]
    w = w_height
    for _ in range(iterations + 1):
        step = -(w[..., None] * dq).sum(1) / w.sum(1, keepdim=True)  # (T − 1, 2) root displacement
        u = (dq + step[:, None]).norm(dim=-1) * fps
        w = w_height / (1.0 + (u / stance_speed) ** 2)
    root = torch.zeros(poses.shape[0], 3, dtype=torch.float64)
    root[1:, 0], root[1:, 2] = step[:, 0].cumsum(0), step[:, 1].cumsum(0)
    return root.to(poses.dtype)


def ground_root(poses: torch.Tensor, root: torch.Tensor | None, rest_joints: torch.Tensor) -> torch.Tensor:
    """The root with its height replaced so that the lowest foot joint is on the floor in every frame:
    root_y − min over the foot joints of `foot_clearance`. Shapes as `contact_root`; returns (T, 3) metres."""
    poses, root, rest = _check(poses, root, rest_joints)
    p, _ = world_joints(poses.double(), root.double(), rest.double())
    out = root.clone()
    out[:, 1] = (root.double()[:, 1] - foot_clearance(p, rest).min(dim=1).values).to(root.dtype)
    return out


def align_floor(poses: torch.Tensor, root: torch.Tensor | None, rest_joints: torch.Tensor) -> torch.Tensor:
    """The root shifted by one constant height so that the median over frames of the lowest foot joint's
    clearance is 0: a captured clip, whose world floor is not ours (and whose legs are not our skeleton's),
    measured against our floor without flattening its jumps. Shapes as `ground_root`."""
    poses, root, rest = _check(poses, root, rest_joints)
    p, _ = world_joints(poses.double(), root.double(), rest.double())
    out = root.clone()
    out[:, 1] -= foot_clearance(p, rest).min(dim=1).values.median().to(root.dtype)
    return out


# ----------------------------------------------------------------------------------------------- contact
def _runs(mask: torch.Tensor) -> list[tuple[int, int]]:
    """Inclusive (start, end) of the runs of True in a (T,) bool tensor."""
    runs, start = [], None
    for t, m in enumerate(mask.tolist() + [False]):
        if m and start is None:
            start = t
        elif not m and start is not None:
            runs.append((start, t - 1))
            start = None
    return runs


def horizontal_speed(points: torch.Tensor, fps: float) -> torch.Tensor:
    """(T, N, 3) positions (metres) → (T, N) horizontal (xz) speed in m/s by central differences (one-sided at
    the ends; zeros when T = 1)."""
    xz = points[..., [0, 2]]
    if xz.shape[0] < 2:
        return torch.zeros(xz.shape[:-1], dtype=xz.dtype)
    v = torch.empty_like(xz)
    v[1:-1] = (xz[2:] - xz[:-2]) * 0.5
    v[0], v[-1] = xz[1] - xz[0], xz[-1] - xz[-2]
    return v.norm(dim=-1) * fps


def detect_contact(joints: torch.Tensor, rest_joints: torch.Tensor, fps: float,
                   params: ContactParams | None = None) -> torch.Tensor:
    """Foot contact of each foot joint per frame, with hysteresis.

    A joint enters contact when its clearance (`foot_clearance`) < height_on and its horizontal speed
    < speed_on, and stays in contact until its clearance > height_off or its speed > speed_off; contacts
    shorter than `min_frames` are dropped.

    Args:
        joints: (T, 22, 3) joint positions in metres (root translation included); rest_joints: (22, 3).
        fps: frames per second (> 0). params: `ContactParams` (default `ContactParams()`).
    Returns:
        (T, 4) bool, order `FOOT_JOINTS` (left ankle, right ankle, left foot, right foot).
    Raises:
        ValueError: on fps ≤ 0 or invalid params.
    """
    params = (params or ContactParams()).validate()
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    h = foot_clearance(joints, rest_joints)
    v = horizontal_speed(joints[:, list(FOOT_JOINTS)], fps)
    contact = torch.zeros(h.shape, dtype=torch.bool)
    for j in range(h.shape[1]):
        state, hj, vj, states = False, h[:, j].tolist(), v[:, j].tolist(), []
        for ht, vt in zip(hj, vj):
            if state:
                state = not (ht > params.height_off or vt > params.speed_off)
            else:
                state = ht < params.height_on and vt < params.speed_on
            states.append(state)
        contact[:, j] = torch.tensor(states, dtype=torch.bool)
        for s, e in _runs(contact[:, j]):
            if e - s + 1 < params.min_frames:
                contact[s:e + 1, j] = False
    return contact


# ----------------------------------------------------------------------------------------------- IK
def _rotate(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    return roma.rotvec_to_rotmat(torch.nn.functional.normalize(axis, dim=-1) * angle[..., None])


def aligning_rotation(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) smallest rotation taking direction src (..., 3) onto dst (..., 3) (`skeleton.rotations_aligning`)."""
    return roma.rotvec_to_rotmat(skeleton.rotations_aligning(src, dst))


def two_bone_ik(hip: torch.Tensor, knee: torch.Tensor, ankle: torch.Tensor, target: torch.Tensor,
                knee_axis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Analytic two-bone IK of a leg: the rotations that bring the ankle to `target` with the hip fixed.

    First the shin turns about the knee's hinge axis (`knee_axis`, through the knee) by the smallest angle δ
    that makes the hip–ankle distance equal |target − hip| (solving a·cos δ + b·sin δ = c in closed form; the
    distance is clamped to what the hinge can reach), then the whole leg swings about the hip by the smallest
    rotation that points the hip→ankle vector at the target. Bone lengths are unchanged (rotations only).

    Args:
        hip, knee, ankle: (..., 3) joint positions (metres); target: (..., 3) wanted ankle position;
        knee_axis: (..., 3) the knee's hinge axis in world coordinates (the knee's local x axis for SMPL, the
            body's left at rest: flexion about it moves the shin backwards).
    Returns:
        (swing (..., 3, 3), bend (..., 3, 3)) world-frame rotations: new knee = hip + swing·(knee − hip), new
        ankle = new knee + swing·bend·(ankle − knee). The ankle reaches the target when it is within reach
        (the shin's hinge range), else it lands on the hip→target line at the nearest reachable distance.
    """
    a, b, t = knee - hip, ankle - knee, target - hip
    n = torch.nn.functional.normalize(knee_axis, dim=-1)
    b_par = (b * n).sum(-1, keepdim=True) * n
    b_perp = b - b_par
    # |a + R(δ) b|² = |a|² + |b|² + 2 a·R(δ)b, with a·R(δ)b = a·b_par + cos δ a·b_perp + sin δ a·(n × b_perp).
    A = (a * b_perp).sum(-1)
    B = (a * torch.linalg.cross(n, b_perp, dim=-1)).sum(-1)
    C = (a * b_par).sum(-1)
    m = 0.5 * ((t * t).sum(-1) - (a * a).sum(-1) - (b * b).sum(-1)) - C
    r = torch.sqrt(A * A + B * B).clamp_min(1e-12)
    phi = torch.atan2(B, A)
    spread = torch.arccos((m / r).clamp(-1.0, 1.0))
    d1 = torch.remainder(phi + spread + torch.pi, 2 * torch.pi) - torch.pi
    d2 = torch.remainder(phi - spread + torch.pi, 2 * torch.pi) - torch.pi
    delta = torch.where(d1.abs() <= d2.abs(), d1, d2)
    bend = _rotate(n, delta)
    new_ankle_rel = a + (bend @ b[..., None])[..., 0]  # hip → ankle after the bend
    swing = aligning_rotation(new_ankle_rel, t)
    return swing, bend


def _lock_schedule(feet: torch.Tensor, contact: torch.Tensor, rest_joints: torch.Tensor, blend: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per foot joint: lock weight (T, 4) in [0, 1] and lock position (T, 4, 3). A contact [s, e] locks the
    joint at its mean xz over the contact and its rest height (on the floor); the weight is 1 inside, fading
    (smoothstep) to 0 over `blend` frames before and after; the nearest contact wins where fades overlap."""
    T = feet.shape[0]
    weight = torch.zeros(T, 4, dtype=feet.dtype)
    target = feet.clone()
    rest_h = torch.as_tensor(rest_joints).reshape(22, 3).to(feet)[list(FOOT_JOINTS), 1]
    frames = torch.arange(T)
    for j in range(4):
        for s, e in _runs(contact[:, j]):
            pos = feet[s:e + 1, j].mean(0)
            pos[1] = rest_h[j]
            dist = torch.clamp(torch.maximum(s - frames, frames - e), min=0).to(feet.dtype)
            x = (1.0 - dist / (blend + 1)).clamp(0, 1)
            w = x * x * (3 - 2 * x)
            better = w > weight[:, j]
            weight[better, j] = w[better]
            target[better, j] = pos
    return weight, target


def lock_feet(poses: torch.Tensor, root: torch.Tensor, rest_joints: torch.Tensor, contact: torch.Tensor,
              blend_frames: int = 4) -> torch.Tensor:
    """Foot locking: hold every foot joint in contact at its lock position (`_lock_schedule`) by two-bone IK.

    Per leg and frame, with lock weights w_a (ankle), w_f (foot/toe) and lock offsets d_a, d_f (lock position −
    current position): the ankle moves by w_a·d_a + (1 − w_a)·w_f·d_f (a toe-only contact carries the foot
    rigidly), the hip and knee rotations come from `two_bone_ik`, and the foot keeps its world orientation
    except that, with the toe locked too, it turns (smallest rotation) toward the locked toe by w_f.

    Args:
        poses: (T, 22, 3) axis-angle radians; root: (T, 3) metres; rest_joints: (22, 3) metres.
        contact: (T, 4) bool (`detect_contact`). blend_frames: fade length in frames (≥ 0).
    Returns:
        (T, 22, 3) poses, same dtype; only `LEG_JOINTS` change, and only in frames with a non-zero lock weight.
    Raises:
        ValueError: on bad shapes or non-finite values.
    """
    poses, root, rest = _check(poses, root, rest_joints)
    contact = torch.as_tensor(contact, dtype=torch.bool)
    if tuple(contact.shape) != (poses.shape[0], 4):
        raise ValueError(f"contact must be ({poses.shape[0]}, 4) bool (FOOT_JOINTS order), got {tuple(contact.shape)}")
    P, G = world_joints(poses.double(), root.double(), rest.double())
    weight, target = _lock_schedule(P[:, list(FOOT_JOINTS)], contact, rest, int(blend_frames))
    out = poses.clone()
    for (h, k, a, f), (sa, sf) in zip(LEGS, _LEG_FOOT_SLOTS):
        wa, wf = weight[:, sa:sa + 1], weight[:, sf:sf + 1]
        on = (wa[:, 0] > 0) | (wf[:, 0] > 0)
        if not on.any():
            continue
        A, F = P[:, a], P[:, f]
        ankle_target = A + wa * (target[:, sa] - A) + (1 - wa) * wf * (target[:, sf] - F)
        swing, bend = two_bone_ik(P[:, h], P[:, k], A, ankle_target, G[:, k, :, 0])
        G_hip, G_knee = swing @ G[:, h], swing @ bend @ G[:, k]
        foot = F - A
        wanted = foot + wf * ((target[:, sf] - ankle_target) - foot)
        G_ankle = aligning_rotation(foot, wanted) @ G[:, a]
        local = torch.stack([G[:, skeleton.PARENTS[h]].transpose(-1, -2) @ G_hip,
                             G_hip.transpose(-1, -2) @ G_knee, G_knee.transpose(-1, -2) @ G_ankle], 1)
        rv = roma.rotmat_to_rotvec(local).to(out.dtype)  # (T, 3, 3): hip, knee, ankle
        for i, j in enumerate((h, k, a)):
            out[on, j] = rv[on, i]
    return out


# ----------------------------------------------------------------------------------------------- all steps
@dataclass
class ContactResult:
    """Output of `apply_contact`.

    Attributes:
        poses: (T, 22, 3) axis-angle radians (only `LEG_JOINTS` differ from the input).
        root_translation: (T, 3) metres, avatar frame.
        contact: (T, 4) bool foot contact of the output (`FOOT_JOINTS` order).
        root_from_contact: whether the horizontal root was derived from contact (`contact_root`).
    """

    poses: torch.Tensor
    root_translation: torch.Tensor
    contact: torch.Tensor
    root_from_contact: bool


def _skate(poses, root, rest, fps) -> float:
    """Foot skating (`metrics.foot_skate`, m/s) of the motion with its root grounded (`ground_root`)."""
    from .metrics import foot_skate

    grounded = ground_root(poses, root, rest)
    return foot_skate(world_joints(poses.double(), grounded.double(), rest.double())[0], rest.double(), fps)


def apply_contact(poses: torch.Tensor, root: torch.Tensor | None, rest_joints: torch.Tensor, fps: float,
                  params: ContactParams | None = None) -> ContactResult:
    """The root-motion and foot-contact post-process (module docstring, steps 1–5; docs/method.md "Root motion
    and foot contact").

    Args:
        poses: (T, 22, 3) axis-angle radians, SMPL order; root: (T, 3) metres (None = zeros); rest_joints:
            (22, 3) metres, the skeleton the motion is played on (stage 5: the default body's).
        fps: frames per second (> 0). params: `ContactParams` (default `ContactParams()`; enabled = False returns
            the input, with its contact).
    Returns:
        `ContactResult` (poses and root in the input dtypes).
    Raises:
        ValueError: on bad shapes, non-finite values, fps ≤ 0 or invalid params.
    """
    params = (params or ContactParams()).validate()
    poses, root, rest = _check(poses, root, rest_joints)
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    derive = params.enabled and params.root != "keep"
    if derive:
        xz = contact_root(poses, rest, fps, params.stance_softness, params.stance_speed).to(root.dtype)
        derived = torch.stack([xz[:, 0], root[:, 1], xz[:, 2]], -1)  # replaces the horizontal root
        if params.root == "auto" and root[:, [0, 2]].any():  # the generator's own root: kept unless it skates more
            derive = _skate(poses, root, rest, fps) > params.root_skate_ratio * _skate(poses, derived, rest, fps)
        root = derived if derive else root
    if params.enabled:
        if params.ground:
            root = ground_root(poses, root, rest)
        if params.lock:
            contact = detect_contact(world_joints(poses.double(), root.double(), rest.double())[0], rest, fps, params)
            poses = lock_feet(poses, root, rest, contact, params.blend_frames)
            if params.ground:
                root = ground_root(poses, root, rest)
    contact = detect_contact(world_joints(poses.double(), root.double(), rest.double())[0], rest, fps, params)
    return ContactResult(poses, root, contact, bool(derive))
