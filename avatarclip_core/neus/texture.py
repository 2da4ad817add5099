"""Stage 3 — CLIP-guided shape sculpting and texturing (AvatarCLIP `train_clip`, docs/method.md §3).

Per step: sample a camera (§3.3: body camera, or a head close-up every 4th step), render the body's grey
ground truth and silhouette with `render_mesh` (§3.2), cast rays only inside the dilated silhouette (§3.4),
volume-render both colour heads, add a random background to head 2 (§3.5), shade head 2 with a random
jittered Lambert light and build the untextured shading image (§3.6), score both with CLIP against the
face / back / body prompt (§3.7) and optimise L1(head 1) + igr·eikonal + mask·BCE + CLIP terms (§3.8)
with Adam, warm-up + cosine LR, validation PNGs and checkpoints at the §3.9 cadences.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ..cameras import Cameras, eye_from_angles, look_at
from ..render.shading import lambert_factor
from ..video import write_png
from .background import make_background, sample_background_mode
from .fields import NeusModel
from .init import render_body
from .params import TextureParams
from .rays import select_rays
from .renderer import render_rays, render_rays_chunked
from .sampler import TextureCameraSampler, face_anchor
from .training import Checkpoints, train


def validation_camera(params: TextureParams, device="cpu") -> Cameras:
    """Fixed front camera of the validation images (reference camera 58: front, 20° above, 2 m)."""
    eye = eye_from_angles(params.validation.distance, params.validation.elevation_deg, 0.0)
    return Cameras(look_at(eye), params.cameras.fov_deg).to(device)


def render_validation(model: NeusModel, camera: Cameras, size: int, chunk: int = 512) -> torch.Tensor:
    """Validation image (size, 2·size, 3): [texture head unlit | texture head lit], black background.

    Lit = texture · (0.5 + 0.5·clamp(n̂·l, 0, 1)) with the light at the camera."""
    dev = next(model.parameters()).device
    o, d = camera.to(dev).rays(size, size)
    out = render_rays_chunked(model, o.reshape(-1, 3), d.reshape(-1, 3), chunk)
    tex = out["texture"] if out["texture"] is not None else out["color"]
    light = F.normalize(camera.eye[0].to(dev), dim=0)
    s = lambert_factor(F.normalize(out["normals"], dim=-1), light, 0.5)
    lit = (tex * s).clamp(0, 1)
    return torch.cat([tex.clamp(0, 1).reshape(size, size, 3), lit.reshape(size, size, 3)], 1)


@dataclass
class TextureState:
    """Everything one stage-3 step reads and advances (docs/method.md §3): the textured model (with head 2), its
    Adam optimiser, the camera sampler and the generator of ray jitter / backgrounds / lights (both seeded,
    checkpointed), the text embeddings per prompt key ("body", "face", "back"; (D,) unit vectors), the
    stand-posed body (vertices (V, 3), faces (F, 3) long, avatar frame) whose grey renders anchor head 1, the
    `Encoder` and the stage parameters. Build it with `start`, or directly (tests)."""

    model: NeusModel
    optimizer: torch.optim.Optimizer | None
    sampler: TextureCameraSampler
    generator: torch.Generator
    text_emb: dict
    body_vertices: torch.Tensor
    body_faces: torch.Tensor
    encoder: object
    params: TextureParams

    @classmethod
    def start(cls, model: NeusModel, body_vertices: torch.Tensor, body_faces: torch.Tensor, encoder, prompts: dict,
              params: TextureParams, seed: int = 0, head_joint: torch.Tensor | None = None) -> "TextureState":
        """The state at step 0: a copy of `model` with a random head 2 (seeded by `seed`; kept if it already has
        one), the face anchor from `params.cameras` or the body (`sampler.face_anchor`), the sampler seeded by
        `seed`, the generator by `seed` + 1, Adam (0.9, 0.999, 1e-8) on all parameters, the prompts embedded."""
        dev = body_vertices.device
        p = params
        tex = model.to(dev).with_texture_head(torch.Generator().manual_seed(seed)) if not model.has_texture_head \
            else NeusModel.from_dict(model.to_dict(), dev)
        hh, fz = face_anchor(body_vertices, head_joint)
        hh = p.cameras.head_height if p.cameras.head_height is not None else hh
        fz = p.cameras.face_z if p.cameras.face_z is not None else fz
        sampler = TextureCameraSampler.from_params(p, (0.0, hh, fz), seed)
        gen = torch.Generator().manual_seed(seed + 1)
        opt = torch.optim.Adam(tex.parameters(), lr=p.schedule.learning_rate, betas=(0.9, 0.999), eps=1e-8)
        with torch.no_grad():
            keys = ["body"] + [k for k, f in (("face", p.ablation.use_face_prompt),
                                              ("back", p.ablation.use_back_prompt)) if f]
            emb = encoder.encode_text([prompts[k] for k in keys])
            text_emb = {k: emb[i].detach().to(dev) for i, k in enumerate(keys)}
        return cls(tex, opt, sampler, gen, text_emb, body_vertices, body_faces, encoder, p)

    def checkpoint(self, step: int) -> dict:
        """What a stage-3 checkpoint holds besides seed, params and prompts (see `train_texture`)."""
        return {"model": self.model.to_dict(), "optimizer": self.optimizer.state_dict(), "step": step,
                "rng_sampler": self.sampler.state(), "rng": self.generator.get_state()}

    def resume(self, ck: dict) -> int:
        """Load a checkpoint written from `checkpoint`; returns its step."""
        self.model.load_state_dict(ck["model"]["state_dict"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.sampler.set_state(ck["rng_sampler"])
        self.generator.set_state(ck["rng"])
        return ck["step"]


def train_texture(model: NeusModel, body_vertices: torch.Tensor, body_faces: torch.Tensor, encoder,
                  prompts: dict, params: TextureParams, out_dir, seed: int = 0, progress: bool = True,
                  on_progress: Callable | None = None, head_joint: torch.Tensor | None = None) -> NeusModel:
    """Sculpt and texture a NeuS init model with CLIP (docs/method.md §3).

    Args:
        model: stage-2 NeusModel (its SDF, variance, colour trunk and head 1 are the starting point; a
            randomly initialised head 2 is added, seeded by `seed`). Not modified.
        body_vertices: (V, 3) stand-posed body (avatar frame, metres, inside the unit sphere);
            body_faces: (F, 3) long. Their grey renders anchor head 1 and their silhouettes the BCE term.
        encoder: an `Encoder` (guidance/encoder.py); loss per image = 1 − cos(image, text embedding).
        prompts: {"body": str, "face": str (needed if use_face_prompt), "back": str (if use_back_prompt)}.
        params: TextureParams (schedule, rays, loss weights, §3.10 ablation switches, cameras, shading).
        out_dir: writes progress/{step:06d}.png every val_every steps and ckpt_{step:06d}.pt every
            save_every steps and at the end (model, optimizer, step, RNG states); resumes from the newest
            checkpoint, so an interrupted run continued with the same seed ends identically.
        seed: seeds head 2, the camera sampler, ray jitter, backgrounds and lights.
        on_progress: optional callback(step, losses: dict[str, float], image (H, 2H, 3) tensor | None),
            called every val_every steps with the validation image.
        head_joint: optional (3,) head joint position; used for the face camera when cameras.head_height /
            face_z are None (else derived from the mesh, see `sampler.face_anchor`).
    Returns: the textured NeusModel (with head 2), eval mode, on body_vertices' device.
    Raises: ValueError for invalid params, missing prompts, malformed meshes or a model whose encoding differs
        from params.encoding (when set), before any training.
    """
    params.validate()
    if not isinstance(prompts, dict) or not isinstance(prompts.get("body"), str):
        raise ValueError(f"prompts must be a dict with a 'body' string, got {prompts!r}")
    for key, flag in (("face", params.ablation.use_face_prompt), ("back", params.ablation.use_back_prompt)):
        if flag and not isinstance(prompts.get(key), str):
            raise ValueError(f"prompts['{key}'] is missing but use_{key}_prompt is on; add the prompt or set "
                             f"texture.ablation.use_{key}_prompt = false")
    if body_vertices.ndim != 2 or body_vertices.shape[-1] != 3:
        raise ValueError(f"body_vertices must be (V, 3), got {tuple(body_vertices.shape)}")
    if body_faces.ndim != 2 or body_faces.shape[-1] != 3:
        raise ValueError(f"body_faces must be (F, 3), got {tuple(body_faces.shape)}")
    model_encoding = model.params.sdf_network.encoding
    if params.encoding is not None and model_encoding != params.encoding:
        raise ValueError(f"texture.encoding = {params.encoding!r} but the init model uses encoding "
                         f"{model_encoding!r}; rerun stage 2 with this preset or set texture.encoding = None")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    p = params
    state = TextureState.start(model, body_vertices, body_faces, encoder, prompts, p, seed, head_joint)
    tex, val_cam = state.model, validation_camera(p, body_vertices.device)
    checkpoints = Checkpoints(out_dir, numbered=True)
    ck = checkpoints.load(body_vertices.device)
    step = state.resume(ck) if ck is not None else 0

    def save(step: int) -> None:
        checkpoints.save({**state.checkpoint(step), "seed": seed, "params": p.to_dict(), "prompts": dict(prompts)},
                         step)

    def validate(step: int) -> torch.Tensor:
        with torch.no_grad():
            image = render_validation(tex, val_cam, p.rays.image_size, p.chunk)
        write_png(out_dir / "progress" / f"{step:06d}.png", image)
        return image

    if step == 0:  # the starting point of the progress video: head 2 at its random init
        tex.eval()
        validate(0)
    tex.train()
    train(lambda s: texture_step(state, s), state.optimizer, p.schedule, step, save=save, validate=validate,
          on_progress=on_progress, desc="CLIP texturing", progress=progress, postfix=("loss", "clip"))
    tex.eval()
    return tex


def texture_losses(state: TextureState, step: int) -> tuple[dict, dict]:
    """Forward pass of one §3 step: returns (terms, info).

    terms: differentiable scalars color (L1 head 1 vs the grey body render inside the silhouette), eikonal,
        mask (BCE of Σw over the side×side grid vs the silhouette), clip (1 − cos of the texture image),
        clip_no_texture (1 − cos of the untextured shading image; 0 when add_no_texture is off) and loss
        (the weighted sum of §3.8).
    info: n_rays, side, is_face, is_front, prompt key, background mode, inv_s.
    """
    model, gen, p, encoder, text_emb = state.model, state.generator, state.params, state.encoder, state.text_emb
    dev = state.body_vertices.device
    cs = state.sampler.sample(step)
    cam = cs.cameras.to(dev)
    gt_rgb, gt_mask = render_body(state.body_vertices, state.body_faces, cam, p.rays.image_size)
    sel = select_rays(gt_mask[0], p.rays.max_ray_num, p.rays.dilation, p.rays.use_silhouettes)
    side, idx = sel.side, sel.index
    gt_small = F.interpolate(gt_rgb.permute(0, 3, 1, 2), size=(side, side), mode="nearest-exact")[0].permute(1, 2, 0)
    m_small = F.interpolate(gt_mask[None], size=(side, side), mode="nearest-exact")[0, 0].reshape(-1, 1)
    o, d = cam.rays(side, side)
    o, d = o.reshape(-1, 3)[idx], d.reshape(-1, 3)[idx]
    mode = sample_background_mode(gen) if p.ablation.use_bg_aug else 3
    bg_img = make_background(mode, side, side, gen, dev).reshape(-1, 3)
    out = render_rays(model, o, d, generator=gen, background=bg_img[idx])

    m = m_small[idx]
    color_loss = ((out["color"] - gt_small.reshape(-1, 3)[idx]).abs() * m).sum() / (m.sum() + 1e-5)
    wsum_full = torch.zeros(side * side, 1, device=dev, dtype=out["weights_sum"].dtype).index_copy(
        0, idx, out["weights_sum"])
    mask_loss = F.binary_cross_entropy(wsum_full.clip(1e-3, 1 - 1e-3), m_small)

    ambient = float(torch.rand(1, generator=gen)) * p.shading.ambient_max
    s = lambert_factor(F.normalize(out["normals"], dim=-1), cs.light_dir[0], ambient)
    off = out["weights_sum"] < 0.5
    texture = out["texture"]
    if p.ablation.texture_cast_light:
        tex_rays = (texture * torch.where(off, torch.ones_like(s), s)).clamp(0, 1)
    else:
        tex_rays = texture
    is_face, is_front = bool(cs.is_face[0]), bool(cs.is_front[0])
    key = "face" if is_face else ("back" if p.ablation.use_back_prompt and not is_front else "body")
    # Σw tells mask-aware test encoders where the body is; real CLIP ignores it. Detached so that geometry is
    # sculpted only through the image pixels, as with CLIP in the reference — unless the encoder scores the
    # silhouette itself (`Encoder.alpha_gradient`, the geometry oracle).
    alpha = wsum_full.reshape(1, side, side)
    alpha = alpha if getattr(encoder, "alpha_gradient", False) else alpha.detach()

    def clip_term(rays):
        img = bg_img.index_copy(0, idx, rays).reshape(1, side, side, 3)
        return 1.0 - (encoder.encode_image(img, alpha) * text_emb[key]).sum()

    clip_tex = clip_term(tex_rays)
    clip_no_tex = clip_term(torch.where(off, texture, s.expand(-1, 3))) if p.ablation.add_no_texture \
        else torch.zeros((), device=dev)
    w = p.loss
    loss = (color_loss + w.igr_weight * out["eikonal"] + w.mask_weight * mask_loss
            + w.clip_weight * clip_tex + w.clip_weight * clip_no_tex)
    terms = {"loss": loss, "color": color_loss, "eikonal": out["eikonal"], "mask": mask_loss, "clip": clip_tex,
             "clip_no_texture": clip_no_tex}
    info = {"n_rays": int(idx.numel()), "side": side, "is_face": is_face, "is_front": is_front, "prompt": key,
            "background": mode, "inv_s": float(out["inv_s"].detach())}
    return terms, info


def texture_step(state: TextureState, step: int) -> dict:
    """One §3 optimisation step (`texture_losses`, backward, Adam step); returns the loss terms as floats
    plus the info of `texture_losses` and the current lr."""
    terms, info = texture_losses(state, step)
    opt = state.optimizer
    opt.zero_grad(set_to_none=True)
    terms["loss"].backward()
    opt.step()
    return {k: float(v.detach()) for k, v in terms.items()} | info | {"lr": opt.param_groups[0]["lr"]}
