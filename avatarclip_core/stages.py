"""The stage table: the one place that says which stages exist and what each reads, needs and shows.

The run folder (`rundir`), the stage functions (`pipeline`), the CLI (`__main__`), the notebook helpers
(`widgets`) and the notebook generator (`scripts/make_notebooks.py`) all read this table. Adding a stage means one
row here (naming its parameter class and its `run_<stage>` function), its own module and a regenerated notebook
(docs/stages.md).
Pure data: importing it imports nothing heavy.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline (AvatarCLIP §3–§4; docs/stages.md).

    id: "01" … "06", the number users type (`--stages 03`).
    folder: its folder under exp/<run>/ ("03_texture").
    notebook: notebook file stem ("03_clip_texturing").
    function: "module:name" of its `run_<stage>(run, conf, progress, on_progress) -> figures` function.
    section: its configuration section (confs/*.conf); params: "module:Class" of that section's parameter
        dataclass (a `params.Params`), which `config` builds the section with.
    prompts: the prompts it reads ("shape", "appearance", "motion").
    clip: whether it uses the CLIP encoder: True, False, or "optimize" = only when `<section>.generator` is
        "optimize".
    upstream: folders of the earlier stages it reads.
    live: it trains and reports validation images and losses as it goes (`on_progress`).
    shows: its results as notebooks show them: file names or globs inside its folder (PNG, MP4, GLB).
    title, about: heading and one-paragraph description (notebooks, docs).
    clip_sections: other configuration sections it reads when it uses CLIP (stage 5's optimiser renders poses
        with the `poses` cameras); their hashes join its inputs.
    input_file: "section.key" of a user file that, when set, replaces the stage's upstream stages, prompts and
        CLIP use (stage 5: `motion.file`, a BVH clip; its sha256 joins the inputs). Notebooks show it as a setting
        named after the key (`motion_file`), the CLI as `--motion-file`.
    skip_when: "section.key" that, when set, makes the stage unnecessary (stage 4 when `motion.file` is given).
    """

    id: str
    folder: str
    notebook: str
    function: str
    section: str
    params: str
    prompts: tuple[str, ...]
    clip: bool | str
    upstream: tuple[str, ...]
    live: bool
    shows: tuple[str, ...]
    title: str
    about: str
    clip_sections: tuple[str, ...] = ()
    input_file: str = ""
    skip_when: str = ""

    def run_function(self):
        """The stage function (imported on first use: this table stays free of heavy imports)."""
        return _resolve(self.function)

    def params_class(self):
        """The parameter dataclass of this stage's configuration section."""
        return _resolve(self.params)

    def uses_clip(self, conf) -> bool:
        """Whether this stage needs the CLIP encoder under `conf` (a `config.Config`)."""
        if self.file_given(conf):
            return False
        if self.clip == "optimize":
            return conf.params(self.section).generator == "optimize"
        return bool(self.clip)

    def file_given(self, conf) -> str:
        """The user file of `input_file` under `conf` ("" when the stage works from its upstream stages)."""
        return _setting(conf, self.input_file) if self.input_file else ""

    def skipped(self, conf) -> bool:
        """Whether the stage is not needed under `conf` (`skip_when` is set)."""
        return bool(self.skip_when and _setting(conf, self.skip_when))

    def upstream_for(self, conf) -> tuple[str, ...]:
        """The earlier stages it reads under `conf`: none when its input file is given."""
        return () if self.file_given(conf) else self.upstream

    def prompts_for(self, conf) -> tuple[str, ...]:
        """The prompts it reads under `conf`: none when its input file is given."""
        return () if self.file_given(conf) else self.prompts


def _setting(conf, key: str):
    section, name = key.split(".", 1)
    return getattr(conf.params(section), name)


def _resolve(path: str):
    import importlib

    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


_P = "avatarclip_core.pipeline:"
STAGES: tuple[Stage, ...] = (
    Stage("01", "01_shape", "01_coarse_shape", _P + "run_coarse_shape", "shape", "avatarclip_core.shape.params:ShapeParams", ("shape",), True, (), False,
          ("preview.png",), "Stage 1 — coarse body shape",
          "Renders candidate bodies from the body model's shape space, embeds them with CLIP and picks the one whose "
          "embedding offset from the neutral body best matches the prompt's offset from a neutral prompt "
          "(AvatarCLIP §3.1). Writes `01_shape/shape.json`, `body.ply` and `preview.png` (neutral | chosen)."),
    Stage("02", "02_neus_init", "02_neus_init", _P + "run_neus_init", "neus_init", "avatarclip_core.neus.params:NeusInitParams", (), False, ("01_shape",), True,
          ("preview.png",), "Stage 2 — NeuS initialisation",
          "Renders the coarse body from a ring of cameras and fits a NeuS SDF + colour field to the renders "
          "(AvatarCLIP §3.2). Writes `02_neus_init/views/`, `ckpt.pt` and `preview.png` (ground truth | NeuS)."),
    Stage("03", "03_texture", "03_clip_texturing", _P + "run_texture", "texture", "avatarclip_core.neus.params:TextureParams", ("appearance",), True,
          ("01_shape", "02_neus_init"), True, ("progress.mp4",), "Stage 3 — CLIP sculpting and texturing",
          "Optimises the NeuS geometry and a texture head so random renders match the appearance prompt under CLIP "
          "(AvatarCLIP §3.3), then extracts `avatar.ply` with vertex colours. Progress images become "
          "`progress.mp4`."),
    Stage("04", "04_poses", "04_pose_retrieval", _P + "run_poses", "poses", "avatarclip_core.motion.params:PoseParams", ("motion",), True, (), False,
          ("candidate_*.png",), "Stage 4 — candidate poses",
          "Scores a library of poses retargeted from CMU mocap with CLIP against the motion prompt and keeps the top "
          "K distinct ones (AvatarCLIP §4.1). Writes `04_poses/candidates.npz` and `candidate_XX.png`. Skipped when "
          "a motion file drives the avatar (stage 5).", skip_when="motion.file"),
    Stage("05", "05_motion", "05_motion", _P + "run_motion", "motion", "avatarclip_core.motion.params:MotionParams", ("motion",), "optimize", ("04_poses",), False,
          ("preview.mp4",), "Stage 5 — motion",
          "Turns the ranked candidate poses into a smooth motion (AvatarCLIP §4.2), then gives it a root trajectory "
          "and plants its feet on the floor (foot contact, foot locking). Writes `05_motion/motion.npz`, "
          "`motion.bvh` and `preview.mp4` (the plain body moving on the floor). With a motion file "
          "(`--motion-file my.bvh`, setting `motion_file`) it retargets that BVH clip onto the body instead and "
          "stage 4 is skipped.",
          clip_sections=("poses",), input_file="motion.file"),
    Stage("06", "06_video", "06_video_render", _P + "run_video", "video", "avatarclip_core.animate.params:VideoParams", (), False,
          ("01_shape", "03_texture", "05_motion"), False, ("avatar.mp4", "avatar.glb"),
          "Stage 6 — animated avatar and video",
          "Carries the body's skinning weights to the sculpted avatar, drives it with the motion, and writes "
          "`06_video/avatar.glb` (skinned, animated, vertex colours) and `avatar.mp4` (the avatar on a floor)."),
)

BY_ID = {s.id: s for s in STAGES}
BY_FOLDER = {s.folder: s for s in STAGES}
FOLDERS = tuple(s.folder for s in STAGES)


def get(key: str) -> Stage:
    """The stage with id ("3", "03") or folder ("03_texture") `key`.

    Raises:
        ValueError: no such stage (the message lists them).
    """
    key = str(key).strip()
    stage = BY_FOLDER.get(key) or BY_ID.get(key.zfill(2))
    if stage is None:
        raise ValueError(f"unknown stage {key!r}; stages are {', '.join(BY_ID)} "
                         f"({', '.join(FOLDERS)})")
    return stage
