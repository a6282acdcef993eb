"""Cut articles into sentences with pysbd, keeping every sentence in order.

Line breaks are hard boundaries (headlines, captions and bullets rarely end in a full stop);
inside a line pysbd decides. Whitespace is normalised; empty pieces are dropped.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import pysbd

from ..errors import InputError

_WS = re.compile(r"\s+")
_SEED_NAME = re.compile(r"^(\d+)_[0-9a-fA-F]+$")
_SAFE_ID = re.compile(r"[^A-Za-z0-9._-]+")
# pysbd is regex-heavy; very long lines are cut into windows of this many characters first,
# at the last space inside the window, so a 5 MB line with no full stop cannot stall it.
_MAX_CHUNK = 2000
_MAX_ID = 120  # well under the 255-byte file-name limit, with room for suffixes


@lru_cache(maxsize=1)
def _segmenter() -> pysbd.Segmenter:
    return pysbd.Segmenter(language="en", clean=False)


def normalise(text: str) -> str:
    return _WS.sub(" ", text).strip()


def _chunks(line: str) -> Iterator[str]:
    while len(line) > _MAX_CHUNK:
        cut = line.rfind(" ", 0, _MAX_CHUNK)
        cut = cut if cut > 0 else _MAX_CHUNK
        yield line[:cut]
        line = line[cut:]
    yield line


def split_sentences(text: str) -> list[str]:
    """Return the sentences of `text`, in order, whitespace-normalised."""
    text = text.replace("\x00", " ").lstrip("\ufeff")
    sentences: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        for chunk in _chunks(line):
            pieces = _segmenter().segment(chunk)
            if "".join(pieces).split() != chunk.split():
                # pysbd drops text around its own placeholder characters and after "!!" or
                # "?!"; never lose a word: keep such a line whole.
                pieces = [chunk]
            for piece in pieces:
                piece = normalise(piece)
                if piece:
                    sentences.append(piece)
    return sentences


def text_pieces(text: str, size: int) -> Iterator[str]:
    """`text` cut into consecutive pieces of about `size` characters (at least one).

    Cuts fall only where `split_sentences` already cuts (line ends, and the points where an
    over-long line is divided), so the sentences of the pieces, in turn, are the sentences of
    the whole text. A piece can exceed `size` by one such segment (at most a line's
    `_MAX_CHUNK` characters).
    """
    text = text.replace("\x00", " ").lstrip("\ufeff")
    piece: list[str] = []
    length = 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
        parts = list(_chunks(body)) if body.strip() else [body]
        parts[-1] += line[len(body) :]
        for part in parts:
            piece.append(part)
            length += len(part)
            if length >= size:
                yield "".join(piece)
                piece, length = [], 0
    if piece or not text:
        yield "".join(piece)


def article_id_from_path(path: str | Path) -> str:
    """`000_88a8.txt` -> `000`; any other name -> its stem, made safe for use in file names."""
    stem = Path(path).stem
    match = _SEED_NAME.match(stem)
    return safe_id(match.group(1) if match else stem)


def safe_id(article_id: str) -> str:
    """An id that cannot escape a directory when used in a path (no separators, no `..`)."""
    cleaned = _SAFE_ID.sub("_", str(article_id)).strip("._")[:_MAX_ID]
    return cleaned.rstrip("._") or "article"


def read_bytes(path: Path, expected: str) -> bytes:
    """A file's bytes, or an InputError naming it (missing, a directory, unreadable)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError("no such file", path) from None
    except IsADirectoryError:
        raise InputError(f"is a directory, expected {expected}", path) from None
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror or e}", path) from None


def over_limit(what: str, size: int | None, max_bytes: int) -> str:
    """The size refusal, naming the option that moves the limit."""
    sized = f"{what} is {size:,} bytes, over" if size is not None else f"{what} is over"
    return f"{sized} the limit of {max_bytes:,} bytes (raise it with --max-article-bytes)"


def read_text(path: str | Path, max_bytes: int | None = None) -> str:
    """Read a UTF-8 article; clear errors for binary, non-UTF-8, empty and oversized files."""
    path = Path(path)
    if max_bytes is not None:
        try:
            size = path.stat().st_size
        except OSError:
            size = 0  # read_bytes below names the problem
        if size > max_bytes:  # refuse before reading it all
            raise InputError(over_limit("article", size, max_bytes), path)
    data = read_bytes(path, "a text file")
    if max_bytes is not None and len(data) > max_bytes:  # it grew while we looked
        raise InputError(over_limit("article", len(data), max_bytes), path)
    return decode_text(data, path)


HTML_SUFFIXES = (".html", ".htm")
# What a directory scan reads (suffixes compared case-insensitively: RUSSIA.TXT counts).
ARTICLE_SUFFIXES = (".txt", *HTML_SUFFIXES)


def html_main_text(data: bytes, path: str | Path) -> str:
    """The main text of a saved web page (trafilatura), one paragraph a line.

    Menus, teasers, comments and scripts are left out; trafilatura works on the bytes given
    and never fetches anything.
    """
    import trafilatura

    if b"\x00" in data[:8192]:
        raise InputError("looks binary (NUL bytes), expected an HTML page", path)
    logging.getLogger("trafilatura").setLevel(logging.ERROR)  # it warns on every odd page
    text = trafilatura.extract(
        data, output_format="txt", include_comments=False, include_tables=False, deduplicate=False
    )
    if not text or not text.strip():
        raise InputError("no main text found in the HTML page", path)
    return text


def read_article(path: str | Path, max_bytes: int | None = None) -> str:
    """An article's text: UTF-8 text as it is, an .html/.htm page through `html_main_text`."""
    path = Path(path)
    if path.suffix.lower() not in HTML_SUFFIXES:
        return read_text(path, max_bytes)
    if max_bytes is not None and path.is_file() and path.stat().st_size > max_bytes:
        size = path.stat().st_size
        raise InputError(over_limit("page", size, max_bytes), path)
    return html_main_text(read_bytes(path, "an HTML page"), path)


def decode_utf8(data: bytes, path: str | Path) -> str:
    """Strict UTF-8 (a leading BOM tolerated); a bad byte is an InputError naming its line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        message = f"not valid UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start})"
        raise InputError(message + _encoding_hint(data), path, line) from None


def _encoding_hint(data: bytes) -> str:
    """How to convert a file that is not UTF-8, naming the encoding it most likely is."""
    try:
        data.decode("cp1252")
        guess = "cp1252"  # Windows-1252, the usual superset of Latin-1 in saved articles
    except UnicodeDecodeError:
        guess = "latin-1"  # every byte decodes; a guess only
    return (
        f"; it reads as {guess} (Latin-1 family): convert it first, e.g. "
        f"iconv -f {guess} -t utf-8 FILE > FILE.utf8.txt"
    )


def decode_text(data: bytes, path: str | Path) -> str:
    if b"\x00" in data[:8192]:
        raise InputError("looks binary (NUL bytes), expected UTF-8 text", path)
    text = decode_utf8(data, path)
    if not text.strip():
        raise InputError("empty article", path)
    return text


def sentence_records(article_id: str, text: str) -> list[dict]:
    """One record per sentence: id, article_id, sentence_index, text."""
    return [
        {"id": f"{article_id}-{i:02d}", "article_id": article_id, "sentence_index": i, "text": s}
        for i, s in enumerate(split_sentences(text))
    ]
