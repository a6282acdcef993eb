"""The label set, defined once. Everything else derives from LABELS."""

LABELS: tuple[str, ...] = ("supports", "doubts", "neutral")
LABEL2ID: dict[str, int] = {label: i for i, label in enumerate(LABELS)}
ID2LABEL: dict[int, str] = dict(enumerate(LABELS))

# The project's first claim (see data/ANNOTATION.md); the default wherever a claim is optional.
DEFAULT_CLAIM = "Russia is withdrawing its troops from near Ukraine's borders."


def claim_key(claim: str) -> str:
    """A claim as compared with another: case, whitespace and punctuation do not matter
    ("... Ukraine's borders." and "... ukraine's borders" are the same claim)."""
    words = "".join(c if c.isalnum() or c.isspace() else " " for c in claim.casefold()).split()
    return " ".join(words)
