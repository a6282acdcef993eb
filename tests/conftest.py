"""Shared fixtures: a tiny BERT stance classifier built in memory, offline, in a second."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
# The repository's benchmarks package first, before pysbd's top-level `benchmarks`.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
SEEDS = ROOT / "seeds"
DATA = ROOT / "data" / "withdrawal.jsonl"
SHARED = Path(os.environ.get("STANCE_SHARED", ROOT.parent / "shared"))


def tiny_config(tmp_path: Path | None = None, *overrides: str):
    from stance.config import load_config

    extra = [f"output_dir={tmp_path}"] if tmp_path is not None else []
    return load_config(
        ROOT / "configs" / "tiny.yaml", [f"data.train=[{{path: {DATA}}}]", *extra, *overrides]
    )


def build_tiny_classifier(seed: int = 0):
    """(model, tokenizer): the tiny BERT of configs/tiny.yaml, untrained, seeded."""
    import torch

    from stance.data.segment import split_sentences
    from stance.kinds.backbones import build_tiny

    cfg = tiny_config()
    torch.manual_seed(seed)
    texts = [split for p in sorted(SEEDS.glob("*.txt")) for split in split_sentences(p.read_text())]
    return build_tiny(cfg.model, [cfg.data.claim, *texts])


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A save_pretrained directory of an untrained tiny classifier (shared, read-only)."""
    model, tokenizer = build_tiny_classifier()
    path = tmp_path_factory.mktemp("tiny-model")
    model.config.stance_claim = tiny_config().data.claim
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


class FakeEmbedder:
    """Bag-of-words hashing vectors, L2-normalised: cosine = word overlap, no model at all.

    Stands in for the MiniLM sentence embedder (stance.inference.relevance) in tests.
    """

    dim = 512

    def encode(self, texts):
        import re
        import zlib

        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[i, zlib.crc32(word.encode()) % self.dim] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


@pytest.fixture(autouse=True)
def fake_embedder(request, monkeypatch):
    """In-process tests judge relevance with FakeEmbedder unless marked `minilm`."""
    if request.node.get_closest_marker("minilm") is None:
        monkeypatch.setattr("stance.inference.relevance.MiniLMEmbedder", FakeEmbedder)
