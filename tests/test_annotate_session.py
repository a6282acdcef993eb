"""One annotation session: resume, undo, skip, background retraining and suggestions."""

from __future__ import annotations

import json

from annotate_fakes import FixedScorer, KeywordEmbedder
from conftest import SEEDS

from stance.annotate.learner import LogisticHead
from stance.annotate.sentences import read_sentences
from stance.annotate.session import AnnotationSession
from stance.annotate.store import LabelStore
from stance.data.statements import read_statements

CLAIM = "Russia is withdrawing its troops from near Ukraine's borders."
ORACLE = {
    r["id"]: ("skip" if r.get("skip") else r["label"])
    for r in map(json.loads, (SEEDS.parent / "data" / "withdrawal.jsonl").read_text().splitlines())
}


def make_session(path, **kwargs) -> AnnotationSession:
    sentences, failures = read_sentences([str(SEEDS)])
    assert not failures and len(sentences) == 74
    kwargs.setdefault("learner", LogisticHead(KeywordEmbedder()))
    session = AnnotationSession(sentences, LabelStore(path, CLAIM), **kwargs)
    session.start()
    return session


def label_next(session: AnnotationSession, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        item = session.state()["item"]
        session.label(item["id"], ORACLE[item["id"]])
        ids.append(item["id"])
    return ids


def test_the_ids_are_the_segmenters_so_they_match_the_seed_labels(tmp_path):
    session = make_session(tmp_path / "labels.jsonl")
    assert {s.id for s in session.sentences} == set(ORACLE)


def test_resume_never_asks_a_labelled_sentence_again(tmp_path):
    path = tmp_path / "labels.jsonl"
    first = label_next(make_session(path, seed=1), 20)
    resumed = make_session(path, seed=1)
    assert resumed.state()["progress"]["left"] == 54
    rest = label_next(resumed, 54)
    assert not set(first) & set(rest) and len(set(first + rest)) == 74
    assert resumed.state()["item"] is None
    statements = read_statements(path)
    assert len(statements.rows) == 63 and statements.skipped == 11
    assert {r["id"]: r["label"] for r in statements.rows} == {
        k: v for k, v in ORACLE.items() if v != "skip"
    }


def test_undo_shows_the_sentence_again_and_fixes_the_file(tmp_path):
    path = tmp_path / "labels.jsonl"
    session = make_session(path)
    first, second = label_next(session, 2)
    state = session.undo()
    assert state["undone"]["id"] == second and state["item"]["id"] == second
    assert state["item"]["why"] == "undo"
    session.label(second, "neutral")
    restarted = make_session(path)
    assert restarted.undo()["undone"] == {"id": second, "label": "neutral"}
    assert [json.loads(x)["id"] for x in path.read_text().splitlines()] == [first]


def test_skip_rows_are_counted_but_never_trained_on(tmp_path):
    session = make_session(tmp_path / "labels.jsonl", retrain_every=1)
    item = session.state()["item"]
    state = session.label(item["id"], "skip")
    assert state["progress"]["skipped"] == 1 and state["progress"]["labelled"] == 0
    session.wait_idle(10)
    assert session.fits == 0  # a skip is not a training label
    assert session._training_set() == ([], [])


def test_retraining_runs_in_the_background_and_re_ranks(tmp_path):
    session = make_session(tmp_path / "labels.jsonl", retrain_every=4, random_share=0.0)
    assert session.state()["item"]["suggestion"] is None
    label_next(session, 8)
    assert session.wait_idle(10)
    state = session.state()
    assert session.fits >= 1 and state["model"]["source"].startswith("head trained on")
    assert set(state["item"]["suggestion"]["probs"]) == {"supports", "doubts", "neutral"}
    # The sentence on screen stays; the next pick is the least-margin one among those left.
    state = session.label(state["item"]["id"], ORACLE[state["item"]["id"]])
    assert state["item"]["why"] == "uncertain"
    probs = session.probs
    top2 = sorted(probs[session.current[0]])[-2:]
    for i, s in enumerate(session.sentences):
        if s.id not in session.store:
            assert sorted(probs[i])[-1] - sorted(probs[i])[-2] >= top2[1] - top2[0] - 1e-12


def test_suggestions_start_from_a_model_until_a_head_is_trained(tmp_path):
    sentences, _ = read_sentences([str(SEEDS)])
    fixed = FixedScorer({s.text: (0.7, 0.2, 0.1) for s in sentences})
    session = make_session(tmp_path / "labels.jsonl", initial=("model m", fixed), learner=None)
    assert session.wait_idle(10)
    state = session.state()
    assert state["model"]["source"] == "model m"
    assert state["item"]["suggestion"] == {
        "label": "supports",
        "p": 0.7,
        "probs": {"supports": 0.7, "doubts": 0.2, "neutral": 0.1},
    }


def test_neighbours_come_from_the_same_article(tmp_path):
    session = make_session(tmp_path / "labels.jsonl")
    i = next(k for k, s in enumerate(session.sentences) if s.id == "003-00")
    item = session._item(i, "random")
    assert item["before"] == [] and len(item["after"]) == 2
    assert item["after"][0] == session.sentences[i + 1].text
