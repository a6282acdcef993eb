"""Articles -> the sentences to label, read exactly as `stance predict` reads its inputs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ..data.segment import sentence_records
from ..inference.records import Article, InputFailure
from ..predict.inputs import iter_inputs, unique_ids
from ..predict.options import DEFAULT_MAX_ARTICLE_BYTES

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sentence:
    """One sentence of one article; `id` is `<article_id>-<index, two digits>` as in the guide."""

    id: str
    article_id: str
    sentence_index: int
    text: str


def read_sentences(
    inputs: Sequence[str], max_article_bytes: int | None = DEFAULT_MAX_ARTICLE_BYTES
) -> tuple[list[Sentence], list[InputFailure]]:
    """Every sentence of every usable input, in input order; the inputs that failed, logged."""
    sentences: list[Sentence] = []
    failures: list[InputFailure] = []
    for item in unique_ids(iter_inputs(inputs, max_article_bytes)):
        if isinstance(item, InputFailure):
            logger.error("%s", item.error)
            failures.append(item)
            continue
        sentences += _article_sentences(item)
    return sentences, failures


def _article_sentences(article: Article) -> list[Sentence]:
    # The ids `stance segment` gives, so labels line up with its output and the seed files.
    return [
        Sentence(r["id"], r["article_id"], r["sentence_index"], r["text"])
        for r in sentence_records(article.article_id, article.text)
    ]
