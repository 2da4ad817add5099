"""Parameters of stages 4 and 5 (`PoseParams`: the `poses` section; `MotionParams`: the `motion` section), torch-free
so that loading a configuration does not import torch (`config.load_config` builds every section; `stages.STAGES`
names these classes). `retrieval` and `interpolation` re-export them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..params import Params, group, param

__all__ = ["POSE_GENERATORS", "PoseParams", "MOTION_GENERATORS", "MotionParams", "ContactParams"]

# The one place the generators are declared: the dispatchers (`generators.POSE_GENERATOR_FUNCTIONS` maps each pose
# generator to its function; `generate_motion`), the config check and `bench/motion.py` enumerate these.
POSE_GENERATORS = ("library", "optimize", "latent", "flow")


@dataclass
class PoseParams(Params):
    """Settings of stage 4, text → poses (docs/method.md §6.1 / §7.2 `pose_generator`).

    Attributes:
        generator: which pose generator (reference `pose_generator.type`):
            "library" (default) — CLIP retrieval from the pose library (VPoserCodebook adapted, `retrieve_poses`);
            "optimize" — direct optimisation of the 21 body-joint rotations (PoseOptimizer, `optimize_poses`);
            "latent" — optimisation of the pose VAE's 32-d latent through its decoder (VPoserOptimizer,
            `optimize_pose_latents`);
            "flow" — samples of the pose flow (RealNVP over the pose VAE's latent), the best kept and optimised in
            the flow's base space (VPoserRealNVP, `flow_poses`). All return (K, 22, 3) sorted by CLIP score.
        top_k: number of candidates K returned (reference topk 5); fewer when the library runs out of
            distinct poses.
        pre_topk: best-scoring poses considered before duplicate suppression (reference 40).
        dup_threshold: radians; a pose is kept only if its mean |Δθ| (over 22×3 axis-angle components) to
            every kept pose exceeds this (reference filter_threshold 0.07).
        azimuths_deg: camera azimuths, degrees, 0 = the body's front (reference: front ± 60° in 30° steps).
        elevation_deg: camera elevation, degrees (reference: N(0, 0.3²) jitter; we use a fixed value).
        distance: camera distance from the origin in metres (fits the whole 1.7 m body, arms raised too).
        fov_deg: horizontal field of view, degrees (reference 60).
        image_size: square render size in pixels fed to the encoder (reference 256 → 224).
        color: RGB albedo in [0, 1] of the untextured body (grey-skin).
        background: background grey level in [0, 1] (reference black).
        library_limit: use only the first N library poses (farthest-point order, so a prefix is a coarser
            cover); 0 = all.
        batch_size: poses rendered per batch while computing library embeddings or scoring the optimisers' starts.
        num_iterations: Adam steps of the "optimize" / "latent" / "flow" generators (reference num_iteration 500;
            0 = multi-start selection only, the reference's "flow").
        lr: Adam learning rate of those generators (reference 0.01).
        num_starts: those generators draw max(num_starts, top_k) starting values from their prior, score them once
            (no gradients) and optimise the top_k best (multi-start selection; the reference's optimisers use
            top_k independent starts, its flow 500 samples per candidate).
        prior_weight: weight of their plausibility penalty, added per run to 1 − score: "optimize": the squared
            excess over the pose VAE's joint limits (rad², `joint_limit_excess`); "latent" / "flow": ½‖z‖²/32 /
            ½‖u‖²/32 (the Gaussian's negative log-density per dimension). 0 = the reference's bare CLIP loss.
        init_std: "optimize" with init_pose "stand" / "rest": the body-joint axis-angle components start from
            N(mean, init_std²) (the reference's N(0, 1) around the T-pose gives wildly twisted starts).
        init_pose: "optimize": the starts: "prior" (decoded pose-VAE samples, z ~ N(0, I)), "stand"
            (`body.base.stand_pose()`, arms down, the static avatar's pose) or "rest" (the T-pose) plus noise.
        sigma: silhouette edge softness in pixels of the differentiable renders of those generators
            (`render_mesh` sigma; > 0 so that silhouette gradients reach the pose).
    """

    top_k: int = param(5, ge=1)
    pre_topk: int = param(40, ge=1)
    dup_threshold: float = param(0.07, ge=0, fix="an angle in radians such as 0.07")
    azimuths_deg: tuple[float, ...] = (-60.0, -30.0, 0.0, 30.0, 60.0)
    elevation_deg: float = 0.0
    distance: float = param(2.4, gt=0, fix="a camera distance in metres such as 2.4")
    fov_deg: float = param(60.0, gt=0, lt=180)
    image_size: int = param(224, ge=1)
    color: tuple[float, float, float] = param((0.78, 0.68, 0.6), ge=0, le=1, fix="an RGB triple in [0, 1]")
    background: float = param(0.0, ge=0, le=1, fix="a grey level")
    library_limit: int = param(0, ge=0, fix="0 = all poses")
    batch_size: int = param(8, ge=1)
    generator: str = param("library", choices=POSE_GENERATORS)
    num_iterations: int = param(500, ge=0, fix="the reference uses 500")
    lr: float = param(0.01, gt=0, fix="an Adam learning rate such as 0.01")
    num_starts: int = param(64, ge=1, fix="a number of prior samples such as 64")
    prior_weight: float = param(0.1, ge=0)
    init_std: float = param(0.1, ge=0, fix="a standard deviation in radians such as 0.1")
    init_pose: str = param("prior", choices=("prior", "stand", "rest"),
                           fix="'prior' = pose-prior samples, 'stand' = arms down, 'rest' = T-pose")
    sigma: float = param(0.5, gt=0, fix="0 would stop silhouette gradients")

    def relations(self):
        yield self.pre_topk >= self.top_k, "pre_topk", f"use pre_topk ≥ top_k ({self.top_k})"
        yield len(self.azimuths_deg) >= 1, "azimuths_deg", "give at least one azimuth in degrees, e.g. (0,)"
        yield len(self.color) == 3, "color", "use an RGB triple in [0, 1]"

    def render_key(self) -> dict:
        """The settings that change the library embeddings (part of the cache key)."""
        d = asdict(self)
        for k in ("top_k", "pre_topk", "dup_threshold", "batch_size", "generator", "num_iterations", "lr",
                  "num_starts", "prior_weight", "init_std", "init_pose", "sigma"):
            d.pop(k)
        d["azimuths_deg"] = [float(a) for a in self.azimuths_deg]
        return d


MOTION_GENERATORS = ("interpolate", "optimize")


@dataclass
class ContactParams(Params):
    """Root motion and foot contact post-process of stage 5 (`motion.contact`, docs/method.md "Root motion and
    foot contact"; `contact.apply_contact`). Heights are foot-joint clearances: a foot joint's height above its
    own rest-pose height (the T-pose stands on the floor, so clearance 0 = touching the floor).

    Attributes:
        enabled: run the post-process on every generator's output (False = the motion as generated).
        root: horizontal root trajectory: "auto" = derive it from foot contact when the generator gave none
            (horizontal root zero in every frame: interpolation, the pose-only priors), else keep the generator's
            (the motion prior's decoded root) unless its grounded feet skate more than `root_skate_ratio` times as
            fast (`metrics.foot_skate`) as with the contact-driven one — a CLIP-optimised motion can keep travelling
            while its legs stand still; "contact" = always derive it (replacing the generator's); "keep" = never.
        root_skate_ratio: see root (2.0: a captured walk's own root skates 1.1× the derived one's, a travelling
            root under standing legs 4×).
        stance_softness: metres; the contact-driven root moves so that the foot joints stay planted, each
            weighted by exp(−c / stance_softness), c = its height above the frame's lowest foot joint (a smaller
            value plants the lowest joint alone, a larger one averages the feet) …
        stance_speed: m/s; … and by 1 / (1 + (u / stance_speed)²), u = its speed under the root estimate
            (iteratively reweighted: the joint that can stay still is planted).
        ground: shift the root vertically in every frame so that the lowest foot joint is on the floor (no
            hovering, no sinking).
        height_on / height_off: metres; a foot joint enters contact below height_on and leaves it above
            height_off (hysteresis, height_off ≥ height_on).
        speed_on / speed_off: m/s of horizontal speed; enters contact below speed_on, leaves above speed_off
            (speed_off ≥ speed_on).
        min_frames: contacts shorter than this many frames are dropped (flicker).
        lock: foot-locking: a foot joint in contact is held at one floor position per contact (the mean of its
            positions over the contact) by a two-bone IK on the hip–knee–ankle chain; only the hips', knees' and
            ankles' rotations change.
        blend_frames: the lock fades in and out over this many frames before and after each contact (0 =
            switched on and off at once).
    """

    enabled: bool = True
    root: str = param("auto", choices=("auto", "contact", "keep"))
    root_skate_ratio: float = param(2.0, ge=1.0, fix="a ratio ≥ 1, e.g. 2")
    stance_softness: float = param(0.02, gt=0, le=1.0, fix="metres, e.g. 0.02")
    stance_speed: float = param(0.2, gt=0, le=10.0, fix="m/s, e.g. 0.2")
    ground: bool = True
    height_on: float = param(0.03, ge=0, le=0.5, fix="metres, e.g. 0.03")
    height_off: float = param(0.05, ge=0, le=0.5, fix="metres, e.g. 0.05")
    speed_on: float = param(0.3, ge=0, le=10.0, fix="m/s, e.g. 0.3")
    speed_off: float = param(0.5, ge=0, le=10.0, fix="m/s, e.g. 0.5")
    min_frames: int = param(3, ge=1, le=1000)
    lock: bool = True
    blend_frames: int = param(4, ge=0, le=100)

    def relations(self):
        yield self.height_off >= self.height_on, "height_off", f"use height_off ≥ height_on ({self.height_on})"
        yield self.speed_off >= self.speed_on, "speed_off", f"use speed_off ≥ speed_on ({self.speed_on})"


@dataclass
class MotionParams(Params):
    """Settings of stage 5, poses → motion (docs/method.md §6.2 / §7.2 `motion_generator`).

    Attributes:
        generator: "interpolate" (default; slerp through the ranked candidates, `interpolate_motion`) or
            "optimize" (the MotionOptimizer of docs/method.md §6.2 on the motion VAE's latent,
            `generators.MotionOptimizer`; needs a CLIP encoder, the prompt and the body when clip_coef > 0,
            and num_frames = 60, the prior's window).
        num_frames: frames T of the motion (reference num_frame = 60).
        fps: frames per second (reference 30; 60 frames = 2 s).
        ease: "interpolate" only. False = constant angular speed between anchors (slerp with linear weights);
            True = smoothstep weights 3t² − 2t³ (slow in/out at every candidate, peak speed 1.5× the linear one).
        num_iterations: "optimize": Adam steps on the motion VAE's latent (`latent_dim` numbers:
            the global code and the per-frame codes; reference 5000).
        lr: "optimize": Adam learning rate (reference 0.01).
        recon_coef: "optimize": weights of the ranked candidates in the reconstruction term (reference
            (1, 0.8, 0.6, 0.4, 0.2)); truncated to the number of candidates (fewer than 5 work).
        clip_coef: "optimize": weight of the CLIP term (reference 0.001; 0 = the reference's baseline).
        delta_coef: "optimize": weight of the (subtracted) mean squared consecutive-frame axis-angle
            difference, which sets the motion's intensity (reference 0.01; lower it if the motion is too wild).
        clip_num_part: "optimize": frames s ~ U{0 … clip_num_part − 1} and s + clip_num_part are rendered
            each step (reference 30).
        azimuth_deg: "optimize": camera azimuth of those renders, degrees, 0 = the body's front (reference NR
            azimuth 150 = front − 30°). Their camera distance, elevation and field of view, the body colour
            and the background come from the run's `PoseParams` (the `poses` section, as stage 4's renders),
            passed to `generate_motion` / `MotionOptimizer` as `pose_params`.
        image_size: "optimize": square render size in pixels fed to the encoder (reference 224).
        sigma: "optimize": silhouette edge softness (pixels) of those renders.
        contact: the root-motion and foot-contact post-process applied to every generator's output
            (`ContactParams`, keys `motion.contact.*`).
        file: a BVH clip that drives the avatar instead ("" = generate the motion from stage 4's candidates).
            Retargeted onto the run's body skeleton (`bvh_retarget.retarget_bvh`, docs/method.md
            "Retargeting"), resampled to `fps`; `num_frames`, `generator` and the motion prompt are then unused
            and stage 4 is skipped. CLI: `--motion-file my.bvh`; notebooks: the setting `motion_file`.
        file_fps: the clip's true capture rate in frames per second (0 = 1 / the header's Frame Time).
        joint_map: a JSON joint map for skeletons the automatic mapping cannot read ("" = automatic):
            {"joints": {"<our joint>": "<BVH joint>", …}, "unit_scale": metres per BVH unit, "up_axis": "z"}
            (`bvh_mapping.load_joint_map`).
    """

    generator: str = param("interpolate", choices=MOTION_GENERATORS)
    num_frames: int = param(60, ge=1, fix="the reference uses 60")
    fps: float = param(30.0, gt=0, fix="a frame rate such as 30")
    ease: bool = False
    num_iterations: int = param(5000, ge=0)
    lr: float = param(0.01, gt=0, fix="an Adam learning rate such as 0.01")
    recon_coef: tuple[float, ...] = param((1.0, 0.8, 0.6, 0.4, 0.2), ge=0)
    clip_coef: float = param(0.001, ge=0)
    delta_coef: float = param(0.01, ge=0)
    clip_num_part: int = param(30, ge=1)
    azimuth_deg: float = -30.0
    image_size: int = param(224, ge=1)
    sigma: float = param(0.5, gt=0, fix="an edge softness in pixels such as 0.5")
    contact: ContactParams = group(ContactParams)
    file: str = ""
    file_fps: float = param(0.0, ge=0, fix="0 = the BVH header's frame time")
    joint_map: str = ""

    def relations(self):
        # Existence, parsing and mapping are checked before stage 5 runs (`bvh_retarget.check_motion_file`).
        yield (not self.file or self.file.lower().endswith(".bvh"), "file",
               "give a .bvh file, or '' to generate the motion from the prompt")
        yield (not self.joint_map or self.joint_map.lower().endswith(".json"), "joint_map",
               'give a JSON file {"joints": {"left_wrist": "<BVH joint>", ...}} or \'\' (automatic)')
        yield (len(self.recon_coef) >= 1, "recon_coef",
               "give one or more non-negative weights, best candidate first, e.g. (1, 0.8, 0.6, 0.4, 0.2)")
        optimize = self.generator == "optimize"
        yield (not optimize or self.num_frames == 60, "num_frames",
               "the motion prior decodes 60-frame windows: use 60 with generator 'optimize'")
        yield (not optimize or self.clip_num_part < self.num_frames, "clip_num_part",
               f"use a value < num_frames ({self.num_frames}), e.g. 30")
