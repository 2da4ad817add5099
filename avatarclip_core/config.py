"""Configuration: HOCON presets (`confs/*.conf`, parsed with pyhocon), overrides, and validation before any work.

A configuration has a `run` section (body model, device, seed, CLIP model), a `prompts` section (shape,
appearance, motion) and one section per stage whose keys are exactly the fields of that stage's parameter
dataclass. `load_config` merges preset ← overrides ← prompts, checks every key, type and range, and returns a
`Config` whose `.params(section)` gives the dataclass. Errors name the key, the value and the fix.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from pyhocon import ConfigFactory, ConfigTree, HOCONConverter

from . import stages
from .params import ConfigError, Params, build, param
from .paths import shipped_dir

CONF_DIR = shipped_dir("confs")
PRESETS = ("tiny", "small", "full", "fast", "cpu")
#: The preset of a new run when none is named, by hardware (`default_preset`).
DEFAULT_PRESETS = {"cuda": "fast", "cpu": "cpu"}


@dataclass
class RunParams(Params):
    """Run-wide settings.

    body: "anny" (open, default), "smpl" (needs the licensed files in smpl_models/) or "precomputed" (a body frozen at
        a few shapes in the file `body_file`, for machines without anny, e.g. the GPU benchmark; body/precomputed.py).
    device: "auto" (CUDA when present), "cpu", "cuda" or "cuda:N".
    seed: integer seed of every random choice.
    clip_model: an open_clip model name ("ViT-B-32") or a local checkpoint path; for tests and demos only, with the
        environment variable AVATARCLIP_TEST_ENCODERS=1, also the test encoders "tiny" (a random-init tiny CLIP, no
        download), "tiny:<path>" or "oracle:color" / "oracle:size" / "oracle:pose" /
        "oracle:parts" / "oracle:geometry" (docs/design.md §4;
        `guidance.load_encoder`).
    clip_pretrained: open_clip pretrained tag for a model name ("openai" = the weights AvatarCLIP used).
    clip_cache: folder of downloaded weights ("" = ~/.cache/avatarclip/clip or $AVATARCLIP_CACHE).
    smpl_dir: folder of the licensed SMPL files ("" = $AVATARCLIP_SMPL_DIR or <project>/smpl_models; paths.py).
    body_file: the .npz of body = "precomputed" (`body.precomputed.save_precomputed_body`).
    """

    body: str = param("anny", choices=("anny", "smpl", "precomputed"),
                      fix="'anny' is open; 'smpl' needs the licensed files; 'precomputed' needs run.body_file")
    body_file: str = ""
    device: str = "auto"
    seed: int = param(0, ge=0)
    clip_model: str = "ViT-B-32"
    clip_pretrained: str = "openai"
    clip_cache: str = ""
    smpl_dir: str = ""

    def relations(self):
        from .guidance.encoder import encoder_name_problem  # torch-free: config errors stay fast

        yield (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"), "device",
               "use 'auto', 'cpu', 'cuda' or 'cuda:N'")
        yield (self.body != "precomputed" or Path(self.body_file).expanduser().is_file(), "body_file",
               "body = precomputed needs an existing .npz from save_precomputed_body (bench/gpu_prep.py writes one)")
        yield (bool(self.clip_model.strip()), "clip_model",
               "use 'ViT-B-32', a checkpoint path or (tests/demos, with AVATARCLIP_TEST_ENCODERS=1) 'tiny'")
        problem = encoder_name_problem(self.clip_model, key="run.clip_model") if self.clip_model.strip() else None
        if problem:
            raise ConfigError(problem)


@dataclass
class PromptParams(Params):
    """The three prompts: body shape ("a tall and skinny person"), appearance ("a female soldier"), motion
    ("arguing"). Stages check only the prompts they use."""

    shape: str = ""
    appearance: str = ""
    motion: str = ""

    def require(self, name: str) -> str:
        value = getattr(self, name)
        if not isinstance(value, str) or not value.strip():
            example = _PROMPT_EXAMPLES[name]
            raise ConfigError(f"prompts.{name} is empty: fill the {_PROMPT_LABELS[name]} prompt — in a notebook "
                              f"the field {name} = \"{example}\" of the settings cell, on the command line "
                              f"--{name} \"{example}\"")
        return value.strip()


_PROMPT_EXAMPLES = {"shape": "a tall and skinny person", "appearance": "a female soldier", "motion": "arguing"}
_PROMPT_LABELS = {"shape": "body-shape", "appearance": "appearance", "motion": "motion"}


# Section name → "module:Class" of its parameter dataclass: the run-wide ones here, one per stage from the stage
# table (imported lazily: stages own their parameters).
SECTIONS: dict[str, str] = {"run": "avatarclip_core.config:RunParams", "prompts": "avatarclip_core.config:PromptParams",
                            **{s.section: s.params for s in stages.STAGES}}


def _dataclass_for(section: str):
    return stages._resolve(SECTIONS[section])


def build_params(section: str, values: dict):
    """Instantiate a section's dataclass from a plain dict, checking keys, types and ranges (`params.build`)."""
    cls = _dataclass_for(section)
    try:
        params = build(cls, values, section)
        if not isinstance(params, Params):
            params.validate()
    except ConfigError:
        raise
    except ValueError as err:  # sections not yet declared with `param` raise ValueError; name the section
        raise ConfigError(f"[{section}] {err}") from None
    return params


def _plain(tree) -> dict:
    return json.loads(HOCONConverter.to_json(tree)) if isinstance(tree, ConfigTree) else dict(tree)


@dataclass
class Config:
    """A validated configuration. `tree` is the merged pyhocon tree; `params(section)` the dataclass."""

    tree: ConfigTree
    preset: str
    sections: dict = field(default_factory=dict)

    def params(self, section: str):
        return self.sections[section]

    @property
    def run(self) -> RunParams:
        return self.sections["run"]

    @property
    def prompts(self) -> PromptParams:
        return self.sections["prompts"]

    def as_dict(self) -> dict:
        # A JSON round trip turns tuples into lists so the HOCON writer emits valid arrays.
        return json.loads(json.dumps({"preset": self.preset,
                                      **{s: dataclasses.asdict(p) for s, p in self.sections.items()}}))

    def section_hash(self, *sections: str) -> str:
        """Stable hash of the named sections' resolved values (used to detect changed stage inputs)."""
        blob = json.dumps({s: dataclasses.asdict(self.sections[s]) for s in sections}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_hocon(self) -> str:
        """The resolved configuration as HOCON text (written to exp/<run>/run.conf)."""
        return f"# preset: {self.preset}\n" + HOCONConverter.to_hocon(ConfigFactory.from_dict(self.as_dict()))


def parse_override(text: str) -> tuple[str, object]:
    """'texture.schedule.iterations=200' → ('texture.schedule.iterations', 200); the value is parsed as HOCON (numbers, booleans,
    lists, quoted or bare strings). Raises ConfigError on text without '='."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value, e.g. texture.schedule.iterations=200")
    key, value = text.split("=", 1)
    value = value.strip() or '""'
    parsed = ConfigFactory.parse_string(f"v = {value}")["v"]
    return key.strip(), _plain(parsed) if isinstance(parsed, ConfigTree) else parsed


def default_preset(device: str = "auto") -> str:
    """The preset a new run starts from when none is named: "fast" when the run will use a CUDA GPU, else "cpu"
    (sized to finish in under 30 minutes on a CPU with CLIP ViT-B/32, rougher avatars; confs/cpu.conf).

    Args: device: the run's `run.device` ("auto" looks for a GPU, `device.cuda_available`)."""
    from .device import cuda_available

    return DEFAULT_PRESETS["cuda" if cuda_available(device) else "cpu"]


def load_config(preset: str = "small", overrides: dict | None = None, prompts: dict | None = None,
                conf_path: str | Path | None = None) -> Config:
    """Load a preset, apply overrides and prompts, validate everything.

    Args:
        preset: one of PRESETS (a file confs/<preset>.conf) or the path of a .conf file; ignored when `conf_path`
            is given.
        overrides: {"section.key": value} (values of the field's type) or {"section": {key: value}}.
        prompts: {"shape": …, "appearance": …, "motion": …}; empty values leave the configuration's prompt as it
            is (stages check the prompts they use).
        conf_path: an explicit HOCON file (e.g. a copied run.conf or one of confs/examples/).
    Raises:
        ConfigError: unknown preset, unknown key, wrong type or out-of-range value (message names key and fix).
    """
    if conf_path is None and preset.endswith(".conf"):
        conf_path = preset
    if conf_path is None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)} "
                              f"(files in {CONF_DIR}) or pass a .conf file path")
        conf_path = CONF_DIR / f"{preset}.conf"
    conf_path = Path(conf_path)
    if not conf_path.is_file():
        raise ConfigError(f"configuration file {conf_path} does not exist")
    tree = ConfigFactory.parse_file(str(conf_path))
    for key, value in (overrides or {}).items():
        if isinstance(value, dict):
            for k, v in value.items():
                tree.put(f"{key}.{k}", v)
        else:
            tree.put(key, value)
    for key, value in (prompts or {}).items():
        if value:
            tree.put(f"prompts.{key}", value)
    data = _plain(tree)
    for name in data:
        if name not in SECTIONS and name != "preset":
            raise ConfigError(f"unknown section {name!r} in the configuration; valid sections: "
                              f"{', '.join(SECTIONS)}")
    sections = {}
    for name in SECTIONS:
        values = data.get(name, {})
        if not isinstance(values, dict):
            raise ConfigError(f"section {name!r} must be an object {{ … }}, got {values!r}")
        sections[name] = build_params(name, values)
    return Config(tree=tree, preset=str(data.get("preset", preset)), sections=sections)


def check_run_name(name: str) -> str:
    """A run name is one folder name under the run root: not empty, no path separators, not '.' or '..'.
    Returns it stripped; raises ConfigError naming the value and the fix."""
    value = str(name).strip()
    if not value or value in (".", "..") or "/" in value or "\\" in value or value.startswith("~"):
        raise ConfigError(f"run name {name!r} must be one folder name (letters, digits, '-', '_', '.'; no '/', "
                          "not '..'), e.g. run_name = \"demo\" / --run demo; use --exp-root to choose where runs go")
    return value


def load_run_config(run_root: str | Path, preset: str = "", overrides: dict | None = None,
                    prompts: dict | None = None) -> Config:
    """The configuration of the run in `run_root`: a run keeps its settings, values given here change them.

    When `run_root/run.conf` exists (the run was started before, from a notebook or the CLI) it is the base — its
    preset, CLIP model, prompts and overrides carry over to the next notebook or command — unless `preset` names a
    different preset, which then is the base (the run's prompts and `run` section — CLIP model, body, device,
    seed — still carry over). A new run starts from `preset`
    (default: `default_preset` of the run's device). `overrides` and non-empty `prompts` are applied last (see
    `load_config`).

    Raises:
        ConfigError: as `load_config`, or a damaged run.conf (the message names the file).
    """
    saved = Path(run_root) / "run.conf"
    if not saved.is_file():
        run = (overrides or {}).get("run")
        device = (overrides or {}).get("run.device") or (run.get("device") if isinstance(run, dict) else None)
        return load_config(preset or default_preset(str(device or "auto")), overrides=overrides, prompts=prompts)
    try:
        old = ConfigFactory.parse_file(str(saved))
    except Exception as err:  # pyhocon raises several parser exception types
        raise ConfigError(f"{saved} cannot be read ({err}); fix or delete it to start the run's settings afresh")
    old_preset = str(old.get("preset", ""))
    prompts = {k: v or old.get(f"prompts.{k}", "") for k, v in {"shape": "", "appearance": "", "motion": "",
                                                                 **(prompts or {})}.items()}
    if preset and preset != old_preset:
        kept = {f"run.{k}": v for k, v in _plain(old.get("run", {})).items()}
        return load_config(preset, overrides={**kept, **(overrides or {})}, prompts=prompts)
    return load_config(old_preset, overrides=overrides, prompts=prompts, conf_path=saved)
