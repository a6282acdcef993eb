"""Claim negation for training a cross-encoder that reads its claim (`data.negations`).

A statement that supports a claim doubts its negation, and the reverse; a neutral statement
stays neutral. Emergent's labels are mostly decided by a headline's own cues (hedges,
denials), whatever the claim, so a model trained on them alone learns to ignore the claim
(`stance evaluate --claim-check`). Adding each training row again with its claim negated and
its label swapped makes the claim the only thing that separates the two copies. The negation
is written by rule: "not" after the claim's first auxiliary verb ("Russia is withdrawing" ->
"Russia is not withdrawing"), an existing "not" removed, else "It is not true that ...".
The copies are made after the dev split, from training rows only.
"""

from __future__ import annotations

import logging

from datasets import Dataset, concatenate_datasets

from ..labels import LABEL2ID, LABELS
from .statements import to_dataset

logger = logging.getLogger(__name__)

AUXILIARIES = frozenset(
    ("is", "are", "was", "were", "has", "have", "had", "will", "would", "can", "could")
    + ("does", "do", "did", "should", "may", "might", "must")
)
NEGATIONS = frozenset(("not", "never"))
SWAPPED = {LABEL2ID["supports"]: "doubts", LABEL2ID["doubts"]: "supports"}


def negate_claim(claim: str) -> str:
    """The claim negated by rule (see the module docstring); an already negated claim loses
    its negation."""
    words = claim.split()
    for i, word in enumerate(words[:10]):  # the main verb's auxiliary comes early
        bare = word.lower().strip(",;:")
        if bare in NEGATIONS:
            return " ".join(words[:i] + words[i + 1 :])
        if bare in AUXILIARIES and i + 1 < len(words):
            if words[i + 1].lower() in NEGATIONS:  # "will not release" -> "will release"
                return " ".join(words[: i + 1] + words[i + 2 :])
            return " ".join([*words[: i + 1], "not", *words[i + 1 :]])
    return f"It is not true that {claim}"  # the claim's own capitals kept (names, acronyms)


def negate_claims(ds: Dataset, weight: float = 1.0) -> Dataset:
    """`ds` plus a copy of every row with its claim negated and supports/doubts swapped
    (neutral stays neutral), at `weight` times the row's loss weight."""
    if len(ds) == 0:
        return ds
    extra = []
    for row in ds.to_list():
        label = SWAPPED.get(row["label"], LABELS[row["label"]])
        extra.append(
            {
                **row,
                "id": f"{row['id']}~not",
                "claim": negate_claim(row["claim"]),
                "label": label,
                "weight": row["weight"] * weight,
            }
        )
    logger.info("claim negations: %d extra rows", len(extra))
    return concatenate_datasets([ds, to_dataset(extra)])
