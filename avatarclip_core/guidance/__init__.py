"""CLIP guidance (docs/design.md §4).

* `encoder`: the `Encoder` protocol (shapes, dtypes, normalisation — described there once), the encoder-name
  rules and the ``AVATARCLIP_TEST_ENCODERS`` switch;
* `factory`: `load_encoder`, the one factory from a `run.clip_model` value to an encoder;
* `clip_model`: `load_clip` over open_clip (production: model names and checkpoint paths), differentiable
  preprocessing;
* `prompts`: AvatarCLIP's prompt templates; `losses`: the CLIP objectives;
* `test_encoders`: the tiny random-init CLIP and the oracles, for tests and demos only (by name only with
  ``AVATARCLIP_TEST_ENCODERS=1``).

Import graph (no cycle): encoder ← clip_model ← test_encoders ← factory (factory imports the loaders when called).
Names are imported on first access, so ``import avatarclip_core.guidance.encoder`` (the configuration check) does
not import torch.
"""
from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "encoder": ("Encoder", "ClipWeightsMissing", "TEST_ENCODERS_ENV", "is_test_encoder_name",
                "are_test_encoders_enabled"),
    "factory": ("load_encoder",),
    "clip_model": ("OPENAI_CLIP_MEAN", "OPENAI_CLIP_STD", "ClipEncoder", "clip_preprocess", "default_cache_dir",
                   "load_clip", "weights_cached"),
    "losses": ("clip_loss", "cosine", "offset_score"),
    "prompts": ("AppearancePrompts", "appearance_prompts", "pose_prompt", "shape_prompt", "shape_prompts",
                "SHAPE_NEUTRAL"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
