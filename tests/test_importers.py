"""Tests for stance.data.importers (Emergent): offline; real-data tests skip without the shared
data."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from datasets import ClassLabel

from stance.cli import main
from stance.data.importers import EMERGENT_FILES, FNC1_FILES, import_emergent, import_fnc1
from stance.data.statements import load_statements
from stance.errors import InputError
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


# --- FNC-1 ----------------------------------------------------------------------------------

BODIES = (
    "Body ID,articleBody\n"
    '1,"A meteorite hit Managua.\n\nOfficials confirmed it."\n'
    "2,Nobody has seen the cat since Tuesday.\n"
    "3,The video of the bigfoot is a hoax.\n"
)
STANCES = (
    "Headline,Body ID,Stance\n"
    "Meteorite strikes Nicaragua,1,agree\n"  # line 2
    "Meteorite strikes Nicaragua,2,unrelated\n"
    "Cat sails the Atlantic,2,discuss\n"
    "Bigfoot filmed in Russia,3,disagree\n"
    "Meteorite strikes Nicaragua,1,agree\n"  # a duplicate pair: kept once
)


def _fnc1_dir(root: Path, stances: str = STANCES, bodies: str = BODIES) -> Path:
    src = root / "fnc1"
    src.mkdir(parents=True, exist_ok=True)
    (src / FNC1_FILES["stances"]).write_text(stances, encoding="utf-8")
    (src / FNC1_FILES["bodies"]).write_text(bodies, encoding="utf-8")
    return src


def _statements(path: Path, *texts: str) -> Path:
    rows = [
        {"id": str(i), "text": t, "claim": f"claim {i}", "label": "neutral"}
        for i, t in enumerate(texts)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_fnc1_mapping_groups_and_unrelated(tmp_path: Path) -> None:
    counts = import_fnc1(_fnc1_dir(tmp_path), tmp_path / "out")
    assert counts == {"train": {"supports": 1, "doubts": 1, "neutral": 1}}
    rows = {r["claim"]: r for r in _read_jsonl(tmp_path / "out" / "train.jsonl")}
    assert set(rows) == {
        "Meteorite strikes Nicaragua",
        "Cat sails the Atlantic",
        "Bigfoot filmed in Russia",
    }
    meteor = rows["Meteorite strikes Nicaragua"]
    assert meteor["label"] == "supports" and meteor["group"] == "fnc1-body-1"
    assert meteor["text"] == "A meteorite hit Managua. Officials confirmed it."
    assert rows["Cat sails the Atlantic"]["label"] == "neutral"
    assert rows["Bigfoot filmed in Russia"]["label"] == "doubts"
    ds = load_statements(tmp_path / "out" / "train.jsonl")
    assert len(ds) == 3


def test_fnc1_exclude_drops_every_pair_of_a_touched_body(tmp_path: Path) -> None:
    stances = STANCES + "Giant METEORITE   strikes Nicaragua,1,discuss\n"
    test = _statements(tmp_path / "test.jsonl", "giant meteorite strikes nicaragua")
    import_fnc1(_fnc1_dir(tmp_path, stances), tmp_path / "out", exclude=[test])
    claims = {r["claim"] for r in _read_jsonl(tmp_path / "out" / "train.jsonl")}
    # body 1 is related to an excluded headline (case and spaces folded): all its pairs go
    assert claims == {"Cat sails the Atlantic", "Bigfoot filmed in Russia"}


def test_fnc1_within_keeps_only_traceable_bodies(tmp_path: Path) -> None:
    train = _statements(tmp_path / "train.jsonl", "Cat sails the Atlantic")
    import_fnc1(_fnc1_dir(tmp_path), tmp_path / "out", within=[train])
    claims = {r["claim"] for r in _read_jsonl(tmp_path / "out" / "train.jsonl")}
    assert claims == {"Cat sails the Atlantic"}
    nothing = _statements(tmp_path / "none.jsonl", "Unrelated headline")
    with pytest.raises(InputError, match="no related pairs left"):
        import_fnc1(_fnc1_dir(tmp_path), tmp_path / "out2", within=[nothing])


def test_fnc1_bad_within_or_exclude_file_names_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "0", "text": "Cat sails the Atlantic", "label": "neutral"}\n{"id": 1\n')
    for option in ("within", "exclude"):
        with pytest.raises(InputError, match="invalid JSON") as info:
            import_fnc1(_fnc1_dir(tmp_path), tmp_path / "out", **{option: [bad]})
        assert f"{bad}:2:" in str(info.value)
        assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("Cat sails the Atlantic,2,maybe\n", "unknown Stance 'maybe'"),
        ("Cat sails the Atlantic,9,agree\n", "Body ID '9' is not in train_bodies.csv"),
        ("Cat sails the Atlantic,2,agree\n", "labelled 'discuss' on line 4 and 'agree' here"),
        ("Cat sails the Atlantic,2\n", "expected 3 fields"),
    ],
)
def test_fnc1_bad_rows_name_file_and_line(tmp_path: Path, line: str, match: str) -> None:
    with pytest.raises(InputError, match=match) as info:
        import_fnc1(_fnc1_dir(tmp_path, STANCES + line), tmp_path / "out")
    assert f"{FNC1_FILES['stances']}:7:" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_fnc1_duplicate_body_id(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="duplicate Body ID '2'") as info:
        import_fnc1(_fnc1_dir(tmp_path, bodies=BODIES + "2,Again.\n"), tmp_path / "out")
    assert f"{FNC1_FILES['bodies']}:7:" in str(info.value)  # body 1 spans lines 2-4


def test_cli_import_fnc1_and_options_only_for_fnc1(tmp_path: Path, capsys) -> None:
    src = _fnc1_dir(tmp_path)
    test = _statements(tmp_path / "test.jsonl", "Bigfoot filmed in Russia")
    assert (
        main(["import", "fnc1", str(src), "-o", str(tmp_path / "out"), "--exclude", str(test)]) == 0
    )
    assert "train: 2 rows" in capsys.readouterr().out
    assert (
        main(["import", "emergent", str(src), "-o", str(tmp_path / "e"), "--within", str(test)])
        == 2
    )


def _fnc1_shared() -> Path:
    src = _emergent_dir().parent / "fnc1"
    if not all((src / name).is_file() for name in FNC1_FILES.values()):
        pytest.skip(f"FNC-1 data not found at {src} (set STANCE_SHARED to the shared folder)")
    return src


def test_fnc1_real_rows_and_emergent_decontamination(tmp_path: Path) -> None:
    real = _fnc1_shared()
    src = tmp_path / "src"
    src.mkdir()
    _head(real / FNC1_FILES["stances"], src / FNC1_FILES["stances"], 300)
    (src / FNC1_FILES["bodies"]).write_bytes((real / FNC1_FILES["bodies"]).read_bytes())
    stances = _read_csv(src / FNC1_FILES["stances"])
    related = {(r["Headline"], r["Body ID"]) for r in stances if r["Stance"] != "unrelated"}
    import_fnc1(src, tmp_path / "all")
    rows = _read_jsonl(tmp_path / "all" / "train.jsonl")
    assert len(rows) == len(related) > 0
    assert {r["label"] for r in rows} <= set(LABELS)

    # Emergent's test headlines seen in these rows: excluding them drops their bodies
    em = _require_emergent()
    test_heads = {_fold(r["articleHeadline"]) for r in _read_csv(em / TEST)}
    hit_bodies = {b for h, b in related if _fold(h) in test_heads}
    assert hit_bodies, "the first 300 FNC-1 rows hold Emergent test headlines"
    import_emergent(em, tmp_path / "emergent")
    import_fnc1(
        src,
        tmp_path / "clean",
        within=[tmp_path / "emergent" / "train.jsonl"],
        exclude=[tmp_path / "emergent" / "test.jsonl"],
    )
    clean = _read_jsonl(tmp_path / "clean" / "train.jsonl")
    assert 0 < len(clean) < len(rows)
    assert not {r["group"] for r in clean} & {f"fnc1-body-{b}" for b in hit_bodies}
    assert not {_fold(r["claim"]) for r in clean} & test_heads


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()
