"""CLIP objectives used by AvatarCLIP (docs/method.md §1.3 step 5, §3.8, §6.1).

Embeddings come from an `Encoder` (guidance/encoder.py); they need not be normalised — every function normalises
first, so raw CLIP features (as in the official code's offsets) work too.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["cosine", "clip_loss", "offset_score"]


def _check(x: torch.Tensor, name: str) -> torch.Tensor:
    if not torch.is_tensor(x) or x.ndim not in (1, 2):
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"{name} must be a (D,) or (N, D) tensor of embeddings, got {shape}")
    return x if x.ndim == 2 else x[None]


def cosine(image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity.

    Args:
        image_emb: (N, D) or (D,); text_emb: (N, D), (1, D) or (D,). A single row on either side is broadcast
            against the other (one image vs M prompts gives (M,)).
    Returns:
        (max(N, M),) cosines in [-1, 1], differentiable.
    Raises:
        ValueError: wrong ranks or mismatched D / N.
    """
    a, b = _check(image_emb, "image_emb"), _check(text_emb, "text_emb")
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"embedding sizes differ: image D={a.shape[-1]}, text D={b.shape[-1]}; use embeddings "
                         "from the same encoder")
    if b.shape[0] != a.shape[0] and 1 not in (a.shape[0], b.shape[0]):
        raise ValueError(f"text_emb has {b.shape[0]} rows for {a.shape[0]} images; give 1 or N rows")
    return (F.normalize(a, dim=-1) * F.normalize(b.to(a), dim=-1)).sum(-1)


def clip_loss(image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """AvatarCLIP's CLIP loss ``mean(1 - cos(E_img, E_text))`` (docs/method.md §3.8, §6.1 PoseOptimizer).

    Args: as `cosine`. Returns a scalar tensor in [0, 2], differentiable w.r.t. both inputs.
    """
    return (1.0 - cosine(image_emb, text_emb)).mean()


def offset_score(image_embs: torch.Tensor, neutral_image_emb: torch.Tensor, text_emb: torch.Tensor,
                 neutral_text_emb: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """AvatarCLIP coarse-shape score (docs/method.md §1.3 step 5):
    ``cos(normalize(E_img_i - E_img_neutral), normalize(E_text - E_text_neutral))``.

    The official code takes the differences of raw CLIP features; we normalise each embedding first (all our
    encoders return unit vectors, for which this is a no-op).

    Args:
        image_embs: (N, D) candidate image embeddings; neutral_image_emb: (D,) or (1, D) embedding of the
            mean-shape render; text_emb, neutral_text_emb: (D,) or (1, D) target and neutral prompt embeddings.
        eps: guards the normalisation of a zero offset (a candidate identical to the neutral render scores 0).
    Returns:
        (N,) scores in [-1, 1]; the stage picks argmax.
    Raises:
        ValueError: wrong ranks or mismatched D.
    """
    imgs = F.normalize(_check(image_embs, "image_embs"), dim=-1)
    d = imgs.shape[-1]
    for t, n in ((neutral_image_emb, "neutral_image_emb"), (text_emb, "text_emb"), (neutral_text_emb, "neutral_text_emb")):
        t2 = _check(t, n)
        if t2.shape != (1, d):
            raise ValueError(f"{n} must be (D,) or (1, D) with D={d}, got {tuple(t.shape)}")
    n_img = F.normalize(_check(neutral_image_emb, "")[0].to(imgs), dim=-1)
    dt = F.normalize(_check(text_emb, "")[0].to(imgs), dim=-1) - F.normalize(_check(neutral_text_emb, "")[0].to(imgs), dim=-1)
    di = imgs - n_img
    return (F.normalize(di, dim=-1, eps=eps) * F.normalize(dt, dim=-1, eps=eps)).sum(-1)
