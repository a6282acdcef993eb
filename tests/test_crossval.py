"""stance.evaluation.crossval (the README's headline number) with the tiny cross-encoder."""

import json
from collections import Counter

import pytest
from conftest import DATA, ROOT, tiny_config

import stance.evaluation.crossval as crossval
from stance.cli import main
from stance.data.statements import load_statements
from stance.metrics import compute_metrics


@pytest.fixture(scope="module")
def report_and_folds():
    """A 2-seed report, and the training groups each fold-seed run was given."""
    seen: list[tuple[set, set]] = []
    real = crossval.train_and_predict

    def spy(cfg, train_ds, test_ds):
        seen.append((set(train_ds["group"]), set(test_ds["group"])))
        return real(cfg, train_ds, test_ds)

    crossval.train_and_predict = spy
    try:
        report = crossval.cross_validate(tiny_config(None, "train.epochs=1"), seeds=2)
    finally:
        crossval.train_and_predict = real
    return report, seen


def test_every_article_is_held_out_once_per_seed_and_never_trained_on(report_and_folds):
    report, seen = report_and_folds
    ds = load_statements(DATA)
    groups = sorted(set(ds["group"]))
    assert [(r["fold"], r["seed"]) for r in report["runs"]] == [
        (g, s) for g in groups for s in (0, 1)
    ]
    for train_groups, test_groups in seen:
        assert len(test_groups) == 1 and not train_groups & test_groups
    sizes = Counter(ds["group"])
    for run in report["runs"]:
        gold = [y for g, y in zip(ds["group"], ds["label"], strict=True) if g == run["fold"]]
        assert run["n"] == sizes[run["fold"]] == len(run["predictions"])
        assert sorted(run["references"]) == sorted(gold)
        assert run["macro_f1"] == compute_metrics(run["predictions"], run["references"])["macro_f1"]


def test_summary_pools_each_seeds_predictions_and_the_baseline_is_the_majority(report_and_folds):
    report, _ = report_and_folds
    s = report["summary"]
    pooled = []
    for seed in (0, 1):
        runs = [r for r in report["runs"] if r["seed"] == seed]
        preds = [p for r in runs for p in r["predictions"]]
        refs = [g for r in runs for g in r["references"]]
        pooled.append(compute_metrics(preds, refs)["macro_f1"])
    assert s["pooled_macro_f1_mean"] == pytest.approx(sum(pooled) / 2)
    assert s["macro_f1_mean"] == pytest.approx(
        sum(r["macro_f1"] for r in report["runs"]) / len(report["runs"])
    )
    # The baseline answers the majority label of the fold's training articles.
    ds = load_statements(DATA)
    for b in report["baseline"]:
        train = [y for g, y in zip(ds["group"], ds["label"], strict=True) if g != b["fold"]]
        test = [y for g, y in zip(ds["group"], ds["label"], strict=True) if g == b["fold"]]
        majority = Counter(train).most_common(1)[0][0]
        assert b["macro_f1"] == compute_metrics([majority] * len(test), test)["macro_f1"]
    text = crossval.format_report(report)
    assert "pooled macro-F1" in text and all(b["fold"] in text for b in report["baseline"])


def test_the_same_seed_gives_the_same_report_and_the_cli_writes_it(tmp_path, capsys):
    out = tmp_path / "cv.json"
    args = [
        "cv",
        "--config",
        str(ROOT / "configs" / "tiny.yaml"),
        "--seeds",
        "1",
        "--json",
        str(out),
    ]
    assert main([*args, f"data.train=[{{path: {DATA}}}]", "train.epochs=1"]) == 0
    assert "leave-one-article-out cross-validation: tiny" in capsys.readouterr().out
    saved = json.loads(out.read_text())
    again = crossval.cross_validate(tiny_config(None, "train.epochs=1"), seeds=1)
    assert [r["predictions"] for r in saved["runs"]] == [r["predictions"] for r in again["runs"]]


def test_an_interrupted_cv_keeps_its_fold_runs_and_resumes(report_and_folds, tmp_path, caplog):
    """Issue 26 item 5: --json grows after every fold-run; --resume reruns only the rest and
    gives the uninterrupted report (the module fixture's, same seeds)."""
    report, _ = report_and_folds
    out = tmp_path / "cv.json"
    args = ["cv", "--config", str(ROOT / "configs" / "tiny.yaml"), "--seeds", "2"]
    args += ["--json", str(out), f"data.train=[{{path: {DATA}}}]", "train.epochs=1"]
    real, calls = crossval.train_and_predict, []

    def interrupted_at_the_fourth(cfg, train_ds, test_ds):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(cfg, train_ds, test_ds)

    crossval.train_and_predict = interrupted_at_the_fourth
    try:
        assert main(args) == 130
        assert "--resume" in caplog.text
        saved = json.loads(out.read_text())
        assert saved["complete"] is False and len(saved["runs"]) == 3
        calls.clear()
        assert main([*args, "--resume"]) == 0
    finally:
        crossval.train_and_predict = real
    assert len(calls) == 3  # only the fold-runs that had not finished
    final = json.loads(out.read_text())
    assert final["complete"] is True
    assert [r["predictions"] for r in final["runs"]] == [r["predictions"] for r in report["runs"]]
    assert main([*args[:-1], "train.epochs=2", "--resume"]) == 2  # other settings: refused
    assert "other settings" in caplog.text
