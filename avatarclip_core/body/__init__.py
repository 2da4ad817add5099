"""Body models behind one interface (`BodyModel`): `anny` (default, open) and `smpl` (licensed files)."""
from .base import BodyMesh, BodyModel, stand_pose
from .registry import get_body_model

__all__ = ["BodyMesh", "BodyModel", "stand_pose", "get_body_model"]
