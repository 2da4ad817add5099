"""Test encoders: stand-ins for CLIP in tests and CPU smoke runs without weights (docs/design.md §4).

Each is an `Encoder` (guidance/encoder.py). They are chosen by name only through `factory.load_encoder` (or the
config key `run.clip_model`) while ``AVATARCLIP_TEST_ENCODERS=1`` is set; tests may also construct them directly.
The production module `clip_model` never imports this one.

* `make_tiny_clip(path)`: a tiny, random-init open_clip CLIP (ViT image tower + transformer text tower, the
  same architecture family as ViT-B-32, real open_clip tokenizer) written to disk and loaded with
  ``load_clip(path)`` through the same code path as real checkpoints. It has no semantics; it exercises the
  plumbing (shapes, devices, gradients, files). Names: ``"tiny"`` (the file ``<cache_dir>/tiny_clip.pt``, written
  on first use) and ``"tiny:<path>"`` (a given tiny-CLIP file).
* Oracle encoders with known, differentiable semantics: `ColorOracle` (colour words ↔ mean foreground colour),
  `SizeOracle` ("tall", "short", "fat", "thin" ↔ silhouette height and bulk), `PoseOracle` ("raising both arms",
  "walking", "squatting" ↔ silhouette elongation and leg spread), and two with spatial semantics for the texture
  stage: `PartColorOracle` ("green hair, a red top and blue trousers" ↔ the colours of the head, upper-body and
  lower-body bands of the silhouette) and `GeometryOracle` ("a wide skirt", "a big belly" ↔ the silhouette's
  width in the leg and waist bands, which only sculpting can change); names ``"oracle:color" | "oracle:size" |
  "oracle:pose" | "oracle:parts" | "oracle:geometry"``. Tests assert that optimisers move toward the prompt under
  an oracle, and `bench/quality.py` scores presets with them; they say nothing about real CLIP quality.

Shared construction of the Size/Pose oracles: the image embedding is ``normalize([f_1, …, f_k, 1])`` where
each f is a dimensionless silhouette feature that is 0 for a typical standing adult; the text embedding is
``normalize([T·s_1, …, T·s_k, 1])`` with s = +1 / −1 / 0 per feature named by a keyword in the prompt and
T = `text_gain` (10). A prompt with no keyword embeds to the neutral vector ``(0, …, 0, 1)``. Because T is
large, ``cos(image, text)`` and AvatarCLIP's offset score (docs/method.md §1.3 step 5) both increase monotonically
as a feature moves in the named direction over the whole range a silhouette in the frame can reach.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from .clip_model import (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, TINY_CLIP_FORMAT, _read_tiny_meta, default_cache_dir,
                         load_clip)
from .encoder import ORACLES

__all__ = [
    "TINY_CLIP_CONFIG", "make_tiny_clip", "make_test_encoder", "silhouette_stats", "foreground_from_border",
    "ColorOracle", "SizeOracle", "PoseOracle", "PartColorOracle", "GeometryOracle", "COLOR_WORDS", "PART_WORDS",
    "BODY_BANDS", "silhouette_bands", "stick_figure_alpha",
]

#: open_clip model config of the tiny CLIP: ViT (64 px, 16 px patches, width 32, 1 layer) + 1-layer text
#: transformer (width 8, context 32, the full 49,408-token open_clip vocabulary), 16-d joint embedding.
TINY_CLIP_CONFIG = {
    "embed_dim": 16,
    "quick_gelu": False,
    "vision_cfg": {"image_size": 64, "patch_size": 16, "width": 32, "head_width": 16, "layers": 1, "mlp_ratio": 2.0},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 8, "heads": 2, "layers": 1, "mlp_ratio": 2.0},
}


def make_tiny_clip(path: str | os.PathLike, seed: int = 0) -> str:
    """Write a tiny random-init open_clip CLIP checkpoint to `path` and return `path` (as str).

    The model is built by ``open_clip.create_model("ViT-B-32", pretrained=None, **TINY_CLIP_CONFIG)`` under
    ``torch.manual_seed(seed)`` (the global RNG state is restored afterwards); floating-point weights are stored
    in float16 (≈1 MB, mostly the 49,408×8 token embedding). The file is a dict
    ``{"state_dict": …, "avatarclip_tiny_clip": {"arch", "model_cfg", "preprocess_cfg", "seed"}}`` written
    atomically; `load_clip(path)` (or the test name ``"tiny:" + path``) reads it through open_clip's checkpoint
    loader.
    The same seed gives identical weights.
    """
    import open_clip

    from ..io import atomic_save_torch

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # open_clip warns "initialized randomly" — that is the point here
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = open_clip.create_model("ViT-B-32", pretrained=None, device="cpu", **TINY_CLIP_CONFIG)
    finally:
        logging.disable(previous)
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    meta = {"arch": "ViT-B-32", "model_cfg": TINY_CLIP_CONFIG, "seed": int(seed),
            "preprocess_cfg": {"mean": list(OPENAI_CLIP_MEAN), "std": list(OPENAI_CLIP_STD)}}
    atomic_save_torch({"state_dict": state, TINY_CLIP_FORMAT: meta}, path)
    return str(path)


# ----------------------------------------------------------------------------------------------------------
# silhouette statistics
def _check_images(images: torch.Tensor, alpha: torch.Tensor | None, who: str) -> None:
    if not torch.is_tensor(images) or images.ndim != 4 or images.shape[-1] != 3:
        shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
        raise ValueError(f"{who}.encode_image: images must be (B, H, W, 3) in [0, 1], got {shape}")
    if alpha is not None and (not torch.is_tensor(alpha) or tuple(alpha.shape) != tuple(images.shape[:3])):
        shape = tuple(alpha.shape) if torch.is_tensor(alpha) else type(alpha).__name__
        raise ValueError(f"{who}.encode_image: alpha must be (B, H, W) = {tuple(images.shape[:3])}, got {shape}")


def foreground_from_border(images: torch.Tensor, sigma: float = 0.05) -> torch.Tensor:
    """Soft foreground mask when no alpha is given: ``1 - exp(-|rgb - bg|² / σ²)`` with bg the per-image
    median colour of the 1-pixel border (detached). images (B, H, W, 3) → (B, H, W) in [0, 1]."""
    border = torch.cat([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], dim=1)  # (B, 2H+2W, 3)
    bg = border.detach().median(dim=1).values[:, None, None, :]
    return 1.0 - torch.exp(-((images - bg) ** 2).sum(-1) / sigma**2)


def silhouette_stats(alpha: torch.Tensor, tau: float = 1.0) -> dict[str, torch.Tensor]:
    """Differentiable statistics of soft silhouettes.

    Args:
        alpha: (B, H, W) coverage in [0, 1] (row 0 = top of the image).
        tau: softness, in pixels of mass, of the "row/column has mass" indicator ``tanh(mass / tau)``.
    Returns dict of (B,) tensors:
        ``rows``/``cols``: soft number of rows/columns containing foreground (silhouette height/width, px);
        ``height``/``width``: rows / H, cols / W; ``area``: mean alpha (fraction of the frame);
        ``area_px``: Σ alpha (px²); ``cy``, ``sy``: alpha-weighted mean / std of the row coordinate (px);
        ``spread_y``: sy / H (dimensionless);
        ``leg_spread``: alpha-weighted std of the column coordinate over the rows below ``cy + sy`` (about
        knee height for a standing body, below hanging hands; soft, sigmoid of width 2 px), divided by
        ``rows`` (dimensionless).
    """
    b, h, w = alpha.shape
    a = alpha.float().clamp(0, 1)
    rows = torch.tanh(a.sum(2) / tau).sum(1)
    cols = torch.tanh(a.sum(1) / tau).sum(1)
    mass = a.sum((1, 2)) + 1e-6
    y = torch.arange(h, device=a.device, dtype=a.dtype) + 0.5
    x = torch.arange(w, device=a.device, dtype=a.dtype) + 0.5
    row_mass = a.sum(2)
    cy = (row_mass * y).sum(1) / mass
    sy = ((row_mass * (y - cy[:, None]) ** 2).sum(1) / mass).clamp_min(1e-8).sqrt()
    below = torch.sigmoid((y[None] - (cy + sy)[:, None]) / 2.0)  # (B, H): 1 from about the knees down
    wb = a * below[:, :, None]
    mb = wb.sum((1, 2)) + 1e-6
    xb = (wb * x).sum((1, 2)) / mb
    sxb = ((wb * (x - xb[:, None, None]) ** 2).sum((1, 2)) / mb).clamp_min(1e-8).sqrt()
    return {"rows": rows, "cols": cols, "height": rows / h, "width": cols / w, "area": a.mean((1, 2)),
            "area_px": mass, "cy": cy, "sy": sy, "spread_y": sy / h, "leg_spread": sxb / rows.clamp_min(1.0)}


def _has(text: str, pattern: str) -> bool:
    return re.search(pattern, text) is not None


class _Oracle:
    """Base of the oracles, each an `Encoder` (guidance/encoder.py): call = encode_image; `to(device)` moves text
    embeddings."""

    def __call__(self, images, alpha=None):
        return self.encode_image(images, alpha)

    def to(self, device):
        """Set the device of text embeddings (image embeddings follow the images); returns self."""
        self.device = torch.device(device)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(embed_dim={self.embed_dim})"


class _KeywordOracle(_Oracle):
    """Base: image features → normalize([features, 1]); prompt keywords → normalize([T·signs, 1])."""

    #: feature index → (positive-keyword regex, negative-keyword regex or None)
    keywords: Sequence[tuple[str, str | None]] = ()
    feature_names: Sequence[str] = ()

    def __init__(self, text_gain: float = 10.0, device: str | torch.device = "cpu"):
        self.text_gain = float(text_gain)
        self.device = torch.device(device)
        self.embed_dim = len(self.feature_names) + 1
        self.image_size = None

    def text_signs(self, text: str) -> list[float]:
        """Per-feature sign (+1, −1, 0) that the prompt's keywords ask for (lower-cased word match)."""
        t = text.lower()
        signs = []
        for pos, neg in self.keywords:
            s = (1.0 if _has(t, pos) else 0.0) - (1.0 if neg and _has(t, neg) else 0.0)
            signs.append(s)
        return signs

    def encode_text(self, texts: str | Sequence[str]) -> torch.Tensor:
        """`Encoder.encode_text` (guidance/encoder.py): embedding ``normalize([T·signs, 1])``."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
            raise ValueError(f"{self.name}.encode_text needs a non-empty list of non-empty strings, got {texts!r}")
        rows = [[self.text_gain * s for s in self.text_signs(t)] + [1.0] for t in texts]
        return F.normalize(torch.tensor(rows, dtype=torch.float32, device=self.device), dim=-1)

    def features(self, images: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor:
        """(B, H, W, 3) images, optional (B, H, W) alpha → (B, D − 1) dimensionless features: `from_stats` of
        the silhouette statistics (alpha, or `foreground_from_border` of the images when alpha is None)."""
        return torch.stack(self.from_stats(silhouette_stats(foreground_from_border(images) if alpha is None
                                                            else alpha)), dim=-1)

    def from_stats(self, s: dict) -> tuple:  # pragma: no cover
        """The features (each (B,)) from `silhouette_stats` output `s`."""
        raise NotImplementedError

    def encode_image(self, images: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
        """`Encoder.encode_image` (guidance/encoder.py): embedding ``normalize([features, 1])``, differentiable
        w.r.t. images and alpha."""
        _check_images(images, alpha, self.name)
        f = self.features(images, alpha)
        return F.normalize(torch.cat([f, torch.ones_like(f[:, :1])], dim=-1), dim=-1)


# ----------------------------------------------------------------------------------------------------------
#: colour words understood by `ColorOracle` → RGB in [0, 1]
COLOR_WORDS = {
    "red": (1.0, 0.0, 0.0), "green": (0.0, 0.8, 0.0), "blue": (0.0, 0.0, 1.0), "yellow": (1.0, 1.0, 0.0),
    "cyan": (0.0, 1.0, 1.0), "magenta": (1.0, 0.0, 1.0), "purple": (0.5, 0.0, 0.5), "orange": (1.0, 0.5, 0.0),
    "pink": (1.0, 0.6, 0.75), "brown": (0.55, 0.3, 0.1), "white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0),
    "grey": (0.5, 0.5, 0.5), "gray": (0.5, 0.5, 0.5), "golden": (0.85, 0.65, 0.1), "gold": (0.85, 0.65, 0.1),
    "silver": (0.75, 0.75, 0.75),
}


class ColorOracle(_Oracle):
    """Colour oracle: colour words in the prompt ↔ the mean foreground colour of the image.

    Image: c = alpha-weighted mean RGB of the image (plain mean over all pixels when alpha is None).
    Text: c = mean RGB of the `COLOR_WORDS` found in the prompt (whole words, lower-cased); no colour word →
    mid grey (0.5, 0.5, 0.5), i.e. the neutral vector (0, …, 0, 1).
    Both map through the same affine feature map
    ``φ(c) = [c − 0.5, 2·(c − mean(c)), luma(c) − 0.5, 0.3]`` (D = 8; chroma and luma terms make hue count),
    embedding = normalize(φ(c)). Since φ is affine, blending the foreground linearly toward a prompt's colour
    moves φ along a straight segment to the text vector, so cos(image, text) rises monotonically
    (e.g. redder foreground → higher cosine with "red").
    """

    name = "color-oracle"

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.embed_dim = 8
        self.image_size = None

    @staticmethod
    def _phi(c: torch.Tensor) -> torch.Tensor:
        luma = (c * torch.tensor([0.299, 0.587, 0.114], dtype=c.dtype, device=c.device)).sum(-1, keepdim=True)
        chroma = 2.0 * (c - c.mean(-1, keepdim=True))
        return torch.cat([c - 0.5, chroma, luma - 0.5, torch.full_like(luma, 0.3)], dim=-1)

    def text_color(self, text: str) -> tuple[float, float, float]:
        """Mean RGB of the colour words in `text` (grey if none)."""
        found = [rgb for w, rgb in COLOR_WORDS.items() if re.search(rf"\b{w}\b", text.lower())]
        if not found:
            return (0.5, 0.5, 0.5)
        return tuple(sum(c[i] for c in found) / len(found) for i in range(3))

    def encode_text(self, texts: str | Sequence[str]) -> torch.Tensor:
        """`Encoder.encode_text` (guidance/encoder.py): embedding normalize(φ(text colour)), D = 8."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
            raise ValueError(f"{self.name}.encode_text needs a non-empty list of non-empty strings, got {texts!r}")
        c = torch.tensor([self.text_color(t) for t in texts], dtype=torch.float32, device=self.device)
        return F.normalize(self._phi(c), dim=-1)

    def encode_image(self, images: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
        """`Encoder.encode_image` (guidance/encoder.py): embedding normalize(φ(mean foreground colour)), D = 8;
        differentiable w.r.t. images and alpha."""
        _check_images(images, alpha, self.name)
        if alpha is None:
            c = images.float().mean((1, 2))
        else:
            w = alpha.float()[..., None]
            c = (images.float() * w).sum((1, 2)) / (w.sum((1, 2)) + 1e-6)
        return F.normalize(self._phi(c), dim=-1)

    def __repr__(self) -> str:
        return "ColorOracle(embed_dim=8)"


class SizeOracle(_KeywordOracle):
    """Size oracle: body-size words ↔ silhouette height and bulk (D = 3: height, bulk, bias).

    Features (from alpha; from `foreground_from_border` when alpha is None), see `silhouette_stats`:
      * height: ``rows / H / height_ref − 1`` — soft fraction of image rows containing foreground,
        relative to `height_ref` (0.5 of the frame);
      * bulk:   ``(area_px / rows²) / bulk_ref − 1`` — a 2-D "body-mass index": silhouette area over its height
        squared (scale-free; ≈ 0.19 for a standing adult, `bulk_ref` = 0.2).
    Keywords: height + "tall/taller/tallest/giant", − "short/shorter/small/little/tiny/dwarf";
    bulk + "fat/big/strong/muscular/heavy/overweight/chubby/obese/bulky/stocky/broad",
    − "thin/skinny/slim/slender/lean/skinny/petite". At a fixed camera, a taller body scores higher for "tall"
    under both cos and `offset_score` as long as the silhouette stays inside the frame.
    """

    name = "size-oracle"
    feature_names = ("height", "bulk")
    keywords = (
        (r"\b(tall|taller|tallest|giant)\b", r"\b(short|shorter|shortest|small|little|tiny|dwarf)\b"),
        (r"\b(fat|fatter|big|bigger|strong|stronger|muscular|heavy|overweight|chubby|obese|bulky|stocky|broad)\b",
         r"\b(thin|thinner|skinny|slim|slender|lean|petite)\b"),
    )

    def __init__(self, height_ref: float = 0.5, bulk_ref: float = 0.2, text_gain: float = 10.0,
                 device: str | torch.device = "cpu"):
        super().__init__(text_gain, device)
        self.height_ref, self.bulk_ref = float(height_ref), float(bulk_ref)

    def from_stats(self, s):
        """(height, bulk) as documented in the class docstring."""
        return (s["height"] / self.height_ref - 1.0, s["area_px"] / s["rows"].clamp_min(1.0) ** 2 / self.bulk_ref - 1.0)


class PoseOracle(_KeywordOracle):
    """Pose oracle: action words ↔ silhouette elongation and leg spread (D = 3: elongation, legs, bias).

    Features (from alpha; from `foreground_from_border` when alpha is None), see `silhouette_stats`:
      * elongation: ``spread_y / elong_ref − 1`` — the vertical spread of the foreground (std of the row
        coordinate) as a fraction of the image height (≈ 0.15 for a standing adult filling 60 % of the frame,
        `elong_ref` = 0.15). Raising an arm moves its mass from hip to shoulder height and then above the head,
        so the feature grows all along the way, and twice as much for both arms as for one. Unlike a measure
        normalised by the silhouette's area or height it cannot be raised by hiding limbs behind the body,
        crossing the legs or turning sideways; and unlike the silhouette's height (`rows`), which only grows once
        a hand passes the top of the head, it has a gradient for arms below that. Squatting lowers and compacts
        the mass → elongation down.
      * legs: ``leg_spread / spread_ref − 1`` — horizontal std of the foreground below ``cy + sy`` (about the
        knees) over the silhouette height (`spread_ref` = 0.06, legs together).
    Keywords: elongation + "raise/raising/raised/lifting/arms up/hands up/hands in the air/cheering",
    − "squat/squatting/crouch/crouching/kneel/kneeling/sitting"; legs + "walk/walking/run/running/jog/jogging/
    jump/jumping/stride/striding/kick/kicking/dance/dancing".
    """

    name = "pose-oracle"
    feature_names = ("elongation", "legs")
    keywords = (
        (r"\b(raise|raises|raising|raised|lift|lifts|lifting|cheer|cheering)\b|\b(arms?|hands?) (up|in the air)\b",
         r"\b(squat|squats|squatting|crouch|crouches|crouching|kneel|kneels|kneeling|sit|sits|sitting)\b"),
        (r"\b(walk|walks|walking|run|runs|running|jog|jogs|jogging|jump|jumps|jumping|stride|striding|kick|kicks"
         r"|kicking|dance|dances|dancing)\b", None),
    )

    def __init__(self, elong_ref: float = 0.15, spread_ref: float = 0.09, text_gain: float = 10.0,
                 device: str | torch.device = "cpu"):
        super().__init__(text_gain, device)
        self.elong_ref, self.spread_ref = float(elong_ref), float(spread_ref)

    def from_stats(self, s):
        """(elongation, legs) as documented in the class docstring."""
        return (s["spread_y"] / self.elong_ref - 1.0,
                s["leg_spread"] / self.spread_ref - 1.0)


# ----------------------------------------------------------------------------------------------------------
# oracles with spatial semantics (the texture stage's benchmarks, bench/quality.py)
#: Bands of a silhouette as fractions (top, bottom) of its height, measured from its top row: the head (about an
#: eighth of a standing adult), the upper body (neck to crotch: a top, shirt, jacket) and the lower body (trousers,
#: skirt, legs); the waist band (below the chest, above the hips) and the leg band (thighs to below the knees) are
#: where `GeometryOracle` measures a belly and a skirt.
BODY_BANDS = {"head": (0.0, 0.13), "upper": (0.13, 0.5), "lower": (0.5, 1.0), "waist": (0.32, 0.48),
              "legs": (0.6, 0.8)}


def silhouette_bands(alpha: torch.Tensor, bands: Sequence[str], softness: float = 0.02) -> torch.Tensor:
    """Soft row weights of silhouette bands (`BODY_BANDS`), measured on the silhouette's own vertical extent.

    The extent runs from the first to the last image row whose alpha mass exceeds 0.5 px (the whole image when
    no row does); a row at fraction v of it belongs to band (a, b) with weight σ((v − a)/s)·σ((b − v)/s),
    s = `softness`. The weights are computed from the detached alpha (no gradient): the bands say *where* to
    measure; what is measured there (colour, width) carries the gradient.

    Args: alpha (B, H, W) coverage in [0, 1], row 0 = top; bands: names of `BODY_BANDS`.
    Returns: (B, K, H) float weights in [0, 1], K = len(bands).
    Raises: KeyError for an unknown band name.
    """
    a = alpha.detach().float()
    b, h, _ = a.shape
    has = a.sum(2) > 0.5                                                          # (B, H)
    y = torch.arange(h, device=a.device, dtype=a.dtype)
    top = torch.where(has, y, torch.full_like(y, h)).min(1).values                # first row with mass
    bottom = torch.where(has, y, torch.full_like(y, -1)).max(1).values + 1        # past the last one
    empty = bottom <= top
    top, bottom = torch.where(empty, torch.zeros_like(top), top), torch.where(empty, torch.full_like(top, h), bottom)
    v = (y[None] + 0.5 - top[:, None]) / (bottom - top)[:, None]                  # (B, H)
    edges = torch.tensor([BODY_BANDS[n] for n in bands], dtype=a.dtype, device=a.device)   # (K, 2)
    lo, hi = edges[None, :, 0, None], edges[None, :, 1, None]
    return torch.sigmoid((v[:, None] - lo) / softness) * torch.sigmoid((hi - v[:, None]) / softness)


#: Garment and body-part words of `PartColorOracle` → the bands they colour.
PART_WORDS = {
    ("head",): r"hair|hat|cap|helmet|head|face|beard|hood|mask|crown|wig",
    ("upper",): r"top|shirt|t-shirt|tshirt|blouse|jacket|coat|sweater|jumper|hoodie|vest|cardigan|tunic|armou?r"
                r"|torso|chest|sleeves?",
    ("lower",): r"trousers|pants|jeans|shorts|skirt|leggings|legs|boots|shoes|socks|kilt",
    ("upper", "lower"): r"dress|suit|gown|robe|overalls?|jumpsuit|uniform|costume|outfit|clothes|clothing",
}
_PART_RE = [(regions, re.compile(rf"^(?:{words})$")) for regions, words in PART_WORDS.items()]


class PartColorOracle(_Oracle):
    """Part-colour oracle: "⟨colour⟩ ⟨garment⟩" phrases ↔ the colours of the silhouette's head, upper-body and
    lower-body bands (D = 25).

    Image: for each band of `silhouette_bands` ("head", "upper", "lower"), c_r = the alpha- and band-weighted mean
    RGB, with one pixel of mid grey mixed in so that an empty band reads grey; embedding
    ``[φ̂(c_head), φ̂(c_upper), φ̂(c_lower), 0] / √3`` with φ̂ = `ColorOracle`'s unit colour embedding (8 values each)
    and a last entry that images never use.
    Text: each `PART_WORDS` word takes the mean of the `COLOR_WORDS` among the three words before it (not reaching
    back past another part word): "a red top and blue trousers" → upper red, lower blue; "green hair" → head
    green; "a yellow dress" → upper and lower yellow. Bands no phrase names are left out (their block is 0, so
    they do not affect the score). Colour words but no part word ("a red person") colour every band; no colour
    word at all → every band mid grey (`ColorOracle`'s neutral rule). A face prompt (the face template, "the face
    of …") sees a head close-up, whose silhouette is the head: its head colour applies to all three bands, and a
    face prompt without one embeds to the last axis, orthogonal to every image (cos ≡ 0: no gradient).
    The embedding is the normalised concatenation, so cos(image, text) is the sum of the named bands' `ColorOracle`
    cosines over √(3·#named): it rises monotonically as each named band's colour moves toward its target, and
    equals √(#named/3) when all match.
    """

    name = "part-color-oracle"
    regions = ("head", "upper", "lower")

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.embed_dim = 8 * len(self.regions) + 1
        self.image_size = None

    @staticmethod
    def _unit(c: torch.Tensor) -> torch.Tensor:
        return F.normalize(ColorOracle._phi(c), dim=-1)

    def part_colors(self, text: str) -> dict[str, tuple[float, float, float]]:
        """{band: target RGB} of the prompt, by the rules of the class docstring (face close-ups included)."""
        words = re.findall(r"[a-z]+(?:-[a-z]+)?", text.lower())
        is_color = [w in COLOR_WORDS for w in words]
        found: dict[str, list] = {r: [] for r in self.regions}
        any_part = False
        for i, w in enumerate(words):
            regions = next((r for r, pat in _PART_RE if pat.match(w)), None)
            if regions is None:
                continue
            any_part = True
            for j in range(i - 1, max(i - 4, -1), -1):
                if any(pat.match(words[j]) for _, pat in _PART_RE):
                    break
                if is_color[j]:
                    for r in regions:
                        found[r].append(COLOR_WORDS[words[j]])
        colors = {r: tuple(sum(c[k] for c in v) / len(v) for k in range(3)) for r, v in found.items() if v}
        if not colors and not any_part:
            colors = dict.fromkeys(self.regions, ColorOracle().text_color(text))
        if re.search(r"\bface\b", text.lower()):
            colors = dict.fromkeys(self.regions, colors["head"]) if "head" in colors else {}
        return colors

    def encode_text(self, texts: str | Sequence[str]) -> torch.Tensor:
        """`Encoder.encode_text` (guidance/encoder.py): the normalised concatenation of the named bands' unit colour
        embeddings (0 for the others; the last axis for a face prompt without a head colour), D = 25."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
            raise ValueError(f"{self.name}.encode_text needs a non-empty list of non-empty strings, got {texts!r}")
        rows = []
        for t in texts:
            colors = self.part_colors(t)
            row = torch.zeros(self.embed_dim)
            for k, r in enumerate(self.regions):
                if r in colors:
                    row[8 * k:8 * k + 8] = self._unit(torch.tensor(colors[r]))
            if not colors:
                row[-1] = 1.0
            rows.append(row)
        return F.normalize(torch.stack(rows), dim=-1).to(self.device)

    def band_colors(self, images: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor:
        """(B, 3, 3) mean RGB of the head, upper and lower bands (alpha = `foreground_from_border` when None)."""
        a = (foreground_from_border(images) if alpha is None else alpha).float()
        w = silhouette_bands(a, self.regions)[..., None] * a[:, None]             # (B, 3, H, W)
        rgb = torch.einsum("bkhw,bhwc->bkc", w, images.float())
        mass = w.sum((2, 3))[..., None]
        return (rgb + 0.5) / (mass + 1.0)

    def encode_image(self, images: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
        """`Encoder.encode_image` (guidance/encoder.py): ``[φ̂(c_head), φ̂(c_upper), φ̂(c_lower), 0] / √3``, D = 25;
        differentiable w.r.t. images (and alpha, through the weighted means)."""
        _check_images(images, alpha, self.name)
        e = self._unit(self.band_colors(images, alpha)).flatten(1)
        return torch.cat([e, torch.zeros_like(e[:, :1])], -1) / len(self.regions) ** 0.5

    def __repr__(self) -> str:
        return f"PartColorOracle(embed_dim={self.embed_dim})"


class GeometryOracle(_KeywordOracle):
    """Geometry oracle: garment-shape words ↔ the silhouette's width in the leg and waist bands (D = 4: skirt,
    belly, bias and a last axis that images never use).

    Features (from alpha; `foreground_from_border` when alpha is None), with `silhouette_bands` weights and the
    silhouette's height h_px = `silhouette_stats` rows:
      * skirt: ``(mean alpha mass per row of the "legs" band / h_px) / skirt_ref − 1`` — the width of the thighs
        and knees over the body height (≈ 0.13 for a standing adult seen from the front, legs together): a wide
        skirt or a gown fills the gap between the legs and reaches beyond them;
      * belly: ``(mean alpha mass per row of the "waist" band / h_px) / belly_ref − 1`` (≈ 0.24 from the front,
        arms hanging beside the torso).
    Keywords: skirt + "skirt/dress/gown/tutu/crinoline/robe/kilt", − "leggings/tights/skinny or tight
    jeans/trousers"; belly + "belly/bellied/potbelly/paunch/pregnant", − "slim/thin/narrow waist, six-pack, flat
    belly/stomach". Face prompts ("the face of …") embed to the last axis (cos ≡ 0): a head close-up shows neither
    band. As with `SizeOracle`, a prompt without keywords embeds to the neutral vector (features 0).

    In the texture stage alpha is the rendered Σw. Colour cannot change it, only the SDF and the variance can, so
    the score rises only through sculpting; the oracle sets ``alpha_gradient = True`` so that `texture_losses`
    hands it a differentiable Σw (docs/method.md §3.7). Real CLIP sees geometry only through the pixels.
    """

    name = "geometry-oracle"
    feature_names = ("skirt", "belly")
    keywords = (
        (r"\b(skirts?|dress|dresses|gown|tutu|crinoline|robe|kilt)\b",
         r"\b(leggings|tights)\b|\b(skinny|tight) (jeans|trousers|pants)\b"),
        (r"\b(belly|bellied|potbelly|pot-bellied|paunch|pregnant)\b",
         r"\b(slim|thin|narrow) waist\b|\bsix-pack\b|\bflat (belly|stomach)\b"),
    )
    alpha_gradient = True

    def __init__(self, skirt_ref: float = 0.13, belly_ref: float = 0.24, text_gain: float = 10.0,
                 device: str | torch.device = "cpu"):
        super().__init__(text_gain, device)
        self.skirt_ref, self.belly_ref = float(skirt_ref), float(belly_ref)
        self.embed_dim = len(self.feature_names) + 2

    def features(self, images: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor:
        """(B, 2) (skirt, belly) as documented in the class docstring."""
        a = (foreground_from_border(images) if alpha is None else alpha).float().clamp(0, 1)
        w = silhouette_bands(a, ("legs", "waist"))                                    # (B, 2, H)
        per_row = (w * a.sum(2)[:, None]).sum(2) / w.sum(2).clamp_min(1e-6)           # (B, 2) px
        width = per_row / silhouette_stats(a)["rows"].clamp_min(1.0)[:, None]
        return width / torch.tensor([self.skirt_ref, self.belly_ref], device=a.device) - 1.0

    def encode_text(self, texts: str | Sequence[str]) -> torch.Tensor:
        """`Encoder.encode_text` (guidance/encoder.py): ``normalize([T·signs, 1, 0])``; a face prompt → (0, …, 0, 1)."""
        e = super().encode_text(texts)
        texts = [texts] if isinstance(texts, str) else list(texts)
        face = torch.tensor([re.search(r"\bface\b", t.lower()) is not None for t in texts], device=e.device)
        out = torch.cat([e, torch.zeros_like(e[:, :1])], -1)
        return torch.where(face[:, None], torch.eye(self.embed_dim, device=e.device)[-1].expand_as(out), out)

    def encode_image(self, images: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
        """`Encoder.encode_image` (guidance/encoder.py): ``normalize([features, 1, 0])``, differentiable w.r.t. alpha
        (the band widths; the bands themselves are placed from the detached alpha)."""
        e = super().encode_image(images, alpha)
        return torch.cat([e, torch.zeros_like(e[:, :1])], -1)


# ----------------------------------------------------------------------------------------------------------
def stick_figure_alpha(size: int = 64, height: float = 0.7, arms: str = "down", leg_spread: float = 0.0,
                       bulk: float = 1.0, squat: float = 0.0, softness: float = 0.5, skirt: float = 0.0,
                       device: str | torch.device = "cpu") -> torch.Tensor:
    """A soft frontal silhouette of a box-person, for oracle tests (no body model or renderer needed).

    Args:
        size: image side in pixels (square image).
        height: standing height as a fraction of the frame (feet at 0.95 of the frame height).
        arms: "down" (along the body), "up" (raised above the head) or "out" (T-pose).
        leg_spread: feet apart, as a fraction of the standing height (0 = legs together).
        bulk: width multiplier of torso/limbs (1 = average).
        squat: 0 … 1, fraction by which the legs shorten (knees bent, seen from the front).
        softness: edge blur in pixels (sigmoid width).
        skirt: width of a skirt from the hips to 80 % of the leg length, as a fraction of the standing height
            (0 = none; the legs span about 0.15).
    Returns:
        (size, size) float32 alpha in [0, 1] (union of soft boxes), row 0 = top.
    Raises:
        ValueError: unknown `arms`.
    """
    if arms not in ("down", "up", "out"):
        raise ValueError(f"arms must be 'down', 'up' or 'out', got {arms!r}")
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32, device=device) + 0.5,
                            torch.arange(size, dtype=torch.float32, device=device) + 0.5, indexing="ij")
    yy, xx = yy / size, xx / size
    s = softness / size

    def box(x0, x1, y0, y1):
        return (torch.sigmoid((xx - x0) / s) * torch.sigmoid((x1 - xx) / s)
                * torch.sigmoid((yy - y0) / s) * torch.sigmoid((y1 - yy) / s))

    h, cx, feet = height, 0.5, 0.95
    leg_len = 0.47 * h * (1.0 - 0.5 * squat)
    hip = feet - leg_len
    torso_top = hip - 0.30 * h
    head_top = torso_top - 0.16 * h
    tw, lw, aw = 0.16 * h * bulk, 0.06 * h * bulk, 0.045 * h * bulk
    parts = [box(cx - tw / 2, cx + tw / 2, torso_top, hip),                         # torso
             box(cx - 0.05 * h, cx + 0.05 * h, head_top, torso_top + 0.01),          # head + neck
             ]
    spread = leg_spread * h / 2
    if skirt > 0:
        parts.append(box(cx - skirt * h / 2, cx + skirt * h / 2, hip - 0.01, hip + 0.8 * leg_len))
    for side in (-1, 1):
        lx = cx + side * (0.045 * h + spread)
        parts.append(box(lx - lw / 2, lx + lw / 2, hip - 0.01, feet))                # leg
        if arms == "down":
            ax = cx + side * (tw / 2 + aw / 2)
            parts.append(box(ax - aw / 2, ax + aw / 2, torso_top, torso_top + 0.36 * h))
        elif arms == "up":
            ax = cx + side * (tw / 2 - aw / 2)
            parts.append(box(ax - aw / 2, ax + aw / 2, torso_top - 0.36 * h, torso_top + 0.02))
        else:
            x0, x1 = (cx - tw / 2 - 0.36 * h, cx - tw / 2 + 0.01) if side < 0 else (cx + tw / 2 - 0.01, cx + tw / 2 + 0.36 * h)
            parts.append(box(x0, x1, torso_top, torso_top + aw))
    out = torch.zeros_like(xx)
    for p in parts:
        out = 1.0 - (1.0 - out) * (1.0 - p)
    return out


# ----------------------------------------------------------------------------------------------------------
# test encoder names (dispatched here by `factory.load_encoder`, which checks the AVATARCLIP_TEST_ENCODERS switch)
def make_test_encoder(name: str, cache_dir: str | os.PathLike | None = None, device: str | torch.device | None = "cpu",
                      fp16: bool = False):
    """The test encoder named `name`, an `Encoder` (guidance/encoder.py).

    Args:
        name: ``"tiny"`` (the tiny CLIP at ``<cache_dir>/tiny_clip.pt``, written by `make_tiny_clip` on first use),
            ``"tiny:<path>"`` (a tiny-CLIP file written by `make_tiny_clip`), or ``"oracle:color" | "oracle:size" |
            "oracle:pose" | "oracle:parts" | "oracle:geometry"``.
        cache_dir: folder of the ``"tiny"`` file (default `clip_model.default_cache_dir()`).
        device: "cpu", "cuda", a torch.device, or "auto"/None (CUDA when available).
        fp16: for the tiny CLIP, as `load_clip` (CUDA only); ignored by the oracles.
    Raises:
        ValueError: an unknown name or oracle, a missing file, or a ``tiny:`` file that is not a tiny-CLIP checkpoint.
    """
    from ..device import resolve_device

    if name.startswith("oracle:"):
        oracles = dict(zip(ORACLES, (ColorOracle, SizeOracle, PoseOracle, PartColorOracle, GeometryOracle)))
        kind = name.split(":", 1)[1]
        if kind not in oracles:
            raise ValueError(f"unknown oracle {name!r}; use one of {', '.join('oracle:' + k for k in oracles)}")
        return oracles[kind]().to(resolve_device(device))
    if name == "tiny":
        path = (Path(cache_dir).expanduser() if cache_dir else default_cache_dir()) / "tiny_clip.pt"
        if not path.is_file():
            make_tiny_clip(path)
    elif name.startswith("tiny:"):
        path = Path(name[len("tiny:"):]).expanduser()
        if not path.is_file():
            raise ValueError(f"CLIP checkpoint file {path} does not exist; check the path given as `run.clip_model` "
                             f"(or --clip), or use a model name such as 'ViT-B-32'")
        if _read_tiny_meta(path) is None:
            raise ValueError(f"{path} is not a tiny-CLIP checkpoint (no {TINY_CLIP_FORMAT!r} entry); write one with "
                             "avatarclip_core.guidance.test_encoders.make_tiny_clip(path) or drop the 'tiny:' prefix")
    else:
        raise ValueError(f"{name!r} is not a test encoder name; use 'tiny', 'tiny:<path>' or "
                         f"{', '.join('oracle:' + k for k in ORACLES)}")
    return load_clip(path, device=device, cache_dir=cache_dir, fp16=fp16)
