"""Texture-stage camera sampler (docs/method.md §3.3) and the jittered light of §3.6, in the avatar frame
(docs/design.md §3: y up, the body faces +z — the same axes as AvatarCLIP's world frame).

Body camera: distance d ~ U(1, 2) m; polar angle θ ~ N(0, π/3) measured from +z (the front), not clipped;
azimuth φ ~ U(0, 2π) about the z axis; eye = at + d·(sin θ cos φ, sin θ sin φ, cos θ) with the look-at
point at ~ N(0, 0.1²) per axis clipped to ±0.3; is_front = |θ| ≤ π/2 (back views ≈ 13.4 %).
Face camera (every step with step % 4 == 0 when face prompts are on): at = (0, head_height, face_z), the centre
of the head (`face_anchor`), d = 0.4, θ ~ N(0, π/12) clipped to ±π/2, φ ~ U(0, 2π); always front.
Light: unit vector at (θ + U(−π/4, π/4), φ + U(−π/4, π/4)) in the same parametrisation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..cameras import Cameras, look_at
from .params import TextureCameraParams, TextureParams


@dataclass
class CameraSample:
    """A batch of N sampled texture-stage cameras.

    Attributes: cameras (Cameras, c2w (N, 4, 4), FoV degrees); is_front (N,) bool; is_face (N,) bool;
    theta, phi (N,) radians; distance (N,) metres; at (N, 3) look-at points; light_dir (N, 3) unit vectors
    pointing from the body towards the light (avatar frame).
    """

    cameras: Cameras
    is_front: torch.Tensor
    is_face: torch.Tensor
    theta: torch.Tensor
    phi: torch.Tensor
    distance: torch.Tensor
    at: torch.Tensor
    light_dir: torch.Tensor


def _spherical(theta, phi):
    return torch.stack([torch.sin(theta) * torch.cos(phi), torch.sin(theta) * torch.sin(phi), torch.cos(theta)], -1)


def is_face_step(step: int, use_face_prompt: bool = True) -> bool:
    """True when the texture step `step` uses the head close-up camera (reference: iter % 4 == 0)."""
    return bool(use_face_prompt) and step % 4 == 0


class TextureCameraSampler:
    """Draws §3.3 cameras from its own torch.Generator (CPU), so runs are reproducible and resumable.

    Args: face_at (3,) face look-at point (0, head_height, face_z); cameras: `TextureCameraParams` (metres,
    degrees; default = the reference's); light_jitter_deg: the §3.6 light jitter (`ShadingParams`); seed;
    use_face_prompt: False = no face cameras. `state()` / `set_state()` expose the RNG.
    """

    def __init__(self, face_at, cameras: TextureCameraParams | None = None, light_jitter_deg: float = 45.0,
                 seed: int = 0, use_face_prompt: bool = True):
        c = cameras or TextureCameraParams()
        self.face_at = torch.as_tensor(face_at, dtype=torch.float32).reshape(3)
        self.use_face_prompt = use_face_prompt
        self.fov_deg, self.dmin, self.dmax = c.fov_deg, c.distance_min, c.distance_max
        self.polar_std, self.at_std, self.at_clip = math.radians(c.polar_std_deg), c.at_std, c.at_clip
        self.face_distance, self.face_polar_std = c.face_distance, math.radians(c.face_polar_std_deg)
        self.light_jitter = math.radians(light_jitter_deg)
        self.generator = torch.Generator().manual_seed(seed)

    @classmethod
    def from_params(cls, params: TextureParams, face_at, seed: int = 0) -> "TextureCameraSampler":
        """The sampler of a stage-3 configuration (its cameras, shading jitter and face-prompt switch)."""
        return cls(face_at, params.cameras, params.shading.light_jitter_deg, seed, params.ablation.use_face_prompt)

    def state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)

    def sample(self, steps) -> CameraSample:
        """Cameras for the given training steps (int or (N,) ints); face cameras where step % 4 == 0
        and face prompts are on. All random draws come from the sampler's generator."""
        steps = torch.as_tensor(steps).reshape(-1)
        N, g = steps.shape[0], self.generator
        face = (steps % 4 == 0) & self.use_face_prompt
        dist = self.dmin + (self.dmax - self.dmin) * torch.rand(N, generator=g)
        theta = torch.randn(N, generator=g) * self.polar_std
        phi = torch.rand(N, generator=g) * 2 * math.pi
        at = (torch.randn(N, 3, generator=g) * self.at_std).clamp(-self.at_clip, self.at_clip)
        f_theta = (torch.randn(N, generator=g) * self.face_polar_std).clamp(-math.pi / 2, math.pi / 2)
        dist = torch.where(face, torch.full_like(dist, self.face_distance), dist)
        theta = torch.where(face, f_theta, theta)
        at = torch.where(face[:, None], self.face_at.expand(N, 3), at)
        eye = at + dist[:, None] * _spherical(theta, phi)
        jit = (torch.rand(N, 2, generator=g) * 2 - 1) * self.light_jitter
        light = _spherical(theta + jit[:, 0], phi + jit[:, 1])
        return CameraSample(Cameras(look_at(eye, at), self.fov_deg), theta.abs() <= math.pi / 2, face,
                            theta, phi, dist, at, light)


#: The cranium used by `face_anchor`: mesh vertices within this fraction of the stature below the crown.
CRANIUM_CAP = 0.06
#: … and within this horizontal distance (metres) of the head (the head joint, else the crown vertex).
HEAD_RADIUS = 0.15


def face_anchor(vertices: torch.Tensor, head_joint: torch.Tensor | None = None) -> tuple[float, float]:
    """(head_height, face_z): y and z of the face camera's look-at point (0, head_height, face_z), the centre of the
    head, measured on the body mesh (docs/method.md §3.3).

    AvatarCLIP aims its head close-up at (0, 0.65–0.7, 0.3) of its SMPL frame: inside the head, below the crown
    (y ≈ 0.77), so the camera 0.4 m from that point is about 0.28 m from the face. Here the point is the centre
    of the cranium: the least-squares sphere (algebraic fit, |p|² = 2c·p + k) through the vertices of the top of the
    head — those within `CRANIUM_CAP` (6 %) of the stature below the crown and `HEAD_RADIUS` (0.15 m) horizontally
    of the head — which lands 7.5–8.5 cm below the crown and 10–12 cm behind the nose tip on adult anny bodies (1.36–1.93 m), for any
    shape. Without enough cap vertices (< 10, a degenerate mesh) it falls back to 7 cm below the crown, midway
    between the cap's front and back.

    Args:
        vertices: (V, 3) stand-posed body mesh (avatar frame: y up, facing +z; metres).
        head_joint: optional (3,) head joint; it picks the head among mesh parts (the crown is the highest vertex
            within HEAD_RADIUS of it horizontally), so raised hands above the head are not taken for it.
    Returns: (head_height, face_z) in metres.
    Raises: ValueError: vertices not (V, 3).
    """
    if vertices.ndim != 2 or vertices.shape[-1] != 3:
        raise ValueError(f"vertices must be (V, 3) metres in the avatar frame, got {tuple(vertices.shape)}")
    v = vertices.detach().double().cpu()
    if head_joint is not None:
        axis = head_joint.detach().double().cpu().reshape(3)[[0, 2]]
    else:
        axis = v[int(v[:, 1].argmax())][[0, 2]]
    near = (v[:, [0, 2]] - axis).norm(dim=-1) < HEAD_RADIUS
    head = v[near] if near.any() else v
    top = float(head[:, 1].max())
    stature = top - float(v[:, 1].min())  # soles to crown
    cap = head[head[:, 1] >= top - CRANIUM_CAP * stature]
    if len(cap) >= 10:
        a = torch.cat([2 * cap, torch.ones(len(cap), 1, dtype=cap.dtype)], dim=1)
        centre = torch.linalg.lstsq(a, (cap ** 2).sum(1, keepdim=True)).solution[:3, 0]
        if torch.isfinite(centre).all() and top - 0.5 * stature < float(centre[1]) <= top:
            return float(centre[1]), float(centre[2])
    return top - 0.07, float(cap[:, 2].max() + cap[:, 2].min()) / 2
