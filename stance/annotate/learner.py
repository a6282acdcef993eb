"""Suggestion models behind one small interface, so another model kind can replace them.

    scorer = learner.fit(texts, labels)        # labels: names from stance.labels.LABELS
    probs = scorer.predict_proba(texts)        # (N, len(LABELS)), columns in LABELS order

`LogisticHead` is the default learner: a class-balanced logistic regression on frozen
sentence embeddings. The embedder is injected (`MiniLMEmbedder`, the bundled
all-MiniLM-L6-v2, in the tool; a tiny fake in tests) and wrapped in `CachedEmbedder`, so each
sentence is embedded once per session and a refit takes well under a second. `ModelScorer` turns a
trained run directory (`StancePredictor`) into a scorer for the first suggestions.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..labels import LABEL2ID, LABELS

logger = logging.getLogger(__name__)


class Scorer(Protocol):
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...


class Learner(Protocol):
    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> Scorer: ...


class Embedder(Protocol):
    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class MiniLMEmbedder:
    """Sentence embeddings of the bundled all-MiniLM-L6-v2 (offline; loaded on first use)."""

    def __init__(self, path: str | Path | None = None, batch_size: int = 64):
        self.path = path
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:  # one forward at a time; sentence-transformers is not re-entrant
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                from ..kinds.backbones import minilm_path

                self._model = SentenceTransformer(str(self.path or minilm_path()), device="cpu")
            vectors = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)


class CachedEmbedder:
    """Embeds each distinct text once; later calls read the cache (thread-safe)."""

    def __init__(self, embedder: Embedder):
        self.embedder = embedder
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            vectors = self.embedder.encode(missing)
            with self._lock:
                self._cache.update(zip(missing, vectors, strict=True))
        with self._lock:
            return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 0))

    def __len__(self) -> int:
        return len(self._cache)


class PriorScorer:
    """Label frequencies for every text: what one can say before two labels differ."""

    def __init__(self, labels: Sequence[str]):
        counts = Counter(labels)
        self.probs = np.array([counts[name] for name in LABELS], dtype=np.float64)
        self.probs /= max(1.0, self.probs.sum())

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return np.tile(self.probs, (len(texts), 1))


class HeadScorer:
    """A fitted classifier on embeddings; labels it never saw get probability 0."""

    def __init__(self, embedder: Embedder, classifier: Any):
        self.embedder = embedder
        self.classifier = classifier

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        probs = np.zeros((len(texts), len(LABELS)))
        if len(texts):
            fitted = self.classifier.predict_proba(self.embedder.encode(texts))
            probs[:, self.classifier.classes_] = fitted
        return probs


class LogisticHead:
    """Class-balanced logistic regression on (cached) sentence embeddings."""

    def __init__(self, embedder: Embedder, c: float = 1.0):
        self.embedder = (
            embedder if isinstance(embedder, CachedEmbedder) else CachedEmbedder(embedder)
        )
        self.c = c

    def prepare(self, texts: Sequence[str]) -> None:
        """Embed the texts ahead of time, so later fits and scores only read the cache."""
        self.embedder.encode(texts)

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> Scorer:
        if len(set(labels)) < 2:
            return PriorScorer(labels)
        from sklearn.linear_model import LogisticRegression

        # Balanced weights: a handful of `supports` among many `doubts` still moves the head.
        classifier = LogisticRegression(C=self.c, class_weight="balanced", max_iter=2000)
        classifier.fit(self.embedder.encode(texts), [LABEL2ID[label] for label in labels])
        return HeadScorer(self.embedder, classifier)


class ModelScorer:
    """A trained run directory (anything `StancePredictor` loads) as a scorer."""

    def __init__(self, predictor: Any):
        self.predictor = predictor

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.predictor.classify(list(texts)), dtype=np.float64)
