"""stance.kinds: the registry and the two kinds' interface (the toy third kind: test_toy_kind)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stance.errors import ConfigError, ModelLoadError
from stance.kinds import registry
from stance.kinds.base import ModelKind

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("name", "pairs", "weights"),
    [("cross-encoder", True, ("model.safetensors",)), ("sentence", False, ("head.safetensors",))],
)
def test_each_kind_is_a_model_kind_under_its_name(name, pairs, weights):
    kind = registry.get_kind(name)
    assert isinstance(kind, ModelKind) and kind.name == name and kind.pairs is pairs
    assert set(weights) <= set(kind.weight_files)
    assert registry.get_kind(name) is kind  # made once


def test_a_saved_config_without_a_kind_is_a_cross_encoder(tmp_path):
    assert registry.saved_kind({}, tmp_path) == registry.DEFAULT_KIND == "cross-encoder"
    assert registry.saved_kind({"stance_kind": "sentence"}, tmp_path) == "sentence"
    with pytest.raises(ModelLoadError, match="stance_kind 'x'"):
        registry.saved_kind({"stance_kind": "x"}, tmp_path)
    with pytest.raises(ConfigError, match="expected cross-encoder or sentence, got 'x'"):
        registry.get_kind("x")


def test_looking_kinds_up_imports_nothing_heavy():
    """The CLI checks a run directory through its kind before torch loads (stance.preflight)."""
    code = (
        "import sys\n"
        "from stance.kinds.registry import get_kind\n"
        "for name in ('cross-encoder', 'sentence'):\n"
        "    get_kind(name)\n"
        "heavy = ('torch', 'transformers', 'sentence_transformers', 'datasets')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
