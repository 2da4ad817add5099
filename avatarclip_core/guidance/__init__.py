"""CLIP guidance (docs/design.md §4): `load_clip` over open_clip, differentiable preprocessing, AvatarCLIP's prompt
templates, CLIP losses; test encoders (tiny CLIP, oracles) live in `avatarclip_core.guidance.testing`.

Every encoder has ``encode_image(images (B,H,W,3) in [0,1], alpha=None) -> (B,D)`` and
``encode_text(list[str]) -> (B,D)`` (unit vectors), plus ``.name`` and ``.embed_dim``.
"""
from .clip_model import (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, ClipEncoder, ClipWeightsMissing, clip_preprocess,
                         default_cache_dir, load_clip, weights_cached)
from .losses import clip_loss, cosine, offset_score
from .prompts import (AppearancePrompts, appearance_prompts, pose_prompt, shape_prompt, shape_prompts,
                      SHAPE_NEUTRAL)

__all__ = [
    "OPENAI_CLIP_MEAN", "OPENAI_CLIP_STD", "ClipEncoder", "ClipWeightsMissing", "clip_preprocess",
    "default_cache_dir", "load_clip", "weights_cached", "clip_loss", "cosine", "offset_score",
    "AppearancePrompts", "appearance_prompts", "pose_prompt", "shape_prompt", "shape_prompts", "SHAPE_NEUTRAL",
]
