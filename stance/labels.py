"""The label set, defined once. Everything else derives from LABELS."""

LABELS: tuple[str, ...] = ("supports", "doubts", "neutral")
LABEL2ID: dict[str, int] = {label: i for i, label in enumerate(LABELS)}
ID2LABEL: dict[int, str] = dict(enumerate(LABELS))

# The project's first claim (see data/ANNOTATION.md); the default wherever a claim is optional.
DEFAULT_CLAIM = "Russia is withdrawing its troops from near Ukraine's borders."
