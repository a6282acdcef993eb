"""The suggestion learners: a balanced logistic head on cached embeddings, a model scorer."""

from __future__ import annotations

import numpy as np
import pytest
from annotate_fakes import KeywordEmbedder

from stance.annotate.learner import CachedEmbedder, LogisticHead, ModelScorer, PriorScorer
from stance.labels import LABELS

TEXTS = [
    "Troops are returning to their bases after the drills.",
    "Footage shows a column leaving Crimea.",
    "There is no sign of a pullback, and we have yet to see evidence.",
    "More troops remain near the border, not fewer.",
    "The president said talks should continue.",
    "A meeting of diplomats is planned for Friday.",
]
LABELLED = ["supports", "supports", "doubts", "doubts", "neutral", "neutral"]


def test_head_learns_the_cues_and_reports_labels_order():
    scorer = LogisticHead(KeywordEmbedder(), c=10.0).fit(TEXTS, LABELLED)
    probs = scorer.predict_proba(TEXTS)
    assert probs.shape == (6, len(LABELS))
    assert probs.sum(axis=1) == pytest.approx(np.ones(6))
    assert [LABELS[k] for k in probs.argmax(axis=1)] == LABELLED


def test_labels_never_seen_get_probability_zero():
    scorer = LogisticHead(KeywordEmbedder()).fit(TEXTS[:4], LABELLED[:4])
    probs = scorer.predict_proba(TEXTS)
    assert (probs[:, LABELS.index("neutral")] == 0).all()


def test_one_label_gives_the_prior():
    scorer = LogisticHead(KeywordEmbedder()).fit(TEXTS[:2], ["doubts", "doubts"])
    assert isinstance(scorer, PriorScorer)
    assert scorer.predict_proba(TEXTS[:3]).tolist() == [[0.0, 1.0, 0.0]] * 3


def test_each_text_is_embedded_once():
    fake = KeywordEmbedder()
    head = LogisticHead(fake)
    head.prepare(TEXTS)
    for _ in range(3):
        head.fit(TEXTS, LABELLED).predict_proba(TEXTS)
    assert fake.embedded == len(TEXTS)
    cached = CachedEmbedder(fake)
    assert cached.encode(["x", "x", "y"]).shape == (3, 11) and fake.embedded == len(TEXTS) + 2


def test_a_run_directory_scores_sentences(tiny_model_dir):
    from stance.inference.engine import StancePredictor

    scorer = ModelScorer(StancePredictor(tiny_model_dir, claim="The bridge is closed."))
    probs = scorer.predict_proba(TEXTS)
    assert probs.shape == (6, 3) and probs.sum(axis=1) == pytest.approx(np.ones(6), abs=1e-5)
