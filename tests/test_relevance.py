"""Tests for stance.inference.relevance: furniture cues, thresholding, the predictor hook."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FakeEmbedder

from benchmarks.relevance import (
    LabelledArticle,
    Scored,
    best_rule,
    cost,
    cv_fit,
    labelled_articles,
    pr_row,
    recall_threshold,
    youden_threshold,
)
from stance.inference.relevance import (
    THRESHOLD,
    RelevanceScorer,
    article_cues,
    context_scores,
    furniture_cue,
)
from stance.labels import DEFAULT_CLAIM

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


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
        # issue 26: wire and web furniture (bylines, datelines, credits, sections, tags)
        ("By Kyiv Bureau, Wire Service", "byline"),
        ("By Our Defence Editor", "byline"),
        ("(Reporting by the Kyiv bureau; Editing by the news desk)", "byline"),
        ("By Tuesday, most of the units had left.", None),
        ("Thursday 17 February 2022 09:15 GMT", "dateline"),
        ("KHARKIV, Ukraine - 19 February 2022", "dateline"),
        ("Updated 11:02 AM ET, Wed February 16, 2022", "dateline"),
        ("Ministry of Defence handout", "photo credit"),
        ("Pool photo via a wire service", "photo credit"),
        ("Tags: Russia, Ukraine, drills", "tags"),
        ("World | Europe", "section"),
        ("Analysis", "section"),
        ("Russia Says Troops Are Going Home", None),
        ("More from Business", "read more"),
        ("Follow our live coverage of the talks", "read more"),
        ("Moscow announced the move on 16 February.", None),
    ],
)
def test_furniture_cues(text, cue):
    assert furniture_cue(text) == cue


def test_a_repeated_sentence_is_furniture():
    cues = article_cues(["Headline here", "Advertisement", "Headline here", "Body text."])
    assert cues == [None, "advertisement", "repeated", None]


def test_threshold_and_cues_decide_on_claim():
    scorer = RelevanceScorer(
        FakeEmbedder(), "Russia is withdrawing troops", threshold=0.3, context_weight=0.0
    )
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


def test_context_scores_blend_the_neighbours_within_the_window():
    sims = np.array([1.0, 0.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(context_scores(sims, 0.0), sims)
    # sentence 1's neighbours within 2: 0, 2, 3 -> mean 1/3; sentence 4's: 2, 3 -> 0
    out = context_scores(sims, 0.5, window=2)
    np.testing.assert_allclose(out, [0.5, 1 / 6, 1 / 8, 0.0, 0.0], atol=1e-6)
    assert context_scores(np.array([0.4]), 0.75).tolist() == pytest.approx([0.4])


def test_a_reply_among_claim_sentences_is_kept_and_an_off_topic_article_dropped():
    """The issue's failure: context-only doubts were dropped at the cosine alone."""
    claim = "Russia is withdrawing troops"
    on_topic = ["Russia is withdrawing troops, Moscow said.", "We have heard it before."]
    off_topic = ["Brent crude slipped 2 percent.", "The rouble strengthened slightly."]
    alone = RelevanceScorer(FakeEmbedder(), claim, threshold=0.2, context_weight=0.0)
    blended = RelevanceScorer(FakeEmbedder(), claim, threshold=0.2, context_weight=0.75)
    assert alone.judge([on_topic])[0].on_claim.tolist() == [True, False]
    assert blended.judge([on_topic])[0].on_claim.tolist() == [True, True]
    assert blended.judge([off_topic])[0].on_claim.tolist() == [False, False]
    assert blended.settings()["context_weight"] == 0.75


def _scored(aid, sims, on, stance):
    art = LabelledArticle(aid, [f"s{i}" for i in range(len(sims))], on, stance)
    return Scored(art, np.array(sims, dtype=np.float32), np.ones(len(sims), dtype=bool))


def test_cost_weights_a_dropped_stance_sentence_above_a_kept_off_claim_one():
    on = np.array([True, True, False])
    stance = np.array([True, False, False])
    assert cost(np.array([False, True, False]), on, stance) == 3  # stance dropped
    assert cost(np.array([True, False, False]), on, stance) == 1  # neutral dropped
    assert cost(np.array([True, True, True]), on, stance) == 1  # off-claim kept


def test_best_rule_and_whole_article_cv():
    arts = [
        _scored("a", [0.5, 0.4, 0.1], [True, True, False], [True, False, False]),
        _scored("b", [0.6, 0.05, 0.0], [True, False, False], [True, False, False]),
        _scored("c", [0.45, 0.2, 0.02], [True, True, False], [False, True, False]),
    ]
    w, t = best_rule(arts, weights=(0.0,))
    assert w == 0.0 and 0.1 < t <= 0.3  # keeps every on-claim sentence, drops the rest
    kept, rules = cv_fit(arts, weights=(0.0,))
    assert kept.shape == (9,) and [r[0] for r in rules] == ["a", "b", "c"]
    # c judged by the rule fitted on a and b (cut 0.25, midway 0.1-0.4) loses its 0.2
    assert (
        kept.tolist()[6:] == [True, False, False]
        and kept[:6].tolist() == [True] * 2 + [False] + [True] + [False] * 2
    )


def test_the_labelled_relevance_set():
    """Seeds (skip = off) plus the written set; >= 60 off-topic sentences, whole articles."""
    arts = labelled_articles(
        [ROOT / "data" / "withdrawal.jsonl", ROOT / "data" / "relevance-offtopic.jsonl"]
    )
    on = [o for a in arts for o in a.on]
    assert len(on) - sum(on) >= 60 + 11
    assert len({a.article_id for a in arts}) == len(arts) >= 12
    assert sum(s for a in arts for s in a.stance) > 60


def test_fitting_rules():
    sims = np.array([0.9, 0.8, 0.7, 0.05, 0.1, 0.2, 0.0])
    on = np.array([True, True, True, True, False, False, False])
    assert youden_threshold(sims, on) == pytest.approx(0.45)  # drops one on-claim pair
    assert recall_threshold(sims, on, 1.0) == 0.05  # keeps every on-claim pair
    row = pr_row("x", sims >= 0.05, on)
    assert row[:3] == ["x", 7, 4] and row[4] == "1.000"  # on-claim recall


def test_predictor_rows_carry_relevance(tiny_model_dir):
    from stance.predict.run import StancePredictor

    pred = StancePredictor(tiny_model_dir, device="cpu", relevance=FakeEmbedder())
    # two articles: a sentence's neighbours are its own article's (stance.inference.relevance)
    rows = pred.predict(["Russia is withdrawing its troops. Advertisement", "Sunny in London."])
    assert [r.on_claim for r in rows] == [True, False, False]
    assert rows[1].furniture == "advertisement" and rows[2].furniture is None
    assert rows[0].claim_similarity > THRESHOLD > rows[2].claim_similarity
    off = StancePredictor(tiny_model_dir, device="cpu")
    assert off.predict(["Sunny in London."])[0].on_claim is None  # not judged


@pytest.mark.minilm
def test_bundled_minilm_separates_furniture_and_off_topic_text():
    """The real embedder with the fitted threshold: the issue's examples are left out."""
    from stance.inference.relevance import load_scorer

    scorer = load_scorer(DEFAULT_CLAIM)
    sents = [
        "Russia says some units are returning to their bases after drills near Ukraine.",
        "Western officials saw no evidence that Russian troops are pulling back from Ukraine.",
        "Advertisement",
        "READ MORE: Vladimir Putin raged at NATO",
    ]
    (rel, weather) = scorer.judge([sents, ["Weather: sunny spells in London on Thursday."]])
    assert rel.on_claim.tolist() == [True, True, False, False]
    assert weather.on_claim.tolist() == [False]
    # the off-topic lines, as a market report of their own, are all left out; two
    # replies that bear on the claim only through the sentences around them are kept
    (market,) = scorer.judge([[
        "Brent crude slipped 2 percent on Tuesday as traders weighed the outlook for demand.",
        "The rouble strengthened slightly against the dollar in early trade.",
        "Gold rose 0.4 percent as the dollar weakened.",
        "The yen weakened for the first time this month.",
    ]])  # fmt: skip
    assert not market.on_claim.any()
    (reply,) = scorer.judge([[
        "Russia says some units are returning to their bases after drills near Ukraine.",
        "Western officials said they saw no sign of the troops pulling back.",
        '"We have not seen any reduction on the ground," one of them said.',
        '"We have been told this kind of thing before," he added.',
    ]])  # fmt: skip
    assert reply.on_claim.tolist() == [True, True, True, True]
    vecs = scorer.embedder.encode(sents[:2])
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_a_repeated_sentence_is_embedded_once() -> None:
    class Counting(FakeEmbedder):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[str] = []

        def encode(self, texts):
            self.seen += list(texts)
            return super().encode(texts)

    embedder = Counting()
    scorer = RelevanceScorer(embedder, DEFAULT_CLAIM)
    embedder.seen.clear()
    sentences = ["Troops are leaving.", "Markets rose.", "Troops are leaving.", "Markets rose."]
    sims = scorer.similarity(sentences)
    assert embedder.seen == sentences[:2]
    np.testing.assert_array_equal(sims, np.tile(scorer.similarity(sentences[:2]), 2))
