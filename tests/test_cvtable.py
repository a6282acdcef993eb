"""The CV table's out-of-fold probabilities and scores, on the tiny few-shot model."""

import sys

import numpy as np
import pytest
from conftest import DATA, ROOT

from stance.errors import ConfigError
from stance.evaluation.cvfolds import Setting, load_rows
from stance.evaluation.cvreport import article_scores, pearson, score
from stance.evaluation.cvtable import recipe_oof

CONFIG = str(ROOT / "configs" / "tiny-fewshot.yaml")
OVERRIDES = [f"data.train=[{{path: {DATA}}}]", "fewshot.context_weight=0.3", "train.epochs=1"]
# lpft-top's settings on the tiny body (2 layers: the lowest one frozen).
TOP_RECIPE = ["fewshot.adapt=lpft", "fewshot.freeze_layers=1", "train.epochs=1", "train.lr=1e-3"]


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
        len(list(cache.glob("oof-tuned-*.npz"))) == 3
    )  # one per fold and len(list(cache.glob("emb-*.npz"))) == 1
    import stance.kinds.sentence_model

    # would fail if called:
    monkeypatch.setattr(stance.kinds.sentence_model, "train_sentence_model", None)
    again = recipe_oof(setting, rows, "lpft", cache, {})
    np.testing.assert_array_equal(again.probs, done["lpft"].probs)
    # the tiny config already trains as recipe `lpft` does: `config` reads the same folds
    same = recipe_oof(setting, rows, "config", cache, {})
    np.testing.assert_array_equal(same.probs, done["lpft"].probs)


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
    assert "Against the frozen body on the same folds" in text  # the spread table
    assert "| seeds | frozen | +0.000 | +0.000 to +0.000 |" in text


# ---------------------------------------------------------------- --folds K and top-layer recipes


def test_deal_folds_keeps_whole_articles_round_robin():
    from stance.evaluation.cvfolds import deal_folds

    ids = ["w02", "000", "w01", "003", "w03"]
    assert deal_folds(ids, 2) == [["000", "w01", "w03"], ["003", "w02"]]
    assert (
        deal_folds(ids, 0) == deal_folds(ids, 5) == deal_folds(ids, 9) == [[g] for g in sorted(ids)]
    )


def test_fold_masks_hold_out_whole_articles_and_score_only_scored_rows():
    from stance.evaluation.cvfolds import Rows, deal_folds, fold_ids, fold_masks, held_out_groups

    groups = np.array(["000", "000", "000", "w01", "w01", "w02", "w-stmt", "w-stmt", "003"])
    scored = np.array([True, True, False, True, True, True, False, False, True])  # variant, written
    n = len(groups)
    rows = Rows([""] * n, [""] * n, [""] * n, np.zeros(n, int), groups, scored, None)
    folds = deal_folds(held_out_groups(rows), 2)
    assert "w-stmt" not in sum(folds, [])  # written statements are never held out
    tested = np.zeros(n, int)
    for fold in folds:
        train, test = fold_masks(rows, fold)
        assert not set(groups[train]) & set(fold)  # the variant leaves with its article
        assert train[groups == "w-stmt"].all() and scored[test].all()
        tested += test
    np.testing.assert_array_equal(tested, scored.astype(int))  # each scored row once
    ids = fold_ids(rows, 2)
    assert len(ids) == scored.sum() and set(ids) == {0, 1}
    assert len(set(ids[groups[scored] == "000"])) == 1


@pytest.mark.parametrize("recipe", ["lpft-top", "setfit-top"])
def test_top_recipes_on_dealt_folds(recipe, tmp_path, monkeypatch):
    import stance.evaluation.cvtop as cvtop

    monkeypatch.setitem(cvtop.TOP, recipe, [*cvtop.TOP[recipe], "fewshot.freeze_layers=1"])
    setting = Setting(CONFIG, OVERRIDES)
    rows = load_rows(setting.cfg)
    done: dict = {}
    oof = recipe_oof(setting, rows, recipe, tmp_path, done, folds=2)
    p = oof.probs
    assert p.shape == (int(rows.scored.sum()), 3) and np.allclose(p.sum(1), 1.0)
    names = sorted(x.name.rsplit("-", 1)[1] for x in tmp_path.glob(f"oof-{recipe}-*.npz"))
    assert names == ["000+004.npz", "003.npz"]  # two folds of whole articles
    frozen = recipe_oof(setting, rows, "frozen", tmp_path, done, folds=2)
    assert not np.allclose(frozen.probs, p)  # the top layers were tuned
    assert list(tmp_path.glob("oof-frozen-*-i5-k2.npz"))


@pytest.mark.parametrize(
    ("extra", "same_as"),
    [
        (["fewshot.adapt=none"], "frozen"),
        (["fewshot.adapt=none", "fewshot.calibrate=true"], "frozen+cal"),
    ],
    ids=["frozen", "calibrated"],
)
def test_recipe_config_of_a_frozen_body_is_its_frozen_recipe(extra, same_as, tmp_path):
    # `make train` prints recipe `config` beside the frozen baseline.
    setting = Setting(CONFIG, [*OVERRIDES, *extra])
    done: dict = {}
    own = recipe_oof(setting, load_rows(setting.cfg), "config", tmp_path, done, 2)
    assert own is done[same_as] and set(done) == {same_as, "config"}


@pytest.mark.parametrize(("cache", "route"), [("true", "top_oof"), ("false", "tuned_oof")])
def test_recipe_config_of_lpft_trains_as_the_config_does(cache, route, tmp_path, monkeypatch):
    import stance.evaluation.cvtable as cvtable

    calls = []
    monkeypatch.setattr(cvtable, route, lambda *a, **k: calls.append(a) or "probs")
    setting = Setting(CONFIG, [*OVERRIDES, *TOP_RECIPE, f"fewshot.cache_frozen={cache}"])
    assert recipe_oof(setting, load_rows(setting.cfg), "config", tmp_path, {}, 2) == "probs"
    assert len(calls) == 1 and calls[0][2] == "config"  # no overrides: the config as it is
    assert "config" not in cvtable.TOP and "config" not in cvtable.TUNED


def test_recipe_config_refuses_a_calibrated_tuned_body(tmp_path):
    setting = Setting(CONFIG, [*OVERRIDES, "fewshot.calibrate=true"])  # tiny: adapt lpft
    with pytest.raises(ConfigError, match="calibrated"):
        recipe_oof(setting, load_rows(setting.cfg), "config", tmp_path, {}, 2)


def test_spread_against_the_baseline():
    from stance.evaluation.cvreport import macro_f1, spread
    from stance.metrics import compute_metrics

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60)
    groups = np.repeat([f"a{i}" for i in range(6)], 10)
    base = rng.dirichlet(np.ones(3), 60)
    better = base.copy()
    better[np.arange(60), labels] += 1.0
    preds = base.argmax(-1)
    assert macro_f1(preds, labels) == pytest.approx(compute_metrics(preds, labels)["macro_f1"])
    same = spread(base, base, labels, groups, np.arange(60) % 3, resamples=200)
    assert same.delta == same.low == same.high == 0 and same.per_fold == same.base_per_fold
    up = spread(better, base, labels, groups, np.arange(60) % 3, resamples=200)
    assert up.delta > 0 and up.low > 0 and len(up.per_fold) == 3
