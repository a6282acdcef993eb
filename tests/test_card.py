"""Tests for stance.util.plots: the training-curves figure."""

from stance.util.plots import history_figure, plot_history

HISTORY = [{"step": s, "loss": 1.2 - 0.02 * s} for s in range(1, 49)] + [
    {"step": s, "dev_macro_f1": f1} for s, f1 in ((12, 0.4), (24, 0.6), (36, 0.67), (48, 0.62))
]


def test_legend_sits_outside_the_axes_and_the_chosen_step_is_marked(tmp_path):
    fig = history_figure(HISTORY, best_step=36)
    fig.canvas.draw()
    ax = fig.axes[0]
    legend = ax.get_legend()
    assert legend.get_window_extent().y0 >= ax.get_window_extent().y1 - 1  # above, not over
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == ["train loss", "dev macro-F1", "chosen: step 36"]
    star = [
        line for a in fig.axes for line in a.get_lines() if line.get_label().startswith("chosen")
    ]
    assert list(star[0].get_xdata()) == [36] and list(star[0].get_ydata()) == [0.67]
    plot_history(HISTORY, tmp_path / "c.png", 36)
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_no_dev_set_still_plots(tmp_path):
    plot_history([{"step": 1, "loss": 1.0}], tmp_path / "c.png", 0)
    assert (tmp_path / "c.png").is_file()
