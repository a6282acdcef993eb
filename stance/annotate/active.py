"""Active learning: which sentence to ask next.

Least margin first: the sentence whose top two probabilities are closest is the one the
current model is least sure about, so its label teaches the most. A share of the picks
(`random_share`) is drawn uniformly from what is left instead, so the labels also follow
the data as it is (pure uncertainty sampling over-collects near-ties and under-collects the
easy majority, which biases both training and any evaluation on the labels). Ties, and the
order before any model has scored the sentences, follow a seeded random permutation, so a
cold start is a random sample too, not the first article's opening lines.
"""

from __future__ import annotations

import random

import numpy as np

UNCERTAIN = "uncertain"
RANDOM = "random"


def margins(probs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability per row (0: a tie, 1: certain)."""
    top2 = np.sort(np.asarray(probs, dtype=np.float64), axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


class ActiveQueue:
    """Picks among `n` items by index; `done` items are never picked again."""

    def __init__(self, n: int, random_share: float = 0.2, seed: int = 0):
        if not 0.0 <= random_share <= 1.0:
            raise ValueError(f"random_share must be in [0, 1], got {random_share}")
        self.n = n
        self.random_share = random_share
        self._rng = random.Random(seed)
        self._tiebreak = np.array(self._rng.sample(range(n), n), dtype=np.int64).argsort()
        self._margin = np.zeros(n)
        self.scored = False
        self.done = np.zeros(n, dtype=bool)

    def set_probs(self, probs: np.ndarray) -> None:
        """Re-rank by a model's probabilities (N, labels) for every item."""
        if len(probs) != self.n:
            raise ValueError(f"expected probabilities for {self.n} items, got {len(probs)}")
        self._margin = margins(probs)
        self.scored = True

    def mark(self, index: int, done: bool = True) -> None:
        self.done[index] = done

    @property
    def left(self) -> int:
        return int(self.n - self.done.sum())

    def pick(self) -> tuple[int, str] | None:
        """(index, why: `uncertain` or `random`) of the next item; None when all are done."""
        left = np.flatnonzero(~self.done)
        if not len(left):
            return None
        if not self.scored or self._rng.random() < self.random_share:
            return int(left[self._rng.randrange(len(left))]), RANDOM
        order = np.lexsort((self._tiebreak[left], self._margin[left]))
        return int(left[order[0]]), UNCERTAIN
