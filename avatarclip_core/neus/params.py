"""Parameters of stages 2 (NeuS init) and 3 (CLIP sculpting + texturing), grouped by concern.

Defaults are AvatarCLIP's `examples_small` preset (docs/method.md §7.1: SDF 3×128 skip [3], d_out 129; colour
1×128; 7,000 rays, 30,000 iterations) and, for the init stage, the coarse-shape base model
`base_models/astrongman.conf` (docs/method.md §2.3). The network groups carry the reference NeuS config's names
(`sdf_network`, `rendering_network`, `variance_network`, `renderer`), and each network is built from its group,
as NeuS does with `SDFNetwork(**conf['model.sdf_network'])`. Ranges are declared on the fields and checked by
`avatarclip_core.params.check`; errors name the dotted key, the value and the fix.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..params import Params, group, param

_ENCODINGS = ("frequency", "hashgrid")
MAX_STEPS = 1_000_000  # the reference's longest schedule is 300,000 steps; 10⁶ would take days even on a GPU
_DAYS = "the reference's longest schedule is 300,000 steps; more would take days"


@dataclass
class HashGridParams(Params):
    """Instant-NGP multiresolution hash grid (docs/method.md, Fast path; `hashgrid.HashGridEncoding`): n_levels L,
    n_features F per level, log2_table_size (per-level table size 2^T), base_resolution and max_resolution in
    cells per axis over [−1, 1]³."""

    n_levels: int = param(16, ge=1)
    n_features: int = param(2, ge=1)
    log2_table_size: int = param(15, ge=8, le=24, fix="15–17 typical")
    base_resolution: int = param(16, ge=1)
    max_resolution: int = param(1024, ge=1)

    def relations(self):
        yield (self.max_resolution >= self.base_resolution, "max_resolution",
               f"use an integer ≥ base_resolution={self.base_resolution}")


@dataclass
class SDFNetworkParams(Params):
    """The SDF MLP (docs/method.md §2.1; small preset defaults, full preset in brackets).

    d_hidden: hidden width (128 [256]); its output is 1 SDF + a d_hidden feature. n_layers: hidden layers (3 [4]).
    skip_in: layer indices that re-inject the encoded input (concat, /√2) ([3] [[4]]).
    multires: positional-encoding frequencies L of xyz (6 → 39 input dims; unused by the hash grid).
    bias: geometric-init sphere radius in metres (0.5). scale: input scale (1.0).
    geometric_init / weight_norm: IDR initialisation and weight normalisation (True).
    geometric_init_skip_fix: when the skip layer is the output layer (AvatarCLIP's configs) zero its re-injected
        encoding columns so the init really is a sphere of radius `bias` (True; False = the reference code
        literally, whose init is not a sphere: SDF(0) ≈ +1.6).
    sphere_init_steps: Adam steps fitting f to |x| − bias after the geometric init (100), so the zero level set is
        a sphere of radius 0.5 ± 0.02 (IDR init alone: ± 0.05–0.1); 0 = pure IDR init.
    encoding: "frequency" (the reference's positional encoding) or "hashgrid" (input = [xyz, hash-grid features],
        `hash`; the fast preset).
    """

    d_hidden: int = param(128, ge=1)
    n_layers: int = param(3, ge=1)
    skip_in: list[int] = param(factory=lambda: [3], ge=1)
    multires: int = param(6, ge=0, fix="6 in AvatarCLIP")
    bias: float = param(0.5, gt=0, fix="a sphere radius in metres, 0.5")
    scale: float = param(1.0, gt=0)
    geometric_init: bool = True
    geometric_init_skip_fix: bool = True
    weight_norm: bool = True
    sphere_init_steps: int = param(100, ge=0, fix="0 disables the sphere fit")
    encoding: str = param("frequency", choices=_ENCODINGS,
                          fix="'frequency' is the reference's positional encoding, 'hashgrid' the fast preset's")
    hash: HashGridParams = group(HashGridParams)

    @property
    def encoded_dim(self) -> int:
        """Network input size: 3 + 6·multires (frequency) or 3 + n_levels·n_features (hashgrid)."""
        if self.encoding == "hashgrid":
            return 3 + self.hash.n_levels * self.hash.n_features
        return 3 + 6 * self.multires

    def relations(self):
        yield (all(i <= self.n_layers for i in self.skip_in), "skip_in",
               f"use layer indices in [1, n_layers={self.n_layers}]")
        yield (not self.skip_in or self.d_hidden > self.encoded_dim, "d_hidden",
               f"must exceed the encoded input size {self.encoded_dim} when skip_in is used")


@dataclass
class RenderingNetworkParams(Params):
    """The colour MLP, mode `no_view_dir` (docs/method.md §2.1): d_hidden (128 [256]), n_layers (1 [2]),
    weight_norm. Its feature input is the SDF network's d_hidden."""

    d_hidden: int = param(128, ge=1)
    n_layers: int = param(1, ge=1)
    weight_norm: bool = True


@dataclass
class VarianceNetworkParams(Params):
    """NeuS's single variance v (docs/method.md §2.2): init_val 0.3 → inv_s = exp(10·v) = 20.1."""

    init_val: float = 0.3


@dataclass
class RendererParams(Params):
    """The NeuS volume renderer (docs/method.md §2.2): n_samples uniform samples per ray (32), n_importance
    importance samples (32) over up_sample_steps hierarchical steps (4; fixed inv_s 64·2^i), perturb stratified
    jitter (1.0 on, 0 off)."""

    n_samples: int = param(32, ge=1)
    n_importance: int = param(32, ge=0)
    up_sample_steps: int = param(4, ge=0)
    perturb: float = param(1.0, ge=0, fix="0 (off) or 1 (on)")

    def relations(self):
        yield (self.n_importance == 0 or (self.up_sample_steps >= 1 and self.n_importance % self.up_sample_steps == 0),
               "n_importance", f"must be a multiple of up_sample_steps={self.up_sample_steps}")


@dataclass
class NeusModelParams(Params):
    """What builds a `NeusModel` and is stored with it in checkpoints: the three networks and the renderer."""

    sdf_network: SDFNetworkParams = group(SDFNetworkParams)
    rendering_network: RenderingNetworkParams = group(RenderingNetworkParams)
    variance_network: VarianceNetworkParams = group(VarianceNetworkParams)
    renderer: RendererParams = group(RendererParams)

    def model_params(self) -> "NeusModelParams":
        """Only the model groups (a stage's parameters derive from this class and add training settings)."""
        return NeusModelParams(self.sdf_network, self.rendering_network, self.variance_network, self.renderer)


@dataclass
class ScheduleParams(Params):
    """Optimisation schedule shared by stages 2 and 3 (docs/method.md §2.3, §3.9): `iterations` steps run (a hard
    stop), Adam at `learning_rate` with linear warm-up over `warm_up_end` steps then cosine decay to
    `learning_rate_alpha`·lr at `end_iter`; a validation image every `val_every` steps and a checkpoint every
    `save_every` steps and at the end. Defaults are stage 3's; stage 2 sets its own."""

    iterations: int = param(30000, ge=1, le=MAX_STEPS, fix=_DAYS)
    end_iter: int = param(30000, ge=1, le=MAX_STEPS, fix=_DAYS)
    warm_up_end: int = param(500, ge=0)
    learning_rate: float = param(5e-4, gt=0)
    learning_rate_alpha: float = param(0.05, ge=0, le=1, fix="a fraction of the learning rate")
    val_every: int = param(100, ge=1)
    save_every: int = param(1000, ge=1)

    def relations(self):
        yield self.warm_up_end < self.end_iter, "warm_up_end", f"use a value in [0, end_iter={self.end_iter})"
        yield (self.iterations <= self.end_iter, "iterations",
               f"use at most end_iter={self.end_iter} steps (the cosine schedule ends there), or raise end_iter too")


@dataclass
class InitLossParams(Params):
    """Stage-2 loss weights (docs/method.md §2.3): eikonal igr_weight (0.1), silhouette BCE mask_weight (0.5)."""

    igr_weight: float = param(0.1, ge=0)
    mask_weight: float = param(0.5, ge=0)


@dataclass
class ViewParams(Params):
    """The init camera ring (docs/method.md §1.4): image_size px (256), distance m (2.2), fov_deg (60°),
    elevations_deg ([-60 … 40]), azimuth_step_deg (20 → 18 azimuths, 108 views)."""

    image_size: int = param(256, ge=1, le=2048)
    distance: float = param(2.2, gt=1.0, fix="cameras must sit outside the unit sphere (> 1 m)")
    fov_deg: float = param(60.0, gt=0, lt=180)
    elevations_deg: list[float] = param(factory=lambda: [-60.0, -40.0, -20.0, 0.0, 20.0, 40.0])
    azimuth_step_deg: float = param(20.0, gt=0, le=360)

    def relations(self):
        yield len(self.elevations_deg) > 0, "elevations_deg", "give at least one elevation"


@dataclass
class SDFInitParams(Params):
    """How stage 2 starts (docs/method.md, Fast path; `init.fit_neus_init`).

    mode: "render" (the reference: volume rendering only) or "sdf" (the known body mesh is the target: first
        regress the SDF net to its signed distance for `steps`, then run the schedule's volume-rendering steps
        with the reference loss to fit colour head 1 and inv_s; needs the body mesh).
    steps: steps of the SDF regression phase (1000). batch: points per step (4096; ⅓ on the surface, ⅓ near it,
        ⅓ uniform in the unit sphere). bank_size: size of the fixed, precomputed sample bank (200000).
    near_std: std of the Gaussian offsets of near-surface points in metres (0.03; half use near_std/5).
    normal_weight: weight of 1 − cos(∇f, n) at surface points (0.1).
    learning_rate: Adam lr of the phase (None = the schedule's), cosine-decayed to learning_rate_alpha over steps.
    variance_init: v of the variance net when the render phase starts (None = keep variance_network.init_val; a
        sharper start, e.g. 0.5 → inv_s 148, suits the already accurate SDF).
    freeze_geometry: keep the SDF net fixed during the render phase and train only colour head 1 and the
        variance (True; the render loss with a still random colour head otherwise pulls the regressed surface
        away from the body in the first Adam steps).
    """

    mode: str = param("render", choices=("render", "sdf"),
                      fix="'render' = the reference (volume rendering only), 'sdf' = regress the body's SDF first")
    steps: int = param(1000, ge=1, le=MAX_STEPS, fix=_DAYS)
    batch: int = param(4096, ge=1, le=1 << 22)
    bank_size: int = param(200000, ge=1, le=1 << 26)
    near_std: float = param(0.03, gt=0, fix="a std in metres, 0.03")
    normal_weight: float = param(0.1, ge=0)
    learning_rate: float | None = param(None, gt=0, fix="None = the schedule's learning rate")
    variance_init: float | None = None
    freeze_geometry: bool = True

    def relations(self):
        yield self.bank_size >= self.batch, "bank_size", f"use a bank at least as large as batch={self.batch}"


@dataclass
class NeusInitParams(NeusModelParams):
    """Stage-2 settings (docs/method.md §2): the model groups of `NeusModelParams` plus

    schedule (docs/method.md §2.3, `base_models/astrongman.conf`: 300000 steps, warm-up 5000, lr 5e-4 → ×0.05,
    validation every 250, checkpoint every 10000), loss (`InitLossParams`), views (`ViewParams`), sdf_init
    (`SDFInitParams`), batch_size (random pixels per step, 5120) and chunk (rays per chunk of inference renders).
    """

    schedule: ScheduleParams = group(ScheduleParams, iterations=300000, end_iter=300000, warm_up_end=5000,
                                     val_every=250, save_every=10000)
    loss: InitLossParams = group(InitLossParams)
    views: ViewParams = group(ViewParams)
    sdf_init: SDFInitParams = group(SDFInitParams)
    batch_size: int = param(5120, ge=1, le=1 << 20)
    chunk: int = param(512, ge=1)


@dataclass
class RayParams(Params):
    """Stage-3 rays (docs/method.md §3.4): max_ray_num per step (7000; 12544 full), image_size of the grey ground
    truth in px (256), dilation (3×3 dilation iterations of the silhouette, 10), use_silhouettes (True)."""

    max_ray_num: int = param(7000, ge=1, le=1 << 20)
    image_size: int = param(256, ge=1, le=2048)
    dilation: int = param(10, ge=0, fix="10 in AvatarCLIP")
    use_silhouettes: bool = True


@dataclass
class TextureLossParams(Params):
    """Stage-3 loss weights (docs/method.md §3.8): igr_weight 0.1, mask_weight 1.0, clip_weight 1.0."""

    igr_weight: float = param(0.1, ge=0)
    mask_weight: float = param(1.0, ge=0)
    clip_weight: float = param(1.0, ge=0)


@dataclass
class AblationParams(Params):
    """The §3.10 switches (docs/method.md); all True = the full method."""

    use_bg_aug: bool = True
    add_no_texture: bool = True
    texture_cast_light: bool = True
    use_face_prompt: bool = True
    use_back_prompt: bool = True


@dataclass
class TextureCameraParams(Params):
    """Stage-3 random cameras (docs/method.md §3.3; `sampler.TextureCameraSampler`): fov_deg 60; body cameras at
    distance_min…distance_max (1–2 m), polar angle std polar_std_deg (60° = π/3), look-at jitter at_std (0.1 m)
    clipped to at_clip (0.3 m); face cameras at face_distance (0.4 m), polar std face_polar_std_deg (15° = π/12)
    looking at (0, head_height, face_z) in the avatar frame — None = the centre of the head, measured on the body
    (`sampler.face_anchor`; reference frame: 0.7 and 0.3; our avatar frame differs, docs/design.md §3)."""

    fov_deg: float = param(60.0, gt=0, lt=180)
    distance_min: float = param(1.0, gt=0)
    distance_max: float = 2.0
    polar_std_deg: float = param(60.0, ge=0)
    at_std: float = param(0.1, ge=0)
    at_clip: float = param(0.3, ge=0)
    face_distance: float = param(0.4, gt=0)
    face_polar_std_deg: float = param(15.0, ge=0)
    head_height: float | None = None
    face_z: float | None = None

    def relations(self):
        yield (self.distance_min <= self.distance_max, "distance_min",
               f"use 0 < distance_min ≤ distance_max={self.distance_max}")


@dataclass
class ShadingParams(Params):
    """Stage-3 random shading (docs/method.md §3.6): light direction jittered by ±light_jitter_deg (45°) around
    the camera, ambient term ~ U(0, ambient_max) (0.2)."""

    light_jitter_deg: float = param(45.0, ge=0)
    ambient_max: float = param(0.2, ge=0, le=1, fix="a fraction")


@dataclass
class ValidationViewParams(Params):
    """The fixed validation camera (reference camera 58 = front, slightly above): distance m (2.0),
    elevation_deg (20)."""

    distance: float = param(2.0, gt=0)
    elevation_deg: float = 20.0


@dataclass
class TextureParams(Params):
    """Stage-3 settings (docs/method.md §3; `examples_small/example.conf` defaults).

    schedule (§3.9): 30000 steps (hard stop; the reference breaks at 30010 but the small config never reaches it),
        cosine over end_iter 30000, warm-up 500, lr 5e-4 → ×0.05, validation PNG every 100, checkpoint every 1000.
    rays (§3.4), loss (§3.8), ablation (§3.10), cameras (§3.3), shading (§3.6), validation (the validation
    camera); chunk: rays per inference chunk; mesh_resolution: marching-cubes samples per axis (256 small, 512
    full).
    encoding: the SDF input encoding this stage expects of its stage-2 model ("frequency" | "hashgrid"; the
        network itself comes from the init checkpoint). None (default) accepts any; otherwise `train_texture`
        raises ValueError on a mismatch (e.g. the fast texture config on a full init checkpoint).
    """

    schedule: ScheduleParams = group(ScheduleParams)
    rays: RayParams = group(RayParams)
    loss: TextureLossParams = group(TextureLossParams)
    ablation: AblationParams = group(AblationParams)
    cameras: TextureCameraParams = group(TextureCameraParams)
    shading: ShadingParams = group(ShadingParams)
    validation: ValidationViewParams = group(ValidationViewParams)
    chunk: int = param(512, ge=1)
    mesh_resolution: int = param(256, ge=16, le=2048, fix="marching-cubes samples per axis: 256 small, 512 full")
    encoding: str | None = param(None, choices=(None,) + _ENCODINGS, fix="None accepts the init model's")
