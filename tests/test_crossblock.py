"""The cross-block test of written hard cases (stance.evaluation.crossblock) on the tiny body."""

import json

import numpy as np
import pytest
from conftest import DATA, ROOT

from stance.evaluation.crossblock import HARD_TOPICS, cross_block, markdown
from stance.evaluation.cvfolds import Setting, load_rows

CONFIG = str(ROOT / "configs" / "tiny-fewshot.yaml")
WRITTEN = "data/withdrawal-written.jsonl"
TARGETED = "data/withdrawal-targeted.jsonl"
TRAIN = f"data.train=[{{path: {DATA}}}, {{path: {WRITTEN}, cv_score: false}}, " + (
    f"{{path: {TARGETED}, cv_score: false}}]"
)


@pytest.fixture(scope="module")
def setting():
    return Setting(CONFIG, [TRAIN, "fewshot.context_weight=0.3", "train.epochs=1"])


def test_sources_name_each_rows_file(setting):
    rows = load_rows(setting.cfg)
    src = rows.sources
    assert len(src) == len(rows.texts)
    for path in (WRITTEN, TARGETED):
        lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
        assert (src == path).sum() == len(lines)


def test_each_block_is_scored_on_base_and_on_base_plus_the_other(setting, tmp_path):
    scores = cross_block(setting, (WRITTEN, TARGETED), ["frozen"], tmp_path)
    assert [(s.test, s.train) for s in scores] == [
        (WRITTEN, "base"),
        (WRITTEN, f"base + `{TARGETED}`"),
        (TARGETED, "base"),
        (TARGETED, f"base + `{WRITTEN}`"),
    ]
    for s in scores:
        rows = [json.loads(x) for x in (ROOT / s.test).read_text().splitlines()]
        assert s.right["all"][1] == len(rows)
        for t in HARD_TOPICS:  # each hard topic counted from the block's own rows
            assert s.right[t][1] == sum(r["topic"] == t for r in rows)
            assert 0 <= s.right[t][0] <= s.right[t][1] and s.false_doubts[t] <= s.right[t][1]
        assert 0.0 <= s.macro_f1 <= 1.0
    # Adding the other block changes what the head learnt.
    assert scores[0].right != scores[1].right or scores[0].macro_f1 != scores[1].macro_f1
    table = markdown(scores)
    assert table.count("\n") == len(scores) + 1 and "rebuttal" in table


def test_a_top_layer_recipe_runs_the_same_splits(setting, tmp_path, monkeypatch):
    # The top-layer fitter itself is tested in test_cvtable; here: its routing and splits.
    import stance.evaluation.cvtop as cvtop

    calls = []

    def fitter(setting_, rows, recipe, cache_dir):
        def fit(train, test):
            calls.append((recipe, len(train), len(test)))
            return np.tile([0.2, 0.3, 0.5], (len(test), 1))

        return setting_.cfg, fit

    monkeypatch.setattr(cvtop, "top_fitter", fitter)
    scores = cross_block(setting, (WRITTEN, TARGETED), ["lpft-top"], tmp_path)
    assert len(scores) == 4 and {s.recipe for s in scores} == {"lpft-top"}
    sizes = {b: len((ROOT / b).read_text().splitlines()) for b in (WRITTEN, TARGETED)}
    assert [c[2] for c in calls] == [sizes[WRITTEN]] * 2 + [sizes[TARGETED]] * 2
    base = calls[0][1]
    assert [c[1] for c in calls] == [base, base + sizes[TARGETED], base, base + sizes[WRITTEN]]
    for s in scores:  # every row called neutral: right = the block's neutral rows, no doubts
        rows = [json.loads(x) for x in (ROOT / s.test).read_text().splitlines()]
        assert s.right["all"][0] == sum(r["label"] == "neutral" for r in rows)
        assert s.false_doubts["all"] == 0
