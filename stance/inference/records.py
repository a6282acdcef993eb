"""What prediction reads and writes: articles in; per-sentence rows and per-article records
out (columns, rounding, relevance fields); and the chunking that bounds memory on long runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import InputError
from ..labels import LABELS

# About 3,000 news sentences: large enough to sort well, small enough to lose little on a crash.
DEFAULT_CHUNK_CHARS = 500_000

DECIMALS = 6
PROB_COLUMNS: tuple[str, ...] = tuple(f"p_{label}" for label in LABELS)
# on_claim: whether the sentence bears on the claim (stance.inference.relevance; null when not
# judged),
# claim_similarity: the cosine that decided it, furniture: the page-furniture cue it matched.
RELEVANCE_COLUMNS: tuple[str, ...] = ("on_claim", "claim_similarity", "furniture")
COLUMNS: tuple[str, ...] = (
    *("article_id", "sentence_index", "text", "label", "score"),
    *PROB_COLUMNS,
    *RELEVANCE_COLUMNS,
)


@dataclass(frozen=True)
class Article:
    """One article to classify; `source` and `line` say where it came from (for messages).

    `part`: 0, or the number of a later piece of a long article cut over several chunks
    (`iter_chunks(split_long=True)`); the pieces' results are joined again in the output.
    """

    article_id: str
    text: str
    source: str = "<api>"
    line: int | None = None
    part: int = 0


@dataclass(frozen=True)
class InputFailure:
    """An input (or one JSONL line) that could not be used; `error` names it."""

    input: str
    line: int | None
    error: str

    @classmethod
    def from_error(cls, e: InputError, name: str) -> InputFailure:
        return cls(e.path or name, e.line, str(e))


@dataclass
class SentencePrediction:
    """The stance of one sentence; `probs` has every label, `score` is probs[label]."""

    article_id: str
    sentence_index: int
    text: str
    label: str
    score: float
    probs: dict[str, float]
    truncated: bool = False
    on_claim: bool | None = None  # None: relevance not judged
    claim_similarity: float | None = None
    furniture: str | None = None

    def as_row(self) -> dict[str, Any]:
        """The output row: COLUMNS, with flat p_<label> probabilities."""
        return output_row(
            self.article_id, self.sentence_index, self.text, LABELS.index(self.label),
            [self.probs[label] for label in LABELS], self.on_claim, self.claim_similarity,
            self.furniture,
        )  # fmt: skip


def output_row(
    article_id: str,
    index: int,
    text: str,
    label_id: int,
    probs: Sequence[float],
    on_claim: bool | None,
    similarity: float | None,
    furniture: str | None,
) -> dict[str, Any]:
    """One row of `stance predict`'s output (COLUMNS); probabilities in LABELS order."""
    row = {
        "article_id": article_id,
        "sentence_index": index,
        "text": text,
        "label": LABELS[label_id],
        "score": probs[label_id],
    }
    row.update(zip(PROB_COLUMNS, probs, strict=True))
    row.update(on_claim=on_claim, claim_similarity=similarity, furniture=furniture)
    return row


@dataclass
class ArticleResult:
    """Every sentence of one article with its probabilities (N, len(LABELS)) in LABELS order."""

    article_id: str
    sentences: list[str]
    probs: np.ndarray
    truncated: np.ndarray
    relevance: Any = None  # stance.inference.relevance.Relevance, when judged
    part: int = 0  # Article.part: > 0 continues the previous record's article

    @property
    def label_ids(self) -> np.ndarray:
        return self.probs.argmax(axis=1) if len(self.sentences) else np.zeros(0, dtype=int)

    def predictions(self) -> list[SentencePrediction]:
        out = []
        for i, (text, k, p, t) in enumerate(
            zip(self.sentences, self.label_ids, self.probs, self.truncated, strict=True)
        ):
            probs = {label: float(x) for label, x in zip(LABELS, p, strict=True)}
            pred = SentencePrediction(
                self.article_id, i, text, LABELS[k], float(p[k]), probs, bool(t)
            )
            if self.relevance is not None:
                pred.on_claim = bool(self.relevance.on_claim[i])
                pred.claim_similarity = round(float(self.relevance.similarity[i]), DECIMALS)
                pred.furniture = self.relevance.cues[i]
            out.append(pred)
        return out

    def to_record(self) -> dict[str, Any]:
        """The compact form kept in the sidecar (probabilities already rounded)."""
        # float64 before rounding, so the stored decimals print short (0.412345, not 0.41234499...).
        probs = self.probs.astype(np.float64).round(DECIMALS)
        record = {
            "id": self.article_id,
            "sentences": self.sentences,
            "labels": self.label_ids.tolist(),
            "probs": probs.tolist(),
            "truncated": np.flatnonzero(self.truncated).tolist(),
        }
        if self.part:
            record["part"] = self.part
        if self.relevance is not None:
            rel = self.relevance
            record["on_claim"] = rel.on_claim.tolist()
            record["similarity"] = rel.similarity.astype(np.float64).round(DECIMALS).tolist()
            record["furniture"] = rel.cues
        return record


def record_rows(record: dict[str, Any], start: int = 0) -> Iterator[dict[str, Any]]:
    """Output rows of one sidecar article record; sentence indices count on from `start`
    (the sentences of the article's earlier parts)."""
    n = len(record["sentences"])
    on_claim = record.get("on_claim", [None] * n)
    similarity = record.get("similarity", [None] * n)
    furniture = record.get("furniture", [None] * n)
    for i, (text, k, probs) in enumerate(
        zip(record["sentences"], record["labels"], record["probs"], strict=True)
    ):
        yield output_row(
            record["id"], start + i, text, k, probs, on_claim[i], similarity[i], furniture[i]
        )


def as_articles(items: Iterable[str | dict | tuple[str, str] | Article]) -> Iterator[Article]:
    """Articles from the loose forms `StancePredictor.predict` accepts."""
    for i, item in enumerate(items):
        if isinstance(item, Article):
            yield item
        elif isinstance(item, str):
            yield Article(str(i), item)
        elif isinstance(item, dict):
            if not isinstance(item.get("text"), str):
                raise InputError(f"item {i} has no 'text' string")
            yield Article(str(item.get("id", i)), item["text"])
        else:
            article_id, text = item
            yield Article(str(article_id), text)


@dataclass
class Chunk:
    """Whole articles of about `chunk_chars` characters; `index` counts from 0."""

    index: int
    articles: list[Article] = field(default_factory=list)
    chars: int = 0


def iter_chunks(
    items: Iterable[Article], chunk_chars: int, split_long: bool = False
) -> Iterator[Chunk]:
    """Group articles into chunks; a chunk closes once it holds `chunk_chars` characters.

    `split_long`: an article longer than `chunk_chars` is cut into parts of about that size
    (`segment.text_pieces`, at sentence-splitting boundaries, so no sentence changes), each
    placed as an article of its own with `part` 1, 2, ... after the first, so one big file
    is saved (and resumed) a chunk at a time. The sentences either side of a cut do not see
    each other as context (the context model's neighbours, the relevance filter's window).
    """
    chunk = Chunk(0)
    for article in items:
        for piece in _parts(article, chunk_chars) if split_long else (article,):
            chunk.articles.append(piece)
            chunk.chars += len(piece.text)
            if chunk.chars >= chunk_chars:
                yield chunk
                chunk = Chunk(chunk.index + 1)
    if chunk.articles:
        yield chunk


def _parts(article: Article, chunk_chars: int) -> Iterator[Article]:
    if len(article.text) <= chunk_chars:
        yield article
        return
    from ..data.segment import text_pieces

    for k, text in enumerate(text_pieces(article.text, chunk_chars)):
        yield replace(article, text=text, part=k)
