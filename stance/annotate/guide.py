"""The labelling rules shown beside the sentence in `stance annotate`.

The general rules of data/ANNOTATION.md hold for any claim; its hard cases about troop
movements (footage of leaving, diplomacy is not troop movement) belong to the withdrawal
claim only, so they are shown only when the session labels that claim.
"""

from __future__ import annotations

import html

from ..labels import DEFAULT_CLAIM, claim_key

GENERAL_RULES = (
    "Attributed speech counts: label the stance the quote carries.",
    'The main clause decides; a concessive "despite ..." is background.',
    "Both sides, neither subordinate: the part that ends the sentence; truly undecidable "
    "is neutral.",
    'Conditional or hoped-for ("if it really happens ...", "we look forward to evidence") '
    "is doubts: it implies the claim has not been shown.",
    "Off the claim (background, other topics) is neutral.",
    "Page furniture (ads, READ MORE, unrelated titles) is skip, never a label.",
)
# data/ANNOTATION.md, rules 5 and 6: written for the withdrawal claim.
CLAIM_RULES = {
    claim_key(DEFAULT_CLAIM): (
        "Evidence without a verdict: footage of leaving is supports; build-up or staying "
        "is doubts.",
        'Diplomacy is not troop movement: "talks should continue" alone is neutral.',
    ),
}


def rules_for(claim: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(general rules, this claim's own rules: empty for a claim without a guide)."""
    return GENERAL_RULES, CLAIM_RULES.get(claim_key(claim), ())


def guide_html(claim: str) -> str:
    """The rules card's inner HTML (escaped)."""
    general, own = rules_for(claim)
    parts = ["<h1>Labelling rules (data/ANNOTATION.md)</h1>", "<ol>"]
    parts += [f"<li>{html.escape(rule)}</li>" for rule in general]
    parts.append("</ol>")
    if own:
        parts += ["<h1>Hard cases of this claim</h1>", "<ol>"]
        parts += [f"<li>{html.escape(rule)}</li>" for rule in own]
        parts.append("</ol>")
    else:
        parts.append(
            '<div class="ctx">This claim has no guide of its own: decide hard cases once, '
            "write them down, and label alike.</div>"
        )
    return "\n".join(parts)
