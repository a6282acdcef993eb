"""The results page's headline table: each Emergent cross-encoder on the official Emergent
test split, and its claim check on the seed sentences, in one docs snippet.

scripts/headline_results.py is the command; the snippet is docs/snippets/headline-emergent.md.
A run directory that does not exist is skipped with a warning and named in the snippet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from ..labels import DEFAULT_CLAIM
from .scoring import Evaluation, evaluate_model, markdown_evaluations

logger = logging.getLogger(__name__)

DEFAULT_MODELS = ("models/emergent", "models/emergent-mpnet")
DEFAULT_TEST = "data/emergent/test.jsonl"
DEFAULT_SNIPPET = "docs/snippets/headline-emergent.md"
# The claim check of the old hand-typed table: the seed sentences under the claim negated and
# under a reversal in other words.
CHECK_DATA = "data/withdrawal.jsonl"
CHECK_CLAIMS = (
    "Russia is not withdrawing its troops from near Ukraine's borders.",
    "Russia is sending more troops to Ukraine's borders.",
)
TITLE = "Emergent cross-encoders: the official Emergent test split, and the claim check"


def headline_evaluations(
    models: Sequence[str],
    test: str,
    check_data: str | None = CHECK_DATA,
    checks: Sequence[str] = CHECK_CLAIMS,
    evaluate: Callable[..., Evaluation] = evaluate_model,
) -> tuple[list[Evaluation], list[str]]:
    """(evaluations, missing run directories): each model on `test`, then (with `checks`) on
    `check_data` with its claim check. A missing run directory is skipped with a warning."""
    results: list[Evaluation] = []
    missing: list[str] = []
    for model in models:
        if not Path(model).exists():
            logger.warning("%s: no run directory; skipped (train it first)", model)
            missing.append(model)
            continue
        results.append(evaluate(model, test))
        if check_data and checks:
            results.append(evaluate(model, check_data, claim=DEFAULT_CLAIM, claim_checks=checks))
    return results, missing


def headline_markdown(results: Sequence[Evaluation], missing: Sequence[str]) -> str:
    """The snippet's body: the tables, then the run directories that were not there."""
    text = markdown_evaluations(results)
    if missing:
        names = ", ".join(f"`{m}`" for m in missing)
        text += f"\n\nNot evaluated (no run directory when this ran): {names}."
    return text


def write_headline(
    path: str | Path,
    models: Sequence[str] = DEFAULT_MODELS,
    test: str = DEFAULT_TEST,
    check_data: str | None = CHECK_DATA,
    checks: Sequence[str] = CHECK_CLAIMS,
) -> str | None:
    """Evaluate every model that exists and write the snippet to `path`; the body written, or
    None (and nothing written) when not one of `models` exists."""
    from ..util.snippets import write_snippet

    results, missing = headline_evaluations(models, test, check_data, checks)
    if not results:
        logger.error("none of %s exists: no snippet written", ", ".join(models))
        return None
    body = headline_markdown(results, missing)
    write_snippet(path, TITLE, body)
    logger.info("wrote %s", path)
    return body
