"""The active-learning queue: least margin first, random share, re-ranking, never twice."""

from __future__ import annotations

import numpy as np
import pytest

from stance.annotate.active import RANDOM, UNCERTAIN, ActiveQueue, margins

# Margins 0.8, 0.0, 0.4, 0.1, 0.6 for items 0..4.
PROBS = np.array(
    [[0.9, 0.1, 0.0], [0.4, 0.4, 0.2], [0.6, 0.2, 0.2], [0.45, 0.35, 0.2], [0.7, 0.1, 0.2]]
)


def test_margin_is_top_one_minus_top_two():
    assert margins(PROBS) == pytest.approx([0.8, 0.0, 0.4, 0.1, 0.5])


def test_least_margin_first_and_never_twice():
    q = ActiveQueue(5, random_share=0.0)
    q.set_probs(PROBS)
    picks = []
    while (pick := q.pick()) is not None:
        assert pick[1] == UNCERTAIN
        picks.append(pick[0])
        q.mark(pick[0])
    assert picks == [1, 3, 2, 4, 0]
    assert q.left == 0


def test_unscored_picks_are_random_and_cover_everything_once():
    q = ActiveQueue(50, random_share=0.0, seed=3)
    picks = []
    while (pick := q.pick()) is not None:
        assert pick[1] == RANDOM
        picks.append(pick[0])
        q.mark(pick[0])
    assert sorted(picks) == list(range(50)) and picks != list(range(50))


@pytest.mark.parametrize("share", [0.0, 0.2, 0.5, 1.0])
def test_random_share_is_honoured(share):
    q = ActiveQueue(5, random_share=share, seed=1)
    q.set_probs(PROBS)
    draws = [q.pick() for _ in range(4000)]  # nothing marked: every draw is a fresh choice
    random_share = sum(why == RANDOM for _, why in draws) / len(draws)
    assert random_share == pytest.approx(share, abs=0.03)
    if share < 1.0:
        assert all(i == 1 for i, why in draws if why == UNCERTAIN)


def test_re_ranking_after_retrain_changes_the_next_pick():
    q = ActiveQueue(5, random_share=0.0)
    q.set_probs(PROBS)
    assert q.pick() == (1, UNCERTAIN)
    q.mark(1)
    assert q.pick() == (3, UNCERTAIN)
    retrained = PROBS.copy()
    retrained[3] = [1.0, 0.0, 0.0]  # the new head is sure about item 3 ...
    retrained[0] = [0.5, 0.4, 0.1]  # ... and unsure about item 0
    q.set_probs(retrained)
    assert q.pick() == (0, UNCERTAIN)
    q.mark(1, done=False)  # undone: askable again, and the least sure
    assert q.pick() == (1, UNCERTAIN)


def test_ties_are_broken_by_a_seeded_permutation():
    orders = set()
    for seed in range(6):
        q = ActiveQueue(20, random_share=0.0, seed=seed)
        q.set_probs(np.full((20, 3), 1 / 3))
        order = []
        while (pick := q.pick()) is not None:
            order.append(pick[0])
            q.mark(pick[0])
        orders.add(tuple(order))
    assert len(orders) > 1


def test_bad_arguments():
    with pytest.raises(ValueError):
        ActiveQueue(3, random_share=1.5)
    with pytest.raises(ValueError):
        ActiveQueue(3).set_probs(PROBS)
