"""Open pose and motion priors trained on CMU mocap (docs/method.md, Motion priors), replacing AvatarCLIP's
gated VPoser and motion VAE (docs/method.md §6, §6.2).

* `PoseVAE` — VPoser-like MLP VAE over single body poses: the 21 body joints' rotations (joints 1…21, SMPL
  order, head, wrists and toes included; the global orientation is excluded) in the 6D representation (first
  two columns of the rotation matrix, Zhou et al. 2019), 32-d latent. Decoded poses have a zero global
  orientation (upright, facing +z).
* `MotionVAE` — ACTOR-like transformer VAE over 60-frame windows at 30 fps of whole-body motion with root
  (`motion_features`: pelvis tilt and the 21 joints in 6D, heading rate, root velocity in the heading frame,
  root height): per-frame linear embedding, two learnable query tokens (μ, log σ²) prepended, sinusoidal
  positional encoding, transformer encoder; the decoder's queries are the positional encodings of frames
  0…T−1 plus the projected latent, attending to it as the single memory token. 256-d global latent, plus
  optional per-frame codes added to each frame's query (the shipped prior: 4 per frame). Decoding
  integrates the rates to a global orientation and a root trajectory (`integrate_root`).

Both are built and evaluated by `scripts/build_motion_priors.py`; weights (float16 state dicts) and configs
are shipped in avatarclip_core/assets/{pose_vae,motion_vae}.pt, figures in MOTION_PRIORS.md / motion_priors.json.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from torch import nn

ASSETS = Path(__file__).resolve().parent.parent / "assets"
POSE_VAE_PATH = ASSETS / "pose_vae.pt"
MOTION_VAE_PATH = ASSETS / "motion_vae.pt"
NUM_BODY_JOINTS = 21
FOOT_JOINTS = (7, 8, 10, 11)  # left/right ankle, left/right foot (SMPL order)


# ----------------------------------------------------------------------------------------------- rotations
def rotmat_to_rot6d(R: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrices → (..., 6): the first two columns, concatenated (Zhou et al. 2019)."""
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)


def rot6d_to_rotmat(x: torch.Tensor) -> torch.Tensor:
    """(..., 6) → (..., 3, 3) rotation matrices by Gram–Schmidt (columns b1, b2, b1 × b2). Differentiable."""
    a1, a2 = x[..., :3], x[..., 3:]
    b1 = nn.functional.normalize(a1, dim=-1, eps=1e-8)
    b2 = nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1, eps=1e-8)
    return torch.stack([b1, b2, torch.cross(b1, b2, dim=-1)], dim=-1)


def axis_angle_to_rot6d(poses: torch.Tensor) -> torch.Tensor:
    """(..., J, 3) axis-angle (radians) → (..., J, 6)."""
    import roma

    return rotmat_to_rot6d(roma.rotvec_to_rotmat(poses))


def rotmat_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) → (..., 3) axis-angle (radians), differentiable (roma)."""
    import roma

    return roma.rotmat_to_rotvec(R)


def body_rotmats_to_pose(R: torch.Tensor) -> torch.Tensor:
    """(..., 21, 3, 3) body-joint rotations → (..., 22, 3) full axis-angle pose with a zero global orientation."""
    body = rotmat_to_axis_angle(R)
    return torch.cat([torch.zeros_like(body[..., :1, :]), body], dim=-2)


def _body_rot6d(poses: torch.Tensor) -> torch.Tensor:
    """(..., 22 | 21, 3) axis-angle → (..., 21 · 6) 6D of the body joints (global orientation dropped)."""
    if poses.shape[-1] != 3 or poses.shape[-2] not in (21, 22):
        raise ValueError(f"poses must be (..., 22, 3) or (..., 21, 3) axis-angle, got {tuple(poses.shape)}")
    if poses.shape[-2] == 22:
        poses = poses[..., 1:, :]
    return axis_angle_to_rot6d(poses.float()).flatten(-2)


def joint_positions(rotmats: torch.Tensor, rest_joints: torch.Tensor) -> torch.Tensor:
    """Forward kinematics on rotation matrices: (..., 22, 3, 3) local rotations → (..., 22, 3) joint positions.

    SMPL kinematics as `skeleton.forward_kinematics` (local rotation about the joint, rest orientation =
    identity), root at its rest position, metres in the avatar frame. Passing (..., 21, 3, 3) assumes a
    zero global orientation. rest_joints: (22, 3). Differentiable.
    """
    from .. import skeleton

    if rotmats.shape[-3] == 21:
        eye = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device).expand(*rotmats.shape[:-3], 1, 3, 3)
        rotmats = torch.cat([eye, rotmats], dim=-3)
    rest = rest_joints.to(rotmats)
    G, P = [rotmats[..., 0, :, :]], [rest[0].expand(*rotmats.shape[:-3], 3)]
    for j in range(1, 22):
        p = skeleton.PARENTS[j]
        P.append(P[p] + (G[p] @ (rest[j] - rest[p])[:, None])[..., 0])
        G.append(G[p] @ rotmats[..., j, :, :])
    return torch.stack(P, dim=-2)


# ----------------------------------------------------------------------------------------------- pose VAE
class _RotationVAE(nn.Module):
    """Shared VAE plumbing: subclasses define `encode(poses) -> (mu, logvar)` and `decode_rotmat(z)`.

    `decode(z)` gives axis-angle poses (…, 22, 3) with a zero global orientation; `forward(poses)` is the
    training pass (rotations decoded from a posterior sample, mu, logvar); in eval mode it uses mu.
    """

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return body_rotmats_to_pose(self.decode_rotmat(z))

    def forward(self, poses: torch.Tensor):
        mu, logvar = self.encode(poses)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return self.decode_rotmat(z), mu, logvar


class PoseVAE(_RotationVAE):
    """VPoser-like VAE over single body poses (docs/method.md §6: VPoser v2, 32-d latent, 512 hidden).

    Input: the 21 body joints' rotations (SMPL joints 1…21) in 6D (126 numbers); the global orientation is
    not modelled. Encoder and decoder are MLPs (Linear–LeakyReLU ×2, `hidden` units).
    """

    def __init__(self, latent_dim: int = 32, hidden: int = 512, dropout: float = 0.1):
        super().__init__()
        self.config = dict(latent_dim=latent_dim, hidden=hidden, dropout=dropout)
        self.latent_dim = latent_dim
        d = NUM_BODY_JOINTS * 6
        self.encoder = nn.Sequential(nn.Linear(d, hidden), nn.LeakyReLU(0.2), nn.Dropout(dropout),
                                     nn.Linear(hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 2 * latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.LeakyReLU(0.2), nn.Dropout(dropout),
                                     nn.Linear(hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, d))

    def encode(self, poses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """poses (B, 22, 3) or (B, 21, 3) axis-angle (radians; joint 0 ignored) → (mu (B, 32), logvar (B, 32))."""
        h = self.encoder(_body_rot6d(poses).to(next(self.parameters())))
        return h[..., :self.latent_dim], h[..., self.latent_dim:]

    def decode_rotmat(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, 32) → body-joint rotations (B, 21, 3, 3). Differentiable w.r.t. z."""
        return rot6d_to_rotmat(self.decoder(z).reshape(*z.shape[:-1], NUM_BODY_JOINTS, 6))



# ----------------------------------------------------------------------------------------------- motion VAE
def sinusoidal_encoding(length: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(length, dim) transformer positional encoding (sin on even, cos on odd channels; Vaswani et al.)."""
    pos = torch.arange(length, dtype=torch.float32, device=device)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=device) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe.to(dtype)


ROOT_FEATURES = ("heading_rate_rad_s", "root_vel_x_m_s", "root_vel_z_m_s", "root_height_m")
MOTION_FEATURES = NUM_BODY_JOINTS * 6 + 6 + len(ROOT_FEATURES)  # body 6D, pelvis tilt 6D, root: 136


def motion_features(poses: torch.Tensor, root: torch.Tensor | None = None, fps: float = 30.0) -> torch.Tensor:
    """The motion VAE's per-frame representation (docs/method.md, Motion priors, "Motion representation").

    Per frame t (all in the body's heading frame, so the features do not depend on where the motion starts
    or which way it faces): the pelvis tilt R_y(−ψ_t)·G_t in 6D (G = global orientation, ψ = its heading,
    `skeleton.heading_yaw`), the 21 body joints' local rotations in 6D, then the heading rate
    (ψ_{t+1} − ψ_t)·fps (rad/s, wrapped to (−π, π]·fps), the root velocity R_y(−ψ_t)·(r_{t+1} − r_t)·fps in x and
    z (m/s), and the root height r_t,y (m). The last frame repeats the previous frame's rates.

    Args:
        poses: (B, T, 22, 3) axis-angle (radians; joint 0 = global orientation), T ≥ 2.
        root: (B, T, 3) root translation, metres, avatar frame (default zeros).
        fps: frames per second.
    Returns:
        (B, T, 136) float32: [tilt 6D, joints 1…21 6D] (132) then `ROOT_FEATURES` (4).
    Raises:
        ValueError: on wrong shapes.
    """
    import roma
    from .. import skeleton

    if poses.ndim != 4 or tuple(poses.shape[2:]) != (22, 3) or poses.shape[1] < 2:
        raise ValueError(f"poses must be (B, T ≥ 2, 22, 3) axis-angle, got {tuple(poses.shape)}")
    poses = poses.float()
    root = torch.zeros(*poses.shape[:2], 3) if root is None else root.float()
    if tuple(root.shape) != tuple(poses.shape[:2]) + (3,):
        raise ValueError(f"root must be (B, T, 3) = {tuple(poses.shape[:2]) + (3,)}, got {tuple(root.shape)}")
    G = roma.rotvec_to_rotmat(poses[:, :, 0])
    yaw = skeleton.heading_yaw(G)
    tilt = skeleton.yaw_rotmat(-yaw) @ G
    rot = torch.cat([rotmat_to_rot6d(tilt)[:, :, None], axis_angle_to_rot6d(poses[:, :, 1:])], 2).flatten(2)
    dyaw = torch.remainder(yaw[:, 1:] - yaw[:, :-1] + math.pi, 2 * math.pi) - math.pi
    vel = (skeleton.yaw_rotmat(-yaw[:, :-1]) @ (root[:, 1:] - root[:, :-1])[..., None])[..., 0]
    rates = torch.cat([dyaw[..., None], vel[..., [0, 2]]], -1) * fps
    rates = torch.cat([rates, rates[:, -1:]], 1)
    return torch.cat([rot, rates, root[..., 1:2]], -1)


def integrate_root(features: torch.Tensor, fps: float = 30.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode `motion_features` back to global orientations and a root trajectory. Differentiable.

    The heading starts at 0 (facing +z) and the root at x = z = 0: ψ_t = Σ_{k<t} heading_rate_k / fps,
    r_t,xz = Σ_{k<t} R_y(ψ_k)·v_k / fps, r_t,y = root height_t; global orientation G_t = R_y(ψ_t)·tilt_t.

    Args: features (B, T, 136) (raw 6D is orthonormalised by Gram–Schmidt), fps.
    Returns: global rotations (B, T, 22, 3, 3) — joint 0 the global orientation, 1…21 local — and root
        translation (B, T, 3) metres, avatar frame.
    """
    from .. import skeleton

    B, T = features.shape[:2]
    R = rot6d_to_rotmat(features[..., :132].reshape(B, T, 22, 6))
    rate, v, h = features[..., 132], features[..., 133:135], features[..., 135]
    yaw = torch.cat([torch.zeros_like(rate[:, :1]), torch.cumsum(rate[:, :-1], 1) / fps], 1)
    Ry = skeleton.yaw_rotmat(yaw)
    v3 = torch.stack([v[..., 0], torch.zeros_like(h), v[..., 1]], -1)
    step = (Ry @ v3[..., None])[..., 0] / fps
    xz = torch.cat([torch.zeros_like(step[:, :1]), torch.cumsum(step[:, :-1], 1)], 1)
    root = torch.stack([xz[..., 0], h, xz[..., 2]], -1)
    R = torch.cat([(Ry @ R[:, :, 0])[:, :, None], R[:, :, 1:]], 2)
    return R, root


class MotionVAE(_RotationVAE):
    """ACTOR-like transformer VAE over T-frame windows of whole-body motion with root (docs/method.md §6.2 motion
    VAE, smaller; representation: `motion_features`, 136 numbers per frame).

    Encoder: Linear(136 → width) per frame (root features standardised by the training data's `feature_mean` /
    `feature_std`); learnable μ and σ query tokens prepended; sinusoidal PE; `num_layers` TransformerEncoder
    layers (`num_heads` heads, FF `ff_dim`, GELU); the two query outputs → Linear(width → latent_dim) = μ, log σ².
    Decoder: memory = Linear(latent_dim → width)(z) (one token); queries = PE of frames 0…T−1 plus the same
    projection of z; TransformerDecoder of the same size; Linear(width → 136).

    With `frame_latent_dim` k > 0 the latent is hierarchical (docs/method.md, Motion priors, "Per-frame
    latents"): besides the global `latent_dim` code, each frame has a k-d code whose posterior comes from that
    frame's encoder output (Linear(width → 2k)) and which is added to that frame's decoder query
    (Linear(k → width)); all codes have the N(0, I) prior. A single global code cannot carry a window's
    frame-to-frame detail, so its decoder averages it out (over-smooth samples); the frame codes carry it.
    `z` is the concatenation [global (latent_dim), frame 0 (k), …, frame T−1 (k)], so `self.latent_dim` — the
    length of z that every caller draws or optimises — is latent_dim + T·k; `config['latent_dim']` is the
    global part.
    """

    def __init__(self, num_frames: int = 60, latent_dim: int = 256, width: int = 128, num_layers: int = 2,
                 num_heads: int = 4, ff_dim: int = 256, dropout: float = 0.1, fps: float = 30.0,
                 frame_latent_dim: int = 0):
        super().__init__()
        self.config = dict(num_frames=num_frames, latent_dim=latent_dim, width=width, num_layers=num_layers,
                           num_heads=num_heads, ff_dim=ff_dim, dropout=dropout, fps=fps,
                           frame_latent_dim=frame_latent_dim)
        self.num_frames, self.width, self.fps = num_frames, width, fps
        self.global_dim, self.frame_dim = latent_dim, frame_latent_dim
        self.latent_dim = latent_dim + num_frames * frame_latent_dim  # the length of z
        d = MOTION_FEATURES
        self.embed = nn.Linear(d, width)
        self.query = nn.Parameter(torch.randn(2, width) * 0.02)
        layer = dict(d_model=width, nhead=num_heads, dim_feedforward=ff_dim, dropout=dropout, activation="gelu",
                     batch_first=True)
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(**layer), num_layers,
                                             enable_nested_tensor=False)
        self.to_mu, self.to_logvar = nn.Linear(width, latent_dim), nn.Linear(width, latent_dim)
        self.from_latent = nn.Linear(latent_dim, width)
        if frame_latent_dim:
            self.to_frame = nn.Linear(width, 2 * frame_latent_dim)  # per-frame (μ, log σ²)
            self.from_frame = nn.Linear(frame_latent_dim, width)
        self.decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(**layer), num_layers)
        self.out = nn.Linear(width, d)
        self.register_buffer("pe", sinusoidal_encoding(num_frames + 2, width), persistent=False)
        self.register_buffer("feature_mean", torch.zeros(len(ROOT_FEATURES)))
        self.register_buffer("feature_std", torch.ones(len(ROOT_FEATURES)))

    def normalise(self, features: torch.Tensor) -> torch.Tensor:
        """(..., 136) features → the network's scale (root features standardised, 6D unchanged)."""
        return torch.cat([features[..., :132], (features[..., 132:] - self.feature_mean) / self.feature_std], -1)

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of `normalise`."""
        return torch.cat([x[..., :132], x[..., 132:] * self.feature_std + self.feature_mean], -1)

    def encode_features(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features (B, T, 136) (`motion_features`) → (mu, logvar) (B, latent_dim). ValueError on a wrong T."""
        if features.ndim != 3 or features.shape[1] != self.num_frames or features.shape[2] != MOTION_FEATURES:
            raise ValueError(f"features must be (B, {self.num_frames}, {MOTION_FEATURES}), got "
                             f"{tuple(features.shape)}")
        x = self.embed(self.normalise(features.to(self.pe)))
        q = self.query.expand(x.shape[0], -1, -1)
        h = self.encoder(torch.cat([q, x], dim=1) + self.pe[:x.shape[1] + 2])
        mu, logvar = self.to_mu(h[:, 0]), self.to_logvar(h[:, 1])
        if self.frame_dim:
            f_mu, f_logvar = self.to_frame(h[:, 2:]).chunk(2, dim=-1)  # (B, T, frame_dim) each
            mu, logvar = torch.cat([mu, f_mu.flatten(1)], 1), torch.cat([logvar, f_logvar.flatten(1)], 1)
        return mu, logvar

    def encode(self, poses: torch.Tensor, root: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """poses (B, T, 22, 3) axis-angle (joint 0 = global orientation; (B, T, 21, 3) = upright, facing +z),
        root (B, T, 3) metres (default: in place), T = num_frames at `fps` → (mu, logvar) (B, latent_dim).
        Raises ValueError on a wrong shape or T."""
        if poses.ndim != 4 or poses.shape[1] != self.num_frames or poses.shape[2] not in (21, 22):
            raise ValueError(f"poses must be (B, {self.num_frames}, 22, 3), got {tuple(poses.shape)}")
        if poses.shape[2] == 21:
            poses = torch.cat([torch.zeros_like(poses[:, :, :1]), poses], 2)
        return self.encode_features(motion_features(poses, root, self.fps))

    def decode_features(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, self.latent_dim) → (B, T, 136) features (raw 6D before Gram–Schmidt, root features in their
        units). Differentiable w.r.t. z. Raises ValueError on a wrong shape."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must be (B, {self.latent_dim}), got {tuple(z.shape)}")
        mem = self.from_latent(z[:, :self.global_dim])[:, None]
        q = self.pe[:self.num_frames] + mem
        if self.frame_dim:
            q = q + self.from_frame(z[:, self.global_dim:].reshape(z.shape[0], self.num_frames, self.frame_dim))
        return self.denormalise(self.out(self.decoder(q, mem)))

    def decode_rotmat(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent_dim) → body-joint rotations (B, T, 21, 3, 3) (joints 1…21, local)."""
        return rot6d_to_rotmat(self.decode_features(z)[..., 6:132].reshape(z.shape[0], self.num_frames, 21, 6))

    def decode_motion(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z (B, latent_dim) → poses (B, T, 22, 3) axis-angle (radians; joint 0 the global orientation,
        starting facing +z) and root translation (B, T, 3) metres (`integrate_root`; x = z = 0 at frame 0,
        y the root height: 0 = standing as in the rest pose). Differentiable w.r.t. z."""
        R, root = integrate_root(self.decode_features(z), self.fps)
        return rotmat_to_axis_angle(R), root

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent_dim) → poses (B, T, 22, 3) axis-angle with the global orientation (`decode_motion`)."""
        return self.decode_motion(z)[0]

    def forward(self, features: torch.Tensor):
        """Training pass: features (B, T, 136) → (decoded features (B, T, 136), mu, logvar); posterior sample in
        train mode, mu in eval mode."""
        mu, logvar = self.encode_features(features)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return self.decode_features(z), mu, logvar


# ----------------------------------------------------------------------------------------------- save / load
def save_prior(model: nn.Module, path: str | os.PathLike, **extra) -> Path:
    """Write {'kind', 'config', 'state_dict' (float16), **extra} atomically (torch.save)."""
    from ..io import atomic_save_torch

    sd = {k: v.detach().cpu().half() if v.is_floating_point() else v.cpu() for k, v in model.state_dict().items()}
    return atomic_save_torch(dict(kind=type(model).__name__, config=model.config, state_dict=sd, **extra), path)


def _load(cls, path, default, device):
    path = Path(path) if path is not None else default
    if not path.exists():
        raise FileNotFoundError(f"{cls.__name__} weights not found at {path}; build them with "
                                f"`python scripts/build_motion_priors.py`")
    blob = torch.load(path, map_location="cpu", weights_only=False)
    if blob.get("kind") != cls.__name__:
        raise ValueError(f"{path} holds a {blob.get('kind')!r}, not a {cls.__name__}")
    model = cls(**blob["config"])
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()})
    model.extra = {k: v for k, v in blob.items() if k not in ("kind", "config", "state_dict")}
    model.eval().requires_grad_(False)
    return model.to(device)


def load_pose_vae(path: str | os.PathLike | None = None, device="cpu") -> PoseVAE:
    """The shipped pose prior (avatarclip_core/assets/pose_vae.pt), in eval mode with gradients disabled on
    its weights (gradients still flow to the latent). `.extra` holds 'joint_limits' {'lo', 'hi'} (21, 3) rad.
    Raises FileNotFoundError when missing, ValueError when the file holds another kind of model."""
    return _load(PoseVAE, path, POSE_VAE_PATH, device)


def load_motion_vae(path: str | os.PathLike | None = None, device="cpu") -> MotionVAE:
    """The shipped motion prior (avatarclip_core/assets/motion_vae.pt), eval mode, frozen weights.
    Raises FileNotFoundError when missing, ValueError when the file holds another kind of model."""
    return _load(MotionVAE, path, MOTION_VAE_PATH, device)


# ----------------------------------------------------------------------------------------------- metrics
def mpjpe_mm(pred_rotmats: torch.Tensor, true_rotmats: torch.Tensor, rest_joints: torch.Tensor) -> torch.Tensor:
    """Mean per-joint position error in millimetres over the 22 joints (body rotations (..., 21, 3, 3) each,
    zero global orientation, root at rest), FK on `rest_joints` (22, 3) m. Returns a scalar."""
    return (joint_positions(pred_rotmats, rest_joints) - joint_positions(true_rotmats, rest_joints)
            ).norm(dim=-1).mean() * 1000.0


def joint_limits(poses: torch.Tensor, lower_pct: float = 0.5, upper_pct: float = 99.5, margin: float = 0.05
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-joint, per-axis-angle-component bounds from data: poses (N, 22, 3) → (lo, hi) (21, 3) radians
    (the `lower_pct`/`upper_pct` percentiles of the body joints, widened by `margin` rad)."""
    body = poses[:, 1:].reshape(poses.shape[0], -1).double()
    lo = torch.quantile(body, lower_pct / 100, dim=0) - margin
    hi = torch.quantile(body, upper_pct / 100, dim=0) + margin
    return lo.reshape(21, 3).float(), hi.reshape(21, 3).float()


def within_limits(poses: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> dict[str, float]:
    """Fractions of (joint-level, pose-level) checks passed: poses (N, 22, 3) vs bounds (21, 3).
    'joints': fraction of the N·21 joints whose 3 components are all within bounds; 'poses': fraction of
    poses with every joint within bounds."""
    b = poses[:, 1:]
    ok = ((b >= lo.to(b)) & (b <= hi.to(b))).all(-1)
    return {"joints": float(ok.float().mean()), "poses": float(ok.all(-1).float().mean())}
