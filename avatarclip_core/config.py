"""Configuration: HOCON presets (`confs/*.conf`, parsed with pyhocon), overrides, and validation before any work.

A configuration has a `run` section (body model, device, seed, CLIP model), a `prompts` section (shape,
appearance, motion) and one section per stage whose keys are exactly the fields of that stage's parameter
dataclass. `load_config` merges preset ← overrides ← prompts, checks every key, type and range, and returns a
`Config` whose `.params(section)` gives the dataclass. Errors name the key, the value and the fix.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path

from pyhocon import ConfigFactory, ConfigTree, HOCONConverter

from .paths import shipped_dir

CONF_DIR = shipped_dir("confs")
PRESETS = ("tiny", "small", "full", "fast")
DEFAULT_PRESET = "small"


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type or out of range (the message says how to fix it)."""

    def _render_traceback_(self):
        # IPython/Jupyter show this instead of a traceback: the message already names the value and the fix.
        return [f"\x1b[31mConfigError\x1b[0m: {self}"]


@dataclass
class RunParams:
    """Run-wide settings.

    body: "anny" (open, default) or "smpl" (needs the licensed files in smpl_models/).
    device: "auto" (CUDA when present), "cpu", "cuda" or "cuda:N".
    seed: integer seed of every random choice.
    clip_model: an open_clip model name ("ViT-B-32"), a local checkpoint path, "tiny" (a random-init tiny CLIP for
        tests/demos, no download) or "oracle:color" / "oracle:size" / "oracle:pose" (test encoders, docs/design.md §4).
    clip_pretrained: open_clip pretrained tag for a model name ("openai" = the weights AvatarCLIP used).
    clip_cache: folder of downloaded weights ("" = ~/.cache/avatarclip/clip or $AVATARCLIP_CACHE).
    smpl_dir: folder of the licensed SMPL files ("" = $AVATARCLIP_SMPL_DIR or <project>/smpl_models; paths.py).
    """

    body: str = "anny"
    device: str = "auto"
    seed: int = 0
    clip_model: str = "ViT-B-32"
    clip_pretrained: str = "openai"
    clip_cache: str = ""
    smpl_dir: str = ""

    def validate(self):
        if self.body not in ("anny", "smpl"):
            raise ConfigError(f"run.body = {self.body!r} is not a body model; use 'anny' (default) or 'smpl'")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"run.device = {self.device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'")
        if self.seed < 0:
            raise ConfigError(f"run.seed = {self.seed} must be ≥ 0")
        if not self.clip_model.strip():
            raise ConfigError("run.clip_model is empty; use 'ViT-B-32', a checkpoint path or 'tiny'")


@dataclass
class PromptParams:
    """The three prompts: body shape ("a tall and skinny person"), appearance ("a female soldier"), motion
    ("arguing"). Stages check only the prompts they use."""

    shape: str = ""
    appearance: str = ""
    motion: str = ""

    def validate(self):
        pass

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


# Section name → "module:Class" of its parameter dataclass (imported lazily: stages own their parameters).
SECTIONS: dict[str, str] = {
    "run": "avatarclip_core.config:RunParams",
    "prompts": "avatarclip_core.config:PromptParams",
    "shape": "avatarclip_core.shape.search:ShapeParams",
    "neus_init": "avatarclip_core.neus:NeusInitParams",
    "texture": "avatarclip_core.neus:TextureParams",
    "poses": "avatarclip_core.motion:PoseParams",
    "motion": "avatarclip_core.motion:MotionParams",
    "video": "avatarclip_core.animate:VideoParams",
}


def _dataclass_for(section: str):
    module, name = SECTIONS[section].split(":")
    return getattr(importlib.import_module(module), name)


def _coerce(section: str, key: str, value, annotation):
    """Check/convert one value to the field's type; raise ConfigError naming the key otherwise."""
    origin = typing.get_origin(annotation)
    where = f"{section}.{key}"
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} = {value!r} must be true or false")
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where} = {value!r} must be an integer")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} = {value!r} must be a number")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} = {value!r} must be a string (quote it)")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} = {value!r} must be a list, e.g. [1, 2, 3]")
        (inner,) = set(typing.get_args(annotation)) - {Ellipsis} or {float}
        out = [_coerce(section, f"{key}[{i}]", v, inner) for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    return value


def build_params(section: str, values: dict):
    """Instantiate a section's dataclass from a plain dict, checking keys and types, then `validate()`."""
    cls = _dataclass_for(section)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"unknown key {section}.{key} (value {value!r}); valid keys of '{section}': "
                              f"{', '.join(sorted(fields))}")
        kwargs[key] = _coerce(section, key, value, hints[key])
    params = cls(**kwargs)
    try:
        params.validate()
    except ConfigError:
        raise
    except ValueError as err:  # stage dataclasses raise ValueError; re-raise with the section named
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
    """'texture.iterations=200' → ('texture.iterations', 200); the value is parsed as HOCON (numbers, booleans,
    lists, quoted or bare strings). Raises ConfigError on text without '='."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value, e.g. texture.iterations=200")
    key, value = text.split("=", 1)
    value = value.strip() or '""'
    parsed = ConfigFactory.parse_string(f"v = {value}")["v"]
    return key.strip(), _plain(parsed) if isinstance(parsed, ConfigTree) else parsed


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
    (default DEFAULT_PRESET). `overrides` and non-empty `prompts` are applied last (see `load_config`).

    Raises:
        ConfigError: as `load_config`, or a damaged run.conf (the message names the file).
    """
    saved = Path(run_root) / "run.conf"
    if not saved.is_file():
        return load_config(preset or DEFAULT_PRESET, overrides=overrides, prompts=prompts)
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
