"""The annotate learning-curve benchmark, on a fake embedder (no MiniLM in unit tests)."""

from __future__ import annotations

import pytest
from annotate_fakes import KeywordEmbedder

from benchmarks.annotate import format_table, learning_curves, oracle_rows, plot, summary


def test_oracle_is_the_seed_file_with_skips():
    rows = oracle_rows()
    assert len(rows) == 74 and sum(r["answer"] == "skip" for r in rows) == 11


def test_curves_cover_every_fold_arm_and_budget(tmp_path):
    result = learning_curves(KeywordEmbedder(), seeds=1, budgets=(5, 20, 30))
    assert len(result["runs"]) == 3 * 3
    stats = summary(result)
    for arm, per in stats.items():
        # Every order ends with the same labels, so the same head and the same score.
        assert per["all"][0] == pytest.approx(stats["random"]["all"][0]), arm
        assert per["5"][2] == 3 and per["30"][2] == 3  # fold 000 has exactly 30 labels
        # The first fit comes at 5 labels: until then every order draws the same picks.
        assert per["5"][0] == pytest.approx(stats["random"]["5"][0])
    text = format_table(result)
    assert "uncertainty only - random" in text and "sentences asked" in text
    plot(result, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 1000
