"""Claim sensitivity: does a cross-encoder read its claim?

A model that reads the (claim, statement) pair must change its answer when the claim turns
round: a statement that supports "Russia is withdrawing its troops" doubts "Russia is not
withdrawing its troops". The check takes the statements a model labels supports or doubts
under the original claim, classifies them again under each negated or reversed claim, and
counts how many swap supports <-> doubts; it passes when every such claim swaps at least
`PASS_AT` of them. Neutral answers under the original claim are left out (negating the claim
need not change them). `stance evaluate --claim-check CLAIM` runs it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import StanceError
from ..labels import LABELS

logger = logging.getLogger(__name__)

PASS_AT = 0.80
OPPOSITE = {"supports": "doubts", "doubts": "supports"}


@dataclass(frozen=True)
class SwapCount:
    """What one negated claim did to the statements labelled supports or doubts before."""

    claim: str
    n: int  # statements labelled supports or doubts under the original claim
    swapped: int  # of those, labelled the opposite under `claim`
    to_neutral: int
    unchanged: int

    @property
    def fraction(self) -> float:
        return self.swapped / self.n if self.n else 0.0

    @property
    def passed(self) -> bool:
        return self.n > 0 and self.fraction >= PASS_AT

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fraction": self.fraction, "passed": self.passed}


def count_swaps(before: Sequence[str], after: Sequence[str], claim: str) -> SwapCount:
    """Labels of the same statements under the original claim (`before`) and under `claim`."""
    if len(before) != len(after):
        raise ValueError(f"{len(before)} labels before, {len(after)} after")
    polar = [(b, a) for b, a in zip(before, after, strict=True) if b in OPPOSITE]
    return SwapCount(
        claim=claim,
        n=len(polar),
        swapped=sum(a == OPPOSITE[b] for b, a in polar),
        to_neutral=sum(a == "neutral" for _, a in polar),
        unchanged=sum(a == b for b, a in polar),
    )


@dataclass(frozen=True)
class ClaimCheck:
    """The original claim and one SwapCount per negated or reversed claim."""

    claim: str
    counts: list[SwapCount]

    @property
    def passed(self) -> bool:
        return bool(self.counts) and all(c.passed for c in self.counts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "claim": self.claim,
            "pass_at": PASS_AT,
            "passed": self.passed,
            "negations": [c.as_dict() for c in self.counts],
        }


def check_claims(
    predictor: Any,
    texts: Sequence[str],
    claim: str,
    negations: Sequence[str],
    before: Sequence[str] | None = None,
) -> ClaimCheck:
    """Classify `texts` under `claim` (unless `before` gives those labels) and under each of
    `negations` with `predictor` (a stance.inference.engine.StancePredictor), and count the
    swaps."""
    if not getattr(predictor, "pairs", True):
        raise StanceError(
            f"{predictor.model_dir} is a few-shot model of one claim: it refuses any other "
            "claim by design, so there is no claim sensitivity to measure"
        )
    if not negations:
        raise StanceError("the claim check needs at least one negated or reversed claim")

    def labels(c: str) -> list[str]:
        probs = predictor.classify([(c, t) for t in texts])
        return [LABELS[k] for k in probs.argmax(-1).tolist()]

    before = list(before) if before is not None else labels(claim)
    counts = []
    for other in negations:
        count = count_swaps(before, labels(other), other)
        logger.info("claim check %r: %d of %d swapped", other, count.swapped, count.n)
        counts.append(count)
    return ClaimCheck(claim, counts)


def format_check(check: ClaimCheck) -> str:
    """A few lines for the terminal: one per negated claim, then pass or fail."""
    lines = [f"claim sensitivity (original claim: {check.claim!r}):"]
    for c in check.counts:
        lines.append(
            f"  {c.claim!r}: {c.swapped} of {c.n} supports/doubts swapped ({c.fraction:.3f}; "
            f"{c.to_neutral} to neutral, {c.unchanged} unchanged) "
            f"{'pass' if c.passed else 'FAIL'}"
        )
    verdict = "pass" if check.passed else "FAIL"
    lines.append(f"claim check: {verdict} (each claim must swap >= {PASS_AT:.2f})")
    return "\n".join(lines)
