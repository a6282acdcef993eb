"""Metrics: the package's own `evaluate` module, and their text form.

The chart is stance.util.plots's.
"""

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
