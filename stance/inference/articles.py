"""Whole articles through a StancePredictor: segment, classify every sentence in one sorted
pass per chunk of articles (each read in its article context where the model has a context
weight), judge relevance, and stream the results article by article."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from ..data.segment import split_sentences
from .records import (
    DEFAULT_CHUNK_CHARS,
    Article,
    ArticleResult,
    SentencePrediction,
    as_articles,
    iter_chunks,
)
from .runtime import release_memory

Progress = Callable[[int], None]


class ArticlePredictions:
    """The article-level half of StancePredictor (stance.inference.engine): it needs
    `classify_detailed` and `relevance` from there."""

    relevance: Any
    claim: str
    context_weight: float
    _head_bias: np.ndarray

    def classify_detailed(
        self,
        items: Sequence[Any],
        progress: Progress | None = None,
        neighbours: Sequence[tuple[int, int]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def classify(self, items: Sequence[Any]) -> np.ndarray:
        raise NotImplementedError

    def _in_context(self, logits: np.ndarray, neighbours: Sequence[tuple[int, int]]) -> np.ndarray:
        """z + w * (mean(z of the neighbours) - bias): the head on u + w * mean(u of them).

        Vectorised (a Python loop per sentence was host work a GPU run waited on), with the
        loop's float32 arithmetic: a, b or a + b, divided by 1 or 2."""
        near = np.asarray(neighbours, dtype=np.int64).reshape(-1, 2)
        has = near >= 0
        before, after = logits[near[:, 0]], logits[near[:, 1]]  # -1 rows are masked below
        both = (has[:, 0] & has[:, 1])[:, None]
        total = np.where(both, before + after, np.where(has[:, :1], before, after))
        mean = total / has.sum(1, keepdims=True).astype(np.float32).clip(1)
        out, rows = logits.copy(), has.any(1)
        out[rows] += self.context_weight * (mean[rows] - self._head_bias)
        return out

    def classify_rows(
        self,
        pairs: Sequence[tuple[str, str]],
        prevs: Sequence[str] | None = None,
        nexts: Sequence[str] | None = None,
    ) -> np.ndarray:
        """Probabilities for (claim, statement) rows whose article neighbours are known as text
        (statement files: `prev_text`/`next_text`); a neighbour that is not itself a row is
        classified too, once, for the context. Models that read no context skip all that."""
        if not self.context_weight:
            return self.classify(pairs)
        # A one-claim model: a row's text is all that decides its logits.
        items, index = list(pairs), {text: i for i, (_, text) in enumerate(pairs)}
        neighbours: list[tuple[int, int]] = []
        for near in zip(prevs or [""] * len(items), nexts or [""] * len(items), strict=True):
            ids = []
            for text in near:
                if text and text not in index:
                    index[text] = len(items)
                    items.append((self.claim, text))
                ids.append(index[text] if text else -1)
            neighbours.append((ids[0], ids[1]))
        neighbours += [(-1, -1)] * (len(items) - len(pairs))
        return self.classify_detailed(items, neighbours=neighbours)[0][: len(pairs)]

    def predict_chunk(
        self, articles: Sequence[Article], progress: Progress | None = None
    ) -> list[ArticleResult]:
        """Segment a few articles and classify all their sentences in one sorted pass."""
        sentences = [split_sentences(a.text) for a in articles]
        flat = [s for sents in sentences for s in sents]
        neighbours, at = [], 0
        for sents in sentences:  # the sentences just before and after, within the article
            end = at + len(sents)
            neighbours += [
                (i - 1 if i > at else -1, i + 1 if i + 1 < end else -1) for i in range(at, end)
            ]
            at = end
        probs, truncated = self.classify_detailed(flat, progress, neighbours)
        judged = self.relevance.judge(sentences) if self.relevance is not None else None
        results, at = [], 0
        for i, (a, sents) in enumerate(zip(articles, sentences, strict=True)):
            end = at + len(sents)
            rel = judged[i] if judged is not None else None
            results.append(
                ArticleResult(a.article_id, sents, probs[at:end], truncated[at:end], rel)
            )
            at = end
        release_memory()
        return results

    def iter_results(
        self, articles: Iterable[Article], chunk_chars: int = DEFAULT_CHUNK_CHARS
    ) -> Iterator[ArticleResult]:
        """Stream results article by article, classifying chunk by chunk (flat memory)."""
        for chunk in iter_chunks(articles, chunk_chars):
            yield from self.predict_chunk(chunk.articles)

    def predict(
        self, texts_or_articles: Iterable[str | dict | tuple[str, str] | Article]
    ) -> list[SentencePrediction]:
        """Per-sentence predictions, in input order.

        Items: a text (id: its position, "0", "1", ...), a dict with `text` (and `id`),
        an (id, text) pair, or an Article. Ids are used as given.
        """
        return [
            p for r in self.iter_results(as_articles(texts_or_articles)) for p in r.predictions()
        ]


def relevance_scorer(relevance: Any, claim: str, threshold: float | None) -> Any:
    """A stance.inference.relevance.RelevanceScorer for `claim`, or None when `relevance` is off."""
    if relevance is False or relevance is None:
        return None
    from .relevance import THRESHOLD, load_scorer

    embedder = None if relevance is True else relevance
    return load_scorer(claim, embedder, THRESHOLD if threshold is None else threshold)
