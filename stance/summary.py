"""Per-article stance summary of a prediction run: counts, shares, dominant label, stance score.

Only sentences that bear on the claim (stance.relevance) are counted; each entry says how
many were left out (`off_claim`). The stance score of an article is (supports - doubts) /
(supports + doubts) over the counted sentences, in [-1, 1]; when none of them supports or
doubts it is null ("no stance"), never 0.0, which is a balanced article. The summary is a JSON
file; a PNG bar chart of the articles (label shares and stance score) is written beside it.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .atomic import Staging
from .labels import LABELS
from .plots import new_figure
from .wording import plural

logger = logging.getLogger(__name__)

# Enough bars to stay legible at the figure sizes below; more are cut off, and the title says so.
MAX_PLOTTED = 50
_COLOURS = {"supports": "#2e7d32", "doubts": "#c62828", "neutral": "#9e9e9e"}


def stance_score(counts: dict[str, int]) -> float | None:
    """(supports - doubts) / (supports + doubts) in [-1, 1]; None when neither occurs."""
    sup, dbt = counts.get("supports", 0), counts.get("doubts", 0)
    return (sup - dbt) / (sup + dbt) if sup + dbt else None


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
) -> dict[str, Any]:
    """The summary entry of one article from the labels of its sentences.

    `on_claim`: per sentence, whether it bears on the claim; False ones are left out of the
    counts (None: not judged, counted).
    """
    counts = dict.fromkeys(LABELS, 0)
    off = 0
    for i, label in enumerate(labels):
        if on_claim is not None and on_claim[i] is False:
            off += 1
        else:
            counts[label] += 1
    return {"article_id": article_id, **label_stats(counts, off), "truncated": truncated}


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
    ) -> None:
        self.articles.append(article_summary(article_id, labels, truncated, on_claim))

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
    ax_score.set_xlabel("stance score (supports - doubts) / (supports + doubts)")
    head = plural(len(articles), "article")
    if len(articles) > len(shown):
        head = f"first {len(shown)} of {head}"
    fig.suptitle(f"{head}: {title}" if title else head, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()
