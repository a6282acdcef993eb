"""The labels file: the guide's JSON Lines (data/ANNOTATION.md), the session's only state.

Every change rewrites the whole file through a temporary file, fsync and rename (then an
fsync of the folder), before the page is answered. So the file on disk is always a complete
labels file that `stance train` reads as it is, a kill -9 loses at most the label in flight,
and undo is simply a row removed. Rows are kept in the order they were labelled, so undo
after a restart removes the label given last. Rewriting a few hundred rows is
cheap next to the seconds a person takes per label, so there is no event log beside it.

A file cut short by something else (a copy, an editor, a full disk) may end in a torn line:
on loading, an unparseable last line with no newline is dropped with a warning; any other
bad line is an InputError naming the file and line, as for every statement file.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ..data.statements import parse_json_line
from ..errors import InputError, StanceError
from ..labels import LABELS
from ..util.atomic import atomic_open
from .sentences import Sentence

logger = logging.getLogger(__name__)

SKIP = "skip"
CHOICES: tuple[str, ...] = (*LABELS, SKIP)


def row_choice(row: dict) -> str:
    """The label of a row, or `skip` for a skip row."""
    return SKIP if row.get("skip") is True else row["label"]


def make_row(sentence: Sentence, claim: str, choice: str) -> dict:
    if choice not in CHOICES:
        raise StanceError(f"unknown label {choice!r}; allowed: {', '.join(CHOICES)}")
    row = {
        "id": sentence.id,
        "article_id": sentence.article_id,
        "sentence_index": sentence.sentence_index,
        "text": sentence.text,
        "claim": claim,
    }
    if choice == SKIP:
        row["skip"] = True
    else:
        row["label"] = choice
    return row


class LabelStore:
    """The rows of a labels file, in labelling order; not thread-safe (the session locks)."""

    def __init__(self, path: str | Path, claim: str):
        self.path = Path(path)
        self.claim = claim
        self.rows: list[dict] = []
        self._ids: set[str] = set()
        if self.path.exists():
            for row in self._load():
                self.rows.append(row)
                self._ids.add(row["id"])

    def __contains__(self, row_id: str) -> bool:
        return row_id in self._ids

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, row: dict) -> None:
        if row["id"] in self._ids:
            raise StanceError(f"{row['id']} is labelled already")
        self.rows.append(row)
        self._ids.add(row["id"])
        try:
            self._save()
        except BaseException:
            self.rows.pop()  # memory and disk must agree: the label is not taken
            self._ids.discard(row["id"])
            raise

    def pop(self) -> dict | None:
        """Remove and return the last row (undo); None when there is none."""
        if not self.rows:
            return None
        row = self.rows.pop()
        try:
            self._save()
        except BaseException:
            self.rows.append(row)
            raise
        self._ids.discard(row["id"])
        return row

    def _save(self) -> None:
        with atomic_open(self.path, "w") as f:
            for row in self.rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        _fsync_dir(self.path.parent)

    def _load(self) -> list[dict]:
        try:
            data = self.path.read_bytes()
        except OSError as e:
            raise InputError(f"cannot read: {e.strerror or e}", self.path) from None
        lines = data.split(b"\n")
        rows, seen = [], {}
        for lineno, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            try:
                row = parse_json_line(raw.removeprefix(b"\xef\xbb\xbf"), self.path, lineno)
            except InputError:
                if lineno == len(lines):  # the last piece had no newline: a torn write
                    logger.warning(
                        "%s:%d: dropping a torn last line (%d bytes) left by an interrupted "
                        "write; that one label is lost",
                        self.path,
                        lineno,
                        len(raw),
                    )
                    continue
                raise
            self._check(row, lineno, seen)
            rows.append(row)
        return rows

    def _check(self, row: dict, lineno: int, seen: dict[str, int]) -> None:
        row_id = row.get("id")
        if not isinstance(row_id, str) or not isinstance(row.get("text"), str):
            raise InputError("a labels row needs string 'id' and 'text'", self.path, lineno)
        if row_id in seen:
            raise InputError(
                f"duplicate id {row_id!r} (first on line {seen[row_id]})", self.path, lineno
            )
        seen[row_id] = lineno
        if row.get("skip") is not True and row.get("label") not in LABELS:
            raise InputError(
                f"label {row.get('label')!r} is not one of {', '.join(LABELS)} (or skip: true)",
                self.path,
                lineno,
            )
        if row.get("claim", self.claim) != self.claim:
            raise InputError(
                f"labelled for another claim ({row['claim']!r}); use the same --claim or "
                "another --output",
                self.path,
                lineno,
            )


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the folder entry is; a kill alone would not need this,
    # a power cut would.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the rename still happened
    finally:
        os.close(fd)
