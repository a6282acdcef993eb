"""Calibration of a head's probabilities: a temperature and per-label bias offsets.

calibrated logits = log p / T + b, then softmax. T and b (b summed to 0: only differences
matter) minimise the negative log-likelihood of *out-of-fold* predictions: each training row
scored by a head that never saw its article (`oof_head_probs`), so the fit corrects the head's
habits on unseen articles (the doubt bias of issue #22), not its memory of training rows. It is
never fitted on a test split: `stance.evaluation.cvtable` fits it inside each outer training fold.

The run's config.json carries it as `stance_calibration` ({"temperature", "bias"}, bias in
LABELS order); the engine applies it to the logits after the article context.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from ..labels import LABELS

logger = logging.getLogger(__name__)

_EPS = 1e-9


@dataclass
class Calibration:
    temperature: float = 1.0
    bias: list[float] = field(default_factory=lambda: [0.0] * len(LABELS))

    def apply_logits(self, logits: np.ndarray) -> np.ndarray:
        """Logits (N, L) -> calibrated logits; a softmax of either gives probabilities."""
        return logits / self.temperature + np.asarray(self.bias, dtype=logits.dtype)

    def apply(self, probs: np.ndarray) -> np.ndarray:
        """Probabilities (N, L) -> calibrated probabilities."""
        return softmax(self.apply_logits(np.log(np.clip(probs, _EPS, 1.0))))

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> Calibration | None:
        if not d:
            return None
        return cls(temperature=float(d["temperature"]), bias=[float(b) for b in d["bias"]])


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def fit_calibration(
    probs: np.ndarray, labels: Sequence[int], temperature: bool = False
) -> Calibration:
    """b (and T with `temperature`) minimising the NLL of `labels` under softmax(log probs / T
    + b). T is off by default: on the few held-out articles of an inner CV it ran away (to
    over 100 on the seed folds, flattening every prediction to the prior); the offsets alone
    are the class-prior correction the doubt bias needs."""
    from scipy.optimize import minimize

    logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1.0))
    y = np.asarray(labels)
    k = logp.shape[1]

    def unpack(theta: np.ndarray) -> tuple[float, np.ndarray]:
        t = float(np.exp(theta[0])) if temperature else 1.0
        b = np.append(theta[1:], 0.0)
        return t, b - b.mean()

    def nll(theta: np.ndarray) -> float:
        t, b = unpack(theta)
        z = logp / t + b
        z = z - z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1))
        # A small ridge keeps offsets finite when a label is absent from `labels`.
        return float((lse - z[np.arange(len(y)), y]).mean() + 1e-2 * (theta**2).sum())

    res = minimize(nll, np.zeros(k), method="L-BFGS-B")
    t, b = unpack(res.x)
    cal = Calibration(temperature=round(t, 6), bias=[round(float(v), 6) for v in b])
    logger.info("calibration fitted on %d out-of-fold rows: %s", len(y), cal)
    return cal


def head_probs(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, c: float, seed: int
) -> np.ndarray:
    """Class-balanced logistic regression (the few-shot head) fitted and applied; (N, L)."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=5000, random_state=seed)
    clf.fit(x_train, y_train)
    out = np.full((len(x_test), len(LABELS)), _EPS)  # a label never seen: never predicted
    out[:, clf.classes_] = clf.predict_proba(x_test)
    return out / out.sum(axis=1, keepdims=True)


def oof_head_probs(
    plain: np.ndarray,
    mixed: np.ndarray,
    has_context: np.ndarray,
    y: np.ndarray,
    groups: Sequence[str],
    scored: np.ndarray,
    c: float,
    seed: int,
    context: bool,
    folds: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-group-out head probabilities of the `scored` rows: (probs, their labels).

    As the few-shot head: trained on every row alone and, with `context`, again in its
    article context (`mixed`) where it has one; held-out rows are scored in context. Rows with
    `scored` False (written statements, variants) only ever train; a group with no scored row
    is never held out. `folds` > 0: at most that many folds, whole groups dealt round-robin
    (fewer head fits when there are many articles; 0: one fold per group).
    """
    groups = np.asarray(groups)
    held = sorted(set(groups[scored]))
    k = min(folds, len(held)) if folds > 0 else len(held)
    fold_of = {g: i % k for i, g in enumerate(held)}
    fold = np.array([fold_of.get(g, -1) for g in groups])
    probs, gold = [], []
    for f in range(k):
        test = (fold == f) & scored
        train = fold != f
        x, yt = plain[train], y[train]
        if context and (has_context & train).any():
            x = np.vstack([x, mixed[has_context & train]])
            yt = np.concatenate([yt, y[has_context & train]])
        if len(set(yt)) < 2:
            continue
        probs.append(head_probs(x, yt, mixed[test], c, seed))
        gold.append(y[test])
    if not probs:
        return np.zeros((0, len(LABELS))), np.zeros(0, dtype=int)
    return np.vstack(probs), np.concatenate(gold)
