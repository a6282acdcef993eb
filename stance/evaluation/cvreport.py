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
