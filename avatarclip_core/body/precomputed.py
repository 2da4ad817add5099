"""A body model frozen at a few shapes, read from a file: the pipeline on a machine without the body model's package
(docs/design.md §3; the GPU benchmark machine has no anny: its warp-lang wheel is too big to carry, bench/gpu.sh).

`save_precomputed_body(path, body, shapes)` evaluates a real body model (anny, SMPL) at the given shapes and
writes their rest (T-pose) vertices and joints, the faces and the skinning weights to an .npz; `PrecomputedBody`
reads it back behind the `BodyModel` interface. Posing uses the package's own LBS (`skeleton`), so every stage
runs unchanged as long as it asks only for the stored shapes: shape search (stage 1) draws its candidates from
them, the other stages use the stage-1 shape or `default_shape()` (the first stored one).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .base import BodyModel

__all__ = ["PrecomputedBody", "save_precomputed_body"]

FORMAT = "avatarclip_precomputed_body_v1"


def save_precomputed_body(path, body: BodyModel, shapes: torch.Tensor) -> Path:
    """Write `body` at shapes (K, S) (row 0 becomes `default_shape()`) to `path` (.npz, atomic) and return it."""
    from ..io import atomic_save_npz

    shapes = body.check_shape(shapes)
    with torch.no_grad():
        verts, joints = body.rest(shapes)
    return atomic_save_npz(path, format=np.array(FORMAT), source=np.array(body.name),
                           shape_names=np.array(list(body.shape_names)), shapes=shapes.numpy().astype(np.float32),
                           rest_vertices=verts.numpy().astype(np.float32), rest_joints=joints.numpy().astype(np.float32),
                           faces=body.faces.numpy().astype(np.int64),
                           skin_weights=body.skin_weights.numpy().astype(np.float32))


class PrecomputedBody(BodyModel):
    """`BodyModel` of a `save_precomputed_body` file: K stored shapes of a body model (`source`, e.g. "anny").

    Attributes (besides `BodyModel`'s): shapes (K, S) float32 stored shape parameters; source: the body model they
    came from. `rest(shape)` returns the stored geometry of each row of `shape` that equals a stored shape (to 1e-5).

    Raises (on construction): FileNotFoundError: no file at `path`; ValueError: not such a file.
    """

    name = "precomputed"

    def __init__(self, path):
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"precomputed body file {path} does not exist; write one with "
                                    "avatarclip_core.body.precomputed.save_precomputed_body (bench/gpu_prep.py does) "
                                    "or use run.body = anny")
        data = np.load(path)
        if "format" not in data or str(data["format"]) != FORMAT:
            raise ValueError(f"{path} is not a precomputed body file ({FORMAT}); write one with "
                             "save_precomputed_body")
        self.path, self.source = path, str(data["source"])
        self.shape_names = tuple(str(s) for s in data["shape_names"])
        self.shapes = torch.as_tensor(data["shapes"])
        self._verts, self._joints = torch.as_tensor(data["rest_vertices"]), torch.as_tensor(data["rest_joints"])
        self.faces = torch.as_tensor(data["faces"])
        self.skin_weights = torch.as_tensor(data["skin_weights"])

    def default_shape(self) -> torch.Tensor:
        """(S,) the first stored shape (`save_precomputed_body` stores the body's default there)."""
        return self.shapes[0].clone()

    def shape_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(S,), (S,) per-parameter min / max over the stored shapes."""
        return self.shapes.min(0).values, self.shapes.max(0).values

    def sample_shapes(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, S): the stored shapes in turn (only they can be evaluated)."""
        return self.shapes[torch.arange(n) % len(self.shapes)].clone()

    def rest(self, shape: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stored rest vertices (B, V, 3) and joints (B, 22, 3) of shapes (B, S); raises ValueError for a shape
        that is not stored (the message names it and the fix)."""
        shape = self.check_shape(shape)
        dist = (shape[:, None, :].cpu() - self.shapes[None]).abs().amax(-1)   # (B, K)
        best = dist.argmin(1)
        missing = dist.gather(1, best[:, None])[:, 0] > 1e-5
        if missing.any():
            raise ValueError(f"shape {shape[missing][0].tolist()} is not among the {len(self.shapes)} shapes stored "
                             f"in {self.path}; precompute it (bench/gpu_prep.py) or use run.body = {self.source}")
        return self._verts[best].to(shape.device), self._joints[best].to(shape.device)
