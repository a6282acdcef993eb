"""The CV table's out-of-fold probabilities and scores, on the tiny few-shot model."""

import sys

import numpy as np
import pytest
from conftest import DATA, ROOT

from stance.evaluation.cvreport import article_scores, pearson, score
from stance.evaluation.cvtable import Setting, load_rows, recipe_oof

CONFIG = str(ROOT / "configs" / "tiny-fewshot.yaml")
OVERRIDES = [f"data.train=[{{path: {DATA}}}]", "fewshot.context_weight=0.3", "train.epochs=1"]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cvcache")
    setting = Setting(CONFIG, OVERRIDES)
    rows = load_rows(setting.cfg)
    done: dict = {}
    for recipe in ("frozen", "frozen+cal", "ensemble"):
        recipe_oof(setting, rows, recipe, cache, done)
    return setting, rows, done, cache


def test_every_scored_row_gets_held_out_probabilities(table):
    _, rows, done, _ = table
    n = int(rows.scored.sum())
    for recipe in ("frozen", "frozen+cal", "lpft", "ensemble"):
        p = done[recipe].probs
        assert p.shape == (n, 3) and np.allclose(p.sum(1), 1.0)
    np.testing.assert_allclose(
        done["ensemble"].probs, (done["frozen"].probs + done["lpft"].probs) / 2
    )
    assert not np.allclose(done["frozen"].probs, done["frozen+cal"].probs)


def test_tuned_probabilities_are_cached_and_reused(table, monkeypatch):
    setting, rows, done, cache = table
    assert (
        len(list(cache.glob("oof-lpft-*.npz"))) == 3
    )  # one per fold and len(list(cache.glob("emb-*.npz"))) == 1
    import stance.kinds.sentence_model

    # would fail if called:
    monkeypatch.setattr(stance.kinds.sentence_model, "train_sentence_model", None)
    again = recipe_oof(setting, rows, "lpft", cache, {})
    np.testing.assert_array_equal(again.probs, done["lpft"].probs)


def test_scores_count_doubts_and_correlate_articles():
    labels = np.array([0, 0, 1, 1, 2, 2, 0, 1, 2])
    groups = np.array(["a", "a", "b", "b", "c", "c", "w1", "w1", "w1"])
    probs = np.eye(3)[[0, 1, 1, 1, 2, 1, 0, 1, 2]] * 0.9 + 0.1 / 3
    arts = article_scores(probs, labels, groups)
    assert arts["a"][1] == 1.0 and arts["b"][1] == -1.0 and arts["w1"][1] == 0.0
    s = score(probs, labels, groups)
    assert (s.doubts_predicted, s.doubts_true, s.articles) == (5, 3, 4)
    assert s.r_all is not None and s.r_seed is not None and s.r_seed != s.r_all
    assert pearson([1.0, 2.0], [1.0, 2.0]) is None  # too few points for an r


def test_script_writes_a_markdown_table(tmp_path, monkeypatch, capsys):
    sys.path.insert(0, str(ROOT / "scripts"))
    import cv_table

    out = tmp_path / "cv.md"
    argv = ["cv_table.py", "--data", f"seeds={CONFIG}", "--recipes", "frozen", "frozen+cal"]
    argv += ["--set", *OVERRIDES, "--output", str(out), "--cache-dir", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    cv_table.main()
    text = out.read_text()
    assert "cv_table.py" in text and "| seeds | frozen | 3 |" in text
    assert "| seeds | frozen+cal |" in text and text in capsys.readouterr().out
