"""`evaluate_run`: CLIP score and R-precision of a finished avatar (docs/method.md, "Evaluation").

What is measured: the textured mesh that stage 3 exports (`03_texture/avatar.ply`, vertex colours) — the avatar
users get and stage 6 rigs — rendered by the package's rasterizer from a fixed ring of cameras
(`EvalParams`: 8 azimuths, 15° elevation, 2 m, 60° FoV, 224², white background, Lambert shading lit from the
camera). Each render is embedded by an evaluation encoder that should not be the one that guided the optimisation
(default ViT-L-14 / openai; an avatar optimised against CLIP ViT-B/32 scores higher under ViT-B/32 than it looks).

* CLIP score: mean over views of cos(image embedding, text embedding of the appearance prompt), the prompt
  templated as in stage 3 ("a 3D rendering of ⟨X⟩ in unreal engine", guidance/prompts.py).
* R-precision (R = 1): the fraction of views whose embedding is closer to the appearance prompt than to every
  distractor prompt (ties count as misses); `DISTRACTORS` are the appearance descriptions of AvatarCLIP's shipped
  examples (docs/method.md, "Evaluation"), in the same template, minus any equal to the avatar's own.

The figures go to `<run>/eval.json` and the stage-3 manifest, one entry per evaluation model, written atomically under
the run lock.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .params import ConfigError, Params, param
from .rundir import RunDir, UpstreamMissing, run_lock

if TYPE_CHECKING:  # pragma: no cover - torch is imported where it is used: the CLI's checks stay torch-free
    import torch

__all__ = ["DISTRACTORS", "EVAL_FILE", "EvalParams", "evaluate_run", "rank_metrics", "same_model",
           "guidance_model", "check_eval_model", "DEFAULT_EVAL_MODEL", "render_ring", "record_evaluation"]

#: The evaluation model the CLI uses unless told otherwise (open_clip name, weights tag).
DEFAULT_EVAL_MODEL = ("ViT-L-14", "openai")
#: File at the run root that holds the evaluations, {"evaluations": {model: figures}}.
EVAL_FILE = "eval.json"
#: Distractor appearance descriptions: the example characters shipped with AvatarCLIP (docs/method.md,
#: "Evaluation"). None names a colour, so the colour oracle sees all of them as neutral grey.
DISTRACTORS: tuple[str, ...] = (
    "Abraham Lincoln", "Albus Dumbledore", "an alien", "an astronaut", "the Batman", "Bruce Lee",
    "the Captain America", "a chef", "the Deadpool", "Elsa", "a firefighter", "Bill Gates", "the Hulk",
    "the Iron Man", "Jackie Chan", "a knight", "a ninja", "Barack Obama", "a robot", "Saitama", "the Superman",
    "the Thor", "Donald Trump", "a zombie",
)


@dataclass
class EvalParams(Params):
    """The fixed camera ring of the evaluation: `views` azimuths evenly spaced from the front (0° = +z, the
    avatar's front), at `elevation_deg` (degrees, above the horizon) and `distance` (metres) from the origin (the
    body's centre), horizontal FoV `fov_deg`, square `image_size` px renders on a `background` grey level in [0, 1]
    (1 = white), Lambert shading with `ambient` and the light at the camera."""

    views: int = param(8, ge=1, le=360)
    elevation_deg: float = param(15.0, ge=-89, le=89)
    distance: float = param(2.0, gt=0)
    fov_deg: float = param(60.0, gt=0, lt=180)
    image_size: int = param(224, ge=16, le=2048)
    background: float = param(1.0, ge=0, le=1, fix="a grey level: 1 = white, 0 = black")
    ambient: float = param(0.5, ge=0, le=1)


def _canonical(name: str, pretrained: str = "") -> str:
    """One spelling per model: test encoder names as they are, files by their resolved path, open_clip names as
    "arch/tag" (OpenAI's "ViT-B/32" = "ViT-B-32")."""
    from .guidance.encoder import CHECKPOINT_SUFFIXES, is_test_encoder_name

    raw = str(name).strip()
    if raw.startswith("tiny:"):
        return "tiny:" + str(Path(raw[5:]).expanduser().resolve())
    if is_test_encoder_name(raw):
        return raw
    path = Path(raw).expanduser()
    if path.suffix in CHECKPOINT_SUFFIXES or path.is_file():
        return str(path.resolve())
    return f"{raw.replace('/', '-').lower()}/{(pretrained or '').strip().lower()}"


def same_model(a: str, a_pretrained: str, b: str, b_pretrained: str) -> bool:
    """Whether two `run.clip_model` values (with their weight tags) name the same model (torch-free)."""
    return _canonical(a, a_pretrained) == _canonical(b, b_pretrained)


def guidance_model(run: RunDir) -> tuple[str, str, str]:
    """(clip_model, clip_pretrained, encoder name) that guided stage 3 of `run`, from its manifest (encoder name
    "" for runs made before stage 3 recorded it). Raises UpstreamMissing when stage 3 has not finished."""
    try:
        manifest = run.require("03_texture")
    except UpstreamMissing as err:
        raise UpstreamMissing(f"avatarclip eval scores the textured avatar of stage 03: {err}") from None
    r = manifest.get("settings", {}).get("run", {})
    return (str(r.get("clip_model", "")), str(r.get("clip_pretrained", "")),
            str(manifest.get("figures", {}).get("guidance_encoder", "")))


def check_eval_model(run: RunDir, model: str, pretrained: str, force: bool = False) -> None:
    """Refuse (ConfigError) to evaluate with the model that guided the optimisation, unless `force`; torch-free,
    so the command line refuses within a second. Raises UpstreamMissing when stage 3 has not finished."""
    used, used_tag, _ = guidance_model(run)
    if not force and used and same_model(model, pretrained, used, used_tag):
        raise ConfigError(f"the evaluation model {model!r} ({pretrained}) is the one that guided this avatar "
                          f"(run.clip_model = {used!r}): its scores would flatter the avatar; evaluate with another "
                          "model (default ViT-L-14, e.g. --clip ViT-L-14) or pass --force to score it anyway")


def rank_metrics(image_emb: torch.Tensor, text_emb: torch.Tensor, true_index: int = 0) -> dict:
    """CLIP score and R-precision of N views against T prompts.

    Args:
        image_emb: (N, D) L2-normalised image embeddings (float).
        text_emb: (T, D) L2-normalised text embeddings; row `true_index` is the avatar's prompt, the others are
            distractors.
    Returns:
        {"clip_score": mean cos to the true prompt, "clip_score_per_view": N floats, "r_precision": fraction of
        views whose true-prompt cosine is strictly above every distractor's, "rank_mean": mean rank of the true
        prompt (1 = best; ties ranked pessimistically)}.
    Raises:
        ValueError: shapes that do not match or fewer than 2 prompts.
    """
    import torch

    if image_emb.ndim != 2 or text_emb.ndim != 2 or image_emb.shape[1] != text_emb.shape[1]:
        raise ValueError(f"image_emb (N, D) and text_emb (T, D) must share D, got {tuple(image_emb.shape)} and "
                         f"{tuple(text_emb.shape)}")
    if text_emb.shape[0] < 2:
        raise ValueError("R-precision needs the true prompt and at least one distractor")
    sim = image_emb.float() @ text_emb.float().T                       # (N, T)
    true = sim[:, true_index]
    others = torch.cat([sim[:, :true_index], sim[:, true_index + 1:]], dim=1)
    rank = 1 + (others >= true[:, None]).sum(1)                        # ties ranked below the distractor
    return {"clip_score": round(float(true.mean()), 5), "clip_score_per_view": [round(float(s), 5) for s in true],
            "r_precision": round(float((rank == 1).float().mean()), 5), "rank_mean": round(float(rank.float().mean()), 3)}


def render_ring(vertices: torch.Tensor, faces: torch.Tensor, colors: torch.Tensor, params: EvalParams):
    """Renders of a vertex-coloured mesh from the evaluation ring: `RenderOutput` with rgb (N, S, S, 3) and
    alpha (N, S, S), S = params.image_size (avatar frame, metres; `EvalParams` for the cameras)."""
    import torch

    from .cameras import orbit_cameras
    from .render import render_mesh

    az = [360.0 * i / params.views for i in range(params.views)]
    cams = orbit_cameras(params.distance, [params.elevation_deg], az, fov_deg=params.fov_deg).to(vertices.device)
    light = torch.nn.functional.normalize(cams.eye, dim=-1)           # lit from the camera: no side in shadow
    with torch.no_grad():
        return render_mesh(vertices, faces, cams, params.image_size, colors=colors, background=params.background,
                           light_dir=light, ambient=params.ambient)


def _load_avatar(path: Path, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    import numpy as np
    import torch
    import trimesh

    mesh = trimesh.load(path, process=False, force="mesh")
    if len(mesh.faces) == 0:
        raise UpstreamMissing(f"{path} holds no triangles (stage 03 extracted an empty surface); re-run stage 03 "
                              "(`avatarclip run --stages 03`) with more iterations or a lower learning rate")
    colors = np.asarray(mesh.visual.vertex_colors)[:, :3] / 255.0 if mesh.visual.kind == "vertex" else \
        np.full((len(mesh.vertices), 3), 0.7)
    as_t = lambda a, dt: torch.as_tensor(np.asarray(a), dtype=dt, device=device)  # noqa: E731
    return as_t(mesh.vertices, torch.float32), as_t(mesh.faces, torch.long), as_t(colors, torch.float32)


def evaluate_run(run_dir, encoder, *, prompt: str | None = None, distractors=DISTRACTORS,
                 params: EvalParams | None = None, force: bool = False, model_name: str | None = None,
                 write: bool = True) -> dict:
    """Score the stage-3 avatar of the run in `run_dir` with `encoder` and record the figures in `<run>/eval.json`.

    Args:
        run_dir: the run folder (exp/<run>/); stage 03 must have finished.
        encoder: an `Encoder` (guidance/encoder.py), e.g. `guidance.load_encoder("ViT-L-14")`.
        prompt: appearance description to score against (default: the run's appearance prompt), templated as in
            stage 3.
        distractors: appearance descriptions of the other prompts (default `DISTRACTORS`); any equal to `prompt`
            (case and spaces aside) is dropped.
        params: the camera ring (`EvalParams()`).
        force: score even when `encoder` is the model that guided stage 3.
        model_name: key of the entry in eval.json (default `encoder.name`).
        write: False = only return the figures.
    Returns:
        The figures: `rank_metrics` keys plus prompt, distractors, views, source, guidance and eval model names,
        stage-3 inputs hash, seconds.
    Raises:
        UpstreamMissing: stage 03 has not finished or its mesh is missing/damaged/empty.
        ConfigError: `encoder` is the guidance encoder and not `force`; no distractor left.
        ValueError: a blank prompt.
    """
    import torch

    from .guidance.prompts import appearance_prompts

    t0 = time.perf_counter()
    run = RunDir(Path(run_dir))
    used, used_tag, used_name = guidance_model(run)
    name = model_name or str(getattr(encoder, "name", type(encoder).__name__))
    if not force and used_name and used_name == getattr(encoder, "name", None):
        raise ConfigError(f"the evaluation encoder {name!r} is the one that guided this avatar "
                          f"(run.clip_model = {used!r}); evaluate with another model or pass force=True (--force)")
    manifest = run.manifest("03_texture")
    description = prompt if prompt is not None else manifest.get("settings", {}).get("prompts", {}).get("appearance", "")
    true_text = appearance_prompts(description).body
    key = lambda s: " ".join(s.lower().split())  # noqa: E731
    others = [appearance_prompts(d).body for d in distractors if key(d) != key(description)]
    if not others:
        raise ConfigError("no distractor prompt is left after dropping the avatar's own; give at least one other")
    params = (params or EvalParams()).validate()
    device = getattr(encoder, "device", torch.device("cpu"))
    v, f, c = _load_avatar(run.path("03_texture") / "avatar.ply", device)
    out = render_ring(v, f, c, params)
    with torch.no_grad():
        img = encoder.encode_image(out.rgb, out.alpha)
        txt = encoder.encode_text([true_text] + others).to(img.device)
    figures = {**rank_metrics(img, txt, 0), "prompt": true_text, "distractors": len(others),
               "views": params.views, "ring": params.to_dict(), "source": "03_texture/avatar.ply",
               "vertices": int(len(v)), "eval_model": name, "guidance_model": f"{used} ({used_tag})",
               "stage03_inputs_hash": manifest.get("inputs_hash"), "seconds": round(time.perf_counter() - t0, 3),
               "evaluated": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if write:
        record_evaluation(run.root, name, figures)
    return figures


def record_evaluation(run_root: Path, model: str, figures: dict) -> Path:
    """Merge `figures` under `model` into `<run_root>/eval.json` and into the `evaluations` entry of the stage-3
    manifest (`03_texture/manifest.json`, the stage the figures score; its inputs hash is unchanged, so the stage
    stays finished). Atomic writes under the run lock. Returns the eval.json path."""
    from .io import atomic_write_json

    def merged(path: Path, key: str) -> dict:
        try:
            data = json.loads(path.read_text()) if path.is_file() else {}
        except (OSError, ValueError):
            data = {}  # a damaged eval.json is replaced by this evaluation
        data.setdefault(key, {})[model] = figures
        return data

    root = Path(run_root)
    with run_lock(root):
        out = atomic_write_json(root / EVAL_FILE, merged(root / EVAL_FILE, "evaluations"))
        stage = RunDir(root).manifest("03_texture")  # None when missing or unreadable: left as it is
        if stage is not None:
            stage.setdefault("evaluations", {})[model] = figures
            atomic_write_json(root / "03_texture" / "manifest.json", stage)
        return out
