"""Stage 1: text → body shape parameters (AvatarCLIP ShapeGen, reference §1.3, over the body model's shape space)."""
from .search import ShapeParams, ShapeResult, search_shape

__all__ = ["ShapeParams", "ShapeResult", "search_shape"]
