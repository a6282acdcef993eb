import json
import re

import pytest
from conftest import DATA, ROOT, SEEDS
from datasets import ClassLabel

from stance.data.segment import article_id_from_path, read_text, sentence_records
from stance.data.statements import (
    group_split,
    label_counts,
    leave_one_group_out,
    load_sources,
    load_statements,
    paraphrase_claims,
    read_statements,
    to_dataset,
)
from stance.errors import InputError
from stance.labels import DEFAULT_CLAIM, LABELS

ARTICLES = ROOT / "data" / "articles"
ARTICLE_ROWS = ROOT / "data" / "withdrawal-articles.jsonl"
ROW_FIELDS = {"id", "article_id", "sentence_index", "text", "label", "skip", "note"}


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def row(i, label="supports", **extra):
    return {
        "id": f"a-{i}",
        "article_id": "a",
        "sentence_index": i,
        "text": f"Text {i}.",
        "label": label,
        **extra,
    }


def test_seed_dataset_covers_all_articles_and_labels():
    ds = load_statements(DATA)
    assert len(ds) >= 60
    assert isinstance(ds.features["label"], ClassLabel)
    assert ds.features["label"].names == list(LABELS)
    assert set(ds["group"]) == {"000", "003", "004"}
    assert all(n > 0 for n in label_counts(ds).values())
    assert set(ds["claim"]) == {DEFAULT_CLAIM}


def test_skip_rows_are_left_out_and_counted(tmp_path):
    path = write_rows(
        tmp_path / "s.jsonl",
        [row(0), {"id": "x", "text": "Advertisement", "skip": True}, row(1, "doubts")],
    )
    statements = read_statements(path)
    assert statements.skipped == 1 and len(statements.rows) == 2
    assert len(load_statements(path)) == 2


def test_seed_skip_rows_are_counted():
    statements = read_statements(DATA)
    assert statements.skipped > 0
    assert len(statements.rows) + statements.skipped == sum(1 for _ in DATA.open())


def test_claim_defaults_and_row_claims_win(tmp_path):
    path = write_rows(tmp_path / "s.jsonl", [row(0), row(1, claim="Other claim.")])
    assert list(load_statements(path)["claim"]) == [DEFAULT_CLAIM, "Other claim."]
    assert list(load_statements(path, claim="Mine.")["claim"]) == ["Mine.", "Other claim."]


@pytest.mark.parametrize(
    ("content", "message", "line"),
    [
        (b'{"id": "a", "text": "x", "label": "supports"}\n{oops\n', "invalid JSON", 2),
        (b'{"text": "x", "label": "supports"}\n', "missing required field 'id'", 1),
        (b'{"id": "a", "label": "supports"}\n', "missing required field 'text'", 1),
        (b'{"id": "a", "text": "x"}\n', "missing required field 'label'", 1),
        (b'{"id": "a", "text": "x", "label": "agree"}\n', "allowed: supports, doubts, neutral", 1),
        (b'{"id": "a", "text": "x", "label": "Supports"}\n', "unknown label 'Supports'", 1),
        (
            b'{"id": "a", "text": "x", "label": "neutral"}\n{"id": "a", "text": "y", '
            b'"label": "neutral"}\n',
            "duplicate id 'a' \\(first on line 1\\)",
            2,
        ),
        (
            b'{"id": "a", "text": "x", "label": "neutral"}\n{"id": "b", "text": "caf\xe9", '
            b'"label": "neutral"}\n',
            "not valid UTF-8",
            2,
        ),
        (b"[1, 2]\n", "expected a JSON object", 1),
        (b'{"id": "a", "text": 5, "label": "neutral"}\n', "'text' must be a non-empty string", 1),
        (b'{"id": "a", "text": "x", "label": "neutral", "skip": "yes"}\n', "'skip'", 1),
        (b"[" * 100_000 + b"\n", "invalid JSON", 1),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, content, message, line):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as err:
        read_statements(path)
    assert f"{path}:{line}:" in str(err.value)


@pytest.mark.parametrize("content", [b"", b"\n\n", b'{"id": "a", "text": "x", "skip": true}\n'])
def test_empty_file_is_an_error(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    with pytest.raises(InputError, match="empty statement file"):
        read_statements(path)


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_statements(tmp_path / "nope.jsonl")


def test_bom_and_crlf_load(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": "a", "text": "x", "label": "doubts"}\r\n')
    assert load_statements(path)["label"][0] == LABELS.index("doubts")


def test_leave_one_group_out_never_mixes_groups():
    ds = load_statements(DATA)
    folds = leave_one_group_out(ds)
    assert [held for held, _, _ in folds] == ["000", "003", "004"]
    for held, train, test in folds:
        assert set(test["group"]) == {held}
        assert held not in set(train["group"])
        assert len(train) + len(test) == len(ds)


def test_group_split_is_seeded_disjoint_and_near_the_fraction(tmp_path):
    rows = [
        {"id": f"{g}-{i}", "group": f"g{g}", "text": "t", "label": LABELS[(g + i) % 3]}
        for g in range(20)
        for i in range(5)
    ]
    ds = load_statements(write_rows(tmp_path / "g.jsonl", rows))
    train, dev = group_split(ds, 0.2, seed=1)
    assert not set(train["group"]) & set(dev["group"])
    assert len(train) + len(dev) == len(ds)
    assert abs(len(dev) / len(ds) - 0.2) <= 0.05
    again = group_split(ds, 0.2, seed=1)[1]
    assert list(again["id"]) == list(dev["id"])
    assert list(group_split(ds, 0.2, seed=2)[1]["id"]) != list(dev["id"])


def test_group_split_needs_two_groups(tmp_path):
    ds = load_statements(write_rows(tmp_path / "s.jsonl", [row(0), row(1)]))
    with pytest.raises(InputError, match="at least two groups"):
        group_split(ds, 0.5, 0)


def test_sources_mix_with_weights(tmp_path):
    a = write_rows(tmp_path / "a.jsonl", [row(0), row(1)])
    b = write_rows(tmp_path / "b.jsonl", [{**row(0), "id": "b-0"}])
    ds = load_sources([(str(a), 1.0), (str(b), 0.5)])
    assert list(ds["weight"]) == [1.0, 1.0, 0.5]


def _stmt(i, group, label, weight=1.0):
    return {
        "id": i,
        "group": group,
        "claim": "C",
        "text": f"{i} text",
        "label": label,
        "weight": weight,
    }


def test_claim_paraphrases_restate_the_claim_with_the_groups_supporting_statements():
    ds = to_dataset(
        [
            _stmt("s1", "A", "supports"),
            _stmt("s2", "A", "supports", weight=2.0),
            _stmt("d1", "A", "doubts"),
            _stmt("n1", "B", "neutral"),
            _stmt("s3", "B", "supports"),
        ]
    )
    out = paraphrase_claims(ds, per_row=1, weight=0.5, seed=0)
    assert out.to_list()[:5] == ds.to_list()  # the originals come first, untouched
    extra = {r["id"]: r for r in out.to_list()[5:]}
    # s3 is B's only supporting statement: it cannot restate the claim for itself
    assert {i.split("~")[0] for i in extra} == {"s1", "s2", "d1", "n1"}
    assert extra["s1~s2"]["claim"] == "s2 text" and extra["s2~s1"]["claim"] == "s1 text"
    assert extra["n1~s3"]["claim"] == "s3 text"
    for key, r in extra.items():
        own = ds.to_list()[[x["id"] for x in ds.to_list()].index(key.split("~")[0])]
        assert r["label"] == own["label"] and r["group"] == own["group"]
        assert r["text"] == own["text"] and r["weight"] == own["weight"] * 0.5
    assert paraphrase_claims(ds, 1, 0.5, 0).to_list() == out.to_list()  # seeded
    assert paraphrase_claims(ds, 0, 0.5, 0) is ds
    assert len(paraphrase_claims(ds, 5, 0.5, 0)) == 5 + 2 + 2 + 1  # capped by what exists


@pytest.mark.parametrize("ending", ["\n", "\r\n"])
def test_json_error_column_is_on_the_line(tmp_path, ending):
    """A trailing comma before the line ending is reported where it is, not at column 1."""
    good = "".join(json.dumps(row(i)) + ending for i in range(20))
    bad = json.dumps(row(20))[:-1] + ",}" + ending  # `..., "label": "supports",}`
    path = tmp_path / "comma.jsonl"
    path.write_text(good + bad, encoding="utf-8", newline="")
    with pytest.raises(InputError) as err:
        read_statements(path)
    assert f"{path}:21:" in str(err.value)
    assert f"(column {len(bad.rstrip())})" in str(err.value)  # the closing brace


def test_rows_cut_from_an_article_know_their_neighbours(tmp_path):
    # The few-shot kind reads a sentence with the ones before and after it in its article:
    # skip rows count as neighbours (they stand in the article), free statements get none,
    # and context given outright (as `stance split` writes it) is kept.
    from stance.data.statements import read_statements

    rows = [
        {"id": "a-0", "article_id": "a", "sentence_index": 0, "text": "First.", "label": "neutral"},
        {"id": "a-1", "article_id": "a", "sentence_index": 1, "text": "Ad.", "skip": True},
        {"id": "a-2", "article_id": "a", "sentence_index": 2, "text": "Third.", "label": "doubts"},
        {"id": "b-0", "article_id": "b", "sentence_index": 3, "text": "Other.", "label": "doubts"},
        {"id": "free", "text": "A free statement.", "label": "supports"},
        {
            "id": "given",
            "text": "Given.",
            "label": "supports",
            "prev_text": "Before.",
            "next_text": "",
        },
    ]
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    got = {r["id"]: (r["prev_text"], r["next_text"]) for r in read_statements(path).rows}
    assert got == {
        "a-0": ("", "Ad."),
        "a-2": ("Ad.", ""),
        "b-0": ("", ""),
        "free": ("", ""),
        "given": ("Before.", ""),
    }


def test_context_that_is_not_text_is_named_with_its_line(tmp_path):
    from stance.data.statements import read_statements

    good = {"id": "a", "text": "Fine.", "label": "neutral"}
    bad = {"id": "b", "text": "Odd.", "label": "doubts", "prev_text": 7}
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_statements(path)
    assert err.value.line == 2 and "'prev_text' must be a string" in str(err.value)


WRITTEN = DATA.parent / "withdrawal-written.jsonl"
WRITTEN_TOPICS = {
    "ministry",
    "denial",
    "analysis",
    "intelligence",
    "satellite",
    "markets",
    "diplomacy",
    "restated-dispute",
    "concession",
    "background",
    "rebuttal",
    "shelling",
    "other",
}


def _tokens(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-z0-9']+", text.lower()))


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b)


def test_written_statements_load_balanced_and_well_formed():
    statements = read_statements(WRITTEN)  # raises on a duplicate id or an unknown label
    assert len(statements.rows) >= 400 and statements.skipped == 0
    counts = label_counts(load_statements(WRITTEN))
    # Roughly a third each (issue #22): no label under a quarter of the file.
    assert all(n >= len(statements.rows) / 4 for n in counts.values()), counts
    raw = [json.loads(line) for line in WRITTEN.read_text(encoding="utf-8").splitlines()]
    assert {r["article_id"] for r in raw} == {"w-stmt"}
    assert {r["topic"] for r in raw} <= WRITTEN_TOPICS
    assert all("2022-02-15" <= r["date"] <= "2022-02-24" for r in raw)
    assert all(r["note"] == "mixed" for r in raw if r.get("note", "").startswith("mix"))


def _worst_overlaps(path, others) -> tuple[float, float]:
    """Highest token Jaccard of a file's rows with any row of `others` (raw lines, so skip rows
    count too), and between two of its own rows."""
    lines = [line for other in others for line in other.read_text(encoding="utf-8").splitlines()]
    seen = [_tokens(json.loads(line)["text"]) for line in lines if line.strip()]
    own = [_tokens(r["text"]) for r in read_statements(path).rows]
    worst_other = max(_jaccard(a, b) for a in own for b in seen)
    worst_pair = max(_jaccard(a, b) for i, a in enumerate(own) for b in own[i + 1 :])
    return worst_other, worst_pair


def test_written_statements_are_not_near_copies_of_seed_rows_or_of_each_other():
    worst_seed, worst_pair = _worst_overlaps(
        WRITTEN, [DATA, DATA.parent / "withdrawal-variants.jsonl"]
    )
    assert worst_seed < 0.8 and worst_pair < 0.8, (worst_seed, worst_pair)


TARGETED = DATA.parent / "withdrawal-targeted.jsonl"
HARD_TOPICS = {"diplomacy", "denial", "markets", "rebuttal"}
NEIGHBOUR_TOPICS = {"neighbour-doubt", "neighbour-support", "neighbour-background"}


def test_targeted_passages_are_whole_labelled_passages_aimed_at_the_hard_cases():
    # Issue 22: short passages whose neighbours give the hard cases a realistic context.
    raw = [json.loads(line) for line in TARGETED.read_text(encoding="utf-8").splitlines()]
    assert len(read_statements(TARGETED).rows) == len(raw) >= 200  # no skip rows
    passages: dict[str, list[int]] = {}
    for r in raw:
        assert r["id"] == f"{r['article_id']}-{r['sentence_index']:02d}", r["id"]
        assert re.fullmatch(r"t\d\d", r["article_id"]) and r["label"] in LABELS, r["id"]
        assert r["topic"] in HARD_TOPICS | NEIGHBOUR_TOPICS, r["id"]
        assert "2022-02-15" <= r["date"] <= "2022-02-24", r["id"]
        assert r["topic"] not in HARD_TOPICS or r.get("note"), r["id"]  # hard rows say why
        passages.setdefault(r["article_id"], []).append(r["sentence_index"])
    assert all(ix == list(range(len(ix))) and 3 <= len(ix) <= 5 for ix in passages.values())
    assert sum(r["topic"] in HARD_TOPICS for r in raw) >= len(raw) / 2
    # Each hard topic has rows of a second label (contrasts), not one label per topic.
    for topic in HARD_TOPICS:
        assert len({r["label"] for r in raw if r["topic"] == topic}) >= 2, topic


def test_targeted_passages_are_not_near_copies_of_any_other_labelled_row():
    others = [DATA, DATA.parent / "withdrawal-variants.jsonl", WRITTEN, ARTICLE_ROWS]
    worst_other, worst_pair = _worst_overlaps(TARGETED, others)
    assert worst_other < 0.6 and worst_pair < 0.6, (worst_other, worst_pair)


@pytest.mark.parametrize(
    ("folder", "rows_path", "pattern"),
    [(SEEDS, DATA, "*.txt"), (ARTICLES, ARTICLE_ROWS, "w*.txt")],
    ids=["seeds", "written-articles"],
)
def test_labelled_rows_are_the_segmenter_output_of_their_articles(folder, rows_path, pattern):
    # Rows must be exactly what `stance segment` cuts from the files (ids, order, text byte
    # for byte), so a model reading an article sees the sentences and neighbours labelled.
    files = sorted(folder.glob(pattern))
    expected = [r for p in files for r in sentence_records(article_id_from_path(p), read_text(p))]
    rows = [json.loads(line) for line in rows_path.read_text(encoding="utf-8").splitlines()]
    keys = ("id", "article_id", "sentence_index", "text")
    assert [{k: r[k] for k in keys} for r in rows] == expected
    for r in rows:
        assert set(r) <= ROW_FIELDS, r["id"]
        if r.get("skip"):
            assert r["skip"] is True and "label" not in r, r["id"]
        else:
            assert r.get("label") in LABELS, r["id"]
    assert len(read_statements(rows_path).rows) == sum(not r.get("skip") for r in rows)


def test_written_articles_are_whole_articles_with_varied_stance():
    # Issue 22: at least 12 articles of 10-20 labelled sentences, whose article scores
    # (share of supports minus share of doubts) spread from doubting to supportive.
    rows = [json.loads(line) for line in ARTICLE_ROWS.read_text(encoding="utf-8").splitlines()]
    labels: dict[str, list[str]] = {}
    for r in rows:
        labels.setdefault(r["article_id"], [])
        if not r.get("skip"):
            labels[r["article_id"]].append(r["label"])
    assert len(labels) >= 12 and not set(labels) & {"000", "003", "004"}
    assert all(10 <= len(v) <= 20 for v in labels.values())
    scores = [(v.count("supports") - v.count("doubts")) / len(v) for v in labels.values()]
    assert min(scores) <= -0.3 and max(scores) >= 0.3
    assert sum(abs(s) < 0.15 for s in scores) >= 2  # a few mostly neutral articles


def _agreement_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "label_agreement", ROOT / "scripts" / "label_agreement.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PASS2 = ROOT / "data" / "labels-pass2"


def test_cohen_kappa_on_a_hand_worked_example():
    kappa = _agreement_script().cohen_kappa
    # 10 items, 8 agree (one s read as d, one d read as s): p_o = 0.8. Both raters use
    # 5 s, 3 d, 2 n, so p_e = (5*5 + 3*3 + 2*2) / 100 = 0.38; kappa = 0.42 / 0.62 = 21/31.
    a = ["s"] * 5 + ["d"] * 3 + ["n"] * 2
    b = ["s"] * 4 + ["d", "d", "d", "s"] + ["n"] * 2
    assert sum(x == y for x, y in zip(a, b, strict=True)) == 8
    assert kappa(a, b) == pytest.approx(21 / 31)
    # Unequal marginals: a all s but one d; b half s half d. p_o = 0.6, p_e = 0.5, kappa 0.2.
    assert kappa(["s"] * 9 + ["d"], ["s"] * 5 + ["d"] * 5) == pytest.approx(0.2)
    assert kappa(a, a) == 1.0 and kappa(["s", "s"], ["s", "s"]) == 1.0
    assert kappa(["s", "d"], ["d", "s"]) == pytest.approx(-1.0)  # systematic disagreement
    with pytest.raises(ValueError):
        kappa(["s"], [])


@pytest.mark.parametrize(
    ("committed", "second"),
    [
        (WRITTEN, PASS2 / "statements.jsonl"),
        (ARTICLE_ROWS, PASS2 / "articles.jsonl"),
        (TARGETED, PASS2 / "targeted.jsonl"),
    ],
    ids=["statements", "articles", "targeted"],
)
def test_second_pass_covers_every_id_with_a_known_label(committed, second):
    script = _agreement_script()
    first, other = script.committed_labels(committed), script.pass2_labels(second)
    assert list(other) == list(first)  # every id, same order, nothing extra
    assert set(other.values()) <= {*LABELS, "skip"}
    assert len(script.pairs(first, other, both_labelled=False)) == len(first)
