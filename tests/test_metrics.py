import pytest

from stance.labels import LABELS
from stance.metrics import compute_metrics, format_metrics, load_metric
from stance.util.plots import plot_confusion


def test_metric_is_an_evaluate_module():
    import evaluate

    assert isinstance(load_metric(), evaluate.EvaluationModule)


def test_known_values():
    # gold: s s d d n n ; pred: s d d d n s
    m = compute_metrics([0, 1, 1, 1, 2, 0], [0, 0, 1, 1, 2, 2])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_class"]["supports"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    )
    assert m["per_class"]["doubts"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["doubts"]["recall"] == 1.0
    assert m["per_class"]["neutral"]["f1"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_absent_class_scores_zero_not_nan():
    m = compute_metrics([0, 0], [0, 0])
    assert m["accuracy"] == 1.0
    assert m["per_class"]["doubts"]["f1"] == 0.0
    assert m["macro_f1"] == pytest.approx(1 / 3)


def test_format_and_plot(tmp_path):
    m = compute_metrics([0, 1, 2], [0, 1, 1])
    text = format_metrics(m)
    assert "macro-F1" in text and all(label in text for label in LABELS)
    plot_confusion(m, tmp_path / "cm.png")
    assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"
