"""Parameter dataclasses of stages 2 (NeuS init) and 3 (CLIP sculpting + texturing).

Defaults are AvatarCLIP's `examples_small` preset (docs/method.md §7.1: SDF 3×128 skip [3], d_out 129; colour
1×128; 7,000 rays, 30,000 iterations) and, for the init stage, the coarse-shape base model
`base_models/astrongman.conf` (docs/method.md §2.3). Every field is a plain int/float/bool/str/list so presets
can be written in HOCON; `validate()` raises ValueError naming the field, the bad value and the fix.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


def _check(cond: bool, name: str, value, fix: str) -> None:
    if not cond:
        raise ValueError(f"{name} = {value!r} is invalid: {fix}")


class _DictIO:
    """to_dict / from_dict for the parameter dataclasses (checkpoints store their params as plain dicts)."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        """Build from a dict (e.g. a HOCON section); unknown keys raise ValueError."""
        return _from_dict(cls, d)


def _from_dict(cls, d: dict):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {unknown}; valid keys are {sorted(names)}")
    return cls(**{k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in d.items()})


@dataclass
class NeusInitParams(_DictIO):
    """Network sizes, volume-renderer settings and stage-2 training settings (docs/method.md §2).

    Network (docs/method.md §2.1; small preset defaults, full preset in brackets):
        multires: positional-encoding frequencies L of xyz (6 → 39 input dims).
        sdf_hidden: SDF hidden width (128 [256]). sdf_layers: SDF hidden layers (3 [4]).
        skip_in: layer indices that re-inject the encoded input (concat, /√2) ([3] [[4]]).
        sdf_bias: geometric-init sphere radius in metres (0.5). sdf_scale: input scale (1.0).
        geometric_init / weight_norm: IDR initialisation and weight normalisation (True).
        geometric_init_skip_fix: when the skip layer is the output layer (AvatarCLIP's configs) zero its
            re-injected encoding columns so the init really is a sphere of radius sdf_bias (True; False =
            the reference code literally, whose init is not a sphere: SDF(0) ≈ +1.6).
        sphere_init_steps: Adam steps fitting f to |x| − sdf_bias after the geometric init (100), so the
            zero level set is a sphere of radius 0.5 ± 0.02 (IDR init alone: ± 0.05–0.1); 0 = pure IDR init.
        color_hidden: colour MLP width (128 [256]). color_layers: colour hidden layers (1 [2]).
        variance_init: initial v of the variance net, inv_s = exp(10·v) (0.3 → 20.1).
    Encoding (docs/method.md, Fast path): encoding "frequency" (the reference's PE, `multires`; default) or
        "hashgrid" (SDF input = [xyz, Instant-NGP multiresolution hash-grid features], `hashgrid.py`;
        multires is then unused): hash_levels L (16), hash_features F per level (2), hash_log2_size
        log2 of the per-level table size (15), hash_base_resolution (16), hash_max_resolution (1024)
        cells per axis over [−1, 1]³.
    Renderer (docs/method.md §2.2):
        n_samples: uniform samples per ray (32). n_importance: importance samples (32).
        up_sample_steps: hierarchical steps (4; fixed inv_s 64·2^i). perturb: stratified jitter (1.0 on).
    Training (docs/method.md §2.3, `base_models/astrongman.conf`):
        iterations: steps to run (300000). end_iter: schedule length (300000). warm_up_end: 5000.
        learning_rate: Adam lr (5e-4). learning_rate_alpha: final lr fraction (0.05).
        batch_size: random pixels per step (5120). igr_weight: eikonal weight (0.1).
        mask_weight: silhouette BCE weight (0.5). save_every: checkpoint cadence in steps (10000).
        val_every: preview cadence (250). chunk: rays per chunk for inference renders (512).
    Views (docs/method.md §1.4): image_size (256), view_distance (2.2 m), fov_deg (60°),
        view_elevations_deg ([-60 … 40]), view_azimuth_step_deg (20 → 18 azimuths, 108 views).
    Init mode (docs/method.md, Fast path; `init.fit_neus_init`):
        init_mode: "render" (default, the reference: volume rendering only) or "sdf" (the known body mesh is
            the target, so first regress the SDF net directly to its signed distance for `sdf_steps`, then run
            `iterations` volume-rendering steps with the reference loss to fit colour head 1 and inv_s; needs
            the body mesh, `fit_neus_init(..., body=(vertices, faces))`).
        sdf_steps: steps of the SDF regression phase (1000). sdf_batch: points per step (4096; ⅓ on the
            surface, ⅓ near it, ⅓ uniform in the unit sphere). sdf_bank_size: size of the fixed, precomputed
            sample bank (200000). sdf_near_std: std of the Gaussian offsets of near-surface points in metres
            (0.03; half the near points use sdf_near_std/5). sdf_normal_weight: weight of 1 − cos(∇f, n) at
            surface points (0.1). sdf_learning_rate: Adam lr of the phase (None = learning_rate), cosine-decayed
            to learning_rate_alpha over sdf_steps. sdf_variance_init: v of the variance net when the render
            phase starts (None = keep variance_init; a sharper start, e.g. 0.5 → inv_s 148, suits the already
            accurate SDF). sdf_freeze_geometry: keep the SDF net fixed during the render phase and train only
            colour head 1 and the variance (True; the render loss with a still random colour head otherwise
            pulls the regressed surface away from the body in the first Adam steps).
    """

    multires: int = 6
    sdf_hidden: int = 128
    sdf_layers: int = 3
    skip_in: list = field(default_factory=lambda: [3])
    sdf_bias: float = 0.5
    sdf_scale: float = 1.0
    geometric_init: bool = True
    geometric_init_skip_fix: bool = True
    sphere_init_steps: int = 100
    weight_norm: bool = True
    color_hidden: int = 128
    color_layers: int = 1
    variance_init: float = 0.3
    encoding: str = "frequency"
    hash_levels: int = 16
    hash_features: int = 2
    hash_log2_size: int = 15
    hash_base_resolution: int = 16
    hash_max_resolution: int = 1024
    n_samples: int = 32
    n_importance: int = 32
    up_sample_steps: int = 4
    perturb: float = 1.0
    iterations: int = 300000
    end_iter: int = 300000
    warm_up_end: int = 5000
    learning_rate: float = 5e-4
    learning_rate_alpha: float = 0.05
    batch_size: int = 5120
    igr_weight: float = 0.1
    mask_weight: float = 0.5
    save_every: int = 10000
    val_every: int = 250
    chunk: int = 512
    image_size: int = 256
    view_distance: float = 2.2
    fov_deg: float = 60.0
    view_elevations_deg: list = field(default_factory=lambda: [-60.0, -40.0, -20.0, 0.0, 20.0, 40.0])
    view_azimuth_step_deg: float = 20.0
    init_mode: str = "render"
    sdf_steps: int = 1000
    sdf_batch: int = 4096
    sdf_bank_size: int = 200000
    sdf_near_std: float = 0.03
    sdf_normal_weight: float = 0.1
    sdf_learning_rate: float | None = None
    sdf_variance_init: float | None = None
    sdf_freeze_geometry: bool = True

    @property
    def sdf_out(self) -> int:
        """SDF net output size: 1 SDF + feature (= sdf_hidden): 129 small, 257 full."""
        return 1 + self.sdf_hidden

    @property
    def encoded_dim(self) -> int:
        """SDF net input size: 3 + 6·multires (frequency) or 3 + hash_levels·hash_features (hashgrid)."""
        if self.encoding == "hashgrid":
            return 3 + self.hash_levels * self.hash_features
        return 3 + 6 * self.multires

    def hash_kwargs(self) -> dict:
        """Keyword arguments of `hashgrid.HashGridEncoding` from the hash_* fields."""
        return dict(n_levels=self.hash_levels, n_features=self.hash_features, log2_table_size=self.hash_log2_size,
                    base_resolution=self.hash_base_resolution, max_resolution=self.hash_max_resolution)

    def validate(self) -> "NeusInitParams":
        """Raise ValueError naming the first bad field; return self when all are valid."""
        for name in ("multires",):
            _check(isinstance(getattr(self, name), int) and getattr(self, name) >= 0, name,
                   getattr(self, name), "use an integer ≥ 0 (6 in AvatarCLIP)")
        for name in ("sdf_hidden", "sdf_layers", "color_hidden", "color_layers", "n_samples", "batch_size",
                     "iterations", "end_iter", "save_every", "val_every", "chunk", "image_size"):
            v = getattr(self, name)
            _check(isinstance(v, int) and v >= 1, name, v, "use a positive integer")
        _check(isinstance(self.skip_in, (list, tuple)) and all(isinstance(i, int) and 1 <= i <= self.sdf_layers
                                                               for i in self.skip_in),
               "skip_in", self.skip_in, f"use a list of layer indices in [1, sdf_layers={self.sdf_layers}]")
        _check(self.encoding in ("frequency", "hashgrid"), "encoding", self.encoding,
               "use 'frequency' (the reference's positional encoding) or 'hashgrid' (fast preset)")
        if self.encoding == "hashgrid":
            for name in ("hash_levels", "hash_features", "hash_base_resolution"):
                v = getattr(self, name)
                _check(isinstance(v, int) and v >= 1, name, v, "use a positive integer")
            _check(isinstance(self.hash_log2_size, int) and 8 <= self.hash_log2_size <= 24, "hash_log2_size",
                   self.hash_log2_size, "use an integer in [8, 24] (15–17 typical)")
            _check(isinstance(self.hash_max_resolution, int) and self.hash_max_resolution >= self.hash_base_resolution,
                   "hash_max_resolution", self.hash_max_resolution,
                   f"use an integer ≥ hash_base_resolution={self.hash_base_resolution}")
        if self.skip_in:
            _check(self.sdf_hidden > self.encoded_dim, "sdf_hidden", self.sdf_hidden,
                   f"must exceed the encoded input size {self.encoded_dim} when skip_in is used")
        _check(isinstance(self.sphere_init_steps, int) and self.sphere_init_steps >= 0, "sphere_init_steps",
               self.sphere_init_steps, "use an integer ≥ 0 (0 disables the sphere fit)")
        _check(self.sdf_bias > 0, "sdf_bias", self.sdf_bias, "use a positive sphere radius (0.5)")
        _check(self.sdf_scale > 0, "sdf_scale", self.sdf_scale, "use a positive scale (1.0)")
        _check(isinstance(self.n_importance, int) and self.n_importance >= 0, "n_importance", self.n_importance,
               "use an integer ≥ 0")
        _check(isinstance(self.up_sample_steps, int) and self.up_sample_steps >= 0, "up_sample_steps",
               self.up_sample_steps, "use an integer ≥ 0")
        if self.n_importance > 0:
            _check(self.up_sample_steps >= 1 and self.n_importance % self.up_sample_steps == 0, "n_importance",
                   self.n_importance, f"must be a multiple of up_sample_steps={self.up_sample_steps}")
        _check(self.perturb >= 0, "perturb", self.perturb, "use 0 (off) or 1 (on)")
        _check(0 <= self.warm_up_end < self.end_iter, "warm_up_end", self.warm_up_end,
               f"use a value in [0, end_iter={self.end_iter})")
        _check(self.learning_rate > 0, "learning_rate", self.learning_rate, "use a positive learning rate")
        _check(0 <= self.learning_rate_alpha <= 1, "learning_rate_alpha", self.learning_rate_alpha,
               "use a fraction in [0, 1]")
        for name in ("igr_weight", "mask_weight"):
            _check(getattr(self, name) >= 0, name, getattr(self, name), "use a weight ≥ 0")
        _check(self.view_distance > 1.0, "view_distance", self.view_distance,
               "cameras must sit outside the unit sphere (> 1 m)")
        _check(0 < self.fov_deg < 180, "fov_deg", self.fov_deg, "use a FoV in (0, 180) degrees")
        _check(len(self.view_elevations_deg) > 0, "view_elevations_deg", self.view_elevations_deg,
               "give at least one elevation")
        _check(0 < self.view_azimuth_step_deg <= 360, "view_azimuth_step_deg", self.view_azimuth_step_deg,
               "use a step in (0, 360] degrees")
        _check(self.init_mode in ("render", "sdf"), "init_mode", self.init_mode,
               "use 'render' (the reference: volume rendering only) or 'sdf' (regress the body mesh's SDF first)")
        for name in ("sdf_steps", "sdf_batch", "sdf_bank_size"):
            v = getattr(self, name)
            _check(isinstance(v, int) and v >= 1, name, v, "use a positive integer")
        _check(self.sdf_bank_size >= self.sdf_batch, "sdf_bank_size", self.sdf_bank_size,
               f"use a bank at least as large as sdf_batch={self.sdf_batch}")
        _check(self.sdf_near_std > 0, "sdf_near_std", self.sdf_near_std, "use a positive std in metres (0.03)")
        _check(self.sdf_normal_weight >= 0, "sdf_normal_weight", self.sdf_normal_weight, "use a weight ≥ 0")
        _check(self.sdf_learning_rate is None or self.sdf_learning_rate > 0, "sdf_learning_rate",
               self.sdf_learning_rate, "use None (= learning_rate) or a positive learning rate")
        return self


@dataclass
class TextureParams(_DictIO):
    """Stage-3 settings (docs/method.md §3; `examples_small/example.conf` defaults).

    Schedule (§3.9): iterations 30000 (hard stop; the reference breaks at 30010 but the small config never
        reaches it), end_iter 30000 (cosine length), warm_up_end 500, learning_rate 5e-4,
        learning_rate_alpha 0.05. val_every 100 (validation PNG), save_every 1000 (checkpoint).
    Rays (§3.4): max_ray_num 7000 (12544 in full), image_size 256 (GT render side in px),
        dilation 10 (3×3 dilation iterations of the silhouette), use_silhouettes True.
    Loss (§3.8): igr_weight 0.1, mask_weight 1.0, clip_weight 1.0.
    Ablation switches (§3.10): use_bg_aug, add_no_texture, texture_cast_light, use_face_prompt,
        use_back_prompt (all True = the full method).
    Cameras (§3.3): fov_deg 60, body_distance_min/max 1/2 m, polar_std_deg 60 (π/3), at_std 0.1 m,
        at_clip 0.3 m, face_distance 0.4 m, face_polar_std_deg 15 (π/12); head_height / face_z: the
        face look-at point (0, head_height, face_z) in the avatar frame — None = derived from the body
        (reference frame: 0.7 and 0.3; our avatar frame differs, docs/design.md §3).
    Shading (§3.6): light_jitter_deg 45, ambient_max 0.2. Validation camera: val_distance 2.0,
        val_elevation_deg 20 (reference camera 58 = front, slightly above). chunk: rays per inference chunk.
    encoding: the SDF input encoding this stage expects of its stage-2 model ("frequency" | "hashgrid"; the
        network itself comes from the init checkpoint). None (default) accepts any; otherwise `train_texture`
        raises ValueError on a mismatch (e.g. the fast texture config on a full init checkpoint).
    """

    iterations: int = 30000
    end_iter: int = 30000
    warm_up_end: int = 500
    learning_rate: float = 5e-4
    learning_rate_alpha: float = 0.05
    max_ray_num: int = 7000
    image_size: int = 256
    dilation: int = 10
    use_silhouettes: bool = True
    igr_weight: float = 0.1
    mask_weight: float = 1.0
    clip_weight: float = 1.0
    use_bg_aug: bool = True
    add_no_texture: bool = True
    texture_cast_light: bool = True
    use_face_prompt: bool = True
    use_back_prompt: bool = True
    fov_deg: float = 60.0
    body_distance_min: float = 1.0
    body_distance_max: float = 2.0
    polar_std_deg: float = 60.0
    at_std: float = 0.1
    at_clip: float = 0.3
    face_distance: float = 0.4
    face_polar_std_deg: float = 15.0
    head_height: float | None = None
    face_z: float | None = None
    light_jitter_deg: float = 45.0
    ambient_max: float = 0.2
    val_every: int = 100
    save_every: int = 1000
    val_distance: float = 2.0
    val_elevation_deg: float = 20.0
    chunk: int = 512
    mesh_resolution: int = 256
    encoding: str | None = None

    def validate(self) -> "TextureParams":
        """Raise ValueError naming the first bad field; return self when all are valid."""
        for name in ("iterations", "end_iter", "max_ray_num", "image_size", "val_every", "save_every", "chunk"):
            v = getattr(self, name)
            _check(isinstance(v, int) and v >= 1, name, v, "use a positive integer")
        _check(isinstance(self.mesh_resolution, int) and self.mesh_resolution >= 16, "mesh_resolution",
               self.mesh_resolution, "use marching-cubes samples per axis ≥ 16 (256 small, 512 full)")
        _check(isinstance(self.dilation, int) and self.dilation >= 0, "dilation", self.dilation,
               "use an integer ≥ 0 (10 in AvatarCLIP)")
        _check(0 <= self.warm_up_end < self.end_iter, "warm_up_end", self.warm_up_end,
               f"use a value in [0, end_iter={self.end_iter})")
        _check(self.learning_rate > 0, "learning_rate", self.learning_rate, "use a positive learning rate")
        _check(0 <= self.learning_rate_alpha <= 1, "learning_rate_alpha", self.learning_rate_alpha,
               "use a fraction in [0, 1]")
        for name in ("igr_weight", "mask_weight", "clip_weight", "at_std", "at_clip", "ambient_max",
                     "polar_std_deg", "face_polar_std_deg", "light_jitter_deg"):
            _check(getattr(self, name) >= 0, name, getattr(self, name), "use a value ≥ 0")
        _check(0 < self.body_distance_min <= self.body_distance_max, "body_distance_min", self.body_distance_min,
               f"use 0 < body_distance_min ≤ body_distance_max={self.body_distance_max}")
        _check(self.face_distance > 0, "face_distance", self.face_distance, "use a positive distance")
        _check(0 < self.fov_deg < 180, "fov_deg", self.fov_deg, "use a FoV in (0, 180) degrees")
        _check(self.ambient_max <= 1, "ambient_max", self.ambient_max, "use a fraction in [0, 1]")
        _check(self.val_distance > 0, "val_distance", self.val_distance, "use a positive distance")
        _check(self.encoding in (None, "frequency", "hashgrid"), "encoding", self.encoding,
               "use None (accept the init model's), 'frequency' or 'hashgrid'")
        return self
