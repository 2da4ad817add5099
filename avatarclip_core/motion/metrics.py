"""Motion quality figures (docs/method.md "Root motion and foot contact", "Motion priors"): foot skating, floor
penetration and float, jitter, joint-limit violations — used by stage 5's manifest, the tests,
`bench/motion.py` and `scripts/build_motion_priors.py`.

Heights are foot-joint clearances (`contact.foot_clearance`: a foot joint's height above its rest height, 0 =
on the floor). Skating uses a height-only contact (clearance below `CONTACT_HEIGHT` in two consecutive frames),
the field's usual definition, so that a foot sliding near the floor counts whatever its speed; it is not the
post-process's detector (`contact.detect_contact`, which also looks at the speed).
"""
from __future__ import annotations

import torch

from .contact import foot_clearance, world_joints
from .priors import FOOT_JOINTS, joint_positions

CONTACT_HEIGHT = 0.05  # metres: a foot joint this close to the floor counts as in contact for `foot_skate`


def foot_skate(joints: torch.Tensor, rest_joints: torch.Tensor, fps: float, contact_height: float = CONTACT_HEIGHT,
               clearance: torch.Tensor | None = None) -> float:
    """Mean horizontal speed (m/s) of the foot joints while in contact.

    Args:
        joints: (..., T, 22, 3) joint positions in metres (root translation included), T ≥ 2.
        rest_joints: (22, 3). fps: frames per second.
        contact_height: metres; a foot joint is in contact between frames t and t + 1 when its clearance is
            below this in both.
        clearance: optional (..., T, 4) clearances to use instead of `foot_clearance(joints, rest_joints)`.
    Returns:
        The mean of ‖Δxz‖·fps over the (joint, frame pair)s in contact; 0.0 when there are none.
    """
    c = foot_clearance(joints, rest_joints) if clearance is None else clearance
    feet = joints[..., list(FOOT_JOINTS), :]
    speed = (feet[..., 1:, :, :][..., [0, 2]] - feet[..., :-1, :, :][..., [0, 2]]).norm(dim=-1) * fps
    contact = (c[..., 1:, :] < contact_height) & (c[..., :-1, :] < contact_height)
    return float(speed[contact].mean()) if contact.any() else 0.0


def floor_figures(joints: torch.Tensor, rest_joints: torch.Tensor) -> dict[str, float]:
    """Float and penetration of a motion, centimetres: joints (..., T, 22, 3) metres → {
    'max_float_cm': max over frames of the lowest foot joint's clearance (> 0: hovering; 0 if never),
    'mean_float_cm': its mean over frames (positive parts only),
    'max_penetration_cm': max over frames and foot joints of the depth below the floor (0 if never)}."""
    c = foot_clearance(joints, rest_joints)
    low = c.min(dim=-1).values
    return {"max_float_cm": float(low.clamp_min(0).max()) * 100.0,
            "mean_float_cm": float(low.clamp_min(0).mean()) * 100.0,
            "max_penetration_cm": float((-c).clamp_min(0).max()) * 100.0}


def joint_accelerations(joints: torch.Tensor, fps: float) -> torch.Tensor:
    """Joint acceleration magnitudes ‖p[t+1] − 2p[t] + p[t−1]‖·fps² (m/s²) of (..., T, J, 3) positions (metres):
    (..., T − 2, J); empty along the frame axis when T < 3."""
    acc = joints[..., 2:, :, :] - 2 * joints[..., 1:-1, :, :] + joints[..., :-2, :, :]
    return acc.norm(dim=-1) * fps * fps


def jitter(joints: torch.Tensor, fps: float) -> float:
    """Mean of `joint_accelerations` (m/s²) over joints and frames of (..., T, J, 3) positions (metres); 0.0 when
    T < 3."""
    if joints.shape[-3] < 3:
        return 0.0
    return float(joint_accelerations(joints, fps).mean())


def joint_limit_violations(poses: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> float:
    """Fraction of body joints (joints 1…21 of (..., 22, 3) axis-angle poses) with a component outside the
    per-joint bounds (21, 3) radians (the pose VAE's `joint_limits`; `priors.within_limits` is the complement)."""
    b = poses[..., 1:, :]
    bad = ((b < lo.to(b)) | (b > hi.to(b))).any(-1)
    return float(bad.float().mean())


def motion_metrics(poses: torch.Tensor, root: torch.Tensor | None, rest_joints: torch.Tensor, fps: float,
                   limits: tuple[torch.Tensor, torch.Tensor] | None = None,
                   contact_height: float = CONTACT_HEIGHT) -> dict[str, float]:
    """Every figure of one motion: poses (T, 22, 3) radians, root (T, 3) metres (None = zeros), rest_joints (22, 3).

    Returns {'foot_skate_m_s', 'max_float_cm', 'mean_float_cm', 'max_penetration_cm', 'jitter_m_s2'} and, when
    `limits` = (lo, hi) (21, 3) radians is given, 'joint_limit_violations' (fraction of the T·21 body joints)."""
    p, _ = world_joints(torch.as_tensor(poses).double(), None if root is None else torch.as_tensor(root).double(),
                        torch.as_tensor(rest_joints).double())
    out = {"foot_skate_m_s": foot_skate(p, rest_joints, fps, contact_height), **floor_figures(p, rest_joints),
           "jitter_m_s2": jitter(p, fps)}
    if limits is not None:
        out["joint_limit_violations"] = joint_limit_violations(torch.as_tensor(poses), *limits)
    return out


def motion_statistics(rotmats: torch.Tensor, rest_joints: torch.Tensor, fps: float = 30.0,
                      contact_height: float = CONTACT_HEIGHT, root: torch.Tensor | None = None) -> dict[str, float]:
    """Foot-skate, jitter and angular speed of motion windows: rotmats (B, T, 21, 3, 3) body rotations (the
    "body frame": zero global orientation, root at rest, no translation), or (B, T, 22, 3, 3) with the global
    orientation as joint 0, placed at `root` (B, T, 3) metres (default: no translation).

    Returns:
      'foot_skate_m_s': `foot_skate` with clearances measured from the window's lowest foot joint (a root-fixed
          window has no floor of its own);
      'jitter_m_s2': `jitter` (m/s²);
      'ang_speed_p99_rad_s' / 'ang_speed_max_rad_s': 99th percentile / max of the per-joint geodesic angle
          between consecutive frames × fps (rad/s).
    """
    p = joint_positions(rotmats, rest_joints)  # (B, T, 22, 3)
    if root is not None:
        p = p + root.to(p)[:, :, None]
    c = foot_clearance(p, rest_joints)
    c = c - c.amin(dim=(-2, -1), keepdim=True)
    rel = rotmats[:, :-1].transpose(-1, -2) @ rotmats[:, 1:]
    cos = ((rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    ang = torch.arccos(cos) * fps
    return {"foot_skate_m_s": foot_skate(p, rest_joints, fps, contact_height, clearance=c),
            "jitter_m_s2": jitter(p, fps),
            "ang_speed_p99_rad_s": float(torch.quantile(ang.flatten().double(), 0.99)),
            "ang_speed_max_rad_s": float(ang.max())}
