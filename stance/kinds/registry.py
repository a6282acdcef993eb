"""Model kinds by name: `model.kind` of a config, `stance_kind` of a saved config.json.

Adding a kind is one module implementing stance.kinds.base.ModelKind and one line here (or
one `register` call, as tests/test_toy_kind.py does). Entries are "module:Class" strings,
imported on first use, so looking a kind up stays cheap for the CLI.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, ModelLoadError

if TYPE_CHECKING:
    from .base import ModelKind

# The kind of a run directory whose config.json names none: every cross-encoder saved before
# kinds were recorded, and plain transformers save_pretrained directories.
DEFAULT_KIND = "cross-encoder"

_KINDS: dict[str, Any] = {
    "cross-encoder": "stance.kinds.cross_encoder:CrossEncoderKind",
    "sentence": "stance.kinds.sentence:SentenceKind",
}


def register(name: str, kind: str | ModelKind) -> None:
    """Make `name` a kind: a ModelKind instance, or a "module:Class" string."""
    _KINDS[name] = kind


def names() -> tuple[str, ...]:
    return tuple(_KINDS)


def get_kind(name: str) -> ModelKind:
    """The kind called `name` (ConfigError for an unknown one)."""
    entry = _KINDS.get(name)
    if entry is None:
        raise ConfigError(f"model.kind: expected {' or '.join(_KINDS)}, got {name!r}")
    if isinstance(entry, str):
        module, _, cls = entry.partition(":")
        entry = _KINDS[name] = getattr(importlib.import_module(module), cls)()
    return entry


def saved_kind(config: dict, path: Path) -> str:
    """The kind a run directory's config.json records; ModelLoadError for an unknown one."""
    name = config.get("stance_kind") or DEFAULT_KIND
    if name not in _KINDS:
        raise ModelLoadError(
            f"{path}: config.json says stance_kind {name!r}, a model kind this version does not "
            f"know (known: {', '.join(_KINDS)})"
        )
    return name
