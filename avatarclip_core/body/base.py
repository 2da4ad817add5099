"""One interface for every body model (docs/design.md §3): shape parameters → rest T-pose mesh, 22-joint
skeleton, skinning weights; poses applied with our own SMPL-convention LBS (`avatarclip_core.skeleton`).

Frame: avatar frame, metres, y up, body faces +z, x to the body's left. The rest mesh is placed so that
the pelvis joint has x = z = 0 and the vertical middle of the body (halfway between the soles and the
top of the head) is at y = 0; every plausible adult body fits inside the NeuS unit sphere.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import math

import torch

from .. import skeleton


@dataclass
class BodyMesh:
    """A (batch of) posed body mesh(es).

    Attributes:
        vertices: (B, V, 3) float32, metres, avatar frame.
        faces: (F, 3) int64 triangle indices (counter-clockwise seen from outside).
        joints: (B, 22, 3) float32 joint positions in SMPL order (`skeleton.JOINT_NAMES`).
    """

    vertices: torch.Tensor
    faces: torch.Tensor
    joints: torch.Tensor


class BodyModel(ABC):
    """Abstract body model. Subclasses: `AnnyBody` (default, open) and `SmplBody` (licensed files).

    Attributes:
        name: "anny" or "smpl".
        shape_names: names of the shape parameters (Anny phenotypes, or beta_0 … beta_9).
        faces: (F, 3) int64 triangles.
        skin_weights: (V, 22) float32 LBS weights over the 22 body joints, rows sum to 1.
    """

    name: str
    shape_names: tuple[str, ...]
    faces: torch.Tensor
    skin_weights: torch.Tensor

    @property
    def num_vertices(self) -> int:
        return self.skin_weights.shape[0]

    @abstractmethod
    def default_shape(self) -> torch.Tensor:
        """(S,) float32 shape parameters of the average/neutral body."""

    @abstractmethod
    def shape_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(S,), (S,) lower/upper bounds of plausible adult shapes (used by shape search)."""

    @abstractmethod
    def rest(self, shape: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rest (T-pose) geometry for shapes (B, S) → vertices (B, V, 3), joints (B, 22, 3), avatar frame."""

    def check_shape(self, shape: torch.Tensor) -> torch.Tensor:
        """Return `shape` as a (B, S) float tensor; raise ValueError naming the bad value otherwise."""
        shape = torch.as_tensor(shape, dtype=torch.float32)
        if shape.ndim == 1:
            shape = shape[None]
        if shape.ndim != 2 or shape.shape[1] != len(self.shape_names):
            raise ValueError(f"{self.name} shape must be (B, {len(self.shape_names)}) "
                             f"[{', '.join(self.shape_names)}], got {tuple(shape.shape)}")
        if not torch.isfinite(shape).all():
            raise ValueError(f"{self.name} shape parameters contain NaN/inf: {shape.tolist()}")
        return shape

    def sample_shapes(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, S) shapes drawn uniformly within `shape_bounds()` (candidates for coarse-shape search)."""
        lo, hi = self.shape_bounds()
        return lo + (hi - lo) * torch.rand(n, lo.shape[0], generator=generator)

    def forward(self, shape: torch.Tensor | None = None, pose: torch.Tensor | None = None,
                root_translation: torch.Tensor | None = None) -> BodyMesh:
        """Posed body meshes.

        Args:
            shape: (B, S) or (S,) shape parameters (default: `default_shape()`).
            pose: (B, 22, 3) or (22, 3) axis-angle in radians (default: zero = T-pose).
            root_translation: (B, 3) metres added to every vertex and joint.
        Returns:
            BodyMesh with vertices (B, V, 3), joints (B, 22, 3); B = max of the batch sizes.
        Raises:
            ValueError: on shapes/poses of the wrong size or with non-finite values.
        """
        shape = self.check_shape(self.default_shape() if shape is None else shape)
        rest_v, rest_j = self.rest(shape)
        if pose is None:
            pose = torch.zeros(rest_v.shape[0], skeleton.NUM_JOINTS, 3)
        pose = torch.as_tensor(pose, dtype=torch.float32)
        if pose.ndim == 2:
            pose = pose[None]
        skeleton.check_pose(pose)
        B = max(pose.shape[0], rest_v.shape[0])
        rest_v, rest_j = rest_v.expand(B, -1, -1), rest_j.expand(B, -1, -1)
        pose = pose.to(rest_v).expand(B, -1, -1)
        transforms, skin = skeleton.forward_kinematics(pose, rest_j, root_translation)
        verts = skeleton.linear_blend_skinning(rest_v, self.skin_weights.to(rest_v), skin)
        return BodyMesh(verts, self.faces.to(verts.device), transforms[..., :3, 3])

    __call__ = forward


def stand_pose() -> torch.Tensor:
    """(22, 3) relaxed standing pose: arms ~65° down from the T-pose, elbows slightly bent.

    Used for the static avatar (NeuS stages), like AvatarCLIP's `stand_pose.npy` (docs/method.md §0).
    """
    pose = torch.zeros(skeleton.NUM_JOINTS, 3)
    down = math.radians(65.0)
    # The left arm points to +x: rotating it about +z by −angle lowers it; mirror for the right arm.
    pose[skeleton.JOINT_INDEX["left_shoulder"]] = torch.tensor([0.0, 0.0, -down])
    pose[skeleton.JOINT_INDEX["right_shoulder"]] = torch.tensor([0.0, 0.0, down])
    pose[skeleton.JOINT_INDEX["left_elbow"]] = torch.tensor([0.0, -0.15, 0.0])
    pose[skeleton.JOINT_INDEX["right_elbow"]] = torch.tensor([0.0, 0.15, 0.0])
    return pose
