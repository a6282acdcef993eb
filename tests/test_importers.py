"""Tests for stance.importers (Emergent): offline; real-data tests skip without the shared data."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from datasets import ClassLabel

from stance.data import load_statements
from stance.errors import InputError
from stance.importers import EMERGENT_FILES, import_emergent
from stance.labels import LABELS

TRAIN = EMERGENT_FILES["train"]
TEST = EMERGENT_FILES["test"]
HEADER = ",claimHeadline,articleHeadline,articleHeadlineStance,articleId,claimId\n"


def _emergent_dir() -> Path:
    shared = os.environ.get("STANCE_SHARED")
    base = Path(shared) if shared else Path(__file__).resolve().parents[1].parent / "shared"
    return base / "data" / "emergent"


def _require_emergent() -> Path:
    src = _emergent_dir()
    if not all((src / name).is_file() for name in EMERGENT_FILES.values()):
        pytest.skip(f"Emergent data not found at {src} (set STANCE_SHARED to the shared folder)")
    return src


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _head(src: Path, dst: Path, n: int = 20) -> None:
    """Copy the header and the first n data lines (the files are one record per line)."""
    lines = src.read_text(encoding="utf-8").splitlines(keepends=True)
    dst.write_text("".join(lines[: n + 1]), encoding="utf-8")


def _write_pair(src: Path, train: str, test: str | None = None) -> None:
    """Write a train CSV and a (by default valid, one-row) test CSV into src."""
    src.mkdir(parents=True, exist_ok=True)
    (src / TRAIN).write_text(train, encoding="utf-8")
    if test is None:
        test = HEADER + "9,Claim T,Headline T,against,art-t,claim-t\n"
    (src / TEST).write_text(test, encoding="utf-8")


GOOD_TRAIN = (
    HEADER
    + "0,Claim A,Headline one,for,art-1,claim-a\n"
    + '1,Claim A,"Headline, with comma",observing,art-2,claim-a\n'
    + "2,Claim B,Headline three,against,art-1,claim-b\n"
)


# --- real rows ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_import(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    real = _require_emergent()
    src = tmp_path_factory.mktemp("emergent_src")
    out = tmp_path_factory.mktemp("emergent_out")
    for name in EMERGENT_FILES.values():
        _head(real / name, src / name)
    counts = import_emergent(src, out)
    return src, out, counts


def test_real_rows_mapping(small_import: tuple[Path, Path, dict]) -> None:
    src, out, counts = small_import
    mapping = {"for": "supports", "against": "doubts", "observing": "neutral"}
    for split, name in EMERGENT_FILES.items():
        rows = _read_csv(src / name)
        records = _read_jsonl(out / f"{split}.jsonl")
        assert len(records) == len(rows) == 20
        for row, rec in zip(rows, records, strict=True):
            assert rec["text"] == row["articleHeadline"].strip()
            assert rec["claim"] == row["claimHeadline"].strip()
            assert rec["label"] == mapping[row["articleHeadlineStance"]]
            assert rec["group"] == row["claimId"]
            assert row["articleId"] in rec["id"]
        assert sum(counts[split].values()) == 20
        assert list(counts[split]) == list(LABELS)


def test_real_known_rows(small_import: tuple[Path, Path, dict]) -> None:
    src, out, _ = small_import
    records = _read_jsonl(out / "train.jsonl")
    rows = _read_csv(src / TRAIN)
    # Line 3 of the official train file: a 'for' row about the 20-year-old burger.
    burger = records[1]
    assert rows[1]["articleHeadlineStance"] == "for"
    assert burger["label"] == "supports"
    assert burger["text"] == "World's oldest burger"
    assert burger["claim"] == (
        "Two Australian men kept a McDonald's Quarter Pounder with Cheese for 20 years"
    )
    assert burger["group"] == "d54aaf40-b6a8-11e4-8507-b58af63d1078"
    # The first row is 'observing'.
    assert rows[0]["articleHeadlineStance"] == "observing"
    assert records[0]["label"] == "neutral"
    # Line 21 (the 20th data row) is an 'against' row.
    assert rows[19]["articleHeadlineStance"] == "against"
    assert records[19]["label"] == "doubts"
    assert records[19]["text"] == (
        "Iraq Says Arrested Woman Is Not The Wife of ISIS Leader al-Baghdadi"
    )
    assert records[19]["claim"] == rows[19]["claimHeadline"]
    assert records[19]["group"] == "899afb60-7af1-11e4-b794-93ed794d7b91"


def test_real_output_loads(small_import: tuple[Path, Path, dict]) -> None:
    _, out, counts = small_import
    groups = {}
    ids: list[str] = []
    for split in EMERGENT_FILES:
        ds = load_statements(out / f"{split}.jsonl")
        assert isinstance(ds.features["label"], ClassLabel)
        assert ds.features["label"].names == list(LABELS)
        assert len(ds) == 20
        assert {label: ds["label"].count(i) for i, label in enumerate(LABELS)} == counts[split]
        groups[split] = set(ds["group"])
        ids += ds["id"]
    assert len(ids) == len(set(ids))
    assert groups["train"].isdisjoint(groups["test"])


def test_full_official_counts(tmp_path: Path) -> None:
    real = _require_emergent()
    counts = import_emergent(real, tmp_path)
    assert counts == {
        "train": {"supports": 992, "doubts": 304, "neutral": 775},
        "test": {"supports": 246, "doubts": 91, "neutral": 187},
    }
    train = load_statements(tmp_path / "train.jsonl")
    test = load_statements(tmp_path / "test.jsonl")
    assert (len(train), len(test)) == (2071, 524)
    assert len(set(train["group"])) == 240 and len(set(test["group"])) == 60
    assert set(train["group"]).isdisjoint(test["group"])
    assert len(set(train["id"]) | set(test["id"])) == 2071 + 524
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.jsonl", "train.jsonl"]


# --- synthetic rows -------------------------------------------------------------------------


def test_synthetic_ok(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out" / "nested"
    _write_pair(src, GOOD_TRAIN)
    counts = import_emergent(str(src), str(out))
    assert counts == {
        "train": {"supports": 1, "doubts": 1, "neutral": 1},
        "test": {"supports": 0, "doubts": 1, "neutral": 0},
    }
    records = _read_jsonl(out / "train.jsonl")
    assert records[1] == {
        "id": "emergent-art-2-claim-a",
        "group": "claim-a",
        "claim": "Claim A",
        "text": "Headline, with comma",
        "label": "neutral",
    }
    # The same article under two claims gets two distinct, deterministic ids.
    assert [r["id"] for r in records] == [
        "emergent-art-1-claim-a",
        "emergent-art-2-claim-a",
        "emergent-art-1-claim-b",
    ]
    assert sorted(p.name for p in out.iterdir()) == ["test.jsonl", "train.jsonl"]


def test_column_order_and_bom(tmp_path: Path) -> None:
    # Fold-file column order, a BOM and a blank line are all fine.
    train = (
        "\ufeff,claimHeadline,articleHeadline,claimId,articleId,articleHeadlineStance\n"
        "0,Claim A,Headline one,claim-a,art-1,for\n\n"
    )
    _write_pair(tmp_path, train)
    counts = import_emergent(tmp_path, tmp_path / "out")
    assert counts["train"]["supports"] == 1


def _expect_error(tmp_path: Path, train: str, match: str, test: str | None = None) -> InputError:
    src, out = tmp_path / "src", tmp_path / "out"
    _write_pair(src, train, test)
    with pytest.raises(InputError, match=match) as info:
        import_emergent(src, out)
    assert not out.exists() or not any(out.iterdir()), "nothing may be written after an error"
    return info.value


def test_unknown_stance(tmp_path: Path) -> None:
    train = GOOD_TRAIN + "3,Claim B,Headline four,ignoring,art-4,claim-b\n"
    err = _expect_error(tmp_path, train, "unknown articleHeadlineStance 'ignoring'")
    assert err.path == str(tmp_path / "src" / TRAIN)
    assert err.line == 5
    assert f"{TRAIN}:5:" in str(err)
    assert "for, against, observing" in str(err)


def test_line_number_after_multiline_field(tmp_path: Path) -> None:
    # A quoted headline spanning two lines: the bad row after it is on physical line 4.
    train = (
        HEADER + '0,Claim A,"Head\nline",for,art-1,claim-a\n' + "1,Claim A,H,bogus,art-2,claim-a\n"
    )
    err = _expect_error(tmp_path, train, "unknown articleHeadlineStance")
    assert err.line == 4


def test_missing_column(tmp_path: Path) -> None:
    train = ",claimHeadline,articleHeadline,articleId,claimId\n0,Claim A,Headline,art-1,claim-a\n"
    err = _expect_error(tmp_path, train, "missing required column.*articleHeadlineStance")
    assert err.path == str(tmp_path / "src" / TRAIN)


@pytest.mark.parametrize("column", ["articleHeadline", "claimHeadline"])
def test_empty_headline(tmp_path: Path, column: str) -> None:
    row = {"claimHeadline": "Claim A", "articleHeadline": "Headline"}
    row[column] = "   "
    train = GOOD_TRAIN + f"3,{row['claimHeadline']},{row['articleHeadline']},for,art-9,claim-a\n"
    err = _expect_error(tmp_path, train, f"empty {column}")
    assert err.line == 5 and err.path == str(tmp_path / "src" / TRAIN)


def test_short_row(tmp_path: Path) -> None:
    train = GOOD_TRAIN + "3,Claim B,Headline four,for\n"
    err = _expect_error(tmp_path, train, "expected 6 fields .* found 4")
    assert err.line == 5


def test_error_in_test_split_names_test_file(tmp_path: Path) -> None:
    test = HEADER + "9,Claim T,Headline T,against,art-t,claim-t\n9,Claim T,,for,art-u,claim-t\n"
    err = _expect_error(tmp_path, GOOD_TRAIN, "empty articleHeadline", test=test)
    assert err.path == str(tmp_path / "src" / TEST) and err.line == 3


def test_claim_in_both_splits(tmp_path: Path) -> None:
    test = HEADER + "9,Claim A,Headline T,against,art-t,claim-a\n"
    _expect_error(tmp_path, GOOD_TRAIN, "claimId 'claim-a' is in both", test=test)


def test_duplicate_pair(tmp_path: Path) -> None:
    train = GOOD_TRAIN + "3,Claim A,Headline again,for,art-1,claim-a\n"
    err = _expect_error(tmp_path, train, "duplicate article/claim pair")
    assert err.line == 5


def test_invalid_utf8(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _write_pair(src, GOOD_TRAIN)
    (src / TRAIN).write_bytes(GOOD_TRAIN.encode() + b"3,Claim,Caf\xe9,for,art-9,claim-a\n")
    with pytest.raises(InputError, match="not valid UTF-8") as info:
        import_emergent(src, tmp_path / "out")
    assert info.value.line == 5


def test_missing_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / TRAIN).write_text(GOOD_TRAIN, encoding="utf-8")
    with pytest.raises(InputError, match="no such file") as info:
        import_emergent(src, tmp_path / "out")
    assert info.value.path == str(src / TEST)
    with pytest.raises(InputError, match="no such file"):
        import_emergent(tmp_path / "nowhere", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_header_only(tmp_path: Path) -> None:
    _expect_error(tmp_path, HEADER, "no data rows")


def test_previous_outputs_untouched(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    _write_pair(src, GOOD_TRAIN)
    import_emergent(src, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    # Train is fine, test is broken: neither output may change, and no temp file is left.
    _write_pair(src, GOOD_TRAIN + "3,Claim C,New,for,art-5,claim-c\n", HEADER + "9,T,H,maybe,a,b\n")
    with pytest.raises(InputError, match="unknown articleHeadlineStance"):
        import_emergent(src, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_rerun_replaces_outputs(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    _write_pair(src, GOOD_TRAIN)
    import_emergent(src, out)
    _write_pair(src, GOOD_TRAIN + "3,Claim C,New,for,art-5,claim-c\n")
    counts = import_emergent(src, out)
    assert counts["train"]["supports"] == 2
    assert len(_read_jsonl(out / "train.jsonl")) == 4
    assert sorted(p.name for p in out.iterdir()) == ["test.jsonl", "train.jsonl"]
