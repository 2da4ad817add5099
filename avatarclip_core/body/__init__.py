"""Body models behind one interface (`BodyModel`): `anny` (default, open), `smpl` (licensed files) and
`precomputed` (a body frozen at a few shapes in a file, for machines without anny).

Names are imported on first access (PEP 562), so ``import avatarclip_core.body.smpl_files`` (the configuration
check) does not import torch.
"""
from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "base": ("BodyMesh", "BodyModel", "stand_pose"),
    "registry": ("get_body_model",),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
