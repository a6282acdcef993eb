"""Test doubles for `stance annotate`: a keyword embedder and fixed-probability scorers."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

# Cues from data/ANNOTATION.md, so a head on these features learns something real.
CUES = (
    ("return", "bases", "completed", "leaving", "pullback", "footage", "withdraw"),
    ("no sign", "evidence", "yet to", "not", "remain", "verify", "more troops"),
    ("talks", "diplomacy", "said", "meeting", "war", "president"),
)


class KeywordEmbedder:
    """Cue counts plus a few hashed word buckets; counts how many texts it embedded."""

    def __init__(self, buckets: int = 8):
        self.buckets = buckets
        self.embedded = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded += len(texts)
        out = np.zeros((len(texts), len(CUES) + self.buckets), dtype=np.float32)
        for i, text in enumerate(texts):
            low = text.lower()
            for k, cues in enumerate(CUES):
                out[i, k] = sum(low.count(c) for c in cues)
            for word in low.split():
                out[i, len(CUES) + zlib.crc32(word.encode()) % self.buckets] += 0.2
        # Unit length, as MiniLM's are: the logistic head then converges in a few steps.
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)


class FixedScorer:
    """Probabilities looked up by text (uniform for unknown texts)."""

    def __init__(self, probs: dict[str, Sequence[float]]):
        self.probs = probs
        self.calls = 0

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        return np.array([self.probs.get(t, (1 / 3, 1 / 3, 1 / 3)) for t in texts])
