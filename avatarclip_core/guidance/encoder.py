"""The `Encoder` protocol every guidance consumer is written against, the rules for encoder names and the test
switch (docs/design.md §4).

Production encoders are open_clip models (`clip_model.load_clip`: a model name or a checkpoint path). Test encoders
— the random-init tiny CLIP and the oracles of `test_encoders` — are chosen by the names ``"tiny"``,
``"tiny:<path>"`` and ``"oracle:color" | "oracle:size" | "oracle:pose" | "oracle:parts" | "oracle:geometry"``
(the last two with spatial semantics: part colours and silhouette shape), which are accepted only when the
environment variable ``AVATARCLIP_TEST_ENCODERS=1`` is set (tests/conftest.py sets it; so does ``make demo
CLIP=tiny``). A real run that names one by mistake fails at configuration time (`config.RunParams.validate`).
A tiny-CLIP checkpoint given as a plain file path is an ordinary checkpoint and loads without the switch.
`factory.load_encoder` turns a name into an encoder.

The production names and paths are also checked here without importing torch or open_clip
(`clip_source_problem`: an unknown open_clip model name, a missing or damaged checkpoint file), so the command line
refuses them within a second; `clip_model.load_clip` raises the same messages.

Bottom of the guidance import graph: this module imports no other module of the package (and not torch), so
`clip_model`, `test_encoders`, `factory` and the configuration check import it without a cycle.
"""
from __future__ import annotations

import difflib
import importlib.util
import json
import os
import struct
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["Encoder", "ClipWeightsMissing", "TEST_ENCODERS_ENV", "ORACLES", "is_test_encoder_name",
           "are_test_encoders_enabled", "encoder_name_problem", "CHECKPOINT_SUFFIXES", "open_clip_model_names",
           "unknown_model_message", "missing_checkpoint_message", "checkpoint_problem", "clip_source_problem"]

#: Environment variable that enables the test encoder names ("1" enables; also "true", "yes", "on").
TEST_ENCODERS_ENV = "AVATARCLIP_TEST_ENCODERS"
#: Oracle kinds accepted as ``"oracle:<kind>"`` (classes in `test_encoders`).
ORACLES = ("color", "size", "pose", "parts", "geometry")
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
    is a `ClipEncoder`; `ColorOracle`, `SizeOracle`, `PoseOracle`, `PartColorOracle`, `GeometryOracle`). Consumers:
    `losses`, shape search, texture training, pose/motion generation and retrieval.

    Attributes:
        name: identifier of the model, e.g. ``"ViT-B-32/openai"``, ``"tiny:/path/tiny_clip.pt"``, ``"size-oracle"``
            (recorded with cached embeddings).
        embed_dim: D, size of the joint embedding (512 for ViT-B-32).
        device: where text embeddings are computed (for `ClipEncoder`, the model's parameters).
        alpha_gradient: optional, default False. True for an encoder whose score is a function of the silhouette
            that should sculpt through it (`GeometryOracle`): the texture stage then passes its rendered Σw with
            its gradient; otherwise detached (docs/method.md §3.7). CLIP does not set it: it ignores alpha.
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


# ----------------------------------------------------------------------------------------------------------
# production names and checkpoint files, checked without torch / open_clip
#: File suffixes that make a `run.clip_model` value a checkpoint path rather than a model name.
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
_HF_HUB_PREFIX = "hf-hub:"
# torch.save's legacy (non-zip) format starts with its magic number pickled: PROTO n, (FRAME,) LONG1 10 bytes.
_LEGACY_TORCH_MAGIC = b"\x8a\x0a" + (0x1950a86a20f9469cfc6c).to_bytes(10, "little")


def open_clip_model_names() -> list[str] | None:
    """The open_clip architecture names (as `open_clip.list_models()` gives them: the `model_configs/*.json` files
    of the installed package that define a model), read without importing open_clip or torch; None when open_clip
    is not installed."""
    try:
        spec = importlib.util.find_spec("open_clip")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    names = []
    for folder in spec.submodule_search_locations:
        for f in sorted(Path(folder, "model_configs").glob("*.json")):
            try:
                cfg = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(cfg, dict) and all(k in cfg for k in ("embed_dim", "vision_cfg", "text_cfg")):
                names.append(f.stem)
    return names


def unknown_model_message(name: str, models: Sequence[str]) -> str:
    """The one message for a CLIP value that is neither a file nor an open_clip architecture (close matches first)."""
    close = difflib.get_close_matches(str(name), list(models), n=5, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return (f"Unknown CLIP model {str(name)!r}: it is neither an existing file nor an open_clip architecture.{hint} "
            "List valid names with `python -c \"import open_clip; print(open_clip.list_models())\"` and valid "
            "name/tag pairs with `open_clip.list_pretrained()`; or pass a path to a local checkpoint file.")


def missing_checkpoint_message(path: str | os.PathLike, key: str = "run.clip_model") -> str:
    """The one message for a checkpoint path that does not exist."""
    return (f"CLIP checkpoint file {path} does not exist; check the path given as `{key}` (or --clip), or use a "
            "model name such as 'ViT-B-32'")


def _looks_like_path(raw: str) -> bool:
    return (Path(raw).suffix in CHECKPOINT_SUFFIXES
            or (os.sep in raw or "/" in raw) and not raw.startswith(_HF_HUB_PREFIX))


def checkpoint_problem(path: str | os.PathLike, key: str = "run.clip_model") -> str | None:
    """Why the file `path` cannot be a CLIP checkpoint, judged from its structure without loading it (no torch), or
    None when it looks loadable.

    ``.safetensors``: an 8-byte little-endian header length, a JSON header, then the tensor data it describes;
    other files must be what `torch.load` reads: a zip archive with a readable central directory (`torch.save`,
    TorchScript such as OpenAI's ``ViT-B-32.pt``) or the legacy pickle format.
    """
    path = Path(path)
    fix = (f"download it again or point `{key}` (--clip) at a complete checkpoint, or use a model name such as "
           "'ViT-B-32'")
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(32)
            if path.suffix == ".safetensors":
                if size < 8:
                    return f"CLIP checkpoint {path} is damaged ({size} bytes, no safetensors header); {fix}"
                (n,) = struct.unpack("<Q", head[:8])
                if n < 2 or 8 + n > size:
                    return f"CLIP checkpoint {path} is damaged or truncated (safetensors header of {n} bytes in a " \
                           f"{size}-byte file); {fix}"
                fh.seek(8)
                try:
                    header = json.loads(fh.read(n))
                except ValueError:
                    header = None
                if not isinstance(header, dict):
                    return f"CLIP checkpoint {path} is damaged (its safetensors header is not JSON); {fix}"
                ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"
                        and isinstance(v, dict) and isinstance(v.get("data_offsets"), list) and v["data_offsets"]]
                if ends and max(ends) > size - 8 - n:
                    return (f"CLIP checkpoint {path} is truncated ({size} bytes, its header describes "
                            f"{8 + n + max(ends)}); {fix}")
                return None
        if zipfile.is_zipfile(path):
            try:
                with zipfile.ZipFile(path) as z:
                    z.infolist()
            except (zipfile.BadZipFile, OSError, ValueError) as err:
                return f"CLIP checkpoint {path} is damaged ({err}); {fix}"
            return None
    except OSError as err:
        return f"CLIP checkpoint {path} cannot be read ({err.strerror or err}); {fix}"
    if head[:1] == b"\x80" and _LEGACY_TORCH_MAGIC in head:  # (protocol ≥ 4 puts an 8-byte frame before it)
        return None
    what = ("empty" if size == 0 else
            f"{size} bytes, not a torch/TorchScript zip archive, legacy torch file or safetensors")
    return f"CLIP checkpoint {path} is not a readable checkpoint ({what}; truncated or damaged?); {fix}"


def clip_source_problem(name: str, key: str = "run.clip_model") -> str | None:
    """Why the production CLIP value `name` (an open_clip model name or a checkpoint path) cannot be loaded, found
    without importing torch or open_clip: a path that does not exist, a damaged checkpoint (`checkpoint_problem`),
    an unknown model name (with close matches). None when it may load — whether the weights of a model name are
    cached or downloadable is checked when loading (`clip_model.load_clip`). Test encoder names and ``hf-hub:``
    names return None (see `encoder_name_problem`)."""
    raw = str(name).strip()
    if not raw or is_test_encoder_name(raw) or raw.startswith(_HF_HUB_PREFIX):
        return None
    path = Path(raw).expanduser()
    if path.is_file():
        return checkpoint_problem(path, key)
    models = open_clip_model_names()
    if models is not None and raw.replace("/", "-") in models:  # also OpenAI's spelling "ViT-B/32"
        return None
    if _looks_like_path(raw):
        return missing_checkpoint_message(path, key)
    return None if models is None else unknown_model_message(raw, models)
