"""Stage 4, first version: text → ranked body poses by CLIP retrieval from the pose library.

AvatarCLIP's VPoserCodebook (docs/method.md §6.1), adapted to open data: every library pose is rendered on the
body model (anny, default shape) from 5 cameras around the front (azimuths −60…60°, our azimuth 0 = front;
the reference's NR azimuths 120…240), Lambert-shaded grey-skin colour on black; the CLIP image embeddings
are averaged over the views and normalised (computed once per encoder / library / render settings and
cached on disk). Score = cosine with the embedding of "a rendered 3d man is {X}"; the top `pre_topk` (40)
go through greedy duplicate suppression (keep a pose only if its mean |Δθ| to every kept pose exceeds
`dup_threshold`, 0.07 rad) and the first `top_k` (5) are returned, best first. Fewer than `top_k` may be
returned; nothing downstream assumes exactly `top_k`.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .. import skeleton
from ..cameras import orbit_cameras
from ..paths import cache_root
from .params import POSE_GENERATORS, PoseParams  # torch-free home (motion/params.py), importable from here
from .pose_library import PoseLibrary, load_pose_library, pose_distance

_RENDER_VERSION = 1  # bump when the rendering of library poses changes (invalidates cached embeddings)


def _cameras(params: PoseParams, azimuths=None, elevation=None, distance=None):
    az = params.azimuths_deg if azimuths is None else azimuths
    el = params.elevation_deg if elevation is None else elevation
    return orbit_cameras(params.distance if distance is None else distance, [el], list(az), params.fov_deg)


def render_poses(body, poses: torch.Tensor, cameras, image_size, color=(0.78, 0.68, 0.6), background=0.0,
                 shape: torch.Tensor | None = None, device=None, sigma: float = 0.5):
    """Render each pose from every camera: (P, 22, 3) poses × C cameras → rgb (P, C, H, W, 3), alpha (P, C, H, W).

    The body (`body.forward(shape, pose)`, default shape) is drawn with `render_mesh` (Lambert, light from
    +y, ambient 0.5), uniform albedo `color`, on a uniform `background`. Runs on `device` (default: the
    poses' device). Differentiable w.r.t. the poses; `sigma` is the renderer's silhouette edge softness in
    pixels (0 = hard edges, several times faster, for no-grad uses such as library embeddings).
    """
    from ..render import render_mesh

    device = torch.device(device) if device is not None else poses.device
    mesh = body.forward(shape=shape, pose=poses.to(torch.float32).cpu())  # body models run on the CPU
    verts, faces = mesh.vertices.to(device), mesh.faces.to(device)
    P, C = verts.shape[0], len(cameras)
    verts = verts.repeat_interleave(C, dim=0)
    cams = cameras.to(device)[torch.arange(P * C) % C]
    col = torch.tensor(color, dtype=verts.dtype, device=device).expand(verts.shape[1], 3)
    out = render_mesh(verts, faces, cams, image_size, colors=col, background=float(background), sigma=sigma)
    H, W = out.rgb.shape[1:3]
    return out.rgb.reshape(P, C, H, W, 3), out.alpha.reshape(P, C, H, W)


def render_pose_images(body, poses: torch.Tensor, image_size: int = 256, azimuth_deg: float = 20.0,
                       elevation_deg: float = 5.0, distance: float = 2.4, fov_deg: float = 60.0,
                       color=(0.78, 0.68, 0.6), background: float = 1.0, shape=None) -> torch.Tensor:
    """Preview images of poses (for `candidate_XX.png`): (K, 22, 3) → (K, H, W, 3) float in [0, 1].

    One front-ish camera (azimuth 20°, elevation 5°, 0° = the body's front), white background.
    Raises ValueError on poses of the wrong shape.
    """
    poses = torch.as_tensor(poses, dtype=torch.float32)
    if poses.ndim == 2:
        poses = poses[None]
    skeleton.check_pose(poses)
    cams = orbit_cameras(distance, [elevation_deg], [azimuth_deg], fov_deg)
    with torch.no_grad():
        rgb, _ = render_poses(body, poses, cams, image_size, color, background, shape, sigma=0.0)
    return rgb[:, 0].clamp(0, 1)


def _encoder_fingerprint(encoder) -> str:
    """Name plus a hash of one text embedding (distinguishes same-named random test encoders)."""
    with torch.no_grad():
        e = encoder.encode_text(["a rendered 3d man is standing"]).float().cpu()
    return f"{getattr(encoder, 'name', type(encoder).__name__)}:" + \
        hashlib.sha256((e * 1e4).round().numpy().tobytes()).hexdigest()[:12]


def library_embeddings(encoder, body, library: PoseLibrary, params: PoseParams, cache_dir=None,
                       progress: bool = True, shape: torch.Tensor | None = None) -> torch.Tensor:
    """(N, D) unit CLIP image embeddings of the (limited) library, averaged over the views; cached on disk.

    The cache file is <cache_dir>/pose_embeddings/<sha>.pt keyed by the encoder (name + a text-embedding
    hash), the library fingerprint and size, the body model and shape, and the render settings; written
    atomically at first use. `cache_dir=None` → `paths.cache_root()`; `cache_dir=False` disables caching.
    """
    from ..io import atomic_save_torch

    params.validate()
    n = len(library) if params.library_limit == 0 else min(params.library_limit, len(library))
    shape_t = body.default_shape() if shape is None else torch.as_tensor(shape, dtype=torch.float32)
    key = dict(encoder=_encoder_fingerprint(encoder), library=library.fingerprint, n=n,
               body=getattr(body, "name", type(body).__name__), shape=[round(float(s), 6) for s in
                                                                    shape_t.reshape(-1)],
               render=params.render_key(), version=_RENDER_VERSION)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    path = None
    if cache_dir is not False:
        path = Path(cache_dir if cache_dir is not None else cache_root()) / "pose_embeddings" / f"{digest}.pt"
        if path.exists():
            blob = torch.load(path, map_location="cpu")
            if blob.get("key") == key:
                return blob["embeddings"]
    device = getattr(encoder, "device", torch.device("cpu"))
    cams = _cameras(params)
    out = []
    with torch.no_grad():
        for s in tqdm(range(0, n, params.batch_size), desc="pose library embeddings", disable=not progress):
            poses = library.poses[s:min(n, s + params.batch_size)]
            rgb, alpha = render_poses(body, poses, cams, params.image_size, params.color, params.background,
                                      shape_t, device=device, sigma=0.0)
            P, C = rgb.shape[:2]
            e = encoder.encode_image(rgb.reshape(P * C, *rgb.shape[2:]), alpha.reshape(P * C, *alpha.shape[2:]))
            out.append(torch.nn.functional.normalize(e.float().reshape(P, C, -1).mean(1), dim=-1).cpu())
    emb = torch.cat(out)
    if path is not None:
        atomic_save_torch({"key": key, "embeddings": emb}, path)
    return emb


def suppress_duplicates(poses: torch.Tensor, order: torch.Tensor, threshold: float, top_k: int) -> torch.Tensor:
    """Greedy duplicate suppression (docs/method.md §6.1): walk `order` (indices into `poses`, best first) and
    keep an index only if its mean |Δθ| to every kept pose is > `threshold`; stop after `top_k`.

    Args: poses (N, 22, 3); order (M,) int64. Returns (K',) int64 kept indices in walking order, K' ≤ top_k.
    """
    kept: list[int] = []
    for i in order.tolist():
        if all(float(pose_distance(poses[i], poses[j])) > threshold for j in kept):
            kept.append(i)
            if len(kept) == top_k:
                break
    return torch.tensor(kept, dtype=torch.long)


def rank_poses(scores: torch.Tensor, poses: torch.Tensor, params: PoseParams) -> torch.Tensor:
    """Indices of the returned candidates: top `pre_topk` by score → `suppress_duplicates` → ≤ `top_k`,
    sorted by score descending. Args: scores (N,), poses (N, 22, 3). Returns (K',) int64."""
    params.validate()
    pre = torch.topk(scores, min(params.pre_topk, scores.shape[0])).indices
    kept = suppress_duplicates(poses, pre, params.dup_threshold, params.top_k)
    return kept[torch.argsort(scores[kept], descending=True, stable=True)]


def text_embedding(encoder, text: str) -> torch.Tensor:
    """(D,) unit text embedding of the pose prompt "a rendered 3d man is {text}" (prompts.pose_prompt).
    A text that already starts with "a rendered 3d man" is used as is."""
    from ..guidance.prompts import POSE_TEMPLATE, pose_prompt

    prefix = POSE_TEMPLATE.split("{}")[0].strip().lower()
    prompt = " ".join(text.split()) if isinstance(text, str) and text.strip().lower().startswith(prefix) \
        else pose_prompt(text)
    with torch.no_grad():
        return torch.nn.functional.normalize(encoder.encode_text([prompt]).float().cpu()[0], dim=-1)


def retrieve_poses(encoder, text: str, body, params: PoseParams | None = None, cache_dir=None,
                   progress: bool = True, library: PoseLibrary | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Text → ranked distinct poses from the pose library (stage 4, docs/method.md §6.1 VPoserCodebook adapted).

    Args:
        encoder: CLIP-like encoder (`encode_image(images, alpha)`, `encode_text(texts)`, `.name`).
        text: the motion/pose description X of "a rendered 3d man is X", e.g. "raising both arms".
        body: a `BodyModel` (anny default shape is used to render the library).
        params: `PoseParams` (defaults as the reference).
        cache_dir: root of the embedding cache (None → env AVATARCLIP_CACHE or ~/.cache/avatarclip; False → none).
        progress: show a tqdm bar while computing library embeddings.
        library: a `PoseLibrary` (default: the shipped one).
    Returns:
        poses (K', 22, 3) float32, scores (K',) float32 cosine similarities (descending), indices (K',) int64
        into the library; K' ≤ top_k.
    Raises:
        ValueError: on invalid params or a blank text. FileNotFoundError: when the library is missing.
    """
    params = (params or PoseParams()).validate()
    text_e = text_embedding(encoder, text)
    library = library or load_pose_library()
    emb = library_embeddings(encoder, body, library, params, cache_dir, progress)
    scores = emb @ text_e
    poses = library.poses[:emb.shape[0]]
    idx = rank_poses(scores, poses, params)
    return poses[idx].clone(), scores[idx].clone(), idx
