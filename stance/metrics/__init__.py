"""Metrics: the package's own `evaluate` module, plus formatting and plots."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import evaluate

from ..labels import LABELS

logger = logging.getLogger(__name__)

METRIC_DIR = Path(__file__).resolve().parent / "stance_metrics"


@lru_cache(maxsize=1)
def load_metric() -> evaluate.EvaluationModule:
    """The bundled evaluate module, loaded from its local path (no hub)."""
    return evaluate.load(str(METRIC_DIR / "stance_metrics.py"))


def compute_metrics(predictions: Sequence[int], references: Sequence[int]) -> dict:
    return load_metric().compute(
        predictions=list(predictions), references=list(references), label_names=list(LABELS)
    )


def format_metrics(metrics: dict) -> str:
    """A short human-readable table of the headline and per-class numbers."""
    lines = [
        f"accuracy  {metrics['accuracy']:.3f}   macro-F1  {metrics['macro_f1']:.3f}   "
        f"(n={metrics['n']})",
        f"{'label':<10}{'precision':>10}{'recall':>8}{'f1':>7}{'support':>9}",
    ]
    for name, m in metrics["per_class"].items():
        lines.append(
            f"{name:<10}{m['precision']:>10.3f}{m['recall']:>8.3f}{m['f1']:>7.3f}{m['support']:>9}"
        )
    cm = metrics["confusion_matrix"]
    lines.append("confusion (rows gold, cols predicted): " + "  ".join(map(str, cm)))
    return "\n".join(lines)


def plot_confusion(metrics: dict, path: str | Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = metrics["confusion_matrix"]
    fig, ax = plt.subplots(figsize=(4.2, 3.6), dpi=120)
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(LABELS)), LABELS)
    ax.set_yticks(range(len(LABELS)), LABELS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    peak = max(max(row) for row in cm) or 1
    for i, row in enumerate(cm):
        for j, v in enumerate(row):
            ax.text(
                j, i, str(v), ha="center", va="center", color="white" if v > peak / 2 else "black"
            )
    ax.set_title(title or f"macro-F1 {metrics['macro_f1']:.3f}, accuracy {metrics['accuracy']:.3f}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
