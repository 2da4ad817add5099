"""Texture-stage camera sampler (docs/method.md §3.3) and the jittered light of §3.6, in the avatar frame
(docs/design.md §3: y up, the body faces +z — the same axes as AvatarCLIP's world frame).

Body camera: distance d ~ U(1, 2) m; polar angle θ ~ N(0, π/3) measured from +z (the front), not clipped;
azimuth φ ~ U(0, 2π) about the z axis; eye = at + d·(sin θ cos φ, sin θ sin φ, cos θ) with the look-at
point at ~ N(0, 0.1²) per axis clipped to ±0.3; is_front = |θ| ≤ π/2 (back views ≈ 13.4 %).
Face camera (every step with step % 4 == 0 when face prompts are on): at = (0, head_height, face_z),
d = 0.4, θ ~ N(0, π/12) clipped to ±π/2, φ ~ U(0, 2π); always front.
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


def face_anchor(vertices: torch.Tensor, head_joint: torch.Tensor | None = None) -> tuple[float, float]:
    """Default (head_height, face_z) of the face camera's look-at point (0, head_height, face_z).

    AvatarCLIP uses (0, 0.65–0.7, 0.3) in its frame: the head height and the front surface of the face.
    Here: head_height = the head joint's y (or, without joints, 0.1 m below the top of the mesh), face_z =
    the largest z of body vertices within 6 cm of that height and 10 cm of the mid-sagittal plane.

    Args: vertices (V, 3) stand-posed body mesh (avatar frame, metres); head_joint optional (3,).
    """
    v = vertices.detach().float().cpu()
    hy = float(head_joint[1]) if head_joint is not None else float(v[:, 1].max()) - 0.1
    sel = ((v[:, 1] - hy).abs() < 0.06) & (v[:, 0].abs() < 0.1)
    fz = float(v[sel, 2].max()) if sel.any() else float(v[:, 2].max())
    return hy, fz
