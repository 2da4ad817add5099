"""Parameter dataclasses: how a setting is declared (`param`), built from plain dicts or HOCON (`build`) and checked
(`check`) — the one place where configuration values are typed and range-checked (docs/design.md §5).

A parameter class is a dataclass deriving from `Params`. Each field declares its default and its range once:

    iterations: int = param(30000, ge=1)
    encoding: str = param("frequency", choices=("frequency", "hashgrid"))

Fields whose type is another `Params` class form nested groups (HOCON `texture { schedule { iterations = … } }`,
override `texture.schedule.iterations=…`). Rules that relate several fields live in the class's `relations()`.
Every failure raises `ConfigError` naming the dotted key, the bad value and the fix.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import MISSING, field
from typing import Any, Iterator


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type or out of range (the message says how to fix it)."""

    def _render_traceback_(self):
        # IPython/Jupyter show this instead of a traceback: the message already names the value and the fix.
        return [f"\x1b[31mConfigError\x1b[0m: {self}"]


def param(default: Any = MISSING, *, factory=None, ge=None, gt=None, le=None, lt=None, choices=None,
          fix: str = ""):
    """A dataclass field with its range: `ge`/`gt`/`le`/`lt` bounds (numbers; for lists, every element),
    `choices` (allowed values) and `fix` (advice appended to the error). Give `factory` for mutable defaults."""
    meta = {k: v for k, v in dict(ge=ge, gt=gt, le=le, lt=lt, choices=choices, fix=fix).items() if v is not None}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def group(cls, **defaults):
    """A nested parameter group field: a fresh `cls(**defaults)` per instance (defaults differ per stage)."""
    return field(default_factory=lambda: cls(**defaults))


class Params:
    """Base of every parameter dataclass: `validate()`, `to_dict()`, `from_dict()`, `replace()`."""

    def relations(self) -> Iterator[tuple[bool, str, str]]:
        """Rules across fields: yield (holds, field name, fix). Override in subclasses."""
        return iter(())

    def validate(self):
        """Check every range and relation (nested groups included); return self. Raises ConfigError."""
        return check(self)

    def to_dict(self) -> dict:
        """Plain nested dict (checkpoints store parameters this way; `from_dict` is the inverse)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, where: str = ""):
        """Build and check from a nested dict and/or dotted keys ({"schedule.iterations": 10}); see `build`."""
        return build(cls, values, where)

    def replace(self, changes: dict):
        """A checked copy with `changes` applied: nested dicts and/or dotted keys, as `build` takes them."""
        return build(type(self), _merge(self.to_dict(), _nest(changes)))


def _ok(value, meta: dict) -> bool:
    if "choices" in meta and value not in meta["choices"]:
        return False
    if isinstance(value, (list, tuple)):
        return all(_ok(v, {k: m for k, m in meta.items() if k != "choices"}) for v in value)
    if value is None or isinstance(value, (str, bool)):
        return True
    return (("ge" not in meta or value >= meta["ge"]) and ("gt" not in meta or value > meta["gt"])
            and ("le" not in meta or value <= meta["le"]) and ("lt" not in meta or value < meta["lt"]))


def _describe(meta: dict) -> str:
    if "choices" in meta:
        return "use one of " + ", ".join(repr(c) for c in meta["choices"])
    bounds = [f"{s} {meta[k]}" for k, s in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")) if k in meta]
    return "use a value " + " and ".join(bounds)


def check(obj, where: str = ""):
    """Check `obj`'s declared ranges and `relations()`, recursing into nested groups; return obj.

    Raises ConfigError "<where>.<field> = <value> is invalid: <fix>" at the first violation."""
    prefix = f"{where}." if where else ""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, Params):
            check(value, prefix + f.name)
        elif f.metadata and not _ok(value, f.metadata):
            fix = _describe(f.metadata) + (f" ({f.metadata['fix']})" if f.metadata.get("fix") else "")
            raise ConfigError(f"{prefix}{f.name} = {value!r} is invalid: {fix}")
    for holds, name, fix in getattr(obj, "relations", lambda: ())():
        if not holds:
            raise ConfigError(f"{prefix}{name} = {getattr(obj, name)!r} is invalid: {fix}")
    return obj


def _coerce(where: str, value, annotation):
    """Check/convert one value to the field's type; raise ConfigError naming the key otherwise."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, Params):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where} = {value!r} must be a group {{ key = value, … }}; valid keys: "
                              f"{', '.join(f.name for f in dataclasses.fields(annotation))}")
        return build(annotation, value, where, validate=False)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)][0]
        return None if value is None else _coerce(where, value, inner)
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
    if origin in (list, tuple) or annotation in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} = {value!r} must be a list, e.g. [1, 2, 3]")
        inner = (set(args) - {Ellipsis}).pop() if args else None
        out = [_coerce(f"{where}[{i}]", v, inner) if inner else v for i, v in enumerate(value)]
        return tuple(out) if (origin or annotation) is tuple else out
    return value


def _nest(values: dict) -> dict:
    """{"a.b": 1, "a": {"c": 2}} → {"a": {"b": 1, "c": 2}} (dotted keys become nested groups)."""
    out: dict = {}
    for key, value in values.items():
        head, _, rest = str(key).partition(".")
        value = _nest({rest: value}) if rest else (_nest(value) if isinstance(value, dict) else value)
        out[head] = _merge(out[head], value) if isinstance(value, dict) and isinstance(out.get(head), dict) else value
    return out


def _merge(base: dict, changes: dict) -> dict:
    out = dict(base)
    for k, v in changes.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def build(cls, values: dict | None = None, where: str = "", validate: bool = True):
    """Instantiate parameter class `cls` from a nested dict and/or dotted keys, checking keys and types
    (converting whole floats to int, lists to lists), then ranges (`check`).

    Args: values: e.g. {"schedule": {"iterations": 10}, "sdf_network.d_hidden": 32}; missing keys keep defaults.
        where: the dotted prefix used in messages (the config section, e.g. "texture").
    Raises: ConfigError naming the unknown key (with the valid ones), the mistyped value or the out-of-range one.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    prefix = f"{where}." if where else ""
    kwargs = {}
    for key, value in _nest(values or {}).items():
        if key not in fields:
            raise ConfigError(f"unknown key {prefix}{key} (value {value!r}); valid keys of "
                              f"'{where or cls.__name__}': {', '.join(sorted(fields))}")
        kwargs[key] = _coerce(prefix + key, value, hints[key])
    obj = cls(**kwargs)
    return check(obj, where) if validate else obj
