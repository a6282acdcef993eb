"""Property-based tests (hypothesis) of everything that reads hostile input.

The record loader, the segmenter, the config loader and `safe_id` get random bytes, huge
lines, NUL bytes, deep JSON, wrong types, labels in the wrong case, BOMs and CRLF. Each
either loads correctly or fails with the package's own error (InputError / ConfigError,
naming the file), never a library traceback and never a hang.

How many cases ran is counted per test in CASES and printed by the last test of this file
(`test_zz_case_counts`); `pytest --hypothesis-show-statistics` gives hypothesis' own view.

Bugs these tests found (lone surrogates, pysbd dropping text, huge error messages) are
fixed; the tests at the end pin them.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
import time
import typing
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from hypothesis import HealthCheck, currently_in_test_context, event, example, given, settings
from hypothesis import strategies as st

from stance.config import RunConfig, dump_config, load_config
from stance.data.segment import (
    article_id_from_path,
    decode_text,
    normalise,
    read_text,
    safe_id,
    split_sentences,
)
from stance.data.statements import load_statements, read_statements
from stance.errors import ConfigError, InputError
from stance.labels import DEFAULT_CLAIM, LABEL2ID, LABELS

CASES: Counter[str] = Counter()  # "test: outcome" -> examples run
SLOW_SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
_names = itertools.count()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """One folder for the whole module (function-scoped tmp_path does not mix with @given)."""
    return tmp_path_factory.mktemp("hostile")


def new_file(scratch: Path, data: bytes, suffix: str = ".jsonl") -> Path:
    path = scratch / f"case-{next(_names)}{suffix}"
    path.write_bytes(data)
    return path


def count(test: str, outcome: str) -> None:
    CASES[f"{test}: {outcome}"] += 1
    if currently_in_test_context():
        event(outcome)


# ------------------------------------------------------------------ the record loader

MISSING = object()  # a key left out of the row
BAD_JSON = object()  # the value of a fragment json.loads rejects


@dataclasses.dataclass(frozen=True)
class Raw:
    """A JSON fragment written as is; `value` is what json.loads makes of it."""

    text: str
    value: object


HUGE_INT = Raw("1" + "0" * 5000, BAD_JSON)  # over Python's 4300-digit int limit
BIG_INT = Raw("1" + "0" * 400, 10**400)  # parses, but float() overflows
RAW_VALUES = [
    HUGE_INT,
    BIG_INT,
    Raw("1e999", math.inf),
    Raw("1e39", 1e39),  # finite, but inf as float32
    Raw("NaN", math.nan),
    Raw("-Infinity", -math.inf),
    Raw("[" * 3000 + "]" * 3000, BAD_JSON),  # nested too deeply
    Raw('"lone \\ud800 surrogate"', "lone \ud800 surrogate"),
    Raw('"pair \\ud83d\\ude00 ok"', "pair \U0001f600 ok"),
]
SURROGATE = re.compile("[\ud800-\udfff]")


def dumps(obj, ensure_ascii: bool) -> str:
    if isinstance(obj, Raw):
        return obj.text
    if isinstance(obj, dict):
        items = (f"{json.dumps(k)}: {dumps(v, ensure_ascii)}" for k, v in obj.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(obj, list):
        return "[" + ", ".join(dumps(v, ensure_ascii) for v in obj) + "]"
    return json.dumps(obj, ensure_ascii=ensure_ascii)


def parsed(obj):
    """What json.loads makes of `obj` (BAD_JSON anywhere inside: the whole line is bad)."""
    if isinstance(obj, Raw):
        return obj.value
    if isinstance(obj, dict):
        out = {k: parsed(v) for k, v in obj.items()}
        return BAD_JSON if BAD_JSON in out.values() else out
    if isinstance(obj, list):
        out = [parsed(v) for v in obj]
        return BAD_JSON if any(v is BAD_JSON for v in out) else out
    return obj


def label_variants(label: str) -> list[str]:
    return [label.upper(), label.title(), label.swapcase(), f" {label}", f"{label}\n"]


WRONG_ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sampled_from(RAW_VALUES),
)
TEXTS = st.one_of(
    st.text(min_size=1, max_size=30),
    st.sampled_from(
        [
            "Troops return to base.",
            "nul\x00inside",
            "crlf\r\ninside",
            "\ufeffbom first",
            " padded\t ",
            "line\u2028separator",
            "word " * 200_000,  # a 1 MB line
        ]
    ),
)
RIGHT = {
    "id": st.one_of(  # mostly unique; "1" and 1 collide
        st.uuids().map(str), st.text(max_size=6), st.integers(), st.sampled_from(["1", 1])
    ),
    "text": TEXTS,
    "label": st.sampled_from(LABELS),
    "skip": st.sampled_from([MISSING, MISSING, MISSING, False, True]),
    "weight": st.one_of(
        st.just(MISSING), st.floats(0, 1e6), st.integers(0, 10**6), st.sampled_from([0, 0.0])
    ),
    "claim": st.one_of(st.just(MISSING), st.none(), st.text(max_size=8), st.integers(0, 99)),
    "article_id": st.one_of(st.just(MISSING), st.text(max_size=4), st.integers(0, 9)),
    "group": st.one_of(st.just(MISSING), st.none(), st.text(max_size=4)),
    "note": st.one_of(st.just(MISSING), st.text(max_size=4)),
}
WRONG = {
    "id": st.one_of(st.just(MISSING), WRONG_ANY),
    "text": st.one_of(st.just(MISSING), st.sampled_from(["", "  \t ", "\n"]), WRONG_ANY),
    "label": st.one_of(
        st.just(MISSING),
        st.sampled_from(LABELS).map(label_variants).flatmap(st.sampled_from),
        st.text(max_size=8),
        st.integers(),
        WRONG_ANY,
    ),
    "skip": st.one_of(st.sampled_from([None, 0, 1, "true", "false"]), WRONG_ANY),
    "weight": st.one_of(st.floats(max_value=-1e-9), st.sampled_from(["1", True]), WRONG_ANY),
    "claim": st.one_of(st.floats(), st.lists(st.text(), max_size=1), st.sampled_from(RAW_VALUES)),
    "note": st.sampled_from(RAW_VALUES),
}
JUNK_LINES = [
    b"{oops",
    b"[1, 2]",
    b"null",
    b'"a string"',
    b"\xff\xfe invalid utf-8",
    b'{"id": "x", "text": "y", "label": "neutral"} trailing',
    b"[" * 100_000,
    b'{"a": ' * 20_000,
    b"x" * 1_000_000,
    b"\xef\xbb\xbf{}",  # a BOM that is not at the start of the file
]


@st.composite
def statement_files(draw):
    """(file bytes, [(line number, parsed row or BAD_JSON / junk marker)])."""
    rows = [
        {k: v for k, v in draw(st.fixed_dictionaries(RIGHT)).items() if v is not MISSING}
        for _ in range(draw(st.integers(0, 6)))
    ]
    for _ in range(draw(st.sampled_from([0, 0, 0, 0, 1, 2]))):  # break a few rows
        if rows:
            row = rows[draw(st.integers(0, len(rows) - 1))]
            key = draw(st.sampled_from(sorted(WRONG)))
            value = draw(WRONG[key])
            if value is MISSING:
                row.pop(key, None)
            else:
                row[key] = value
    ensure_ascii = draw(st.booleans())
    newline = draw(st.sampled_from([b"\n", b"\r\n"]))
    lines: list[bytes] = []
    meaning: list[tuple[int, object]] = []
    for row in rows:
        if draw(st.integers(0, 5)) == 0:
            lines.append(draw(st.sampled_from([b"", b"   ", b"\t"])))  # blank: ignored
        lines.append(dumps(row, ensure_ascii).encode("utf-8", "surrogatepass"))
        meaning.append((len(lines), parsed(row)))
    if draw(st.integers(0, 7)) == 0:
        at = draw(st.integers(0, len(lines)))
        lines.insert(at, draw(st.sampled_from(JUNK_LINES)))
        meaning = [(n + (n > at), m) for n, m in meaning] + [(at + 1, BAD_JSON)]
        meaning.sort(key=lambda nm: nm[0])
    data = newline.join(lines) + (newline if draw(st.booleans()) else b"")
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    return data, meaning


def _is_str_or_int(v) -> bool:
    return isinstance(v, (str, int)) and not isinstance(v, bool)


def expected_record(row) -> dict | str:
    """The spec (data/ANNOTATION.md): a record, "skip", or "error" for a bad row."""
    if not isinstance(row, dict) or "id" not in row or "text" not in row:
        return "error"
    if not _is_str_or_int(row["id"]):
        return "error"
    if not isinstance(row["text"], str) or not row["text"].strip():
        return "error"
    for key in ("claim", "article_id", "group", "note"):
        if row.get(key) is not None and not _is_str_or_int(row[key]):
            return "error"
    skip = row.get("skip", False)
    if not isinstance(skip, bool):
        return "error"
    if skip:
        return "skip"
    if row.get("label") not in LABELS:  # exact: no other case, no spaces
        return "error"
    weight = row.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        return "error"
    if not 0 <= weight <= 1e30:  # finite, non-negative, fits a float32
        return "error"
    record = {
        "id": str(row["id"]),
        "group": str(row.get("group") or row.get("article_id") or row["id"]),
        "claim": str(row.get("claim") or DEFAULT_CLAIM),
        "text": row["text"].strip(),
        "label": row["label"],
        "weight": float(weight),
    }
    if any(SURROGATE.search(v) for v in record.values() if isinstance(v, str)):
        return "surrogate"  # cannot be stored as UTF-8: should be an InputError on this line
    return record


def expected_outcome(meaning) -> tuple:
    """("error", line) | ("surrogate", line) | ("empty", None) | ("ok", records, skipped)."""
    records, skipped, seen = [], 0, set()
    for lineno, row in meaning:
        rec = "error" if row is BAD_JSON else expected_record(row)
        if rec in ("error", "surrogate"):
            return rec, lineno
        key = str(row["id"])
        if key in seen:
            return "error", lineno  # duplicate id
        seen.add(key)
        if rec == "skip":
            skipped += 1
        else:
            records.append(rec)
    if not records:
        return "empty", None
    return "ok", records, skipped


def check_loaded(path: Path, statements, ds) -> None:
    """Invariants of every file that loads."""
    ids = [r["id"] for r in statements.rows]
    assert len(ids) == len(set(ids)), "duplicate ids loaded"
    for r in statements.rows:
        assert r["label"] in LABELS and r["text"] and r["text"] == r["text"].strip()
        assert math.isfinite(r["weight"]) and r["weight"] >= 0
    assert len(ds) == len(statements.rows)
    assert list(ds["id"]) == ids
    assert list(ds["label"]) == [LABEL2ID[r["label"]] for r in statements.rows]
    assert all(math.isfinite(w) for w in ds["weight"])


def check_input_error(err: InputError, path: Path) -> None:
    assert err.path == str(path) and str(path) in str(err), str(err)
    assert "Traceback" not in str(err)


@settings(max_examples=150, **SLOW_SETTINGS)
@given(statement_files())
def test_statement_files_load_as_specified_or_name_the_bad_line(scratch, case):
    data, meaning = case
    path = new_file(scratch, data)
    expect = expected_outcome(meaning)
    try:
        statements = read_statements(path)
        ds = load_statements(path)
    except InputError as e:
        check_input_error(e, path)
        assert expect[0] in ("error", "surrogate", "empty"), (expect, str(e))
        if expect[0] == "error":
            assert e.line == expect[1], (expect, str(e))
        elif expect[0] == "surrogate":
            assert e.line in (None, expect[1]), (expect, str(e))
        else:
            assert e.line is None and "empty statement file" in str(e)
        count("loader-rows", f"InputError ({expect[0]})")
        return
    assert expect[0] == "ok", (expect, statements.rows[:3])
    context = ("prev_text", "next_text")  # article neighbours: tests/test_data.py checks them
    assert [{k: v for k, v in r.items() if k not in context} for r in statements.rows] == expect[1]
    assert statements.skipped == expect[2]
    check_loaded(path, statements, ds)
    count("loader-rows", "loaded")


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ('"label": ["supports"]', "unknown label"),  # was TypeError: unhashable type
        ('"label": {}', "unknown label"),
        ('"weight": 1e999', "'weight'"),  # was accepted: an infinite loss weight
        ('"weight": 1e39', "'weight'"),  # was accepted: inf once stored as float32
        ('"weight": 1' + "0" * 400, "'weight'"),  # was OverflowError from float()
        ('"note": 1' + "0" * 5000, "invalid JSON"),  # was ValueError from json.loads
    ],
)
def test_rows_the_properties_found(scratch, fragment, message):
    line = '{"id": "a", "text": "x", "label": "neutral", ' + fragment + "}\n"
    path = new_file(scratch, line.encode())
    with pytest.raises(InputError, match=message) as err:
        load_statements(path)
    assert str(err.value).startswith(f"{path}:1: ")


@st.composite
def mutated_bytes(draw):
    """Bytes of a statement file with a few bytes inserted, deleted or replaced."""
    data = bytearray(draw(statement_files())[0][:4000])
    for _ in range(draw(st.sampled_from([0, 0, 1, 2, 3]))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        byte = draw(st.sampled_from([0, 0x0A, 0x0D, 0x22, 0x5B, 0x7B, 0x80, 0xEF, 0xFF]))
        if op == "insert":
            data.insert(at, byte)
        elif at < len(data):
            if op == "delete":
                del data[at]
            else:
                data[at] = byte
    return bytes(data)


@settings(max_examples=150, **SLOW_SETTINGS)
@given(st.one_of(st.binary(max_size=400), mutated_bytes()))
@example(b"[" * 100_000 + b"\n").via("deep JSON")
@example(b"\x00" * 64).via("NUL bytes")
def test_arbitrary_bytes_load_or_raise_input_error(scratch, data):
    path = new_file(scratch, data)
    try:
        statements = read_statements(path)
        ds = load_statements(path)
    except InputError as e:
        check_input_error(e, path)
        assert e.line is None or 1 <= e.line <= data.count(b"\n") + 1
        count("loader-bytes", "InputError")
        return
    lines = data.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    nonblank = [line for line in lines if line.strip()]
    assert len(statements.rows) + statements.skipped == len(nonblank)
    check_loaded(path, statements, ds)
    count("loader-bytes", "loaded")


# ------------------------------------------------------------------ the segmenter

# pysbd swaps text for these placeholders internally and drops whatever it cannot map back
# (test_known_bug_pysbd_drops_text): for inputs holding them, or "!!", "?!", "!?", "??",
# only "no invented text" is checked; every other input must come back complete.
PYSBD_RESERVED = "ȸȹ∮∯☄☇☈☉☝♨♬♭ᓰᓱᓳᓴᓷᓸ⌬⎋✂"
_DOUBLE_PUNCT = re.compile(r"[!?][!?]")
TOKENS = list("abcXYZ .,!?;:'\"()[]-&$%12\t\n\r“”‘’…—。．！？\x00\ufeff\u2028\x85\x0b\x0c\x1c")
TOKENS += ["Mr.", "U.S.", "e.g.", "No.", "a.m.", " A", "...", "(a)", "i.", "1.", "\r\n", "'s "]
TOKENS += ["Co. KG", ".jpg", "www.x.com", "The troops left.", "Did they?", "Yes!", "“Go.”"]
ARTICLES = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(TOKENS), max_size=80).map("".join),
    st.lists(st.sampled_from([*TOKENS, *PYSBD_RESERVED, "&ᓴ&", "!!"]), max_size=80).map("".join),
)


def pysbd_may_drop(text: str) -> bool:
    return any(c in text for c in PYSBD_RESERVED) or bool(_DOUBLE_PUNCT.search(text))


def squeeze(text: str) -> str:
    return "".join(text.split())


@settings(max_examples=300, **SLOW_SETTINGS)
@given(ARTICLES)
@example("\ufeffOne sentence.\r\nTwo sentence.\r\n\x00Three.").via("BOM, CRLF, NUL")
@example("word" * 3000).via("a long line without spaces")
def test_split_sentences_keeps_every_character_in_order(text):
    start = time.perf_counter()
    sentences = split_sentences(text)
    assert time.perf_counter() - start < 10, "the segmenter stalled"
    for s in sentences:
        assert s and s == normalise(s) and s == " ".join(s.split()), repr(s)
        assert "\x00" not in s and "\n" not in s and "\r" not in s
    kept = text.replace("\x00", " ").lstrip("\ufeff")  # what split_sentences strips
    assert "".join(map(squeeze, sentences)) == squeeze(kept)
    if pysbd_may_drop(text):
        count("split_sentences", "pysbd placeholder chars, nothing lost")
        return
    count("split_sentences", "complete" if sentences else "complete (no sentences)")


def test_split_sentences_on_a_huge_hostile_line():
    line = "Troops\x00 left base at 5 a.m.; " * 10_000 + "x" * 50_000  # 360 kB, one line
    text = "\ufeff" + line + "\r\nNext\u2028line.\r\n"
    start = time.perf_counter()
    sentences = split_sentences(text)
    assert time.perf_counter() - start < 30
    assert "".join(map(squeeze, sentences)) == squeeze(text.replace("\x00", " ").lstrip("\ufeff"))
    count("split_sentences (huge line)", "complete")


def expected_decode(data: bytes) -> tuple[str, object]:
    """The documented behaviour of decode_text: ("text", str) or ("error", (message, line))."""
    if b"\x00" in data[:8192]:
        return "error", ("binary", None)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        return "error", ("not valid UTF-8", data[: e.start].count(b"\n") + 1)
    if not text.strip():
        return "error", ("empty article", None)
    return "text", text


BYTES = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda t: t.encode("utf-8")),
    st.text(max_size=100).map(lambda t: b"\xef\xbb\xbf" + t.replace("\n", "\r\n").encode()),
    st.tuples(st.text(max_size=50), st.binary(max_size=8)).map(
        lambda tb: tb[0].encode() + tb[1] + tb[0].encode()
    ),
)


@settings(max_examples=300, **SLOW_SETTINGS)
@given(BYTES)
@example(b"x" * 9000 + b"\x00").via("NUL after the first 8 KiB")
def test_decode_text_returns_the_text_or_a_clear_error(data):
    kind, want = expected_decode(data)
    try:
        text = decode_text(data, "article.txt")
    except InputError as e:
        assert kind == "error", (want, str(e))
        message, line = want
        assert message in str(e) and str(e).startswith("article.txt")
        assert e.line == line
        count("decode_text", f"InputError ({message})")
        return
    assert kind == "text" and text == want
    count("decode_text", "text")


@settings(max_examples=40, **SLOW_SETTINGS)
@given(BYTES, st.one_of(st.none(), st.integers(0, 400)))
def test_read_text_of_files_matches_decode_text(scratch, data, max_bytes):
    path = new_file(scratch, data, ".txt")
    try:
        text = read_text(path, max_bytes)
    except InputError as e:
        check_input_error(e, path)
        if max_bytes is not None and len(data) > max_bytes:
            assert "over the limit" in str(e)
        else:
            assert expected_decode(data)[0] == "error"
        count("read_text", "InputError")
        return
    assert max_bytes is None or len(data) <= max_bytes
    assert ("text", text) == expected_decode(data)
    count("read_text", "text")


# ------------------------------------------------------------------ the config loader

_hints = typing.get_type_hints(RunConfig)
SECTIONS = {
    name: [f.name for f in dataclasses.fields(_hints[name])] for name in ("data", "model", "train")
}
DOTTED = [f"{s}.{k}" for s, keys in SECTIONS.items() for k in keys] + ["name", "output_dir"]
PLAUSIBLE = {  # values of the right type, mostly in range
    int: st.integers(0, 10**6),
    float: st.floats(0, 1),
    bool: st.booleans(),
    str: st.text(max_size=10),
}


def plausible(key: str) -> st.SearchStrategy:
    section, _, name = key.rpartition(".")
    hints = typing.get_type_hints(_hints[section] if section else RunConfig)
    tp = next((t for t in typing.get_args(hints[name]) if t is not type(None)), hints[name])
    return PLAUSIBLE.get(tp, VALUES)


YAMLISH = st.sampled_from(
    [
        "3e-5",
        "1.0e-3",
        "1e999",
        "nan",
        ".nan",
        "-.inf",
        "inf",
        "yes",
        "off",
        "0x10",
        "0o17",
        "1_000",
        "1:20",
        "2020-01-01",
        "~",
        "null",
        "",
        "[]",
        "{}",
        "[a, b]",
        "{path: x}",
        "[{path: a.jsonl, weight: 2}]",
        "'quoted'",
        '"dq"',
        "!!binary aGk=",
        "!!python/none",
        "&a [*a]",
        "*b",
        "- a",
        "a: b: c",
        "'unclosed",
        "[" * 500,  # pure-Python PyYAML: RecursionError already
        "9" * 5000,
        "\x00",
        "\ufeff",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    YAMLISH,
)
VALUES = st.recursive(
    SCALARS,
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def config_texts(draw):
    """YAML text: mostly a valid config with random keys set to random values, then mangled."""
    kind = draw(st.sampled_from(["tree", "tree", "tree", "text", "bytes"]))
    if kind == "text":
        return draw(st.text(max_size=300)).encode("utf-8")
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    tree: dict = {"data": {"train": [{"path": "data/withdrawal.jsonl"}]}}
    for _ in range(draw(st.integers(0, 4))):
        key = draw(st.one_of(st.sampled_from(DOTTED), st.text(min_size=1, max_size=8)))
        value = draw(plausible(key) if key in DOTTED and draw(st.booleans()) else VALUES)
        node, *rest = key.split(".", 1)
        if rest:
            section = tree.setdefault(node, {})
            if isinstance(section, dict):
                section[rest[0]] = value
        else:
            tree[node] = value
    text = yaml.safe_dump(tree, allow_unicode=draw(st.booleans()), default_flow_style=None)
    if draw(st.booleans()):
        text = text.replace("\n", "\r\n")
    if draw(st.booleans()):
        text = "\ufeff" + text
    if draw(st.integers(0, 5)) == 0:
        text = text[: draw(st.integers(0, len(text)))]
    return text.encode("utf-8")


def check_typed(obj, where: str = "cfg") -> None:
    """Every field holds its annotated type (int is not bool; lists of DataSource)."""
    for f in dataclasses.fields(obj):
        value, tp = getattr(obj, f.name), typing.get_type_hints(type(obj))[f.name]
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            assert type(None) in typing.get_args(tp), f"{where}.{f.name} is None"
            continue
        if typing.get_origin(tp) is list:
            assert isinstance(value, list)
            for item in value:
                check_typed(item, f"{where}.{f.name}[]")
            continue
        tp = args[0] if args else tp
        if dataclasses.is_dataclass(tp):
            check_typed(value, f"{where}.{f.name}")
        elif tp is float:  # (a default such as `epochs: float = 10` stays an int)
            assert type(value) in (float, int), f"{where}.{f.name}: {value!r} is not a number"
        else:
            assert type(value) is tp, f"{where}.{f.name}: {value!r} is not {tp.__name__}"


def check_config(cfg: RunConfig, scratch: Path) -> None:
    """The invariants load_config promises: typed, validated, and it round-trips."""
    assert isinstance(cfg, RunConfig)
    check_typed(cfg)
    t = cfg.train
    assert t.batch_size >= 1 and t.eval_batch_size >= 1 and t.grad_accum >= 1
    assert 0 <= t.epochs < math.inf and 0 < t.lr < math.inf and 0 <= t.warmup_ratio <= 1
    assert t.mixed_precision in ("auto", "no", "bf16", "fp16")
    assert 0 < cfg.data.dev_fraction < 1 and cfg.data.max_length >= 8 and cfg.data.train
    # the resolved config written beside a run reads back as the same config
    again = load_config(new_file(scratch, dump_config(cfg).encode(), ".yaml"))
    assert same(dataclasses.asdict(again), dataclasses.asdict(cfg))


def same(a, b) -> bool:
    """Equal, with NaN equal to NaN (a config may hold NaN, e.g. in train.weight_decay)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    numbers = {type(a), type(b)} <= {int, float}  # 10 (a default) == 10.0 (read back)
    return (type(a) is type(b) or numbers) and a == b


def check_config_error(e: ConfigError, path: Path | None, size: int) -> None:
    message = str(e)
    assert message and "Traceback" not in message
    assert len(message) <= 1000 + 4 * size, f"a {len(message)}-character message"
    first = message.split(":", 1)[0]
    named = (path is not None and message.startswith(str(path))) or first.startswith(
        ("train", "data", "model", "name", "output_dir", "override", "unknown config key")
    )
    assert named, f"the error names neither the file nor the key: {message[:200]}"


@settings(max_examples=150, **SLOW_SETTINGS)
@given(config_texts())
@example(("[" * 100_000).encode()).via("deep YAML")
@example(b"1: 2\nfoo: 3\n").via("int and str keys")
@example(b"data: {train: a.jsonl}\ntrain: {epochs: .nan}\n").via("NaN epochs")
def test_config_files_load_typed_or_raise_config_error(scratch, data):
    path = new_file(scratch, data, ".yaml")
    try:
        cfg = load_config(path)
    except ConfigError as e:
        check_config_error(e, path, len(data))
        count("load_config(file)", "ConfigError")
        return
    check_config(cfg, scratch)
    count("load_config(file)", "RunConfig")


def test_config_path_that_is_a_directory_is_a_config_error(scratch):
    with pytest.raises(ConfigError, match="cannot read"):  # was IsADirectoryError
        load_config(scratch)


OVERRIDES = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(DOTTED), st.one_of(YAMLISH, st.text(max_size=20))).map("=".join),
        st.tuples(st.sampled_from(DOTTED), VALUES.map(json.dumps)).map("=".join),
        st.sampled_from(DOTTED).flatmap(lambda k: plausible(k).map(lambda v: f"{k}={v!r}")),
        st.text(max_size=30),
    ),
    max_size=4,
)


@settings(max_examples=200, **SLOW_SETTINGS)
@given(st.sampled_from([None, "configs/tiny.yaml"]), st.booleans(), OVERRIDES)
@example(None, True, ["data.train=" + "[" * 100_000]).via("deep override")
@example(None, True, ["train.seed=" + "9" * 5000]).via("huge int")
@example(None, False, ["data.train={}"]).via("DataSource without its path")
def test_overrides_give_a_typed_config_or_config_error(scratch, base, with_data, overrides):
    path = ROOT / base if base else None
    overrides = (["data.train=data/withdrawal.jsonl"] if with_data else []) + overrides
    try:
        cfg = load_config(path, overrides)
    except ConfigError as e:
        check_config_error(e, path, sum(map(len, overrides)))
        count("load_config(overrides)", "ConfigError")
        return
    check_config(cfg, scratch)
    count("load_config(overrides)", "RunConfig")


@settings(max_examples=100, deadline=None)
@given(
    st.floats(1e-12, 1e6),
    st.floats(0, 1e4) | st.integers(0, 10**4),
    st.integers(1, 10**6),
    st.booleans(),
)
def test_typed_overrides_keep_their_exact_values(lr, epochs, batch_size, class_weights):
    cfg = load_config(
        ROOT / "configs" / "tiny.yaml",
        [
            f"train.lr={lr!r}",
            f"train.epochs={epochs!r}",
            f"train.batch_size={batch_size}",
            f"train.class_weights={str(class_weights).lower()}",
        ],
    )
    assert (cfg.train.lr, cfg.train.epochs) == (lr, float(epochs))
    assert (cfg.train.batch_size, cfg.train.class_weights) == (batch_size, class_weights)
    count("load_config(exact values)", "RunConfig")


# ------------------------------------------------------------------ ids in paths

ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=80)
_SAFE = re.compile(r"[A-Za-z0-9._-]+")


@settings(max_examples=300, deadline=None)
@given(st.one_of(ANY_TEXT, st.sampled_from(["..", ".", "../../etc/passwd", "/abs", "a\\..\\b"])))
def test_safe_id_never_escapes_the_output_directory(scratch, article_id):
    sid = safe_id(article_id)
    assert _SAFE.fullmatch(sid) and sid not in (".", "..") and not sid.startswith(".")
    assert safe_id(sid) == sid  # idempotent
    root = scratch / "out"
    assert (root / sid).resolve().parent == root.resolve()
    if len(sid) <= 200:  # safe_id does not cap the length; over 255 bytes is no file name
        root.mkdir(exist_ok=True)
        (root / sid).write_text("x")
        assert (root / sid).resolve().parent == root.resolve() and (root / sid).is_file()
        (root / sid).unlink()
    count("safe_id", "safe")


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,20}[A-Za-z0-9])?", fullmatch=True))
def test_safe_id_keeps_ids_that_are_already_safe(article_id):
    assert safe_id(article_id) == article_id
    count("safe_id (already safe)", "unchanged")


@settings(max_examples=200, deadline=None)
@given(ANY_TEXT)
def test_article_ids_from_any_path_are_safe(path):
    sid = article_id_from_path(path)
    assert _SAFE.fullmatch(sid) and not sid.startswith(".") and safe_id(sid) == sid
    count("article_id_from_path", "safe")


# ------------------------------------------------------------------ bugs found here, now fixed


@pytest.mark.parametrize("field", ["text", "id", "claim"])
def test_lone_surrogate_escape_is_an_input_error(scratch, field):
    row = {"id": "a", "text": "x", "label": "neutral", field: Raw('"a\\ud800"', None)}
    path = new_file(scratch, dumps(row, True).encode() + b"\n")
    with pytest.raises(InputError, match=re.escape(f"{path}:1:")):
        load_statements(path)


@pytest.mark.parametrize(
    "text", ["i.!!", "Mr.??", " !!", "a∯b. c.", "x ♨ y", "Hello ♨ there. Yes.", "a &ᓰ& b. c"]
)
def test_pysbd_never_drops_text(text):
    assert squeeze("".join(split_sentences(text))) == squeeze(text)


def test_alias_bomb_gives_a_short_message(scratch):
    items = ["&a0 [x, x, x, x, x, x, x, x, x]"]
    items += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 6)]
    path = new_file(scratch, f"name: [{', '.join(items)}]\n".encode(), ".yaml")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert len(str(err.value)) < 10_000


# ------------------------------------------------------------------ the case counts


def test_zz_case_counts(capsys):
    """Print how many hypothesis cases each property test ran (and how they ended)."""
    if not CASES:
        pytest.skip("no property test ran in this session")
    width = max(map(len, CASES))
    lines = ["hypothesis cases by test and outcome:"]
    lines += [f"  {key:<{width}}  {n:>5}" for key, n in sorted(CASES.items())]
    tests = Counter()
    for key, n in CASES.items():
        tests[key.split(": ")[0]] += n
    lines.append(f"  total: {sum(CASES.values())} cases in {len(tests)} tests")
    with capsys.disabled():  # shown even without -s
        print("\n" + "\n".join(lines))
    # A generator that only ever produced one outcome tested half of what it claims.
    for test in ("loader-rows", "load_config(file)", "load_config(overrides)"):
        outcomes = [k for k in CASES if k.startswith(f"{test}: ")]
        if tests[test] >= 50:
            assert len(outcomes) >= 2, f"{test}: only {outcomes}"
