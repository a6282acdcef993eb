"""Scores and the Markdown table of `stance.evaluation.cvtable`'s out-of-fold probabilities.

Per recipe: pooled macro-F1 and per-label F1 (every held-out row of every fold scored
together), the doubt over-prediction (rows predicted `doubts` against rows that are), and the
article-level Pearson r between the predicted stance score (`stance.predict.summary.expected_score`:
mean p(supports) - p(doubts) over the article's rows) and the gold article stance (share of
supports minus share of doubts among its labelled rows).
"""

from __future__ import annotations

import platform
import subprocess
from dataclasses import dataclass

import numpy as np

from ..labels import LABEL2ID, LABELS
from ..metrics import compute_metrics

SUP, DBT = LABEL2ID["supports"], LABEL2ID["doubts"]


def is_seed_article(group: str) -> bool:
    """Seed articles are the real ones (ids 000, 001, ...); written ones start with 'w'."""
    return not group.startswith("w")


@dataclass
class RecipeScore:
    macro_f1: float
    per_label: dict[str, float]
    doubts_predicted: int
    doubts_true: int
    r_seed: float | None
    r_all: float | None
    articles: int


def pearson(a: list[float], b: list[float]) -> float | None:
    """Pearson r; None with fewer than 3 points or no spread."""
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def article_scores(
    probs: np.ndarray, labels: np.ndarray, groups: np.ndarray
) -> dict[str, tuple[float, float]]:
    """Per article: (predicted expected score, gold share of supports minus share of doubts)."""
    out = {}
    for g in sorted(set(groups)):
        m = groups == g
        pred = float((probs[m, SUP] - probs[m, DBT]).mean())
        gold = float((labels[m] == SUP).mean() - (labels[m] == DBT).mean())
        out[str(g)] = (pred, gold)
    return out


def score(probs: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> RecipeScore:
    preds = probs.argmax(-1)
    m = compute_metrics(preds.tolist(), labels.tolist())
    arts = article_scores(probs, labels, groups)
    seed = [v for g, v in arts.items() if is_seed_article(g)]
    return RecipeScore(
        macro_f1=m["macro_f1"],
        per_label={k: v["f1"] for k, v in m["per_class"].items()},
        doubts_predicted=int((preds == DBT).sum()),
        doubts_true=int((labels == DBT).sum()),
        r_seed=pearson([p for p, _ in seed], [g for _, g in seed]),
        r_all=pearson([p for p, _ in arts.values()], [g for _, g in arts.values()]),
        articles=len(arts),
    )


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


HEADER = (
    "| data | recipe | articles | rows | pooled macro-F1 | "
    + " | ".join(f"F1 {label}" for label in LABELS)
    + " | doubts predicted / true | article r (seeds) | article r (all scored) | s / fold |"
)


def table_row(data: str, recipe: str, rows: int, s: RecipeScore, seconds: float) -> str:
    per = " | ".join(f"{s.per_label[label]:.3f}" for label in LABELS)
    return (
        f"| {data} | {recipe} | {s.articles} | {rows} | {s.macro_f1:.3f} | {per} | "
        f"{s.doubts_predicted} / {s.doubts_true} | {_num(s.r_seed)} | {_num(s.r_all)} | "
        f"{seconds:.1f} |"
    )


def machine() -> str:
    """The CPU model (lscpu), for the table's header."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return platform.processor() or platform.machine()
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


# ---------------------------------------------------------------- spread against a baseline


def macro_f1(preds: np.ndarray, labels: np.ndarray) -> float:
    """Macro-F1 over LABELS (a label neither predicted nor present counts 0), in numpy: the
    bootstrap below calls it thousands of times."""
    f1 = []
    for k in range(len(LABELS)):
        tp = float(((preds == k) & (labels == k)).sum())
        denom = float((preds == k).sum() + (labels == k).sum())
        f1.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(f1))


@dataclass
class Spread:
    delta: float  # pooled macro-F1 of the recipe minus the baseline's
    low: float  # 95% interval of the delta, articles resampled (paired)
    high: float
    per_fold: list[float]  # the recipe's macro-F1 on each fold's rows
    base_per_fold: list[float]


def spread(
    probs: np.ndarray,
    base: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    fold: np.ndarray,
    resamples: int = 2000,
    seed: int = 0,
) -> Spread:
    """The recipe against the baseline on the same rows: the pooled macro-F1 difference, its
    paired percentile bootstrap over whole articles, and each fold's macro-F1."""
    pred, base_pred = probs.argmax(-1), base.argmax(-1)
    names = sorted(set(groups))
    rows_of = [np.flatnonzero(groups == g) for g in names]
    rng = np.random.default_rng(seed)
    deltas = []
    for _ in range(resamples):
        idx = np.concatenate([rows_of[i] for i in rng.integers(0, len(names), len(names))])
        deltas.append(macro_f1(pred[idx], labels[idx]) - macro_f1(base_pred[idx], labels[idx]))
    folds = sorted(set(fold.tolist()))
    return Spread(
        delta=macro_f1(pred, labels) - macro_f1(base_pred, labels),
        low=float(np.percentile(deltas, 2.5)),
        high=float(np.percentile(deltas, 97.5)),
        per_fold=[macro_f1(pred[fold == f], labels[fold == f]) for f in folds],
        base_per_fold=[macro_f1(base_pred[fold == f], labels[fold == f]) for f in folds],
    )


SPREAD_HEADER = (
    "| data | recipe | pooled macro-F1 minus baseline | 95% interval (articles resampled) | "
    "macro-F1 per fold | folds above / below baseline |"
)


def spread_row(data: str, recipe: str, s: Spread) -> str:
    above = sum(a > b + 1e-9 for a, b in zip(s.per_fold, s.base_per_fold, strict=True))
    below = sum(a < b - 1e-9 for a, b in zip(s.per_fold, s.base_per_fold, strict=True))
    folds = " ".join(f"{x:.3f}" for x in s.per_fold)
    return (
        f"| {data} | {recipe} | {s.delta:+.3f} | {s.low:+.3f} to {s.high:+.3f} | {folds} | "
        f"{above} / {below} |"
    )
