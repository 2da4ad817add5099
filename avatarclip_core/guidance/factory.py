"""`load_encoder`: the one factory from a `run.clip_model` value to an `Encoder` (guidance/encoder.py).

Production names and checkpoint paths go to `clip_model.load_clip`; the test encoder names go to
`test_encoders.make_test_encoder`, only while ``AVATARCLIP_TEST_ENCODERS=1`` (docs/design.md §4). Top of the
guidance import graph: no guidance module imports this one, and it imports the two loaders only when called.
"""
from __future__ import annotations

import os

from .encoder import Encoder, is_test_encoder_name, encoder_name_problem

__all__ = ["load_encoder"]


def load_encoder(name: str = "ViT-B-32", pretrained: str = "openai", cache_dir=None, device="cpu",
                 fp16: bool | None = None, arch: str | None = None) -> Encoder:
    """The encoder named by a `run.clip_model` value.

    Args:
        name: an open_clip model name or a local checkpoint path → `clip_model.load_clip` (any checkpoint, a
            tiny-CLIP file included); a test encoder name (``"tiny"``, ``"tiny:<path>"``, ``"oracle:color"``,
            ``"oracle:size"``, ``"oracle:pose"``, ``"oracle:parts"``, ``"oracle:geometry"``) → `test_encoders.make_test_encoder`, only while
            ``AVATARCLIP_TEST_ENCODERS=1``.
        pretrained, cache_dir, fp16, arch: as `clip_model.load_clip` (`cache_dir` also holds the ``"tiny"`` file;
            the oracles ignore them); fp16 None = float16 on CUDA, float32 on the CPU (`clip_model.clip_dtype`).
        device: "cpu", "cuda", a torch.device, or "auto"/None (CUDA when available).
    Returns:
        An `Encoder` on `device`.
    Raises:
        ValueError: a test encoder name while the switch is off, an unknown oracle, or what `load_clip` raises.
        ClipWeightsMissing: as `load_clip`.
    """
    raw = os.fspath(name) if isinstance(name, os.PathLike) else name
    if isinstance(raw, str) and is_test_encoder_name(raw):
        problem = encoder_name_problem(raw, key="encoder name")
        if problem:
            raise ValueError(problem)
        from .test_encoders import make_test_encoder

        return make_test_encoder(raw.strip(), cache_dir=cache_dir, device=device, fp16=fp16)
    from .clip_model import load_clip

    return load_clip(raw, pretrained=pretrained, device=device, cache_dir=cache_dir, fp16=fp16, arch=arch)
