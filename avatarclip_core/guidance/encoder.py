"""The `Encoder` protocol every guidance consumer is written against, the rules for encoder names and the test
switch (docs/design.md §4).

Production encoders are open_clip models (`clip_model.load_clip`: a model name or a checkpoint path). Test encoders
— the random-init tiny CLIP and the oracles of `test_encoders` — are chosen by the names ``"tiny"``,
``"tiny:<path>"`` and ``"oracle:color" | "oracle:size" | "oracle:pose"``, which are accepted only when the
environment variable ``AVATARCLIP_TEST_ENCODERS=1`` is set (tests/conftest.py sets it; so does ``make demo
CLIP=tiny``). A real run that names one by mistake fails at configuration time (`config.RunParams.validate`).
A tiny-CLIP checkpoint given as a plain file path is an ordinary checkpoint and loads without the switch.
`factory.load_encoder` turns a name into an encoder.

Bottom of the guidance import graph: this module imports no other module of the package (and not torch), so
`clip_model`, `test_encoders`, `factory` and the configuration check import it without a cycle.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["Encoder", "ClipWeightsMissing", "TEST_ENCODERS_ENV", "ORACLES", "is_test_encoder_name",
           "are_test_encoders_enabled", "encoder_name_problem"]

#: Environment variable that enables the test encoder names ("1" enables; also "true", "yes", "on").
TEST_ENCODERS_ENV = "AVATARCLIP_TEST_ENCODERS"
#: Oracle kinds accepted as ``"oracle:<kind>"`` (classes in `test_encoders`).
ORACLES = ("color", "size", "pose")
_TINY, _TINY_PREFIX, _ORACLE_PREFIX = "tiny", "tiny:", "oracle:"
_TRUE = {"1", "true", "yes", "on"}


class ClipWeightsMissing(RuntimeError):
    """CLIP weights are neither cached nor downloadable (no network / HF_HUB_OFFLINE=1); raised by
    `clip_model.load_clip` (defined here, torch-free, so the command line can catch it without importing torch).

    The message names the model, the cache folder and file name to put the weights at, and the
    `run.clip_model` config key / `--clip` command-line option that accept a local file path instead.
    """

    def _render_traceback_(self):  # Jupyter shows the message (it names the file and the fix), not a traceback
        return [f"\x1b[31mClipWeightsMissing\x1b[0m: {self}"]


@runtime_checkable
class Encoder(Protocol):
    """What the stages need from CLIP: a frozen joint image/text embedding (docs/method.md §1.3, §3.7, §6).

    Implemented by `clip_model.ClipEncoder` (open_clip CLIP) and the test encoders of `test_encoders` (the tiny CLIP
    is a `ClipEncoder`; `ColorOracle`, `SizeOracle`, `PoseOracle`). Consumers: `losses`, shape search, texture
    training, pose/motion generation and retrieval.

    Attributes:
        name: identifier of the model, e.g. ``"ViT-B-32/openai"``, ``"tiny:/path/tiny_clip.pt"``, ``"size-oracle"``
            (recorded with cached embeddings).
        embed_dim: D, size of the joint embedding (512 for ViT-B-32).
        device: where text embeddings are computed (for `ClipEncoder`, the model's parameters).
    """

    name: str
    embed_dim: int

    @property
    def device(self) -> "torch.device":
        ...

    def encode_image(self, images: "torch.Tensor", alpha: "torch.Tensor | None" = None) -> "torch.Tensor":
        """Embed images.

        Args:
            images: (B, H, W, 3) floating point RGB in [0, 1], channels last (as the renderers produce), any size
                and device; resized/normalised inside (`clip_model.clip_preprocess` for CLIP).
            alpha: (B, H, W) coverage in [0, 1] of the same images, or None. Real CLIP ignores it (it sees the
                composited RGB, docs/method.md §3.7); oracles use it to find the body.
        Returns:
            (B, D) float32 L2-normalised embeddings on the images' device, differentiable w.r.t. `images` (and
            `alpha` for the oracles); the encoder's own parameters are frozen.
        Raises:
            ValueError: images not (B, H, W, 3) floating point, or alpha not (B, H, W).
        """
        ...

    def encode_text(self, texts: str | Sequence[str]) -> "torch.Tensor":
        """Embed prompts (full template sentences, `prompts`).

        Args:
            texts: a prompt string or a non-empty list of non-empty strings.
        Returns:
            (B, D) float32 L2-normalised embeddings on `device`, without gradient (constants of the objective).
        Raises:
            ValueError: an empty list or a blank / non-string entry.
        """
        ...

    def to(self, device) -> "Encoder":
        """Move the encoder to `device` (str or torch.device); returns the encoder."""
        ...


# ----------------------------------------------------------------------------------------------------------
# test-encoder names and the switch
def is_test_encoder_name(name: str) -> bool:
    """True for the test encoder names ``"tiny"``, ``"tiny:<path>"`` and ``"oracle:<kind>"`` (any kind)."""
    name = str(name).strip()
    return name == _TINY or name.startswith((_TINY_PREFIX, _ORACLE_PREFIX))


def are_test_encoders_enabled() -> bool:
    """True when ``AVATARCLIP_TEST_ENCODERS`` is set to 1 (or true/yes/on)."""
    return os.environ.get(TEST_ENCODERS_ENV, "").strip().lower() in _TRUE


def encoder_name_problem(name: str, key: str = "run.clip_model") -> str | None:
    """Why `name` cannot be used as the encoder, or None when it can (checked without loading anything).

    A test encoder name is refused while the switch is off (the message names the value and both fixes); an
    ``"oracle:<kind>"`` with an unknown kind is refused always. Production names and paths return None (they are
    checked when loaded).
    """
    name = str(name).strip()
    if not is_test_encoder_name(name):
        return None
    if name.startswith(_ORACLE_PREFIX) and name[len(_ORACLE_PREFIX):] not in ORACLES:
        return (f"{key} = {name!r}: unknown oracle; use one of {', '.join(_ORACLE_PREFIX + k for k in ORACLES)}")
    if are_test_encoders_enabled():
        return None
    what = "knows no text" if name.startswith(_ORACLE_PREFIX) else "random weights, knows no text"
    return (f"{key} = {name!r} is a test encoder ({what}): set {TEST_ENCODERS_ENV}=1 to use it in tests/demos, "
            "or use ViT-B-32 / a checkpoint path")
