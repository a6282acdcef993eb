"""Importers: public stance corpora -> statement files (JSON Lines, see data/ANNOTATION.md).

Emergent (Ferreira & Vlachos, 2016) pairs a rumour claim with news-article headlines, each
labelled for its stance toward the claim. `import_emergent` turns the official clean train
and test CSVs into `train.jsonl` and `test.jsonl` that
`stance.data.statements.load_statements` reads:

=====================  ==========================================
Emergent               record
=====================  ==========================================
articleHeadline        text
claimHeadline          claim
articleHeadlineStance  label: for -> supports, against -> doubts,
                       observing -> neutral
claimId                group (the split unit: one claim's rows
                       never straddle a split)
articleId, claimId     id = "emergent-{articleId}-{claimId}"
=====================  ==========================================

`import_fnc1` turns FNC-1's training pairs (headline, body, stance) into `train.jsonl`, and can
drop every body that touches another corpus's test claims (see its docstring).

Every problem is an `InputError` naming the CSV file and, for a bad row, the line the row
starts on; nothing is written unless every input parses.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..labels import LABELS
from ..util.atomic import atomic_open
from .segment import decode_utf8, normalise, read_bytes
from .statements import read_statements

logger = logging.getLogger(__name__)

EMERGENT_FILES: dict[str, str] = {
    "train": "url-versions-2015-06-14-clean-train.csv",
    "test": "url-versions-2015-06-14-clean-test.csv",
}
EMERGENT_LABELS: dict[str, str] = {"for": "supports", "against": "doubts", "observing": "neutral"}
EMERGENT_COLUMNS: tuple[str, ...] = (
    "claimHeadline",
    "articleHeadline",
    "articleHeadlineStance",
    "articleId",
    "claimId",
)

assert set(EMERGENT_LABELS.values()) == set(LABELS), "EMERGENT_LABELS must cover LABELS"


@dataclass(frozen=True)
class _Where:
    """Where a record came from, for error messages."""

    path: Path
    line: int


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield (first physical line of the record, fields) for every record, header included.

    The file is decoded as strict UTF-8 (a leading BOM is tolerated) before parsing, so a bad
    byte is reported on its exact line. Blank lines are skipped; CSV syntax errors become
    InputError naming the line the record starts on.
    """
    text = decode_utf8(read_bytes(path, "a CSV file"), path)
    reader = csv.reader(io.StringIO(text, newline=""))
    end = 0  # last physical line consumed so far
    while True:
        start = end + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise InputError(f"malformed CSV: {e}", path, start) from None
        end = reader.line_num
        if fields:
            yield start, fields


def _read_table(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[_Where, dict[str, str]]]:
    """Yield (where, {column: cleaned value}) per data row; header, field count and empty
    fields are checked, each problem an InputError naming the file and line."""
    rows = _csv_rows(path)
    try:
        header_line, header = next(rows)
    except StopIteration:
        raise InputError("empty file: expected a header row", path) from None
    header = [name.strip() for name in header]
    missing = [name for name in columns if name not in header]
    if missing:
        raise InputError(
            f"missing required column(s) {', '.join(missing)}; header is {header!r}",
            path,
            header_line,
        )
    index = {name: header.index(name) for name in columns}
    empty = True
    for line, fields in rows:
        if len(fields) != len(header):
            raise InputError(
                f"expected {len(header)} fields as in the header, found {len(fields)}", path, line
            )
        value = {name: normalise(fields[i]) for name, i in index.items()}
        for name in columns:
            if not value[name]:
                raise InputError(f"empty {name}", path, line)
        empty = False
        yield _Where(path, line), value
    if empty:
        raise InputError("no data rows after the header", path)


def _read_emergent_csv(path: Path) -> list[tuple[_Where, dict[str, str]]]:
    """Parse one official Emergent CSV into (where, record) pairs, validating every row."""
    out: list[tuple[_Where, dict[str, str]]] = []
    for where, value in _read_table(path, EMERGENT_COLUMNS):
        stance = value["articleHeadlineStance"]
        if stance not in EMERGENT_LABELS:
            allowed = ", ".join(EMERGENT_LABELS)
            raise InputError(
                f"unknown articleHeadlineStance {stance!r}; allowed: {allowed}", path, where.line
            )
        record = {
            "id": f"emergent-{value['articleId']}-{value['claimId']}",
            "group": value["claimId"],
            "claim": value["claimHeadline"],
            "text": value["articleHeadline"],
            "label": EMERGENT_LABELS[stance],
        }
        out.append((where, record))
    return out


def _check_emergent(splits: dict[str, list[tuple[_Where, dict[str, str]]]]) -> None:
    """Ids must be unique over all splits and no claim (group) may sit in two splits."""
    seen_id: dict[str, _Where] = {}
    group_split: dict[str, tuple[str, _Where]] = {}
    for split, rows in splits.items():
        for where, record in rows:
            first = seen_id.get(record["id"])
            if first is not None:
                raise InputError(
                    f"duplicate article/claim pair (id {record['id']!r}, first at "
                    f"{first.path}:{first.line})",
                    where.path,
                    where.line,
                )
            seen_id[record["id"]] = where
            other = group_split.setdefault(record["group"], (split, where))
            if other[0] != split:
                raise InputError(
                    f"claimId {record['group']!r} is in both the {other[0]} split "
                    f"({other[1].path}:{other[1].line}) and the {split} split; "
                    "a claim must not straddle splits",
                    where.path,
                    where.line,
                )


def import_emergent(src_dir: str | Path, out_dir: str | Path) -> dict[str, dict[str, int]]:
    """Import the official Emergent train/test CSVs from `src_dir` into `out_dir`.

    Writes `out_dir/train.jsonl` and `out_dir/test.jsonl` (statement records with id, group,
    claim, text, label; see the module docstring for the mapping) and returns the label
    counts per split, e.g. ``{"train": {"supports": 992, "doubts": 304, "neutral": 775}, ...}``.

    Both CSVs are parsed and checked (unknown stance, empty field, wrong field count, duplicate
    article/claim pair, a claim in both splits) before anything is written; any problem raises
    `InputError` naming the file and line, and leaves existing outputs untouched. Each output
    is written to a temp file in `out_dir` and moved into place with `os.replace`.
    """
    src = Path(src_dir)
    out = Path(out_dir)
    splits = {split: _read_emergent_csv(src / name) for split, name in EMERGENT_FILES.items()}
    _check_emergent(splits)

    return _write_splits("emergent", {s: [r for _, r in rows] for s, rows in splits.items()}, out)


def _write_splits(corpus: str, splits: dict[str, list[dict[str, str]]], out: Path) -> dict:
    """Write `out/<split>.jsonl` for every split, all or nothing; return label counts."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create output directory: {e.strerror or e}", out) from None
    # Every file is written to a temporary beside it and renamed only once all are written,
    # so a failure leaves the old outputs as they were.
    with contextlib.ExitStack() as stack:
        for split, records in splits.items():
            f = stack.enter_context(atomic_open(out / f"{split}.jsonl"))
            f.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)

    counts: dict[str, dict[str, int]] = {}
    for split, records in splits.items():
        counts[split] = {label: 0 for label in LABELS}
        for record in records:
            counts[split][record["label"]] += 1
        logger.info(
            "%s %s: %d statements, %d groups -> %s (%s)",
            corpus,
            split,
            len(records),
            len({r["group"] for r in records}),
            out / f"{split}.jsonl",
            ", ".join(f"{k} {v}" for k, v in counts[split].items()),
        )
    return counts


# ---------------------------------------------------------------- FNC-1

FNC1_FILES: dict[str, str] = {"stances": "train_stances.csv", "bodies": "train_bodies.csv"}
FNC1_LABELS: dict[str, str] = {"agree": "supports", "disagree": "doubts", "discuss": "neutral"}
FNC1_UNRELATED = "unrelated"  # not a stance toward the headline: left out

assert set(FNC1_LABELS.values()) == set(LABELS), "FNC1_LABELS must cover LABELS"


def _fold(text: str) -> str:
    return normalise(text).casefold()


def _headlines(paths: Sequence[str | Path]) -> set[str]:
    """Every claim and text of the statement files `paths`, case- and space-folded."""
    out: set[str] = set()
    for path in paths:
        for row in read_statements(path).rows:
            out |= {_fold(row["claim"]), _fold(row["text"])}
    return out


def _fnc1_bodies(src: Path) -> dict[str, str]:
    """Body ID -> article body, from FNC-1's bodies file."""
    bodies: dict[str, str] = {}
    for where, value in _read_table(src / FNC1_FILES["bodies"], ("Body ID", "articleBody")):
        if value["Body ID"] in bodies:
            raise InputError(f"duplicate Body ID {value['Body ID']!r}", where.path, where.line)
        bodies[value["Body ID"]] = value["articleBody"]
    return bodies


def _fnc1_pairs(src: Path, bodies: dict[str, str]) -> dict[tuple[str, str], tuple[_Where, str]]:
    """(headline, body id) -> (where, stance) for every pair of the stances file, once each."""
    pairs: dict[tuple[str, str], tuple[_Where, str]] = {}
    for where, value in _read_table(src / FNC1_FILES["stances"], ("Headline", "Body ID", "Stance")):
        stance, body = value["Stance"], value["Body ID"]
        if stance not in (*FNC1_LABELS, FNC1_UNRELATED):
            allowed = ", ".join((*FNC1_LABELS, FNC1_UNRELATED))
            raise InputError(
                f"unknown Stance {stance!r}; allowed: {allowed}", where.path, where.line
            )
        if body not in bodies:
            raise InputError(
                f"Body ID {body!r} is not in {FNC1_FILES['bodies']}", where.path, where.line
            )
        first = pairs.setdefault((value["Headline"], body), (where, stance))
        if first[1] != stance:
            raise InputError(
                f"this headline/body pair is labelled {first[1]!r} on line {first[0].line} "
                f"and {stance!r} here",
                where.path,
                where.line,
            )
    return pairs


def import_fnc1(
    src_dir: str | Path,
    out_dir: str | Path,
    within: Sequence[str | Path] = (),
    exclude: Sequence[str | Path] = (),
) -> dict[str, dict[str, int]]:
    """Import FNC-1's training pairs (headline, article body) into `out_dir/train.jsonl`.

    FNC-1 (Pomerleau & Rao, 2017) labels a body's stance toward a headline: agree ->
    supports, disagree -> doubts, discuss -> neutral; unrelated pairs are left out. A record
    is ``claim`` = headline, ``text`` = the whole body (a model reads its first `max_length`
    tokens), ``group`` = the body, so one body's pairs never straddle a split. Duplicate pairs
    are kept once; the same pair with two labels is an error.

    FNC-1 was built from Emergent's articles, so it holds Emergent's test headlines and their
    bodies. ``exclude`` (statement files, e.g. Emergent's test.jsonl) drops every body related
    to any of their headlines or claims, with all its pairs; ``within`` (e.g. Emergent's
    train.jsonl) keeps only bodies related to at least one of their headlines, so a body whose
    claim cannot be traced is dropped too. Related pairs share a claim, so what is left
    belongs to the `within` claims alone.
    """
    src, out = Path(src_dir), Path(out_dir)
    bodies = _fnc1_bodies(src)
    pairs = _fnc1_pairs(src, bodies)
    related = {key: v for key, v in pairs.items() if v[1] != FNC1_UNRELATED}

    keep_bodies = {body for _, body in related}
    if within:
        inside = _headlines(within)
        keep_bodies = {body for headline, body in related if _fold(headline) in inside}
    if exclude:
        outside = _headlines(exclude)
        keep_bodies -= {body for headline, body in related if _fold(headline) in outside}
    records = [
        {
            "id": f"fnc1-{where.line}",
            "group": f"fnc1-body-{body}",
            "claim": headline,
            "text": bodies[body],
            "label": FNC1_LABELS[stance],
        }
        for (headline, body), (where, stance) in related.items()
        if body in keep_bodies
    ]
    if not records:
        raise InputError(
            "no related pairs left after --within/--exclude", src / FNC1_FILES["stances"]
        )
    logger.info(
        "fnc1: %d related pairs, %d kept (bodies %d of %d); %d unrelated pairs left out",
        len(related),
        len(records),
        len(keep_bodies),
        len({body for _, body in related}),
        len(pairs) - len(related),
    )
    return _write_splits("fnc1", {"train": records}, out)
