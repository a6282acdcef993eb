"""Unlabelled news for domain-adaptive tuning of a sentence body (issue #22, part 4).

The article bodies of FNC-1 (training and competition test) and the article headlines of
Emergent, from `../shared` (each with its SOURCE.md), cut into sentences. They are read at
run time and never written into the repository; no label of theirs is used. Bad input is an
InputError naming the file and line, as for the importers.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

from .importers import EMERGENT_COLUMNS, EMERGENT_FILES, _read_table
from .segment import split_sentences

logger = logging.getLogger(__name__)

FNC1_BODY_FILES = ("train_bodies.csv", "competition_test_bodies.csv")
# Sentences shorter than this are mostly page furniture ("Share this:"), longer ones run-ons
# the segmenter could not split; neither is the kind of sentence the model reads.
MIN_WORDS, MAX_WORDS = 6, 60


def news_texts(shared: str | Path) -> list[str]:
    """Every FNC-1 body sentence and Emergent article headline under `shared`, in file order."""
    shared = Path(shared)
    texts: list[str] = []
    for name in FNC1_BODY_FILES:
        path = shared / "data" / "fnc1" / name
        for _, value in _read_table(path, ("Body ID", "articleBody")):
            texts.extend(split_sentences(value["articleBody"]))
    for name in EMERGENT_FILES.values():
        path = shared / "data" / "emergent" / name
        texts.extend(value["articleHeadline"] for _, value in _read_table(path, EMERGENT_COLUMNS))
    return texts


def news_sentences(shared: str | Path, limit: int, seed: int) -> list[str]:
    """Up to `limit` distinct sentences of `news_texts` between MIN_WORDS and MAX_WORDS words,
    drawn at random with `seed` (0: all of them, shuffled)."""
    kept = list(dict.fromkeys(t for t in news_texts(shared) if _fits(t)))
    rng = random.Random(seed)
    rng.shuffle(kept)
    drawn = kept[:limit] if limit else kept
    logger.info("unlabelled news: %d distinct sentences, %d drawn", len(kept), len(drawn))
    return drawn


def _fits(text: str) -> bool:
    return MIN_WORDS <= len(text.split()) <= MAX_WORDS
