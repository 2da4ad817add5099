"""Stage-1 parameters (`ShapeParams`, the `shape` configuration section), torch-free so that loading a configuration
does not import torch (`config.load_config` builds every section; `stages.STAGES` names this class)."""
from __future__ import annotations

from dataclasses import dataclass

from ..params import Params, param

__all__ = ["ShapeParams"]


@dataclass
class ShapeParams(Params):
    """Stage-1 parameters.

    num_candidates: shapes drawn uniformly from the body model's plausible range (plus the neutral body).
    image_size: render side in pixels (CLIP input is resized to its own size).
    azimuths_deg: view azimuths (0 = front); AvatarCLIP scores one view at 150° NR = 30° off the front.
    distance: camera distance in metres; fov_deg: horizontal field of view.
    batch_size: candidates rendered and encoded per batch.
    """

    num_candidates: int = param(256, ge=1, fix="e.g. 256")
    image_size: int = param(224, ge=16, fix="pixels; 224 matches CLIP")
    azimuths_deg: list[float] = param(factory=lambda: [30.0])
    distance: float = param(2.0, gt=0, fix="metres")
    fov_deg: float = param(60.0, gt=0, lt=180)
    batch_size: int = param(16, ge=1)

    def relations(self):
        yield len(self.azimuths_deg) > 0, "azimuths_deg", "give at least one view, e.g. [30]"
