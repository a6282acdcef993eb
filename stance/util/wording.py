"""Small helpers for messages people read."""

from __future__ import annotations


def plural(n: int, noun: str, plural_form: str | None = None) -> str:
    """`1 article`, `2 articles`; `plural_form` for irregular nouns (`entry`/`entries`)."""
    return f"{n:,} {noun if n == 1 else plural_form or noun + 's'}"
