"""Every chart of the package, drawn one way: matplotlib's object API on an Agg canvas.

No pyplot and no global backend switch, so drawing is safe in threads (the annotate server)
and never opens a window; matplotlib is imported only when a chart is drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..labels import LABELS


def new_figure(figsize: tuple[float, float], dpi: int = 100, **kwargs: Any) -> Any:
    """A figure with its own Agg canvas (constrained layout unless told otherwise)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi, layout=kwargs.pop("layout", "constrained"), **kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def history_figure(history: list[dict], best_step: int | None = None) -> Any:
    """The training-curves figure: train loss, dev macro-F1, and the step the run kept."""
    losses = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = [(h["step"], h["dev_macro_f1"]) for h in history if "dev_macro_f1" in h]
    fig = new_figure((6, 3.4), dpi=110)
    ax = fig.subplots()
    handles = []
    if losses:
        handles += ax.plot(*zip(*losses, strict=True), color="tab:blue", lw=1, label="train loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    if evals:
        ax2 = ax.twinx()
        handles += ax2.plot(
            *zip(*evals, strict=True), "o-", color="tab:orange", label="dev macro-F1"
        )
        ax2.set_ylabel("dev macro-F1")
        ax2.set_ylim(0, 1)
        chosen = [f1 for step, f1 in evals if step == best_step]
        if chosen:  # the weights saved in the run directory are this step's
            handles += ax2.plot(
                [best_step], chosen, "*", color="black", markersize=13, zorder=5,
                label=f"chosen: step {best_step}",
            )  # fmt: skip
    if best_step:
        ax.axvline(best_step, color="black", linewidth=0.8, linestyle=":")
    # Above the axes, so it never hides a curve.
    ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.01), ncols=3,
              fontsize=8, frameon=False)  # fmt: skip
    return fig


def plot_history(history: list[dict], path: str | Path, best_step: int | None = None) -> None:
    save_figure(history_figure(history, best_step), path)


def plot_confusion(metrics: dict, path: str | Path, title: str = "") -> None:
    """The confusion matrix (rows gold, columns predicted) with its counts."""
    cm = metrics["confusion_matrix"]
    fig = new_figure((4.2, 3.6), dpi=120)
    ax = fig.subplots()
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(LABELS)), LABELS)
    ax.set_yticks(range(len(LABELS)), LABELS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    peak = max(max(row) for row in cm) or 1
    for i, row in enumerate(cm):
        for j, v in enumerate(row):
            colour = "white" if v > peak / 2 else "black"
            ax.text(j, i, str(v), ha="center", va="center", color=colour)
    ax.set_title(title or f"macro-F1 {metrics['macro_f1']:.3f}, accuracy {metrics['accuracy']:.3f}")
    save_figure(fig, path)
