"""Stance metrics as an `evaluate` module: accuracy, macro-F1, per-class P/R/F1, confusion matrix.

Kept inside the package because the hub is not reachable; load it with
`stance.metrics.load_metric()` (a local `evaluate.load`). Labels are integer ids; the
label names come from the `label_names` argument so the module stays claim-agnostic.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list[int]): predicted label ids.
    references (list[int]): gold label ids.
    label_names (list[str]): name of each id, in id order.
Returns:
    accuracy, macro_f1, macro_precision, macro_recall, per_class {name: {precision, recall,
    f1, support}}, confusion_matrix (rows gold, columns predicted), n.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class StanceMetrics(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, label_names):
        k = len(label_names)
        pred = np.asarray(predictions, dtype=np.int64)
        gold = np.asarray(references, dtype=np.int64)
        cm = np.zeros((k, k), dtype=np.int64)  # rows gold, columns predicted
        np.add.at(cm, (gold, pred), 1)
        tp = np.diag(cm).astype(float)
        support = cm.sum(axis=1).astype(float)
        predicted = cm.sum(axis=0).astype(float)
        # Zero where undefined (no predictions / no gold rows), as scikit-learn's zero_division=0.
        precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
        recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
        denom = precision + recall
        f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
        n = int(cm.sum())
        return {
            "accuracy": float(tp.sum() / n) if n else 0.0,
            "macro_f1": float(f1.mean()),
            "macro_precision": float(precision.mean()),
            "macro_recall": float(recall.mean()),
            "per_class": {
                name: {
                    "precision": float(precision[i]),
                    "recall": float(recall[i]),
                    "f1": float(f1[i]),
                    "support": int(support[i]),
                }
                for i, name in enumerate(label_names)
            },
            "confusion_matrix": cm.tolist(),
            "n": n,
        }
