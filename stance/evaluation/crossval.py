"""Leave-one-article-out cross-validation over several seeds, beside a majority baseline.

Each fold trains on every group but one, for the configured number of epochs (no early
stopping: there is no dev set to stop on without shrinking the training side further), and
is scored on the held-out group. `train.epochs=0` scores the base model as it is (zero-shot).
"""

from __future__ import annotations

import logging
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace

from accelerate.utils import set_seed

from ..config import RunConfig
from ..data.statements import leave_one_group_out, load_sources
from ..errors import ConfigError
from ..kinds.registry import get_kind
from ..metrics import compute_metrics

logger = logging.getLogger(__name__)


def majority_baseline(train_labels: list[int], test_labels: list[int]) -> dict:
    majority = Counter(train_labels).most_common(1)[0][0]
    return compute_metrics([majority] * len(test_labels), test_labels)


def fold_run(fold: str, seed: int, preds: list[int], gold: list[int], seconds: float) -> dict:
    """One fold-seed run of a report: its scores and its paired predictions."""
    m = compute_metrics(preds, gold)
    return {
        "fold": fold,
        "seed": seed,
        "n": m["n"],
        "macro_f1": m["macro_f1"],
        "accuracy": m["accuracy"],
        "seconds": round(seconds, 2),
        "predictions": preds,
        "references": gold,
    }


def deterministic(cfg: RunConfig) -> bool:
    """True when the recipe draws no random numbers (the seed cannot change the result)."""
    return get_kind(cfg.model.kind).deterministic(cfg)


def train_and_predict(cfg: RunConfig, train_ds, test_ds) -> tuple[list[int], list[int]]:
    """Train one fold's model per `cfg`; (predicted, gold) label ids of `test_ds`, paired."""
    return get_kind(cfg.model.kind).fit_predict(cfg, train_ds, test_ds)


def cross_validate(
    cfg: RunConfig,
    seeds: int = 3,
    done: Sequence[dict] = (),
    on_run: Callable[[dict], None] | None = None,
) -> dict:
    """Per-fold, per-seed macro-F1 and accuracy, with mean and std over all of them.

    `done`: fold-runs of an interrupted report (stance.evaluation.cv_resume), reused instead of
    rerun;
    `on_run`: called with the report so far after every fold-run (`"complete": false`).
    """
    finished = {(r["fold"], r["seed"]): r for r in done}
    scored = [(s.path, s.weight) for s in cfg.data.train if s.cv_score]
    extra = [(s.path, s.weight) for s in cfg.data.train if not s.cv_score]
    if not scored:
        raise ConfigError("stance cv: every data.train file has cv_score: false; none to score")
    ds = load_sources(scored, cfg.data.claim)
    folds = leave_one_group_out(ds, load_sources(extra, cfg.data.claim) if extra else None)
    runs, baselines = [], []
    for held_out, train_ds, test_ds in folds:
        base = majority_baseline(list(train_ds["label"]), list(test_ds["label"]))
        baselines.append(
            {"fold": held_out, "macro_f1": base["macro_f1"], "accuracy": base["accuracy"]}
        )
        for k in range(seeds):
            seed = cfg.train.seed + k
            fold_cfg = replace(cfg, train=replace(cfg.train, seed=seed, patience=0))
            if (held_out, seed) in finished:
                runs.append(finished[(held_out, seed)])
            else:
                set_seed(seed)
                start = time.perf_counter()
                preds, gold = train_and_predict(fold_cfg, train_ds, test_ds)
                runs.append(fold_run(held_out, seed, preds, gold, time.perf_counter() - start))
                logger.info("fold %s seed %d: macro-F1 %.3f", held_out, seed, runs[-1]["macro_f1"])
                if on_run is not None:
                    on_run(_report(cfg, runs, baselines, complete=False))
            if deterministic(cfg):
                break  # nothing random happens without training: one seed says it all
    return _report(cfg, runs, baselines, complete=True)


def _report(cfg: RunConfig, runs: list[dict], baselines: list[dict], complete: bool) -> dict:
    return {
        "name": cfg.name,
        "complete": complete,
        "runs": list(runs),
        "baseline": list(baselines),
        "summary": summarise(runs, baselines),
    }


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0


def summarise(runs: list[dict], baselines: list[dict]) -> dict:
    f1_mean, f1_std = _mean_std([r["macro_f1"] for r in runs])
    acc_mean, acc_std = _mean_std([r["accuracy"] for r in runs])
    base_mean, _ = _mean_std([b["macro_f1"] for b in baselines])
    # Pooled: every held-out prediction of one seed scored together (a fold with one label,
    # like article 004, caps its own macro-F1 at 2/3), averaged over seeds.
    pooled: list[float] = []
    if all("predictions" in r for r in runs):  # reports written before pooling had none
        for seed in sorted({r["seed"] for r in runs}):
            mine = [r for r in runs if r["seed"] == seed]
            m = compute_metrics(
                [p for r in mine for p in r["predictions"]],
                [g for r in mine for g in r["references"]],
            )
            pooled.append(m["macro_f1"])
    # Fold means first, then std across folds: how much the held-out article matters.
    folds = sorted({r["fold"] for r in runs})
    fold_means = [statistics.fmean(r["macro_f1"] for r in runs if r["fold"] == f) for f in folds]
    return {
        "macro_f1_mean": f1_mean,
        "macro_f1_std": f1_std,
        "accuracy_mean": acc_mean,
        "accuracy_std": acc_std,
        "fold_macro_f1_std": _mean_std(fold_means)[1],
        "baseline_macro_f1_mean": base_mean,
        "pooled_macro_f1_mean": _mean_std(pooled)[0] if pooled else None,
        "pooled_macro_f1_std": _mean_std(pooled)[1] if pooled else None,
        "seconds_per_fold": statistics.fmean(r.get("seconds", 0.0) for r in runs),
    }


def format_report(report: dict) -> str:
    lines = [
        f"leave-one-article-out cross-validation: {report['name']}",
        f"{'fold':<10}{'n':>5}{'seeds':>7}{'macro-F1':>16}{'accuracy':>16}{'majority F1':>13}",
    ]
    for b in report["baseline"]:
        rs = [r for r in report["runs"] if r["fold"] == b["fold"]]
        f1m, f1s = _mean_std([r["macro_f1"] for r in rs])
        am, as_ = _mean_std([r["accuracy"] for r in rs])
        lines.append(
            f"{b['fold']:<10}{rs[0]['n']:>5}{len(rs):>7}{f1m:>10.3f} ± {f1s:.3f}"
            f"{am:>10.3f} ± {as_:.3f}{b['macro_f1']:>13.3f}"
        )
    s = report["summary"]
    lines.append(
        f"{'mean':<10}{'':>5}{len(report['runs']):>7}{s['macro_f1_mean']:>10.3f} ± "
        f"{s['macro_f1_std']:.3f}{s['accuracy_mean']:>10.3f} ± {s['accuracy_std']:.3f}"
        f"{s['baseline_macro_f1_mean']:>13.3f}"
    )
    if s.get("pooled_macro_f1_mean") is not None:
        lines.append(
            f"pooled macro-F1 (all folds' predictions scored together, per seed): "
            f"{s['pooled_macro_f1_mean']:.3f} ± {s['pooled_macro_f1_std']:.3f}; "
            f"{s['seconds_per_fold']:.1f} s per fold-run"
        )
    return "\n".join(lines)


def markdown_report(report: dict) -> str:
    """The report as a Markdown table and summary line (for a docs snippet)."""
    from ..util.snippets import markdown_table

    rows = []
    for b in report["baseline"]:
        rs = [r for r in report["runs"] if r["fold"] == b["fold"]]
        f1m, f1s = _mean_std([r["macro_f1"] for r in rs])
        am, as_ = _mean_std([r["accuracy"] for r in rs])
        rows.append(
            [
                b["fold"],
                rs[0]["n"],
                len(rs),
                f"{f1m:.3f} ± {f1s:.3f}",
                f"{am:.3f} ± {as_:.3f}",
                b["macro_f1"],
            ]
        )
    s = report["summary"]
    rows.append(
        [
            "**mean**",
            "",
            len(report["runs"]),
            f"{s['macro_f1_mean']:.3f} ± {s['macro_f1_std']:.3f}",
            f"{s['accuracy_mean']:.3f} ± {s['accuracy_std']:.3f}",
            s["baseline_macro_f1_mean"],
        ]
    )
    headers = ["held-out article", "n", "runs", "macro-F1", "accuracy", "majority macro-F1"]
    text = markdown_table(headers, rows)
    if s.get("pooled_macro_f1_mean") is not None:
        text += (
            f"\n\nPooled macro-F1 (every held-out prediction of a seed scored together): "
            f"**{s['pooled_macro_f1_mean']:.3f} ± {s['pooled_macro_f1_std']:.3f}**; "
            f"{s['seconds_per_fold']:.1f} s per fold-run."
        )
    return text
