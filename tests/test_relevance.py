"""Tests for stance.relevance: furniture cues, thresholding, the predictor hook."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FakeEmbedder

from benchmarks.relevance import pr_row, recall_threshold, youden_threshold
from stance.labels import DEFAULT_CLAIM
from stance.relevance import THRESHOLD, RelevanceScorer, article_cues, furniture_cue


@pytest.mark.parametrize(
    ("text", "cue"),
    [
        ("Advertisement", "advertisement"),
        ("  ADVERTISEMENT ", "advertisement"),
        ("READ MORE: Vladimir Putin raged at NATO", "read more"),
        ("More Stories", "read more"),
        ("Related: Five things to know", "read more"),
        ("{{}}", "template"),
        ("Hello {{ user.name }}", "template"),
        ("A convoy entered Crimea on January 18.Associated Press", "photo credit"),
        ("Photo: Jane Doe", "photo credit"),
        ("BREAKING", "all-caps teaser"),
        ("WATCH: TANKS ON THE MOVE", "read more"),
        ("Share this article", "share"),
        ("Troops are returning to their bases, the ministry said.", None),
        ("Related talks in Geneva made no progress.", None),  # "Related" as a word, not a label
        ("Images by Maxar show vehicles near the border.", None),
        ("NATO chief Jens Stoltenberg said he saw no sign of a pullback.", None),
    ],
)
def test_furniture_cues(text, cue):
    assert furniture_cue(text) == cue


def test_a_repeated_sentence_is_furniture():
    cues = article_cues(["Headline here", "Advertisement", "Headline here", "Body text."])
    assert cues == [None, "advertisement", "repeated", None]


def test_threshold_and_cues_decide_on_claim():
    scorer = RelevanceScorer(FakeEmbedder(), "Russia is withdrawing troops", threshold=0.3)
    sents = [
        "Russia is withdrawing troops from the border.",
        "Weather: sunny spells in London on Thursday.",
        "READ MORE: Russia is withdrawing troops",
    ]
    (rel,) = scorer.judge([sents])
    assert rel.on_claim.tolist() == [True, False, False]
    assert rel.similarity[0] > 0.3 > rel.similarity[1]
    assert rel.cues == [None, None, "read more"]
    assert scorer.judge([[]])[0].on_claim.shape == (0,)
    assert scorer.settings()["threshold"] == 0.3


def test_fitting_rules():
    sims = np.array([0.9, 0.8, 0.7, 0.05, 0.1, 0.2, 0.0])
    on = np.array([True, True, True, True, False, False, False])
    assert youden_threshold(sims, on) == pytest.approx(0.45)  # drops one on-claim pair
    assert recall_threshold(sims, on, 1.0) == 0.05  # keeps every on-claim pair
    row = pr_row("x", sims >= 0.05, on)
    assert row[:3] == ["x", 7, 4] and row[4] == "1.000"  # on-claim recall


def test_predictor_rows_carry_relevance(tiny_model_dir):
    from stance.predict import StancePredictor

    pred = StancePredictor(tiny_model_dir, device="cpu", relevance=FakeEmbedder())
    rows = pred.predict(["Russia is withdrawing its troops. Advertisement\nSunny in London."])
    assert [r.on_claim for r in rows] == [True, False, False]
    assert rows[1].furniture == "advertisement" and rows[2].furniture is None
    assert rows[0].claim_similarity > THRESHOLD > rows[2].claim_similarity
    off = StancePredictor(tiny_model_dir, device="cpu")
    assert off.predict(["Sunny in London."])[0].on_claim is None  # not judged


@pytest.mark.minilm
def test_bundled_minilm_separates_furniture_and_off_topic_text():
    """The real embedder with the fitted threshold: the issue's examples are left out."""
    from stance.relevance import load_scorer

    scorer = load_scorer(DEFAULT_CLAIM)
    sents = [
        "Russia says some units are returning to their bases after drills near Ukraine.",
        "Western officials saw no evidence that Russian troops are pulling back from Ukraine.",
        "Weather: sunny spells in London on Thursday.",
        "Advertisement",
        "READ MORE: Vladimir Putin raged at NATO",
    ]
    (rel,) = scorer.judge([sents])
    assert rel.on_claim.tolist() == [True, True, False, False, False]
    vecs = scorer.embedder.encode(sents[:2])
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
