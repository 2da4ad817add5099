"""Stage 1: text → body shape parameters (AvatarCLIP ShapeGen, docs/method.md §1.3, over the body model's
shape space)."""
from .search import ShapeParams, ShapeResult, search_shape

__all__ = ["ShapeParams", "ShapeResult", "search_shape"]
