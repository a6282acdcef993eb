"""Statement files (JSON Lines, data/ANNOTATION.md) -> `datasets.Dataset`; group-aware splits.

A group is the unit that must never straddle a split: an article for the seed data
(`article_id`), a claim for Emergent (`group`). Skip rows (page furniture) are read,
counted and left out.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from datasets import ClassLabel, Dataset, Features, Value, concatenate_datasets

from ..errors import InputError
from ..labels import DEFAULT_CLAIM, LABEL2ID, LABELS

logger = logging.getLogger(__name__)

FEATURES = Features(
    {
        "id": Value("string"),
        "group": Value("string"),
        "claim": Value("string"),
        "text": Value("string"),
        "label": ClassLabel(names=list(LABELS)),
        "weight": Value("float32"),
        # The rows before and after this one in its file, when they come from the same article
        # (skip rows included, as in the article): the few-shot kind reads them as context.
        "prev_text": Value("string"),
        "next_text": Value("string"),
    }
)
_OPTIONAL_STR = ("claim", "article_id", "group", "note")
_SURROGATE = re.compile("[\ud800-\udfff]")  # valid JSON escapes, but not encodable text


@dataclass
class StatementFile:
    """The rows of one statement file: labelled rows kept, skip rows counted."""

    path: str
    rows: list[dict] = field(default_factory=list)
    skipped: int = 0


def parse_json_line(raw: bytes, path: Path, lineno: int) -> dict:
    """One JSON Lines record as a dict; every problem an InputError naming file and line."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"not valid UTF-8 (byte {e.start} of the line)", path, lineno) from None
    # Without its line ending: json reports an error found after the newline (a trailing
    # comma before it) at "line 2, column 1", a position that exists nowhere in the file.
    line = line.rstrip("\r\n")
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        column = e.pos - line.rfind("\n", 0, e.pos)  # characters, 1-based, within this line
        raise InputError(f"invalid JSON: {e.msg} (column {column})", path, lineno) from None
    except RecursionError:
        raise InputError("invalid JSON: nested too deeply", path, lineno) from None
    except ValueError as e:  # e.g. an integer over Python's 4300-digit limit
        raise InputError(f"invalid JSON: {e}", path, lineno) from None
    if not isinstance(row, dict):
        raise InputError(f"expected a JSON object, got {type(row).__name__}", path, lineno)
    return row


def _validate(row: dict, path: Path, lineno: int, claim: str | None) -> dict | None:
    """Return the normalised row, or None for a skip row. Raises InputError naming the line."""
    for key in ("id", "text"):
        if key not in row:
            raise InputError(f"missing required field '{key}'", path, lineno)
    if isinstance(row["id"], bool) or not isinstance(row["id"], (str, int)):
        raise InputError("'id' must be a string", path, lineno)
    if not isinstance(row["text"], str) or not row["text"].strip():
        raise InputError("'text' must be a non-empty string", path, lineno)
    for key in _OPTIONAL_STR:
        if key in row and row[key] is not None and not isinstance(row[key], (str, int)):
            raise InputError(f"'{key}' must be a string", path, lineno)
    skip = row.get("skip", False)
    if not isinstance(skip, bool):
        raise InputError("'skip' must be true or false", path, lineno)
    if skip:
        return None
    if "label" not in row or row["label"] is None:
        raise InputError(
            "missing required field 'label' (only skip rows may omit it)", path, lineno
        )
    label = row["label"]
    if not isinstance(label, str) or label not in LABEL2ID:
        raise InputError(f"unknown label {label!r}; allowed: {', '.join(LABELS)}", path, lineno)
    weight = row.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < 1e38:
        raise InputError("'weight' must be a non-negative number", path, lineno)
    group = row.get("group") or row.get("article_id") or row["id"]
    record = {
        "id": str(row["id"]),
        "group": str(group),
        "claim": str(row.get("claim") or claim or DEFAULT_CLAIM),
        "text": row["text"].strip(),
        "label": label,
        "weight": float(weight),
    }
    for key in ("prev_text", "next_text"):  # context given outright (`stance split` writes it)
        if key in row and row[key] is not None:
            if not isinstance(row[key], str):
                raise InputError(f"'{key}' must be a string", path, lineno)
            record[key] = row[key]
    for key, value in record.items():
        if isinstance(value, str) and _SURROGATE.search(value):
            raise InputError(
                f"'{key}' holds a lone surrogate escape (\\ud800-\\udfff)", path, lineno
            )
    return record


def json_lines(path: Path, refuse_binary: bool = False) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) of every non-blank line of a JSON Lines file, a leading UTF-8 BOM
    removed; a missing, unreadable (or, with `refuse_binary`, binary) file is an InputError."""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise InputError("no such file", path) from None
    except IsADirectoryError:
        raise InputError("is a directory, expected a .jsonl file", path) from None
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", path) from None
    with f:
        if refuse_binary and b"\x00" in f.read(8192):
            raise InputError("looks binary (NUL bytes), expected UTF-8 JSON Lines", path)
        f.seek(0)
        for lineno, raw in enumerate(f, start=1):
            if lineno == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            if raw.strip():
                yield lineno, raw


def read_statements(path: str | Path, claim: str | None = None) -> StatementFile:
    """Read and validate a statement file. Every problem is an InputError naming file and line."""
    path = Path(path)
    out = StatementFile(str(path))
    seen: dict[str, int] = {}
    sentences: dict[tuple[str, int], str] = {}  # (article_id, sentence_index) -> text
    places: list[tuple[str, int] | None] = []  # each kept row's place in its article
    for lineno, raw in json_lines(path):
        row = parse_json_line(raw, path, lineno)
        record = _validate(row, path, lineno, claim)
        row_id = str(row["id"])
        if row_id in seen:
            raise InputError(
                f"duplicate id {row_id!r} (first on line {seen[row_id]})", path, lineno
            )
        seen[row_id] = lineno
        place = _place(row)
        if place is not None:
            sentences[place] = row["text"].strip()
        if record is None:
            out.skipped += 1
        else:
            out.rows.append(record)
            places.append(place)
    _add_neighbours(out.rows, places, sentences)
    if not out.rows:
        what = "only skip rows" if out.skipped else "no statements"
        raise InputError(f"empty statement file ({what})", path)
    return out


def _place(row: dict) -> tuple[str, int] | None:
    """(article_id, sentence_index) of a row cut from an article; None for a free statement."""
    article, index = row.get("article_id"), row.get("sentence_index")
    if article in (None, "") or isinstance(index, bool) or not isinstance(index, int):
        return None
    return str(article), index


def _add_neighbours(
    rows: list[dict], places: list[tuple[str, int] | None], sentences: dict[tuple[str, int], str]
) -> None:
    """`prev_text`/`next_text`: the article's sentences just before and after a row (skip rows
    included, as they stand in the article); empty for free statements."""
    for row, place in zip(rows, places, strict=True):
        article, index = place if place is not None else (None, 0)
        row.setdefault("prev_text", sentences.get((article, index - 1), ""))
        row.setdefault("next_text", sentences.get((article, index + 1), ""))


def to_dataset(rows: Sequence[dict]) -> Dataset:
    columns = {name: [r.get(name, "") for r in rows] for name in FEATURES}
    columns["label"] = [LABEL2ID[label] for label in columns["label"]]
    return Dataset.from_dict(columns, features=FEATURES)


def load_statements(path: str | Path, claim: str | None = None, weight: float = 1.0) -> Dataset:
    """Load a statement file as a Dataset; `label` is a ClassLabel over LABELS.

    `claim` fills rows that carry none (default: the project claim); `weight` scales every
    row's loss weight (for mixing sources).
    """
    statements = read_statements(path, claim)
    if statements.skipped:
        logger.info("%s: %d skip rows left out", path, statements.skipped)
    rows = [{**r, "weight": r["weight"] * weight} for r in statements.rows]
    return to_dataset(rows)


def load_sources(sources: Sequence[tuple[str, float]], claim: str | None = None) -> Dataset:
    """Concatenate several statement files, each with its own loss weight."""
    parts = [load_statements(path, claim, weight) for path, weight in sources]
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


def label_counts(ds: Dataset) -> dict[str, int]:
    counts = Counter(ds["label"])
    return {label: counts.get(i, 0) for i, label in enumerate(LABELS)}


def leave_one_group_out(
    ds: Dataset, train_only: Dataset | None = None
) -> list[tuple[str, Dataset, Dataset]]:
    """One fold per group of `ds`: (held-out group, train, test); no group is on both sides.

    `train_only` rows (e.g. variants written from a seed sentence, grouped with its article)
    join the training side of every fold but their own group's, and are never scored.
    """
    groups = list(ds["group"])
    extra_groups = list(train_only["group"]) if train_only is not None else []
    folds = []
    for held in sorted(set(groups)):
        test_idx = [i for i, g in enumerate(groups) if g == held]
        train = ds.select([i for i, g in enumerate(groups) if g != held])
        if train_only is not None:
            keep = [i for i, g in enumerate(extra_groups) if g != held]
            train = concatenate_datasets([train, train_only.select(keep)])
        folds.append((held, train, ds.select(test_idx)))
    return folds


def group_split(
    ds: Dataset, dev_fraction: float, seed: int, tries: int = 200
) -> tuple[Dataset, Dataset]:
    """Seeded split into (train, dev) by whole groups, stratified by label.

    Among the prefixes of `tries` seeded orderings of the groups, keep the one whose dev
    size and label mix come closest to `dev_fraction` and the overall mix. Needs at least
    two groups.
    """
    groups, labels = list(ds["group"]), list(ds["label"])
    by_group: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        by_group.setdefault(g, []).append(i)
    names = sorted(by_group)
    if len(names) < 2:
        raise InputError(f"a group split needs at least two groups, found {len(names)}")
    n = len(groups)
    target = Counter(labels)
    rng = random.Random(seed)
    best: tuple[float, list[str]] | None = None
    for _ in range(tries):
        rng.shuffle(names)
        size, dev_labels = 0, Counter()
        for k, name in enumerate(names[:-1]):  # leave at least one group for training
            size += len(by_group[name])
            dev_labels.update(labels[i] for i in by_group[name])
            mix = sum(abs(dev_labels[c] / size - target[c] / n) for c in target)
            score = abs(size / n - dev_fraction) + 0.25 * mix  # size first, then label mix
            if best is None or score < best[0]:
                best = (score, list(names[: k + 1]))
            if size >= dev_fraction * n:
                break
    assert best is not None
    dev_set = set(best[1])
    dev_idx = [i for i, g in enumerate(groups) if g in dev_set]
    train_idx = [i for i, g in enumerate(groups) if g not in dev_set]
    return ds.select(train_idx), ds.select(dev_idx)


def paraphrase_claims(ds: Dataset, per_row: int, weight: float, seed: int) -> Dataset:
    """`ds` plus rows whose claim is restated in the words of the row's own group.

    A statement labelled `supports` asserts the claim, so it can stand in for it: every row's
    text is paired, as the claim, with up to `per_row` other supporting statements of its
    group (drawn with `seed`), keeping the row's label, at `weight` times its loss weight. The
    model then sees each claim worded several ways, as claims it has never seen will be. Only
    a row's own group is used, so a group split stays clean.
    """
    if per_row <= 0 or len(ds) == 0:
        return ds
    supports = LABEL2ID["supports"]
    rows = ds.to_list()
    by_group: dict[str, list[dict]] = {}
    for row in rows:
        by_group.setdefault(row["group"], []).append(row)
    rng = random.Random(seed)
    extra = []
    for group in sorted(by_group):
        members = by_group[group]
        asserting = [r for r in members if r["label"] == supports]
        for row in members:
            others = [r for r in asserting if r["id"] != row["id"] and r["text"] != row["text"]]
            for other in rng.sample(others, min(per_row, len(others))):
                extra.append(
                    {
                        **row,
                        "id": f"{row['id']}~{other['id']}",
                        "claim": other["text"],
                        "label": LABELS[row["label"]],
                        "weight": row["weight"] * weight,
                    }
                )
    logger.info("claim paraphrases: %d extra rows from %d", len(extra), len(rows))
    if not extra:
        return ds
    return concatenate_datasets([ds, to_dataset(extra)])
