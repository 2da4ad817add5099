"""SMPL adapter through `smplx` (Loper et al. 2015), used when the user has put the licensed files in
`smpl_models/` (never committed; see smpl_models/README.md).

SMPL is already in the avatar frame (y up, facing +z) and its zero pose is a T-pose. We take its shaped rest mesh
(betas → v_shaped) and the first 22 of its 24 joints; the hand joints' weights are folded into the wrists; poses
go through our own LBS (`avatarclip_core.skeleton`), so pose-corrective blend shapes are not applied.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .. import skeleton
from .base import BodyModel
from .smpl_files import SMPL_FILES, find_smpl_file  # torch-free (the command line checks the files first)


class SmplBody(BodyModel):
    """SMPL neutral body (10 betas) behind the `BodyModel` interface. shape: (B, 10) betas (unitless PCA)."""

    name = "smpl"

    def __init__(self, smpl_dir: str | Path):
        import smplx

        path = find_smpl_file(smpl_dir)
        data_struct = None
        if path.suffix == ".npz":  # smplx reads only pickles by itself; an .npz avoids chumpy entirely
            import numpy as np
            from smplx.utils import Struct

            data_struct = Struct(**dict(np.load(path, allow_pickle=True)))
        self._model = smplx.SMPL(model_path=str(path), data_struct=data_struct, gender="neutral",
                                 num_betas=10).eval()
        self.shape_names = tuple(f"beta_{i}" for i in range(10))
        w = self._model.lbs_weights.detach().float()  # (V, 24)
        folded = w[:, :22].clone()
        folded[:, skeleton.JOINT_INDEX["left_wrist"]] += w[:, 22]
        folded[:, skeleton.JOINT_INDEX["right_wrist"]] += w[:, 23]
        self.skin_weights = folded / folded.sum(1, keepdim=True).clamp_min(1e-8)
        self.faces = torch.as_tensor(self._model.faces.astype("int64"))

    def default_shape(self) -> torch.Tensor:
        return torch.zeros(10)

    def shape_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.full((10,), -2.0), torch.full((10,), 2.0)

    def rest(self, shape: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Betas (B, 10) → shaped T-pose vertices (B, V, 3) and joints (B, 22, 3), centred like every body."""
        shape = self.check_shape(shape)
        m = self._model
        v = m.v_template[None].float() + torch.einsum("bl,vcl->bvc", shape, m.shapedirs[..., :10].float())
        j = torch.einsum("jv,bvc->bjc", m.J_regressor.float(), v)[:, :22]
        offset = torch.stack([j[:, 0, 0], 0.5 * (v[..., 1].amin(1) + v[..., 1].amax(1)), j[:, 0, 2]], -1)
        return v - offset[:, None], j - offset[:, None]
