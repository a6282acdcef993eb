"""Per-article stance summary of a prediction run: counts, shares, dominant label, stance score.

Only sentences that bear on the claim (stance.inference.relevance) are counted; each entry says how
many were left out (`off_claim`). The stance score of an article is the expected share of
supports minus the expected share of doubts over the counted sentences: the mean of
p(supports) - p(doubts), from the engine's (calibrated, where the run carries a calibration)
probabilities; from labels alone, the share of supports minus the share of doubts. It lies in
[-1, 1] and is the quantity the gold article stance measures (issue #22: judged by
article-level Pearson r in `scripts/cv_table.py`). `stance_interval` is its 95% bootstrap
interval over the article's counted sentences (fixed seed, so a rerun gives the same one).
When no counted sentence is labelled supports or doubts the score is null ("no stance"),
never 0.0, which is a balanced article. The summary is a JSON file; a PNG bar chart of the
articles (label shares and stance score) is written beside it.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..labels import LABEL2ID, LABELS
from ..util.atomic import Staging
from ..util.plots import new_figure
from ..util.wording import plural

logger = logging.getLogger(__name__)

# Enough bars to stay legible at the figure sizes below; more are cut off, and the title says so.
MAX_PLOTTED = 50
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_LEVEL = 0.95
BOOTSTRAP_SEED = 0
_COLOURS = {"supports": "#2e7d32", "doubts": "#c62828", "neutral": "#9e9e9e"}


def stance_score(counts: dict[str, int]) -> float | None:
    """Share of supports minus share of doubts; None when neither occurs."""
    sup, dbt, n = counts.get("supports", 0), counts.get("doubts", 0), sum(counts.values())
    return (sup - dbt) / n if sup + dbt else None


def sentence_scores(probs: np.ndarray) -> np.ndarray:
    """Per sentence p(supports) - p(doubts): their mean is the article's expected score."""
    probs = np.asarray(probs, dtype=np.float64).reshape(-1, len(LABELS))
    return probs[:, LABEL2ID["supports"]] - probs[:, LABEL2ID["doubts"]]


def bootstrap_interval(values: np.ndarray) -> list[float] | None:
    """Percentile bootstrap interval of the mean of `values` (resampled sentences)."""
    if len(values) == 0:
        return None
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    draws = rng.integers(0, len(values), size=(BOOTSTRAP_RESAMPLES, len(values)))
    means = np.asarray(values)[draws].mean(axis=1)
    tail = (1 - BOOTSTRAP_LEVEL) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return [round(float(lo), 6), round(float(hi), 6)]


def label_stats(counts: dict[str, int], off_claim: int = 0) -> dict[str, Any]:
    """Sentences, counts, shares, dominant label and stance score from per-label counts.

    `counts` are of the sentences on the claim; `off_claim` sentences were left out.
    """
    n = sum(counts.values())
    counts = {label: int(counts.get(label, 0)) for label in LABELS}
    top = [label for label in LABELS if n and counts[label] == max(counts.values())]
    return {
        "sentences": n + off_claim,
        "on_claim": n,
        "off_claim": off_claim,
        "counts": counts,
        "shares": {label: (c / n if n else 0.0) for label, c in counts.items()},
        # A tie (3 supports, 3 doubts) has no dominant label: null, and the tied labels.
        "dominant": top[0] if len(top) == 1 else None,
        "tied": top if len(top) > 1 else [],
        "stance_score": stance_score(counts),
    }


def article_summary(
    article_id: str,
    labels: Iterable[str],
    truncated: int = 0,
    on_claim: Sequence[bool | None] | None = None,
    probs: Sequence[Sequence[float]] | None = None,
) -> dict[str, Any]:
    """The summary entry of one article from the labels of its sentences.

    `on_claim`: per sentence, whether it bears on the claim; False ones are left out of the
    counts (None: not judged, counted). `probs`: per sentence, the probabilities in LABELS
    order; the score is then their expectation, otherwise the labels' shares.
    """
    labels = list(labels)
    counts = dict.fromkeys(LABELS, 0)
    kept = [on_claim is None or on_claim[i] is not False for i in range(len(labels))]
    for label, keep in zip(labels, kept, strict=True):
        if keep:
            counts[label] += 1
    stats = label_stats(counts, kept.count(False))
    if probs is not None:
        values = sentence_scores(np.asarray(probs))[np.asarray(kept, dtype=bool)]
    else:
        onehot = {"supports": 1.0, "doubts": -1.0}
        values = np.array([onehot.get(x, 0.0) for x, k in zip(labels, kept, strict=True) if k])
    interval = None
    if stats["stance_score"] is not None:
        stats["stance_score"] = round(float(values.mean()), 6)
        interval = bootstrap_interval(values)
    return {"article_id": article_id, **stats, "stance_interval": interval, "truncated": truncated}


class SummaryBuilder:
    """Collects article entries (one small dict each) and failures while the output streams."""

    def __init__(self) -> None:
        self.articles: list[dict[str, Any]] = []
        self.failed: list[dict[str, Any]] = []

    def add_article(
        self,
        article_id: str,
        labels: Iterable[str],
        truncated: int = 0,
        on_claim: Sequence[bool | None] | None = None,
        probs: Sequence[Sequence[float]] | None = None,
    ) -> None:
        self.articles.append(article_summary(article_id, labels, truncated, on_claim, probs))

    def add_failure(self, input_name: str, line: int | None, error: str) -> None:
        self.failed.append({"input": input_name, "line": line, "error": error})

    def build(self, **meta: Any) -> dict[str, Any]:
        counts = dict.fromkeys(LABELS, 0)
        for a in self.articles:
            for label, c in a["counts"].items():
                counts[label] += c
        off = sum(a["off_claim"] for a in self.articles)
        totals = {
            "articles": len(self.articles),
            **label_stats(counts, off),
            "truncated": sum(a["truncated"] for a in self.articles),
            "failed_inputs": len(self.failed),
        }
        return {**meta, "articles": self.articles, "failed": self.failed, "totals": totals}


def plot_path(summary_path: str | Path) -> Path:
    """The chart beside the summary: same stem, `.png`."""
    return Path(summary_path).with_suffix(".png")


def write_summary(path: str | Path, summary: dict[str, Any], stage: Staging | None = None) -> Path:
    """Write the JSON summary and its PNG chart atomically; returns the PNG path.

    With `stage`, both are only staged there: the caller commits them with its other files.
    """
    own = stage is None
    stage = Staging() if stage is None else stage
    png = plot_path(path)
    if summary["articles"]:
        data = render_chart(summary["articles"], title=str(summary.get("claim") or ""))
        with stage.open(png, "wb") as f:
            f.write(data)
    else:  # nothing to draw: no blank chart (and no stale one)
        png.unlink(missing_ok=True)
        logger.info("no articles: no chart written")
    with stage.open(path) as f:
        f.write(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    if own:
        with stage:
            stage.commit()
    return png


def render_chart(articles: Sequence[dict[str, Any]], title: str = "") -> bytes:
    """PNG bytes: per article, stacked label shares (left) and the stance score (right)."""
    shown = list(articles[:MAX_PLOTTED])
    n = max(len(shown), 1)
    fig = new_figure((11, 2.2 + 0.28 * n))
    ax_share, ax_score = fig.subplots(1, 2, sharey=True, width_ratios=[3, 2])
    names = [str(a["article_id"])[:30] for a in shown]
    ys = list(range(len(shown)))
    left = [0.0] * len(shown)
    for label in LABELS:
        widths = [a["shares"][label] for a in shown]
        ax_share.barh(ys, widths, left=left, color=_COLOURS.get(label), label=label)
        left = [x + w for x, w in zip(left, widths, strict=True)]
    ax_share.set_yticks(ys, names, fontsize=8 if n <= 25 else 6)
    ax_share.set_ylim(len(shown) - 0.5, -0.5)  # first article on top, as in the output
    ax_share.set_xlim(0, 1)
    ax_share.set_xlabel("share of sentences")
    # Above the axes, so it never hides a bar.
    ax_share.legend(
        loc="lower left", bbox_to_anchor=(0, 1), ncols=len(LABELS), fontsize=8, frameon=False
    )
    scores = [a["stance_score"] for a in shown]
    drawn = [(y, s) for y, s in zip(ys, scores, strict=True) if s is not None]
    colours = [_COLOURS["supports"] if s > 0 else _COLOURS["doubts"] for _, s in drawn]
    ax_score.barh([y for y, _ in drawn], [s for _, s in drawn], color=colours)
    for y, s in zip(ys, scores, strict=True):
        if s is None:  # no supports or doubts: not a balanced 0.0, so no bar at all
            ax_score.text(0, y, "no stance", ha="center", va="center", fontsize=7, color="#555")
    ax_score.axvline(0, color="black", linewidth=0.8)
    ax_score.set_xlim(-1, 1)
    ax_score.set_xlabel("stance score: expected share of supports - share of doubts")
    head = plural(len(articles), "article")
    if len(articles) > len(shown):
        head = f"first {len(shown)} of {head}"
    fig.suptitle(f"{head}: {title}" if title else head, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()
