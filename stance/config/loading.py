"""Reading a run configuration: YAML, dotted command-line overrides, checked types and values.

    cfg = load_config("configs/withdrawal.yaml", ["train.lr=3e-5", "train.epochs=3"])

Unknown keys and wrong types are a ConfigError naming the key; the resolved config is
written beside every run (`config.yaml`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import reprlib
import textwrap
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..kinds.registry import names as kind_names
from .schema import DataSource, RunConfig

_REPR = reprlib.Repr()  # Python 3.10 has no keyword arguments here
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxstring, _REPR.maxother = 2, 4, 4, 80, 80


def _short(value: Any) -> str:
    """A bounded repr: a YAML alias bomb must not become a gigabyte error message."""
    text = _REPR.repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp`, converting where it is lossless."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {_short(value)}")
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, (str, dict)) and dataclasses.is_dataclass(item_tp):
            value = [value]  # a single source may be written without a list
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if isinstance(value, str) and tp is DataSource:
            value = {"path": value}
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        return _build(tp, value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {_short(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {_short(value)}")
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "3e-5" (no dot) as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {_short(value)}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {_short(value)}")
    raise ConfigError(f"{key}: unsupported type {tp}")  # pragma: no cover


def _build(cls: type, values: dict, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names, key=str)  # YAML keys may be ints or null
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(
            f"unknown config key '{where}{unknown[0]}'; known keys under "
            f"'{prefix or '(top level)'}': {', '.join(sorted(names))}"
        )
    kwargs = {}
    for name, value in values.items():
        key = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _coerce(value, hints[name], key)
    for f in dataclasses.fields(cls):  # a required key left out (DataSource.path)
        if f.name not in kwargs and f.default is f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{prefix or '(top level)'}: missing required key '{f.name}'")
    return cls(**kwargs)


def _apply_override(tree: dict, override: str) -> None:
    if "=" not in override:
        raise ConfigError(f"override {override!r} is not of the form key=value (train.lr=3e-5)")
    dotted, raw = override.split("=", 1)
    parts = dotted.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override {override!r}: empty key")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {override!r}: '{part}' is not a section")
        node = child
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except (yaml.YAMLError, ValueError, RecursionError):
        value = raw  # not YAML: take it as a plain string
    _check_override(parts, value, override)
    node[parts[-1]] = value


def _check_override(parts: list[str], value: Any, override: str) -> None:
    """Check an override's key and value against the schema, so its errors name it, not the file."""
    tp: Any = RunConfig
    for i, part in enumerate(parts):
        section = ".".join(parts[:i])
        if not dataclasses.is_dataclass(tp):
            raise ConfigError(f"override {override!r}: '{section}' is not a section")
        names = {f.name for f in dataclasses.fields(tp)}
        if part not in names:
            raise ConfigError(
                f"override {override!r}: unknown config key '{'.'.join(parts[: i + 1])}'; "
                f"known keys under '{section or '(top level)'}': {', '.join(sorted(names))}"
            )
        tp = typing.get_type_hints(tp)[part]
    try:
        _coerce(value, tp, ".".join(parts))
    except ConfigError as e:
        raise ConfigError(f"override {override!r}: {e}") from None


def _check_values(cfg: RunConfig) -> None:
    t = cfg.train
    if t.mixed_precision not in ("auto", "no", "bf16", "fp16"):
        raise ConfigError(
            f"train.mixed_precision: expected auto, no, bf16 or fp16, got {t.mixed_precision!r}"
        )
    for key in ("batch_size", "eval_batch_size", "grad_accum"):
        if getattr(t, key) < 1:
            raise ConfigError(f"train.{key}: must be at least 1")
    if not (0 <= t.epochs < math.inf and 0 < t.lr < math.inf and 0 <= t.warmup_ratio <= 1):
        raise ConfigError("train: epochs must be >= 0, lr > 0, warmup_ratio in [0, 1]")
    if not 0 < cfg.data.dev_fraction < 1:
        raise ConfigError("data.dev_fraction: must be between 0 and 1")
    if cfg.data.max_length < 8:
        raise ConfigError("data.max_length: must be at least 8")
    if cfg.model.kind not in kind_names():  # stance.kinds.registry: every kind it knows
        known = " or ".join(kind_names())
        raise ConfigError(f"model.kind: expected {known}, got {cfg.model.kind!r}")
    if not 0 <= cfg.fewshot.context_weight < math.inf or cfg.fewshot.head_c <= 0:
        raise ConfigError("fewshot: context_weight must be >= 0 and head_c > 0")
    if cfg.fewshot.adapt not in ("none", "lpft", "setfit"):
        raise ConfigError(
            f"fewshot.adapt: expected none, lpft or setfit, got {cfg.fewshot.adapt!r}"
        )
    if not cfg.data.train:
        raise ConfigError("data.train: at least one training file is required")
    for i, source in enumerate(cfg.data.train):
        if not (math.isfinite(source.weight) and source.weight >= 0):
            raise ConfigError(f"data.train[{i}].weight: must be a finite number >= 0")


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config (or start from defaults), apply `key=value` overrides, validate."""
    tree: dict = {}
    if path is not None:
        path = Path(path)
        try:
            tree = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except OSError as e:
            raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
        except (yaml.YAMLError, ValueError, RecursionError) as e:  # bad UTF-8, deep, huge int
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        if tree is None:
            raise ConfigError(f"{path}: empty config file (expected a YAML mapping of settings)")
        if not isinstance(tree, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
    for override in overrides or []:
        _apply_override(tree, override)
    try:
        cfg = _build(RunConfig, tree)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}" if path else str(e)) from None
    try:
        _check_values(cfg)
    except ConfigError as e:  # name the file: an empty or partial one is the usual cause
        raise ConfigError(f"{path}: {e}" if path else str(e)) from None
    return cfg


def to_dict(cfg: RunConfig) -> dict:
    return dataclasses.asdict(cfg)


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True)


def config_help() -> str:
    """Every config key with its type, default and help string (for `stance train --help`)."""
    lines = ["config keys (YAML sections, or key=value overrides):"]

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            key, tp = f"{prefix}{f.name}", hints[f.name]
            if dataclasses.is_dataclass(tp):
                lines.append(f"  {key}: {f.metadata.get('help', '')}")
                walk(tp, f"{key}.")
                continue
            if f.default is not dataclasses.MISSING:
                default = f"default {f.default!r}"
            elif f.default_factory is not dataclasses.MISSING:
                default = f"default {f.default_factory()!r}"
            else:
                default = "required"
            text = f"{key} ({default}): {f.metadata.get('help', '')}"
            lines.append(textwrap.fill(text, 100, initial_indent="    ", subsequent_indent=" " * 6))

    walk(RunConfig, "")
    return "\n".join(lines)
