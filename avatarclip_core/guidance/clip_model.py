"""CLIP loading (open_clip) and differentiable CLIP image preprocessing in torch.

AvatarCLIP (docs/method.md §1.3, §3.7, §6) uses OpenAI CLIP ViT-B/32, frozen, on images resized to 224×224 and
normalised with the OpenAI mean/std. Here CLIP comes from `open_clip` (docs/design.md §4): its ``ViT-B-32`` /
``openai`` weights are the same network, and any other open_clip architecture/tag works by name.

Nothing here touches the network at import time. `load_clip` checks, before calling open_clip, whether the
weights are already on disk and whether the weight host answers within a few seconds; offline with no cached
weights it raises `ClipWeightsMissing` (a RuntimeError) saying where to put the file.

`load_clip` returns a `ClipEncoder`, an `Encoder` (guidance/encoder.py). It loads production names and checkpoint
paths only (a tiny-CLIP file given by its path included); the test encoder names ``"tiny"``, ``"tiny:<path>"`` and
``"oracle:…"`` go through `factory.load_encoder`, behind its test switch. This module does not import
`test_encoders`.
"""
from __future__ import annotations

import os
import socket
import threading
import warnings
import zipfile
from pathlib import Path
from typing import Sequence
from urllib.parse import urlparse

import torch
import torch.nn.functional as F

from ..device import resolve_device
from ..params import ConfigError
from .encoder import (CHECKPOINT_SUFFIXES, ClipWeightsMissing, checkpoint_problem,  # torch-free (the CLI checks first)
                      is_test_encoder_name, missing_checkpoint_message, unknown_model_message)

__all__ = [
    "OPENAI_CLIP_MEAN",
    "OPENAI_CLIP_STD",
    "ClipEncoder",
    "ClipWeightsMissing",
    "TINY_CLIP_FORMAT",
    "clip_dtype",
    "clip_preprocess",
    "default_cache_dir",
    "load_clip",
    "weights_cached",
]

#: CLIP image normalisation used by AvatarCLIP (docs/method.md §1.3 step 4; open_clip OPENAI_DATASET_MEAN/STD).
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: Marker key stored in tiny-CLIP checkpoints written by `avatarclip_core.guidance.test_encoders.make_tiny_clip`.
TINY_CLIP_FORMAT = "avatarclip_tiny_clip"
_CHECKPOINT_SUFFIXES = CHECKPOINT_SUFFIXES
_PEEK_MAX_BYTES = 64 * 2**20  # files smaller than this are opened once to look for the tiny-CLIP marker
_NETWORK_TIMEOUT_S = 2.5
_CONFIG_HINT = ("point the config key `run.clip_model` at a local file (HOCON: `run.clip_model = \"/path/to/ViT-B-32.pt\"`; "
                "command line: `--clip /path/to/ViT-B-32.pt`)")


def default_cache_dir() -> Path:
    """Folder where CLIP weights are downloaded/looked up: `paths.cache_root()` / "clip" (``$AVATARCLIP_CACHE/clip``
    if the variable is set, else ``~/.cache/avatarclip/clip``). Absolute Path (not created here)."""
    from ..paths import cache_root

    return cache_root() / "clip"


# ----------------------------------------------------------------------------------------------------------
# precision
def clip_dtype(device: str | torch.device, fp16: bool | None = None) -> torch.dtype:
    """The dtype CLIP's weights and activations run in on `device`.

    AvatarCLIP loads CLIP with OpenAI's `clip.load`, which keeps the weights in float16 on CUDA and in float32 on the
    CPU (docs/method.md §3.7); `fp16=None` (default) does the same. `fp16=True` asks for float16 (CUDA only),
    `fp16=False` for float32 anywhere.

    Args:
        device: "cpu", "cuda", "cuda:N" or a torch.device (only its type is read: no GPU is needed to ask).
        fp16: None = by device, True / False = forced.
    Returns: torch.float16 or torch.float32.
    Raises: ValueError: fp16=True on a device that is not CUDA (CPU half-precision matmuls are slow and inexact).
    """
    kind = torch.device(device).type
    if fp16 is None:
        return torch.float16 if kind == "cuda" else torch.float32
    if fp16 and kind != "cuda":
        raise ValueError(f"fp16=True needs a CUDA device, got {device}; use fp16=None (float16 on CUDA, float32 on "
                         "the CPU) or fp16=False")
    return torch.float16 if fp16 else torch.float32


# ----------------------------------------------------------------------------------------------------------
# preprocessing
def clip_preprocess(images: torch.Tensor, image_size: int | Sequence[int] = 224,
                    mean: Sequence[float] = OPENAI_CLIP_MEAN, std: Sequence[float] = OPENAI_CLIP_STD) -> torch.Tensor:
    """Differentiable CLIP preprocessing: resize + mean/std normalisation, in torch.

    Args:
        images: (B, H, W, 3) float RGB in [0, 1], any device/dtype (channels-last, as the renderers produce).
        image_size: CLIP input size S (int) or (S_h, S_w); 224 for ViT-B-32.
        mean, std: per-channel normalisation (default: OpenAI CLIP constants, docs/method.md §1.3).
    Returns:
        (B, 3, S_h, S_w) tensor, same dtype/device: bilinear resize (align_corners=False, antialias off — as
        AvatarCLIP's `RandomResizedCrop(224, scale=(1, 1))`, docs/method.md §3.7; a non-square image is stretched
        to the square, not cropped), then ``(x - mean) / std``. Gradients flow to `images`.
    Raises:
        ValueError: images not (B, H, W, 3) floating point.
    """
    if not torch.is_tensor(images) or images.ndim != 4 or images.shape[-1] != 3:
        shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
        raise ValueError(f"images must be a (B, H, W, 3) tensor in [0, 1], got {shape}; "
                         "add a batch dimension with images[None] or drop an alpha channel with images[..., :3]")
    if not images.is_floating_point():
        raise ValueError(f"images must be floating point in [0, 1], got dtype {images.dtype}; "
                         "convert uint8 images with images.float() / 255")
    size = (int(image_size), int(image_size)) if isinstance(image_size, (int, float)) else tuple(int(s) for s in image_size)
    x = images.permute(0, 3, 1, 2)
    if tuple(x.shape[-2:]) != size:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=False)
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


# ----------------------------------------------------------------------------------------------------------
# encoder
class ClipEncoder(torch.nn.Module):
    """A frozen open_clip model as an `Encoder` (guidance/encoder.py).

    Attributes (besides the `Encoder` ones; `name` is e.g. ``"ViT-B-32/openai"`` or ``"tiny:/path/tiny.pt"``):
        image_size (tuple[int, int]): CLIP input resolution (224, 224) for ViT-B-32.
        mean, std (tuple[float, float, float]): image normalisation.
        model: the open_clip module (eval mode, requires_grad False).
    All parameters are frozen; gradients still flow from the embeddings to input images.
    """

    def __init__(self, model: torch.nn.Module, tokenizer, name: str, mean: Sequence[float], std: Sequence[float],
                 image_size: int | Sequence[int]):
        super().__init__()
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.tokenizer = tokenizer
        self.name = name
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.image_size = (int(image_size),) * 2 if isinstance(image_size, int) else tuple(int(s) for s in image_size)
        self._text_cache: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            self.embed_dim = int(self._encode_text_raw(["a"]).shape[-1])

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Compute dtype of the model (`clip_dtype`: float16 on CUDA by default, float32 on the CPU)."""
        return next(self.model.parameters()).dtype

    def train(self, mode: bool = True):
        """CLIP stays in eval mode whatever `mode` is (frozen guidance network)."""
        return super().train(False)

    def encode_image(self, images: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
        """`Encoder.encode_image` (guidance/encoder.py): `clip_preprocess` → CLIP image tower (on the model's
        device and dtype) → L2 normalisation. `alpha` is only shape-checked and otherwise ignored (AvatarCLIP feeds
        CLIP the composited RGB image, docs/method.md §3.7)."""
        x = clip_preprocess(images, self.image_size, self.mean, self.std)
        if alpha is not None and tuple(alpha.shape) != tuple(images.shape[:3]):
            raise ValueError(f"alpha must be (B, H, W) = {tuple(images.shape[:3])}, got {tuple(alpha.shape)}")
        emb = self.model.encode_image(x.to(device=self.device, dtype=self.dtype))
        return F.normalize(emb.float(), dim=-1).to(images.device)

    def _encode_text_raw(self, texts: list[str]) -> torch.Tensor:
        for t in texts:
            warn_if_truncated(self.tokenizer, t)
        tokens = self.tokenizer(texts).to(self.device)
        return self.model.encode_text(tokens).float()

    def encode_text(self, texts: str | Sequence[str]) -> torch.Tensor:
        """`Encoder.encode_text` (guidance/encoder.py); embeddings are cached per string."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            raise ValueError("encode_text needs at least one prompt string, got an empty list")
        for t in texts:
            if not isinstance(t, str) or not t.strip():
                raise ValueError(f"encode_text prompts must be non-empty strings, got {t!r}")
        missing = [t for t in dict.fromkeys(texts) if t not in self._text_cache]
        if missing:
            with torch.no_grad():
                emb = F.normalize(self._encode_text_raw(missing), dim=-1)
            for t, e in zip(missing, emb):
                self._text_cache[t] = e
        return torch.stack([self._text_cache[t] for t in texts])

    def forward(self, images: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
        """Same as `encode_image`."""
        return self.encode_image(images, alpha)

    def __repr__(self) -> str:
        return f"ClipEncoder(name={self.name!r}, embed_dim={self.embed_dim}, image_size={self.image_size})"


def warn_if_truncated(tokenizer, text: str) -> bool:
    """Warn (UserWarning) when `text` is longer than the tokenizer's context (77 tokens for CLIP, start and end
    tokens included): CLIP reads only the beginning and the rest is cut off. Returns whether it was."""
    encode, context = getattr(tokenizer, "encode", None), getattr(tokenizer, "context_length", None)
    if encode is None or context is None:
        return False
    ids = encode(text)
    if len(ids) + 2 <= context:
        return False
    kept = tokenizer.decode(ids[:context - 2]).strip() if hasattr(tokenizer, "decode") else ""
    warnings.warn(f"prompt of {len(ids)} tokens is longer than CLIP's context of {context - 2}: it is truncated to "
                  f"{kept!r}; shorten it to keep the rest", UserWarning, stacklevel=3)
    return True


# ----------------------------------------------------------------------------------------------------------
# weight resolution
def _hf_parts(pcfg: dict) -> tuple[str, list[str]] | None:
    hub = pcfg.get("hf_hub", "")
    if not hub:
        return None
    repo, filename = os.path.split(hub)
    if filename:
        names = [filename]
        if filename.endswith((".bin", ".pth")):
            names.insert(0, filename[:-4] + ".safetensors")
    else:
        names = ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    return repo, names


def _drop_in_filename(arch: str, tag: str, pcfg: dict) -> str:
    url = pcfg.get("url", "")
    return os.path.basename(urlparse(url).path) if url else f"{arch}-{tag}.bin"


def weights_cached(arch: str, pretrained: str, cache_dir: str | os.PathLike | None = None) -> str | None:
    """Path of already-downloaded weights for open_clip model `arch` with tag `pretrained`, or None.

    Looks (without network) in `cache_dir` (default `default_cache_dir()`) for the plain drop-in file
    (the basename of open_clip's download URL, e.g. ``ViT-B-32.pt``, or ``<arch>-<tag>.bin``) and in the
    Hugging Face hub cache layout that open_clip's download uses, both under `cache_dir` and in the default
    HF cache (HF_HUB_CACHE).
    """
    import open_clip

    cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    pcfg = open_clip.get_pretrained_cfg(arch, pretrained)
    if not pcfg:
        return None
    drop_in = cache_dir / _drop_in_filename(arch, pretrained, pcfg)
    if drop_in.is_file():
        return str(drop_in)
    hf = _hf_parts(pcfg)
    if hf:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover - huggingface_hub is an open_clip dependency
            return None
        repo, names = hf
        for cdir in (str(cache_dir), None):
            for fname in names:
                hit = try_to_load_from_cache(repo, fname, cache_dir=cdir)
                if isinstance(hit, str) and os.path.isfile(hit):
                    return hit
    return None


def _network_reachable(pcfg: dict, timeout: float = _NETWORK_TIMEOUT_S) -> tuple[bool, str]:
    """(reachable, why-not) for the host open_clip would download from; honours HF_HUB_OFFLINE."""
    offline_vals = {"1", "true", "yes", "on"}
    for var in ("HF_HUB_OFFLINE", "AVATARCLIP_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in offline_vals:
            return False, f"{var}={os.environ[var]}"
    try:
        from huggingface_hub import constants as hf_constants
        endpoint = hf_constants.ENDPOINT
    except Exception:  # pragma: no cover
        endpoint = "https://huggingface.co"
    url = endpoint if pcfg.get("hf_hub") else pcfg.get("url", endpoint)
    host = urlparse(url).hostname or "huggingface.co"
    port = urlparse(url).port or 443
    result: list = []

    def probe():  # DNS lookup is not covered by the socket timeout, so the whole probe runs in a thread
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append("")
        except OSError as e:
            result.append(f"{e.__class__.__name__}: {e}")

    thread = threading.Thread(target=probe, daemon=True, name="avatarclip-net-probe")
    thread.start()
    thread.join(timeout + 0.5)
    if result and result[0] == "":
        return True, ""
    why = result[0] if result else "timed out"
    return False, f"cannot reach {host}:{port} within {timeout:.1f} s ({why}); set HF_HUB_OFFLINE=1 to skip this check"


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())


def _read_tiny_meta(path: Path) -> dict | None:
    """The tiny-CLIP metadata dict if `path` is a tiny checkpoint (small file with the marker key)."""
    if path.suffix == ".safetensors" or path.stat().st_size > _PEEK_MAX_BYTES or _is_torchscript(path):
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    if isinstance(ckpt, dict) and TINY_CLIP_FORMAT in ckpt:
        return ckpt[TINY_CLIP_FORMAT]
    return None


def _build(arch: str, checkpoint: str, pretrained_tag: str | None, device: torch.device, fp16: bool | None,
           name: str, model_overrides: dict | None = None, preprocess: dict | None = None) -> ClipEncoder:
    """The one code path that turns a checkpoint file into a ClipEncoder (real and tiny checkpoints)."""
    import open_clip

    pcfg = open_clip.get_pretrained_cfg(arch, pretrained_tag) if pretrained_tag else {}
    overrides = dict(model_overrides or {})
    quick_gelu = bool(overrides.pop("quick_gelu", pcfg.get("quick_gelu", False)))
    try:
        model = open_clip.create_model(
            arch, pretrained=str(checkpoint), device="cpu", force_quick_gelu=quick_gelu,
            weights_only=not _is_torchscript(Path(checkpoint)), require_pretrained=True,
            **({"quick_gelu": quick_gelu, **overrides} if overrides else {}))
    except Exception as err:  # torch.load / load_state_dict errors: one line naming the file, not torch's advice
        raise ConfigError(_load_failure(checkpoint, arch, err)) from err
    mean = (preprocess or {}).get("mean") or pcfg.get("mean") or OPENAI_CLIP_MEAN
    std = (preprocess or {}).get("std") or pcfg.get("std") or OPENAI_CLIP_STD
    size = open_clip.get_model_preprocess_cfg(model).get("size", 224)
    context_length = getattr(model, "context_length", None) or 77
    tokenizer = open_clip.get_tokenizer(arch, context_length=context_length)
    model = model.to(device=device, dtype=clip_dtype(device, fp16))
    return ClipEncoder(model, tokenizer, name=name, mean=mean, std=std, image_size=size)


def _load_failure(checkpoint, arch: str, err: Exception) -> str:
    """One line for a checkpoint open_clip could not load (`_build`)."""
    import pickle

    if isinstance(err, pickle.UnpicklingError) or "weights_only" in str(err):
        why = "it holds Python objects besides tensors, which are not unpickled for safety"
    else:
        lines = [s.strip() for s in str(err).splitlines() if s.strip()]
        why = f"{type(err).__name__}: {' '.join(lines[:2])[:200] if lines else 'no message'}"
    return (f"CLIP checkpoint {checkpoint} cannot be loaded as {arch} ({why}); use a complete open_clip / "
            "OpenAI state dict, TorchScript or safetensors file of that architecture in `run.clip_model` (--clip), "
            "or a model name such as 'ViT-B-32'")


def _unknown_model_error(name: str) -> ConfigError:
    import open_clip

    return ConfigError(unknown_model_message(name, open_clip.list_models()))  # the CLI checks with the same text


def load_clip(name_or_path: str | os.PathLike = "ViT-B-32", pretrained: str = "openai",
              device: str | torch.device | None = "cpu", cache_dir: str | os.PathLike | None = None,
              fp16: bool | None = None, arch: str | None = None) -> ClipEncoder:
    """Load a frozen CLIP as a `ClipEncoder` (docs/design.md §4; AvatarCLIP uses ViT-B/32 OpenAI, docs/method.md §1.3).

    Args:
        name_or_path: one of
            * an open_clip architecture name (``"ViT-B-32"``, ``"ViT-L-14"``, …; see
              ``open_clip.list_models()``) — weights for tag `pretrained` are taken from the cache, or
              downloaded into `cache_dir` when the network is reachable;
            * a path to a local checkpoint: our tiny-CLIP file (`test_encoders.make_tiny_clip`), or an
              open_clip/OpenAI state dict (.pt/.pth/.bin/.safetensors, also OpenAI's TorchScript ``ViT-B-32.pt``)
              for architecture `arch`.
            The test encoder names ``"tiny"`` / ``"tiny:<path>"`` / ``"oracle:…"`` are refused here (ValueError
            pointing at `factory.load_encoder`).
        pretrained: open_clip weight tag (default ``"openai"``). For a local non-tiny file it names what the
            file holds, which selects QuickGELU and the mean/std (OpenAI weights need QuickGELU).
        device: "cpu", "cuda", a torch.device, or "auto"/None (CUDA when available).
        cache_dir: download/cache folder; default env AVATARCLIP_CACHE or ``~/.cache/avatarclip/clip``.
        fp16: None (default) = float16 weights on CUDA and float32 on the CPU, as AvatarCLIP (`clip_dtype`);
            True = float16 (CUDA only); False = float32.
        arch: architecture of a local non-tiny checkpoint; default: the file's stem if it is an open_clip
            model name (``ViT-B-32.pt``), else ``"ViT-B-32"``.
    Returns:
        ClipEncoder on `device`, eval mode, all parameters frozen.
    Raises:
        ValueError: unknown model name (message says how to list valid names), unknown tag for the
            architecture, a path that does not exist, fp16=True on CPU, a test encoder name. The model-name and file
            errors are `ConfigError`s (a ValueError) with the texts of `encoder.clip_source_problem`, also for a
            damaged checkpoint file or one that torch cannot load.
        ClipWeightsMissing: weights not cached and no network (or HF_HUB_OFFLINE=1); raised within ~3 s.
    """
    import open_clip

    dev = resolve_device(device)
    raw = os.fspath(name_or_path)
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError(f"name_or_path must be a model name or a file path, got {name_or_path!r}; "
                         "use 'ViT-B-32' (AvatarCLIP's model) or a path to a checkpoint")
    if is_test_encoder_name(raw):
        raise ValueError(f"{raw!r} is a test encoder name, which load_clip does not load: use "
                         "avatarclip_core.guidance.load_encoder (with AVATARCLIP_TEST_ENCODERS=1), or pass the path "
                         "of a tiny-CLIP file without the 'tiny:' prefix")
    path = Path(raw).expanduser()
    looks_like_path = path.suffix in _CHECKPOINT_SUFFIXES or os.sep in raw and not raw.startswith("hf-hub:")

    if path.is_file():
        problem = checkpoint_problem(path)
        if problem:
            raise ConfigError(problem)
        meta = _read_tiny_meta(path)
        if meta is not None:
            return _build(meta["arch"], str(path), None, dev, fp16, name=f"tiny:{path}",
                          model_overrides=meta["model_cfg"], preprocess=meta.get("preprocess_cfg"))
        if arch is None:
            arch = path.stem if path.stem in open_clip.list_models() else "ViT-B-32"
        if arch not in open_clip.list_models():
            raise _unknown_model_error(arch)
        return _build(arch, str(path), pretrained, dev, fp16, name=f"{arch}:{path}")
    if looks_like_path and raw.replace("/", "-") not in open_clip.list_models():  # "ViT-B/32" is a model name
        raise ConfigError(missing_checkpoint_message(path))

    if raw.startswith("hf-hub:"):
        from huggingface_hub import try_to_load_from_cache

        repo = raw[len("hf-hub:"):]
        cdir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        cached_cfg = any(isinstance(try_to_load_from_cache(repo, "open_clip_config.json", cache_dir=c), str)
                         for c in (str(cdir), None))
        if not cached_cfg:
            ok, why = _network_reachable({"hf_hub": repo + "/"})
            if not ok:
                raise ClipWeightsMissing(
                    f"CLIP model {raw} is not in the Hugging Face cache ({cdir} or HF_HUB_CACHE) and cannot be "
                    f"downloaded ({why}). Download the repository https://huggingface.co/{repo} into {cdir} "
                    f"(e.g. `huggingface-cli download {repo} --cache-dir {cdir}`), or {_CONFIG_HINT}.")
        model = open_clip.create_model(raw, device="cpu", cache_dir=str(cdir))
        size = open_clip.get_model_preprocess_cfg(model)
        return ClipEncoder(model.to(device=dev, dtype=clip_dtype(dev, fp16)), open_clip.get_tokenizer(raw), name=raw,
                           mean=size.get("mean", OPENAI_CLIP_MEAN), std=size.get("std", OPENAI_CLIP_STD),
                           image_size=size.get("size", 224))

    arch_name = raw.replace("/", "-")  # accept OpenAI spelling "ViT-B/32"
    if arch_name not in open_clip.list_models():
        raise _unknown_model_error(raw)
    pcfg = open_clip.get_pretrained_cfg(arch_name, pretrained)
    if not pcfg:
        tags = open_clip.list_pretrained_tags_by_model(arch_name)
        raise ValueError(f"Unknown weights tag pretrained={pretrained!r} for {arch_name}; valid tags: {tags} "
                         "(open_clip.list_pretrained()), or pass a checkpoint file path")
    cdir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    cached = weights_cached(arch_name, pretrained, cdir)
    if cached is None:
        ok, why = _network_reachable(pcfg)
        if not ok:
            drop = cdir / _drop_in_filename(arch_name, pretrained, pcfg)
            source = pcfg.get("url") or f"https://huggingface.co/{_hf_parts(pcfg)[0]}"
            raise ClipWeightsMissing(
                f"CLIP weights for {arch_name} / {pretrained} are not cached and cannot be downloaded ({why}). "
                f"Download them on a machine with internet from {source} and put the file at {drop} "
                f"(cache folder {cdir}; the env var AVATARCLIP_CACHE moves its parent folder), or {_CONFIG_HINT}. "
                "For tests and CPU smoke runs without weights, set AVATARCLIP_TEST_ENCODERS=1 and use the "
                "random-weight tiny CLIP: `run.clip_model = tiny` / `--clip tiny`.")
        cdir.mkdir(parents=True, exist_ok=True)
        cached = open_clip.download_pretrained(pcfg, cache_dir=str(cdir))
    return _build(arch_name, cached, pretrained, dev, fp16, name=f"{arch_name}/{pretrained}")
