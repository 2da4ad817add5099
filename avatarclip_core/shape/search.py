"""Coarse shape by CLIP retrieval over the body model's shape space (AvatarCLIP §3.1 / docs/method.md §1.3).

AvatarCLIP decodes a codebook of shape-VAE latents and picks the entry whose CLIP image-embedding offset from the
neutral body best aligns with the text-embedding offset from the neutral prompt:
    score_i = cos(normalize(E_img(body_i) − E_img(neutral)), normalize(E_txt(prompt) − E_txt(neutral prompt))).
We keep that rule but draw the candidates from the body model's own plausible shape range (Anny phenotypes or
SMPL betas), rendered in the rest T-pose from a front view 30° off-axis at 2 m (docs/method.md §1.3 step 4).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..body import BodyModel
from ..cameras import Cameras, eye_from_angles, look_at
from ..guidance import losses, prompts
from ..render import render_mesh
from .params import ShapeParams  # torch-free home (shape/params.py), importable from here

SKIN = (0.80, 0.62, 0.52)  # a neutral skin tone: CLIP sees a person, not a grey statue


@dataclass
class ShapeResult:
    """shape: (S,) chosen parameters; scores: (N,) offset scores of `candidates` (N, S); best: index;
    neutral_image / best_image: (H, W, 3) front renders for the preview."""

    shape: torch.Tensor
    candidates: torch.Tensor
    scores: torch.Tensor
    best: int
    neutral_image: torch.Tensor
    best_image: torch.Tensor


def shape_cameras(params: ShapeParams, device=None) -> Cameras:
    eye = eye_from_angles(params.distance, torch.zeros(len(params.azimuths_deg)),
                          torch.as_tensor(params.azimuths_deg, dtype=torch.float32))
    return Cameras(look_at(eye), params.fov_deg).to(device or "cpu")


@torch.no_grad()
def render_shapes(body: BodyModel, shapes: torch.Tensor, params: ShapeParams, device=None):
    """Render T-posed bodies (N, S) from every view → rgb (N, A, H, W, 3), alpha (N, A, H, W) in [0, 1]."""
    cams = shape_cameras(params, device)
    rgbs, alphas = [], []
    for shape in shapes:
        mesh = body(shape=shape)
        colors = torch.tensor(SKIN, device=device).expand(mesh.vertices.shape[1], 3)
        out = render_mesh(mesh.vertices[0].to(device), mesh.faces.to(device), cams, params.image_size,
                          colors=colors, background=1.0)
        rgbs.append(out.rgb)
        alphas.append(out.alpha)
    return torch.stack(rgbs), torch.stack(alphas)


@torch.no_grad()
def embed_shapes(encoder, body: BodyModel, shapes: torch.Tensor, params: ShapeParams, device=None,
                 progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """CLIP image embeddings of shapes (N, S), averaged over views and renormalised → (N, D); also the first
    view's images (N, H, W, 3)."""
    embs, firsts = [], []
    for start in tqdm(range(0, len(shapes), params.batch_size), desc="shape candidates", disable=not progress):
        rgb, alpha = render_shapes(body, shapes[start:start + params.batch_size], params, device)
        n, a = rgb.shape[:2]
        e = encoder.encode_image(rgb.flatten(0, 1), alpha=alpha.flatten(0, 1)).reshape(n, a, -1).mean(1)
        embs.append(torch.nn.functional.normalize(e, dim=-1))
        firsts.append(rgb[:, 0].cpu())
    return torch.cat(embs), torch.cat(firsts)


def search_shape(encoder, body: BodyModel, description: str, params: ShapeParams, seed: int = 0,
                 device=None, progress: bool = True) -> ShapeResult:
    """Pick the body shape that best matches `description` by AvatarCLIP's offset rule.

    Args:
        encoder: CLIP-like encoder (encode_image / encode_text, normalised embeddings).
        body: body model; candidates are `body.sample_shapes(num_candidates)` under `seed`.
        description: the shape prompt, e.g. "a tall and skinny person" (templated as
            "a 3d rendering of {description} in unreal engine").
    Raises:
        ValueError: empty description or invalid params.
    """
    params.validate()
    text = prompts.shape_prompt(description)
    neutral_text = prompts.SHAPE_NEUTRAL
    generator = torch.Generator().manual_seed(seed)
    candidates = body.sample_shapes(params.num_candidates, generator)
    neutral = body.default_shape()[None]
    embs, images = embed_shapes(encoder, body, torch.cat([neutral, candidates]), params, device, progress)
    t = encoder.encode_text([text, neutral_text]).to(embs)
    scores = losses.offset_score(embs[1:], embs[0], t[0], t[1]).cpu()
    best = int(scores.argmax())
    return ShapeResult(shape=candidates[best], candidates=candidates, scores=scores, best=best,
                       neutral_image=images[0], best_image=images[best + 1])
