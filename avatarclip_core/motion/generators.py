"""Text-driven pose and motion generators of AvatarCLIP's AvatarAnimate (docs/method.md §6.1, §6.2) on our open
priors, and the dispatchers `generate_poses` / `generate_motion` selected by `PoseParams.generator` /
`MotionParams.generator` (reference `pose_generator.type` / `motion_generator.type`).

Poses (`params.POSE_GENERATORS`, dispatched through `POSE_GENERATOR_FUNCTIONS`):
* "library" — `retrieve_poses` (VPoserCodebook adapted).
* "optimize" — PoseOptimizer: the 21 body-joint axis-angles (63 numbers; global orientation fixed upright,
  facing the front camera), Adam (lr 0.01), loss 1 − cos(multi-view CLIP image embedding, text embedding)
  + a joint-limit penalty, `num_iterations` steps; the top_k runs are batched (independent: the loss
  is a sum over runs and Adam is per-parameter), then sorted by a fresh no-grad score.
* "latent" — VPoserOptimizer: the same on z ∈ R^32 of the pose VAE, decoded by its decoder.
* "flow" — VPoserRealNVP: the same on the base variable u of the pose flow (`flow.PoseFlow`) → z → decoder.
All three start from `num_starts` prior samples scored once, of which the top_k best are optimised (multi-start
selection; docs/method.md §6.1 "Ours" says why).
Renders: `render_poses` (body.forward(pose) → differentiable `render_mesh`), the same cameras and colours as
retrieval (`PoseParams.azimuths_deg`, …); the reference's per-step N(0, 0.3²)° elevation jitter is omitted.

Motion ("interpolate" | "optimize"):
* "interpolate" — `interpolate_motion` (slerp through the candidates).
* "optimize" — `MotionOptimizer` (docs/method.md §6.2 "ours") on the motion VAE's whole latent (global and
  per-frame codes), returning the decoded global orientation and root trajectory with the body poses; its renders use
  the camera distance, elevation, field of view, colour and background of the run's `PoseParams` (the
  `poses` section), passed explicitly as `pose_params`.

Timing: `generate_poses` / `generate_motion` fill `timings["seconds"]` (wall time of the generation, seconds)
when the caller passes a `timings` dict; nothing is kept on the functions themselves.
"""
from __future__ import annotations

import time

import torch
from tqdm.auto import tqdm

from .. import skeleton
from .interpolation import MotionParams, interpolate_motion
from .priors import (MotionVAE, PoseVAE, axis_angle_to_rot6d, body_rotmats_to_pose, integrate_root,
                     load_motion_vae, load_pose_vae, rotmat_to_axis_angle, rotmat_to_rot6d)
from .params import POSE_GENERATORS
from .retrieval import PoseParams, _cameras, render_poses, retrieve_poses, text_embedding


def clip_pose_scores(encoder, body, poses: torch.Tensor, text_e: torch.Tensor, cameras, image_size: int,
                     color=(0.78, 0.68, 0.6), background: float = 0.0, sigma: float = 0.5) -> torch.Tensor:
    """CLIP score of poses: cos(normalised mean over the cameras of the unit image embeddings, text).

    The pose feature of docs/method.md §6 (AvatarCLIP's `get_pose_feature`) and its cosine with the text.

    Args:
        encoder: CLIP-like encoder (`encode_image(images, alpha)`; its `.device`, default CPU, is where the
            renders run).
        body: `BodyModel`; the poses are rendered on its default shape (`render_poses`, Lambert shading).
        poses: (P, 22, 3) float axis-angle, radians, SMPL order.
        text_e: (D,) unit text embedding (`retrieval.text_embedding`).
        cameras: C cameras (e.g. `cameras.orbit_cameras`), avatar frame, metres.
        image_size: square render size in pixels.
        color: RGB albedo in [0, 1]; background: grey level in [0, 1]; sigma: silhouette edge softness, pixels.
    Returns:
        (P,) float32 scores in [-1, 1] on the CPU, differentiable w.r.t. `poses`.
    """
    device = getattr(encoder, "device", torch.device("cpu"))
    rgb, alpha = render_poses(body, poses, cameras, image_size, color, background, device=device, sigma=sigma)
    P, C = rgb.shape[:2]
    e = encoder.encode_image(rgb.reshape(P * C, *rgb.shape[2:]), alpha.reshape(P * C, *alpha.shape[2:]))
    e = torch.nn.functional.normalize(e.float(), dim=-1).reshape(P, C, -1).mean(1)
    e = torch.nn.functional.normalize(e, dim=-1)
    return (e * text_e.to(e)).sum(-1).cpu()


def joint_limit_excess(poses: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Squared excess over the per-joint limits: poses (P, 22, 3) axis-angle (radians; joint 0 ignored), lo / hi
    (21, 3) radians (the pose VAE's `extra['joint_limits']`, docs/method.md, Motion priors) → (P,) Σ over the body
    joints and components of relu(lo − θ)² + relu(θ − hi)², rad². Differentiable."""
    b = poses[:, 1:]
    return ((lo.to(b) - b).clamp_min(0).pow(2) + (b - hi.to(b)).clamp_min(0).pow(2)).sum((-1, -2))


def _optimize(decode, init: torch.Tensor, prior, encoder, text: str, body, params: PoseParams, progress: bool,
              desc: str) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """The optimisation generators' shared loop (docs/method.md §6.1 "Ours").

    init (N, …) are N ≥ top_k starting values of the generator's variable x; `decode` maps x (K, …) to poses
    (K, 22, 3), `prior` x to (K,) plausibility penalties. When N > top_k the starts are scored without gradients
    (hard-edged renders, batches of `batch_size`) and the top_k best kept (multi-start selection). Then Adam
    (`lr`, `num_iterations` steps) on Σ_k (1 − score_k + prior_weight · prior_k). Returns the poses sorted by a
    fresh score, the scores and the per-step mean loss."""
    text_e = text_embedding(encoder, text)
    cams = _cameras(params)

    def score(poses, sigma=params.sigma):
        return clip_pose_scores(encoder, body, poses, text_e, cams, params.image_size, params.color,
                                params.background, sigma)

    if init.shape[0] > params.top_k:
        with torch.no_grad():
            s0 = torch.cat([score(decode(init[i:i + params.batch_size]), sigma=0.0)
                            for i in range(0, init.shape[0], params.batch_size)])
        init = init[torch.argsort(s0, descending=True, stable=True)[:params.top_k]]
    x = init.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=params.lr)
    history = []
    for _ in tqdm(range(params.num_iterations), desc=desc, disable=not progress):
        loss = (1.0 - score(decode(x)) + params.prior_weight * prior(x)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item() / x.shape[0])
    with torch.no_grad():
        poses = decode(x).detach()
        scores = score(poses)
    order = torch.argsort(scores, descending=True, stable=True)
    return poses[order].float(), scores[order].float(), history


def _generator(generator):
    return generator if generator is not None else torch.Generator().manual_seed(torch.initial_seed() % 2**63)


def _record_seconds(timings: dict | None, t0: float) -> None:
    """Set `timings["seconds"]` to the wall time since `t0` (`time.perf_counter()`) when `timings` is a dict."""
    if timings is not None:
        timings["seconds"] = time.perf_counter() - t0


def _num_starts(params: PoseParams) -> int:
    return max(params.num_starts, params.top_k)


def _gaussian_prior(x: torch.Tensor) -> torch.Tensor:
    """½‖x‖² / dim per row: the negative log-density per dimension of N(0, I), up to a constant."""
    return 0.5 * x.pow(2).mean(-1)


def optimize_poses(encoder, text: str, body, params: PoseParams | None = None, progress: bool = True,
                   generator: torch.Generator | None = None, vae: PoseVAE | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """PoseOptimizer (docs/method.md §6.1): direct optimisation of the 21 body-joint axis-angles.

    Starts (`num_starts`, the best top_k kept): decoded pose-prior samples (`init_pose = "prior"`), or the stand
    pose / T-pose plus N(0, init_std²) per component; penalty: `joint_limit_excess` under the pose VAE's limits.

    Args:
        encoder: CLIP-like encoder; text: the pose description X of "a rendered 3d man is X".
        body: `BodyModel` (default shape). params: `PoseParams` (top_k, num_starts, num_iterations, lr, init_pose,
        init_std, prior_weight, cameras, image_size, sigma). generator: torch.Generator for the starts (default:
        seeded from torch's global seed). vae: the pose prior (default `load_pose_vae()`), loaded only when the
        starts or the penalty need it.
    Returns:
        poses (K, 22, 3) float32 axis-angle (global orientation 0), scores (K,) descending.
    Raises:
        ValueError: on invalid params or a blank text. FileNotFoundError: the pose VAE is needed and missing.
    """
    params = (params or PoseParams()).validate()
    gen, n = _generator(generator), _num_starts(params)
    if params.init_pose == "prior" or params.prior_weight > 0:
        vae = vae or load_pose_vae()
    if params.init_pose == "prior":
        with torch.no_grad():
            init = vae.decode(torch.randn(n, vae.latent_dim, generator=gen))[:, 1:]
    else:
        init = torch.randn(n, 21, 3, generator=gen) * params.init_std
        if params.init_pose == "stand":
            from ..body.base import stand_pose

            init = init + stand_pose()[1:].to(init)

    def decode(x):
        return torch.cat([torch.zeros_like(x[:, :1]), x], dim=1)

    if params.prior_weight > 0:
        lo, hi = vae.extra["joint_limits"]["lo"], vae.extra["joint_limits"]["hi"]

        def prior(x):
            return joint_limit_excess(decode(x), lo, hi)
    else:
        def prior(x):
            return x.new_zeros(x.shape[0])

    poses, scores, _ = _optimize(decode, init, prior, encoder, text, body, params, progress, "pose optimisation")
    return poses, scores


def optimize_pose_latents(encoder, text: str, body, params: PoseParams | None = None, progress: bool = True,
                          generator: torch.Generator | None = None, vae: PoseVAE | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """VPoserOptimizer (docs/method.md §6.1): optimise z ∈ R^32 of the pose VAE through its decoder; starts
    z ~ N(0, I) (`num_starts`, the best top_k kept), penalty ½‖z‖²/32.

    Same arguments and returns as `optimize_poses`; `vae` defaults to `load_pose_vae()` (on the CPU).
    Raises FileNotFoundError when the pose VAE weights are missing.
    """
    params = (params or PoseParams()).validate()
    vae = vae or load_pose_vae()
    init = torch.randn(_num_starts(params), vae.latent_dim, generator=_generator(generator))
    poses, scores, _ = _optimize(vae.decode, init, _gaussian_prior, encoder, text, body, params, progress,
                                 "pose-latent optimisation")
    return poses, scores


def flow_poses(encoder, text: str, body, params: PoseParams | None = None, progress: bool = True,
               generator: torch.Generator | None = None, vae: PoseVAE | None = None, flow=None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """VPoserRealNVP (docs/method.md §6.1): sample the pose flow, keep the best, then optimise in its base space.

    u ~ N(0, I₃₂) (`num_starts` draws) → `PoseFlow` → pose-VAE latent z → decoder → pose; the top_k
    best-scoring samples are kept (the reference's sample-and-select) and refined by Adam on u (`num_iterations`,
    `lr`; 0 iterations = selection only), penalty ½‖u‖²/32 (the base density).

    Same arguments and returns as `optimize_poses`; `vae` defaults to `load_pose_vae()`, `flow` to
    `flow.load_pose_flow(vae=vae)`. Raises FileNotFoundError when the weights are missing, ValueError when the
    flow was trained on another pose VAE.
    """
    from .flow import load_pose_flow

    params = (params or PoseParams()).validate()
    vae = vae or load_pose_vae()
    flow = flow or load_pose_flow(vae=vae)
    init = torch.randn(_num_starts(params), flow.dim, generator=_generator(generator))

    def decode(u):
        return vae.decode(flow(u)[0])

    poses, scores, _ = _optimize(decode, init, _gaussian_prior, encoder, text, body, params, progress,
                                 "pose-flow optimisation")
    return poses, scores


#: the stage-4 generator of each `PoseParams.generator` name (`params.POSE_GENERATORS`, the one declaration)
POSE_GENERATOR_FUNCTIONS = {"library": retrieve_poses, "optimize": optimize_poses, "latent": optimize_pose_latents,
                            "flow": flow_poses}
assert tuple(POSE_GENERATOR_FUNCTIONS) == POSE_GENERATORS, "declare each pose generator in motion/params.py"


def generate_poses(encoder, text: str, body, params: PoseParams | None = None, cache_dir=None,
                   progress: bool = True, library=None, generator: torch.Generator | None = None,
                   timings: dict | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stage 4 dispatcher on `params.generator` (`POSE_GENERATORS`: "library" | "optimize" | "latent" | "flow",
    see `PoseParams`; `POSE_GENERATOR_FUNCTIONS`).

    Args:
        encoder, text, body: as `retrieve_poses` / `optimize_poses`.
        params: `PoseParams` (default `PoseParams()`).
        cache_dir, library: "library" only (`retrieve_poses`).
        generator: torch.Generator for the optimisers' starts (ignored by "library").
        timings: optional dict; when given, `timings["seconds"]` is set to the wall time (float, seconds) of the
            generation.
    Returns:
        poses (K', 22, 3) float32 axis-angle sorted by CLIP score, scores (K',) float32 descending, library indices
        (K',) int64 ("library"; −1 for the optimisers). K' = top_k for the optimisers, ≤ top_k for the library.
    Raises:
        ValueError: invalid params or a blank text; FileNotFoundError: a missing library / prior.
    """
    params = (params or PoseParams()).validate()
    t0 = time.perf_counter()
    fn = POSE_GENERATOR_FUNCTIONS[params.generator]
    if params.generator == "library":
        out = fn(encoder, text, body, params, cache_dir=cache_dir, progress=progress, library=library)
    else:
        poses, scores = fn(encoder, text, body, params, progress=progress, generator=generator)
        out = (poses, scores, torch.full((poses.shape[0],), -1, dtype=torch.long))
    _record_seconds(timings, t0)
    return out


# ----------------------------------------------------------------------------------------------- motion
class MotionOptimizer:
    """The MotionOptimizer of docs/method.md §6.2 ("ours") on the motion VAE's latent z ∈ R^256.

    Per Adam step (lr `params.lr`), with the decoded motion (T = 60; 21 body joints, global orientation and root
    trajectory, `MotionVAE.decode_motion`):
      * reconstruction: Σ_k c_k · min_t MSE6D(frame t, candidate k) — MSE over the 21 body joints × 6 of the 6D
        representations (the global orientation is not compared); c = `recon_coef` truncated to the K
        candidates (rank order);
      * CLIP (when clip_coef > 0): s ~ U{0 … clip_num_part − 1}; frames s and s + clip_num_part rendered with
        their decoded global orientation, the body centred (`params.image_size`, `params.sigma`), from the one
        camera `render_cameras()`; Σ_j (1 − cos(image_j, text)) · frame_j / T, × clip_coef;
      * delta: − delta_coef × mean squared difference of consecutive frames' body-joint axis-angles.

    Args:
        params: `MotionParams` (default: generator "optimize", the reference's settings).
        encoder, body: CLIP-like encoder and `BodyModel`, needed when clip_coef > 0.
        vae: the motion prior (default `load_motion_vae()`, CPU).
        pose_params: the run's `PoseParams` (the `poses` section); its `distance` (m), `elevation_deg`,
            `fov_deg`, `color` and `background` set the CLIP renders' camera and look, as in stage 4
            (default `PoseParams()`).
    Attributes after `run`: `history` list of dicts (total, recon, clip, delta) per step.
    Raises:
        ValueError: invalid params, or a prior whose window differs from `params.num_frames`.
        FileNotFoundError: the motion prior's weights are missing.
    """

    def __init__(self, params: MotionParams | None = None, encoder=None, body=None, vae: MotionVAE | None = None,
                 pose_params: PoseParams | None = None):
        self.params = (params or MotionParams(generator="optimize")).validate()
        self.pose_params = (pose_params or PoseParams()).validate()
        self.encoder, self.body = encoder, body
        self.vae = vae or load_motion_vae()
        if self.vae.num_frames != self.params.num_frames:
            raise ValueError(f"MotionParams.num_frames={self.params.num_frames} differs from the motion prior's "
                             f"window ({self.vae.num_frames}); use num_frames={self.vae.num_frames}")
        self.history: list[dict] = []

    def render_cameras(self):
        """The one CLIP camera: orbit camera at `params.azimuth_deg` (degrees, 0 = the body's front) with
        `pose_params`' elevation (degrees), distance (m) and horizontal field of view (degrees)."""
        return _cameras(self.pose_params, azimuths=[self.params.azimuth_deg])

    def run(self, candidates: torch.Tensor, text: str | None = None, progress: bool = True,
            generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Optimise a motion towards the ranked candidates (and the text).

        Args:
            candidates: (K, 22, 3) axis-angle, best first, K ≥ 1 (global orientation ignored).
            text: the motion description (needed when clip_coef > 0).
            generator: torch.Generator for z's initialisation and the frame sampling.
        Returns:
            poses (60, 22, 3) float32 axis-angle, joint 0 the decoded global orientation (facing +z at frame 0),
            and root_translation (60, 3) float32 metres, avatar frame: the decoded root trajectory
            (`MotionVAE.decode_motion`: x = z = 0 at frame 0, y = root height, 0 = standing as in the rest pose).
        Raises:
            ValueError: bad candidates, or clip_coef > 0 without an encoder, a body or a text.
        """
        p = self.params
        candidates = torch.as_tensor(candidates, dtype=torch.float32)
        if candidates.ndim != 3 or candidates.shape[0] == 0:
            raise ValueError(f"candidates must be (K, 22, 3) with K ≥ 1, got {tuple(candidates.shape)}")
        skeleton.check_pose(candidates, "candidates")
        use_clip = p.clip_coef > 0
        if use_clip and (self.encoder is None or self.body is None or not text or not str(text).strip()):
            raise ValueError("MotionParams.clip_coef > 0 needs an encoder, a body and a non-empty text; pass them "
                             "or set clip_coef=0 (the reference's baseline)")
        gen = _generator(generator)
        K = candidates.shape[0]
        coef = torch.tensor(list(p.recon_coef)[:K] + [0.0] * max(0, K - len(p.recon_coef)))
        target = axis_angle_to_rot6d(candidates[:, 1:])  # (K, 21, 6)
        T = p.num_frames
        if use_clip:
            text_e = text_embedding(self.encoder, text)
            cams = self.render_cameras()
        z = torch.randn(1, self.vae.latent_dim, generator=gen).requires_grad_(True)
        opt = torch.optim.Adam([z], lr=p.lr)
        self.history = []
        for _ in tqdm(range(p.num_iterations), desc="motion optimisation", disable=not progress):
            R, _ = integrate_root(self.vae.decode_features(z), self.vae.fps)  # (1, T, 22, 3, 3)
            R = R[0]
            six = rotmat_to_rot6d(R[:, 1:])
            mse = (six[None] - target[:, None]).pow(2).mean((-1, -2))  # (K, T)
            recon = (coef * mse.min(dim=1).values).sum()
            aa = rotmat_to_axis_angle(R)
            delta = (aa[1:, 1:] - aa[:-1, 1:]).pow(2).mean()
            loss = recon - p.delta_coef * delta
            clip = torch.zeros(())
            if use_clip:
                s = int(torch.randint(0, p.clip_num_part, (1,), generator=gen))
                frames = [s, s + p.clip_num_part]
                poses = aa[frames]  # with the decoded global orientation, the body centred
                scores = clip_pose_scores(self.encoder, self.body, poses, text_e, cams, p.image_size,
                                          self.pose_params.color, self.pose_params.background, p.sigma)
                w = torch.tensor(frames, dtype=torch.float32) / T
                clip = ((1.0 - scores) * w).sum()
                loss = loss + p.clip_coef * clip
            opt.zero_grad()
            loss.backward()
            opt.step()
            self.history.append(dict(total=loss.item(), recon=recon.item(), clip=clip.item(), delta=delta.item()))
        with torch.no_grad():
            poses, root = self.vae.decode_motion(z)
        return poses[0].float(), root[0].float()


def generate_motion(candidates: torch.Tensor, params: MotionParams | None = None, encoder=None,
                    text: str | None = None, body=None, progress: bool = True,
                    generator: torch.Generator | None = None, pose_params: PoseParams | None = None,
                    timings: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage 5 dispatcher on `params.generator` ("interpolate" | "optimize", see `MotionParams`).

    Args:
        candidates: (K, 22, 3) ranked axis-angle poses (radians) from stage 4, best first, K ≥ 1.
        params: `MotionParams` (default `MotionParams()`, "interpolate").
        encoder, text, body: needed by "optimize" when clip_coef > 0 (ignored by "interpolate").
        generator: torch.Generator of "optimize" (z's initialisation, frame sampling).
        pose_params: the run's `PoseParams`, whose camera and colour settings "optimize" renders with (see
            `MotionOptimizer`; default `PoseParams()`; ignored by "interpolate").
        timings: optional dict; when given, `timings["seconds"]` is set to the wall time (float, seconds) of the
            generation.
    Returns:
        poses (T, 22, 3) axis-angle (radians; joint 0 the global orientation) and root_translation (T, 3) metres,
        avatar frame. "optimize": float32, T = 60, the motion prior's decoded global orientation and root
        trajectory (`MotionOptimizer.run`); "interpolate": the candidates' dtype, `interpolate_motion`'s root.
    Raises:
        ValueError: invalid params / candidates, or missing encoder/text/body for "optimize" with CLIP.
        FileNotFoundError: "optimize" without the motion prior's weights.
    """
    params = (params or MotionParams()).validate()
    t0 = time.perf_counter()
    if params.generator == "interpolate":
        out = interpolate_motion(candidates, params)
    else:
        out = MotionOptimizer(params, encoder, body, pose_params=pose_params).run(
            candidates, text, progress=progress, generator=generator)
    _record_seconds(timings, t0)
    return out
