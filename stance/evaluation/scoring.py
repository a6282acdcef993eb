"""`stance evaluate`'s work: a run directory scored on a labelled file, with an optional claim
check, and the result as a Markdown table for a docs snippet.

The same inference path as `stance predict` (StancePredictor), so the two never disagree.
scripts/headline_results.py puts several of these into one snippet.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import StanceError
from ..labels import LABELS
from .claimcheck import PASS_AT, ClaimCheck

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evaluation:
    """One model scored on one file: its metrics and, when asked for, its claim check."""

    model: str
    data: str
    precision: str
    metrics: dict[str, Any]
    check: ClaimCheck | None = None

    def as_dict(self) -> dict[str, Any]:
        """What `stance evaluate --json` prints."""
        extra = {"claim_check": self.check.as_dict()} if self.check is not None else {}
        where = {"model": self.model, "data": self.data, "precision": self.precision}
        return {**where, **self.metrics, **extra}


def evaluate_model(
    model: str,
    data: str,
    *,
    claim: str | None = None,
    batch_size: int = 64,
    max_length: int | None = None,
    quantize: str = "none",
    claim_checks: Sequence[str] = (),
) -> Evaluation:
    """Score run directory `model` on statement file `data` (and check its claim against each
    of `claim_checks`). The cheap checks answer before torch and the model load."""
    from ..preflight import check_model_dir

    check_model_dir(model, claim)
    from ..data.statements import read_statements

    read_statements(data)  # a bad data file answers before the model loads
    from ..data.statements import load_statements
    from ..inference.engine import StancePredictor
    from ..metrics import compute_metrics

    predictor = StancePredictor(
        model, claim=claim, batch_size=batch_size, max_length=max_length, quantize=quantize
    )
    ds = load_statements(data, predictor.claim)
    pairs = list(zip(ds["claim"], ds["text"], strict=True))
    probs = predictor.classify_rows(pairs, ds["prev_text"], ds["next_text"])
    predicted = probs.argmax(-1).tolist()
    metrics = compute_metrics(predicted, list(ds["label"]))
    check = None
    if claim_checks:
        from .claimcheck import check_claims

        claims = set(ds["claim"])
        if len(claims) != 1:
            raise StanceError(f"--claim-check: {data} holds {len(claims)} claims; give one")
        before = [LABELS[k] for k in predicted]
        check = check_claims(predictor, ds["text"], claims.pop(), claim_checks, before)
    logger.info("%s on %s: macro-F1 %.3f", model, data, metrics["macro_f1"])
    return Evaluation(str(model), str(data), predictor.precision, metrics, check)


def _verdict(passed: bool | None) -> str:
    if passed is None:  # no claim check ran
        return "-"
    return "pass" if passed else "**fail**"


def metrics_table(results: Sequence[Evaluation]) -> str:
    """One row per evaluation: model, data, rows, accuracy, macro-F1, F1 of each label."""
    from ..util.snippets import markdown_table

    headers = ["model", "data", "precision", "rows", "accuracy", "macro-F1"]
    headers += [f"F1 {name}" for name in LABELS] + ["claim check"]
    rows = [
        [
            f"`{r.model}`",
            f"`{r.data}`",
            r.precision,
            r.metrics["n"],
            r.metrics["accuracy"],
            r.metrics["macro_f1"],
            *(r.metrics["per_class"][name]["f1"] for name in LABELS),
            _verdict(r.check.passed if r.check is not None else None),
        ]
        for r in results
    ]
    return markdown_table(headers, rows)


def check_table(results: Sequence[Evaluation]) -> str:
    """One row per (evaluation, reversed claim) of the evaluations with a claim check."""
    from ..util.snippets import markdown_table

    headers = ["model", "data", "reversed claim", "supports/doubts before", "swapped"]
    headers += ["swap share", "to neutral", "unchanged", "result"]
    rows = [
        [
            f"`{r.model}`",
            f"`{r.data}`",
            c.claim,
            c.n,
            c.swapped,
            c.fraction,
            c.to_neutral,
            c.unchanged,
            _verdict(c.passed),
        ]
        for r in results
        if r.check is not None
        for c in r.check.counts
    ]
    return markdown_table(headers, rows)


def markdown_evaluations(results: Sequence[Evaluation]) -> str:
    """The metrics table, then (when any evaluation ran one) the claim checks: the body of a
    docs snippet."""
    text = metrics_table(results)
    checked = [r for r in results if r.check is not None]
    if checked:
        originals = sorted({r.check.claim for r in checked if r.check is not None})
        quoted = "; ".join(f'"{c}"' for c in originals)
        text += (
            "\n\nClaim sensitivity: of the statements labelled supports or doubts under the "
            f"original claim ({quoted}), the share labelled the "
            f"opposite under each reversed claim; a check passes when every reversed claim "
            f"swaps at least {PASS_AT:.2f}.\n\n" + check_table(checked)
        )
    return text
