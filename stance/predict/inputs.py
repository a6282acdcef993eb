"""What `stance predict` reads: input files, directories, JSON Lines, HTML pages and
standard input, as articles; size limits; failures per input (and per JSONL line); ids made
unique.

Importable without torch (the annotation tool reads its articles through it too).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from ..data.segment import (
    ARTICLE_SUFFIXES,
    article_id_from_path,
    decode_text,
    normalise,
    over_limit,
    read_article,
)
from ..data.statements import json_lines, parse_json_line
from ..errors import InputError
from ..inference.records import Article, InputFailure
from ..util.wording import plural
from .options import DEFAULT_MAX_ARTICLE_BYTES, STDIN

# `stance predict`'s one logger, as before the split (log lines name their logger).
logger = logging.getLogger("stance.predict.run")


def _check_article(text: str, max_bytes: int | None, name: str, line: int | None = None) -> None:
    size = len(text.encode("utf-8")) if max_bytes is not None else 0
    if max_bytes is not None and size > max_bytes:
        raise InputError(over_limit("article", size, max_bytes), name, line)
    # The segmenter drops NULs and BOMs; an article of nothing else would yield no sentence.
    if not normalise(text.replace("\x00", " ").replace("\ufeff", "")):
        raise InputError("empty article (no sentences)", name, line)


def _read_txt(path: Path, max_bytes: int | None) -> Article:
    text = read_article(path, max_bytes)
    _check_article(text, max_bytes, str(path))
    return Article(article_id_from_path(path), text, str(path))


def _read_stdin(max_bytes: int | None) -> Article:
    name = "<stdin>"
    stream = sys.stdin
    buffer = getattr(stream, "buffer", None)
    limit = -1 if max_bytes is None else max_bytes + 1  # one byte over is enough to refuse
    data = buffer.read(limit) if buffer is not None else stream.read().encode("utf-8")
    if max_bytes is not None and len(data) > max_bytes:
        raise InputError(over_limit("article", None, max_bytes), name)
    text = decode_text(data, name)
    _check_article(text, max_bytes, name)
    return Article("stdin", text, name)


def _read_jsonl(path: Path, max_bytes: int | None) -> Iterator[Article | InputFailure]:
    """One article per line: {"id": ..., "text": ...}; a bad line fails alone."""
    found = False
    for lineno, raw in json_lines(path, refuse_binary=True):
        found = True
        try:
            yield _parse_jsonl_line(raw, path, lineno, max_bytes)
        except InputError as e:
            yield InputFailure(str(path), lineno, str(e))
    if not found:
        raise InputError("empty file (no JSON lines)", path)


def _parse_jsonl_line(raw: bytes, path: Path, lineno: int, max_bytes: int | None) -> Article:
    obj = parse_json_line(raw, path, lineno)
    text = obj.get("text")
    if not isinstance(text, str):
        what = "no 'text' field" if text is None else "'text' is not a string"
        raise InputError(what, path, lineno)
    _check_article(text, max_bytes, str(path), lineno)
    raw_id = obj.get("id")
    article_id = f"{article_id_from_path(path)}-{lineno}" if raw_id is None else str(raw_id)
    return Article(article_id, text, str(path), lineno)


def iter_inputs(
    inputs: Sequence[str], max_article_bytes: int | None = DEFAULT_MAX_ARTICLE_BYTES
) -> Iterator[Article | InputFailure]:
    """Articles (raw ids) and failures, lazily, in input order.

    `.jsonl`: one article a line; a directory: its `.txt`/`.html`/`.htm` files (any case),
    sorted, not recursive, with whatever else it holds logged as skipped; `-`: standard
    input, one article; `.html`/`.htm`: a saved web page (its main text); anything else: a
    UTF-8 text file, one article.
    """
    for name in inputs:
        try:
            if name == STDIN:
                yield _read_stdin(max_article_bytes)
                continue
            path = Path(name)
            if path.is_dir():
                for file in _scan_directory(path):
                    try:
                        yield _read_txt(file, max_article_bytes)
                    except InputError as e:
                        yield InputFailure.from_error(e, str(file))
            elif path.suffix.lower() == ".jsonl":
                yield from _read_jsonl(path, max_article_bytes)
            else:
                yield _read_txt(path, max_article_bytes)
        except InputError as e:
            yield InputFailure.from_error(e, name)


def _scan_directory(path: Path) -> list[Path]:
    """The article files of a directory, sorted; logs what it skips and why."""
    files, skipped = [], []
    for p in sorted(path.iterdir()):
        if p.is_file() and p.suffix.lower() in ARTICLE_SUFFIXES:
            files.append(p)
        elif not p.name.startswith("."):  # hidden files (.DS_Store, editor swap) are noise
            skipped.append(p.name + ("/" if p.is_dir() else ""))
    if skipped:
        shown = ", ".join(skipped[:10]) + (
            f" and {len(skipped) - 10} more" if len(skipped) > 10 else ""
        )
        what = plural(len(skipped), "entry", "entries")
        logger.warning("%s: skipped %s, not .txt/.html/.htm files: %s", path, what, shown)
    if not files:
        raise InputError("directory holds no .txt, .html or .htm files", path)
    return files


def unique_ids(items: Iterable[Article | InputFailure]) -> Iterator[Article | InputFailure]:
    """Make article ids unique in stream order: a repeated id gets -2, -3, ... (warned)."""
    seen: set[str] = set()
    for item in items:
        if isinstance(item, Article):
            uid, k = item.article_id, 1
            while uid in seen:
                k += 1
                uid = f"{item.article_id}-{k}"
            if uid != item.article_id:
                where = f"{item.source}:{item.line}" if item.line else item.source
                logger.warning(
                    "%s: article id %r already used; renamed %r", where, item.article_id, uid
                )
                item = Article(uid, item.text, item.source, item.line)
            seen.add(uid)
        yield item


class ArticleStream:
    """The input stream's articles, ids made unique; failures are collected.

    Every process reads the whole stream (so all cut the same chunks); only the main one
    logs the failures, so each is logged once.
    """

    def __init__(
        self,
        inputs: Sequence[str],
        max_article_bytes: int | None,
        failures: list[InputFailure],
        log_failures: bool,
    ):
        self.inputs, self.max_article_bytes = inputs, max_article_bytes
        self.failures, self.log_failures = failures, log_failures
        self.read = 0  # articles read so far

    def __iter__(self) -> Iterator[Article]:
        for item in unique_ids(iter_inputs(self.inputs, self.max_article_bytes)):
            if isinstance(item, InputFailure):
                self.failures.append(item)
                if self.log_failures:
                    logger.error("%s", item.error)
            else:
                self.read += 1
                yield item
