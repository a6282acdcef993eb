"""Tests for stance.predict.run: the engine, the inputs, the outputs, bad inputs, crash and resume.

All on CPU with the untrained tiny BERT of conftest (`tiny_model_dir`), in-process through
`stance.cli.main` where possible.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FakeEmbedder

from stance import cli
from stance.data.segment import split_sentences
from stance.errors import StanceError
from stance.inference import kernels as K
from stance.inference.records import PROB_COLUMNS
from stance.labels import LABELS
from stance.predict import run as P

ROOT = Path(__file__).resolve().parents[1]
SEEDS = sorted((ROOT / "seeds").glob("*.txt"))
SEED_IDS = ["000", "003", "004"]


@pytest.fixture(scope="module")
def predictor(tiny_model_dir: Path) -> P.StancePredictor:
    return P.StancePredictor(tiny_model_dir, device="cpu")


@pytest.fixture(scope="module")
def seed_sentences() -> list[str]:
    return [s for p in SEEDS for s in split_sentences(p.read_text(encoding="utf-8"))]


def run(model: Path, *args: str | Path) -> int:
    return cli.main(["predict", "--model", str(model), "--device", "cpu", *map(str, args)])


def read_rows(path: Path) -> list[dict]:
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def ids_in_order(rows: list[dict]) -> list[str]:
    """Article ids in first-seen order, checking each article's rows are contiguous."""
    order: list[str] = []
    for r in rows:
        if not order or order[-1] != r["article_id"]:
            assert r["article_id"] not in order, "an article's rows are not contiguous"
            order.append(r["article_id"])
    return order


def check_indices(rows: list[dict]) -> None:
    """sentence_index runs 0, 1, 2, ... within every article."""
    expected: dict[str, int] = {}
    for r in rows:
        i = expected.get(r["article_id"], 0)
        assert int(r["sentence_index"]) == i
        expected[r["article_id"]] = i + 1


# ---------------------------------------------------------------- engine and API


def test_api_predicts_every_sentence_in_order(predictor: P.StancePredictor) -> None:
    texts = ["Troops left the border. Officials confirmed it.", {"id": "b", "text": "One line"}]
    preds = predictor.predict(texts)
    assert [(p.article_id, p.sentence_index) for p in preds] == [("0", 0), ("0", 1), ("b", 0)]
    assert preds[0].text == "Troops left the border."
    for p in preds:
        assert set(p.probs) == set(LABELS)
        assert sum(p.probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert p.label == max(LABELS, key=p.probs.__getitem__)
        assert p.score == p.probs[p.label]
        assert not p.truncated
        assert list(p.as_row()) == list(P.COLUMNS)


def test_default_claim_is_the_models(tiny_model_dir: Path, predictor: P.StancePredictor) -> None:
    saved = json.loads((tiny_model_dir / "config.json").read_text())["stance_claim"]
    assert predictor.claim == saved
    other = P.StancePredictor(tiny_model_dir, claim="Troops are massing.", device="cpu")
    assert other.claim == "Troops are massing."
    sents = ["The convoy turned back."]
    assert not np.allclose(other.classify(sents), predictor.classify(sents), atol=1e-7)
    # pairs carry their own claim
    assert np.allclose(
        predictor.classify([("Troops are massing.", sents[0])]), other.classify(sents)
    )


def test_sorted_batches_match_one_by_one(
    tiny_model_dir: Path, predictor: P.StancePredictor, seed_sentences: list[str]
) -> None:
    """Length-sorted, padded batches give the input-order results of unbatched runs."""
    one = P.StancePredictor(tiny_model_dir, device="cpu", batch_size=1, window=1, fast=False)
    batched = predictor.classify(seed_sentences)
    assert batched.shape == (len(seed_sentences), len(LABELS))
    np.testing.assert_allclose(batched, one.classify(seed_sentences), atol=1e-5)
    np.testing.assert_allclose(batched.sum(axis=1), 1.0, atol=1e-5)


def test_fast_encoder_matches_transformers(
    tiny_model_dir: Path, predictor: P.StancePredictor, seed_sentences: list[str]
) -> None:
    assert isinstance(predictor.net, K.FastBertClassifier)
    slow = P.StancePredictor(tiny_model_dir, device="cpu", fast=False)
    assert isinstance(slow.net, K.TransformersForward)
    np.testing.assert_allclose(
        predictor.classify(seed_sentences), slow.classify(seed_sentences), atol=1e-5
    )


def test_int8_runs_and_mostly_agrees(
    tiny_model_dir: Path, predictor: P.StancePredictor, seed_sentences: list[str], capsys
) -> None:
    q = P.StancePredictor(tiny_model_dir, device="cpu", quantize="int8")
    assert q.precision == "int8"
    probs = q.classify(seed_sentences)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    agree = float((probs.argmax(1) == predictor.classify(seed_sentences).argmax(1)).mean())
    with capsys.disabled():
        print(f"\n[int8 vs float32 label agreement, tiny untrained model, seeds: {agree:.3f}]")
    # An untrained model's classes are nearly tied (margins ~0.01), the hardest case for int8;
    # per-row activation scales still keep its labels (torch.ao's per-tensor ones did not).
    assert agree >= 0.95


def test_truncation_is_flagged(tiny_model_dir: Path) -> None:
    short = P.StancePredictor(tiny_model_dir, device="cpu", max_length=32)
    long_text = "word " * 40
    probs, truncated = short.classify_detailed(["Short.", long_text])
    assert truncated.tolist() == [False, True]
    assert probs.shape == (2, len(LABELS))


def test_max_length_default_from_run_config(tiny_model_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_model_dir, run_dir)
    assert P.StancePredictor(run_dir, device="cpu").max_length == 128
    (run_dir / "config.yaml").write_text("data:\n  max_length: 40\n")
    assert P.StancePredictor(run_dir, device="cpu").max_length == 40


# ---------------------------------------------------------------- inputs and outputs


def test_txt_directory_jsonl_and_stdin(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "b.txt").write_text("Second dir article. It has two sentences.\n")
    (docs / "a.txt").write_text("First dir article.\n")
    (docs / "skip.md").write_text("Not a .txt file.\n")
    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text(
        json.dumps({"id": "j1", "text": "From JSON. Really."})
        + "\n\n"
        + json.dumps({"text": "No id here."})
        + "\n"
    )
    stdin = io.TextIOWrapper(io.BytesIO(b"Piped in. From standard input."), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    out = tmp_path / "out.jsonl"
    assert run(tiny_model_dir, SEEDS[0], docs, jsonl, "-", "--output", out) == 0
    rows = read_rows(out)
    assert ids_in_order(rows) == ["000", "a", "b", "j1", "more-3", "stdin"]
    check_indices(rows)
    assert [r["text"] for r in rows if r["article_id"] == "stdin"] == [
        "Piped in.",
        "From standard input.",
    ]
    assert not P.partial_path(out).exists()


def test_csv_and_jsonl_columns(tiny_model_dir: Path, tmp_path: Path) -> None:
    out_csv, out_jsonl = tmp_path / "o.csv", tmp_path / "o.jsonl"
    assert run(tiny_model_dir, *SEEDS, "--output", out_csv) == 0
    assert run(tiny_model_dir, *SEEDS, "--output", out_jsonl) == 0
    header = out_csv.read_text(encoding="utf-8").splitlines()[0]
    assert header == (
        "article_id,sentence_index,text,label,score,p_supports,p_doubts,p_neutral,"
        "on_claim,claim_similarity,furniture"
    )
    rows_csv, rows_jsonl = read_rows(out_csv), read_rows(out_jsonl)
    assert all(list(r) == list(P.COLUMNS) for r in rows_jsonl)
    assert ids_in_order(rows_csv) == SEED_IDS
    check_indices(rows_csv)
    assert len(rows_csv) == len(rows_jsonl) > 30
    for a, b in zip(rows_csv, rows_jsonl, strict=True):
        assert a["text"] == b["text"] and a["label"] == b["label"]
        assert float(a["score"]) == b["score"] == b[f"p_{b['label']}"]
        assert a["on_claim"] == str(b["on_claim"]).lower() and isinstance(b["on_claim"], bool)
        assert float(a["claim_similarity"]) == b["claim_similarity"]
        assert a["furniture"] == (b["furniture"] or "")
        assert sum(b[c] for c in PROB_COLUMNS) == pytest.approx(1.0, abs=1e-5)


def test_rejects_unknown_output_extension(tiny_model_dir: Path, tmp_path: Path) -> None:
    assert run(tiny_model_dir, *SEEDS, "--output", tmp_path / "out.txt") == 2
    assert run(tmp_path / "no-model", *SEEDS, "--output", tmp_path / "out.csv") == 2


def test_summary_numbers_and_chart(tiny_model_dir: Path, tmp_path: Path) -> None:
    out, summary = tmp_path / "o.jsonl", tmp_path / "s.json"
    assert run(tiny_model_dir, *SEEDS, "--output", out, "--summary", summary) == 0
    rows = read_rows(out)
    data = json.loads(summary.read_text())
    assert data["claim"] and data["labels"] == list(LABELS) and data["failed"] == []
    assert [a["article_id"] for a in data["articles"]] == SEED_IDS
    assert data["relevance"]["threshold"] > 0
    for art in data["articles"]:
        all_rows = [r for r in rows if r["article_id"] == art["article_id"]]
        mine = [r["label"] for r in all_rows if r["on_claim"]]  # only these are counted
        assert art["sentences"] == len(all_rows) == art["on_claim"] + art["off_claim"]
        assert art["off_claim"] == sum(not r["on_claim"] for r in all_rows)
        assert art["counts"] == {label: mine.count(label) for label in LABELS}
        assert sum(art["shares"].values()) == pytest.approx(1.0)
        sup, dbt = art["counts"]["supports"], art["counts"]["doubts"]
        # the expected share of supports minus doubts, from the counted rows' probabilities
        on = [r for r in all_rows if r["on_claim"]]
        expected = sum(r["p_supports"] - r["p_doubts"] for r in on) / len(on) if sup + dbt else None
        assert art["stance_score"] == pytest.approx(expected, abs=1e-5)
        assert expected is None or -1.0 <= art["stance_score"] <= 1.0
        if expected is not None:  # the bootstrap interval holds the score
            lo, hi = art["stance_interval"]
            assert lo <= art["stance_score"] <= hi
        top = [label for label in LABELS if art["counts"][label] == max(art["counts"].values())]
        assert (art["dominant"], art["tied"]) == ((top[0], []) if len(top) == 1 else (None, top))
        assert art["truncated"] == 0
    totals = data["totals"]
    assert totals["articles"] == 3 and totals["sentences"] == len(rows)
    assert totals["off_claim"] == sum(a["off_claim"] for a in data["articles"])
    assert totals["off_claim"] >= 8  # the seeds' furniture: cues catch 8 of its 11 skip rows
    assert totals["failed_inputs"] == 0
    png = summary.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_formula_edge_cases() -> None:
    from stance.predict.summary import article_summary, render_chart

    none = article_summary("x", ["neutral", "neutral"])
    assert none["stance_score"] is None and none["dominant"] == "neutral"  # no stance, not 0.0
    tie = article_summary("y", ["supports", "doubts", "supports", "doubts", "neutral"])
    # Issue 26 item 8: 2 vs 2 is a tie, reported as one, not as "supports"
    assert tie["stance_score"] == 0.0 and tie["dominant"] is None
    assert tie["tied"] == ["supports", "doubts"] and none["tied"] == []
    assert article_summary("e", [])["dominant"] is None
    assert article_summary("z", ["doubts"] * 3 + ["supports"])["stance_score"] == -0.5
    # with probabilities: their expectation, with a bootstrap interval that is reproducible
    probs = [[0.8, 0.1, 0.1], [0.2, 0.6, 0.2], [0.5, 0.1, 0.4], [0.0, 0.0, 1.0]]
    labels = ["supports", "doubts", "supports", "neutral"]
    art = article_summary("p", labels, on_claim=[True, True, True, False], probs=probs)
    assert art["stance_score"] == pytest.approx((0.7 - 0.4 + 0.4) / 3, abs=1e-6)  # rounded
    lo, hi = art["stance_interval"]
    assert -0.4 <= lo < art["stance_score"] < hi <= 0.7  # within the sentence scores' range
    assert article_summary("p", labels, 0, [True, True, True, False], probs) == art
    assert none["stance_interval"] is None
    many = [article_summary(f"a{i}", ["supports"]) for i in range(60)]
    assert render_chart(many, "claim")[:4] == b"\x89PNG"  # over 50: first 50, titled so


def test_truncation_counted_in_summary(tiny_model_dir: Path, tmp_path: Path, caplog) -> None:
    out, summary = tmp_path / "o.csv", tmp_path / "s.json"
    with caplog.at_level(logging.WARNING):
        code = run(tiny_model_dir, SEEDS[0], "--output", out, "--summary", summary,
                   "--max-length", "24")  # fmt: skip
    assert code == 0
    art = json.loads(summary.read_text())["articles"][0]
    assert art["truncated"] > 0
    assert json.loads(summary.read_text())["totals"]["truncated"] == art["truncated"]
    assert "truncated" in caplog.text


def test_path_like_ids_stay_ids(tiny_model_dir: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    jsonl = work / "in.jsonl"
    lines = [{"id": "../evil", "text": "Escape attempt."}, {"id": "/etc/x", "text": "Abs."}]
    jsonl.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out, summary = work / "out" / "o.jsonl", work / "out" / "s.json"
    before = sorted(p.name for p in tmp_path.iterdir())
    assert run(tiny_model_dir, jsonl, "--output", out, "--summary", summary) == 0
    assert ids_in_order(read_rows(out)) == ["../evil", "/etc/x"]
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert sorted(p.name for p in (work / "out").iterdir()) == ["o.jsonl", "s.json", "s.png"]


def test_duplicate_ids_get_suffixes(tiny_model_dir: Path, tmp_path: Path, caplog) -> None:
    for d in ("x", "y"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "same.txt").write_text(f"Article in {d}.")
    jsonl = tmp_path / "dup.jsonl"
    jsonl.write_text(json.dumps({"id": "same", "text": "Third."}) + "\n")
    out = tmp_path / "o.jsonl"
    with caplog.at_level(logging.WARNING):
        assert run(tiny_model_dir, tmp_path / "x", tmp_path / "y", jsonl, "--output", out) == 0
    assert ids_in_order(read_rows(out)) == ["same", "same-2", "same-3"]
    assert "already used" in caplog.text


# ---------------------------------------------------------------- bad inputs


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (input, expected words in its message)."""
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Caf\u00e9 au lait.\nNa\u00efve.".encode("latin-1"))
    not_json = tmp_path / "notjson.jsonl"
    not_json.write_text('{"id": "ok1", "text": "Fine line."}\n{"id": "broken", "text": \n')
    no_text = tmp_path / "notext.jsonl"
    no_text.write_text('{"id": "t1", "body": "wrong key"}\n{"id": "ok2", "text": "Fine too."}\n')
    big = tmp_path / "big.txt"
    big.write_text("no full stop here " * 1000)  # 18,000 bytes, over --max-article-bytes
    return {
        "empty": (empty, "empty article"),
        "binary": (binary, "binary"),
        "non-utf8": (latin1, "not valid UTF-8"),
        "jsonl-not-json": (not_json, ":2: invalid JSON"),
        "jsonl-no-text": (no_text, ":1: no 'text' field"),
        "missing": (tmp_path / "missing.txt", "no such file"),
        "too-big": (big, "over the limit of 10,000"),
    }


@pytest.mark.parametrize(
    "case",
    ["empty", "binary", "non-utf8", "jsonl-not-json", "jsonl-no-text", "missing", "too-big"],
)
def test_bad_input_named_others_written(
    tiny_model_dir: Path, tmp_path: Path, caplog, case: str
) -> None:
    bad, words = _bad_inputs(tmp_path)[case]
    out, summary = tmp_path / "out.csv", tmp_path / "s.json"
    with caplog.at_level(logging.ERROR):
        code = run(tiny_model_dir, SEEDS[0], bad, SEEDS[1], "--output", out,
                   "--summary", summary, "--max-article-bytes", "10000")  # fmt: skip
    assert code == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(str(bad) in m and words in m for m in errors), errors
    ids = ids_in_order(read_rows(out))
    assert ids[0] == "000" and ids[-1] == "003"  # the good inputs, in order, around it
    failed = json.loads(summary.read_text())["failed"]
    assert len(failed) == 1 and failed[0]["input"] == str(bad) and words in failed[0]["error"]


def test_all_bad_inputs_at_once(tiny_model_dir: Path, tmp_path: Path, caplog) -> None:
    cases = _bad_inputs(tmp_path)
    out = tmp_path / "out.jsonl"
    with caplog.at_level(logging.ERROR):
        code = run(tiny_model_dir, *(p for p, _ in cases.values()), SEEDS[2],
                   "--output", out, "--max-article-bytes", "10000")  # fmt: skip
    assert code == 1
    for path, words in cases.values():
        assert any(str(path) in r.getMessage() and words in r.getMessage() for r in caplog.records)
    # the good lines of the half-bad JSONL files survive, as does the good article
    assert ids_in_order(read_rows(out)) == ["ok1", "ok2", "004"]


def test_default_limit_rejects_one_byte_over_5mb(tiny_model_dir: Path, tmp_path: Path, caplog):
    huge = tmp_path / "huge.txt"
    with huge.open("wb") as f:  # refused from its size alone, before reading or segmenting
        f.truncate(P.DEFAULT_MAX_ARTICLE_BYTES + 1)
    out = tmp_path / "out.csv"
    start = time.perf_counter()
    with caplog.at_level(logging.ERROR):
        assert run(tiny_model_dir, huge, SEEDS[0], "--output", out) == 1
    assert time.perf_counter() - start < 20
    assert "huge.txt: article is 5,000,001 bytes, over the limit of 5,000,000" in caplog.text
    assert ids_in_order(read_rows(out)) == ["000"]


def test_long_article_without_full_stops(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A 300 kB single line: the segmenter cuts it into windows; all pieces are classified."""
    long_line = tmp_path / "wall.txt"
    long_line.write_text("troops moved near the border while officials talked " * 6000)
    out, summary = tmp_path / "out.jsonl", tmp_path / "s.json"
    start = time.perf_counter()
    assert run(tiny_model_dir, long_line, "--output", out, "--summary", summary) == 0
    assert time.perf_counter() - start < 30
    rows = read_rows(out)
    assert len(rows) > 100
    check_indices(rows)
    art = json.loads(summary.read_text())["articles"][0]
    assert art["sentences"] == len(rows) and art["truncated"] == len(rows)  # 2000-char pieces


# ---------------------------------------------------------------- atomic output, crash, resume


def _crash_after_first_chunk(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = P.StancePredictor.predict_chunk

    def flaky(self, articles, progress=None):
        calls.append(len(articles))
        if len(calls) > 1:
            raise RuntimeError("simulated crash")
        return real(self, articles, progress)

    monkeypatch.setattr(P.StancePredictor, "predict_chunk", flaky)
    return calls


def test_crash_leaves_no_output_and_resume_completes(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = [*SEEDS, "--chunk-chars", "6000"]  # seeds are 5.6 + 2.3 + 2.8 kB: two chunks
    ref, ref_summary = tmp_path / "ref.csv", tmp_path / "ref.json"
    assert run(tiny_model_dir, *args, "--output", ref, "--summary", ref_summary) == 0

    out, summary = tmp_path / "out.csv", tmp_path / "s.json"
    out.write_text("previous results\n")
    calls = _crash_after_first_chunk(monkeypatch)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tiny_model_dir, *args, "--output", out, "--summary", summary)
    assert out.read_text() == "previous results\n"  # untouched: never half a file
    assert not summary.exists()
    assert not list(tmp_path.glob(".out.csv.*.tmp"))
    sidecar = P.partial_path(out)
    assert len(sidecar.read_text().splitlines()) == 2  # header + the first chunk
    monkeypatch.undo()
    # undone above too:
    monkeypatch.setattr("stance.inference.relevance.MiniLMEmbedder", FakeEmbedder)

    done: list[int] = []
    real = P.StancePredictor.predict_chunk
    monkeypatch.setattr(
        P.StancePredictor,
        "predict_chunk",
        lambda self, a, progress=None: done.append(len(a)) or real(self, a, progress),
    )
    assert run(tiny_model_dir, *args, "--output", out, "--summary", summary, "--resume") == 0
    assert done == calls[1:]  # only the chunk that had not finished
    assert out.read_bytes() == ref.read_bytes()
    s, r = json.loads(summary.read_text()), json.loads(ref_summary.read_text())
    assert {**s, "output": None} == {**r, "output": None}
    assert not sidecar.exists()


def test_torn_sidecar_line_is_dropped(tiny_model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    args = [*SEEDS, "--chunk-chars", "3000"]
    ref, out = tmp_path / "ref.jsonl", tmp_path / "out.jsonl"
    assert run(tiny_model_dir, *args, "--output", ref) == 0
    _crash_after_first_chunk(monkeypatch)
    with pytest.raises(RuntimeError):
        run(tiny_model_dir, *args, "--output", out)
    monkeypatch.undo()
    # undone above too:
    monkeypatch.setattr("stance.inference.relevance.MiniLMEmbedder", FakeEmbedder)
    sidecar = P.partial_path(out)
    with sidecar.open("ab") as f:
        f.write(b'{"chunk": 1, "articles": [{"id": "00')  # a write cut short by a kill
    assert run(tiny_model_dir, *args, "--output", out, "--resume") == 0
    assert out.read_bytes() == ref.read_bytes()


def test_stale_sidecar_discarded_without_resume(
    tiny_model_dir: Path, tmp_path: Path, caplog
) -> None:
    ref, out = tmp_path / "ref.jsonl", tmp_path / "out.jsonl"
    assert run(tiny_model_dir, *SEEDS, "--output", ref) == 0
    P.partial_path(out).write_text('{"format": "something else"}\n{"chunk": 0, "articles": []}\n')
    with caplog.at_level(logging.INFO):
        assert run(tiny_model_dir, *SEEDS, "--output", out) == 0
    assert "discarding" in caplog.text
    assert out.read_bytes() == ref.read_bytes()
    # with --resume, a sidecar of other settings is discarded too
    P.partial_path(out).write_text('{"format": "something else"}\n')
    with caplog.at_level(logging.WARNING):
        assert run(tiny_model_dir, *SEEDS, "--output", out, "--resume") == 0
    assert "other settings" in caplog.text
    assert out.read_bytes() == ref.read_bytes()


@pytest.mark.slow
def test_killed_process_then_resume(tiny_model_dir: Path, tmp_path: Path) -> None:
    """SIGKILL a real `stance predict` mid-run: no OUT; --resume ends with the full file."""
    corpus = tmp_path / "corpus.jsonl"
    with corpus.open("w") as f:
        for i in range(300):  # ~2 ms of segmenting each: a run of a second or two
            f.write(json.dumps({"id": f"a{i}", "text": f"Item {i} moved. Troops left."}) + "\n")
    out = tmp_path / "out.jsonl"
    args = ["--model", str(tiny_model_dir), "--device", "cpu", str(corpus), "--output", str(out),
            "--chunk-chars", "500"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "stance.cli", "predict", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    sidecar = P.partial_path(out)
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if sidecar.exists() and sidecar.read_bytes().count(b"\n") >= 3:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    if proc.returncode == 0:
        pytest.skip("the run finished before it could be killed")
    assert not out.exists() and sidecar.exists()  # killed between chunks or mid-chunk
    assert run(tiny_model_dir, corpus, "--output", out, "--chunk-chars", "500", "--resume") == 0
    ref = tmp_path / "ref.jsonl"
    assert run(tiny_model_dir, corpus, "--output", ref, "--chunk-chars", "500") == 0
    assert out.read_bytes() == ref.read_bytes()


@pytest.mark.slow
def test_two_processes_write_what_one_writes(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The multi-device path (`accelerate launch` / torchrun: chunks dealt round-robin, parts
    merged by chunk index) on two CPU processes gives the one-process file, byte for byte."""
    articles = tmp_path / "articles.jsonl"
    with articles.open("w", encoding="utf-8") as f:
        for i, path in enumerate(SEEDS * 3):  # 9 articles, several chunks of ~2,000 chars
            f.write(json.dumps({"id": f"a{i}", "text": path.read_text(encoding="utf-8")}) + "\n")
    settings = ["--chunk-chars", "2000", "--no-relevance"]  # subprocesses have no fake embedder
    assert run(tiny_model_dir, articles, "--output", tmp_path / "one.jsonl", *settings) == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    predict = ["-m", "stance.cli", "predict", "--model", str(tiny_model_dir), "--device", "cpu"]
    cmd = [*launch, "--standalone", *predict, str(articles), *settings]  # a free port
    cmd += ["--output", str(tmp_path / "two.jsonl")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, two = (tmp_path / "one.jsonl").read_bytes(), (tmp_path / "two.jsonl").read_bytes()
    assert one == two and len(one.splitlines()) > 50
    assert not list(tmp_path.glob("two.jsonl.partial*"))


def test_launch_that_accelerate_does_not_see_is_refused(monkeypatch) -> None:
    """torchrun said 2 processes but accelerate sees 1: each process would think it is alone
    and write the same sidecar, so this must stop with a clear error, not race."""
    import accelerate

    class OneProcess:
        def __init__(self, cpu: bool = False):
            self.process_index, self.num_processes = 0, 1

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(accelerate, "PartialState", OneProcess)
    with pytest.raises(StanceError, match="launched as 2 processes but accelerate sees 1"):
        P._process_group(cpu=True)


def test_gpu_launch_asks_for_a_host_backend(monkeypatch) -> None:
    """Issue #13: two processes on one GPU (torchrun --nproc_per_node 2) must not use NCCL
    (it refuses two ranks on one GPU); prediction only needs barriers, so gloo does."""
    import accelerate

    made: list[dict] = []

    class Recorder:
        def __init__(self, cpu: bool = False, **kwargs):
            made.append({"cpu": cpu, **kwargs})
            self.process_index, self.num_processes = 1, 2

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(accelerate, "PartialState", Recorder)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert P._process_group(cpu=False)[:2] == (1, 2)
    assert made == [{"cpu": False, "backend": "gloo"}]
    made.clear()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    P._process_group(cpu=True)  # the CPU keeps accelerate's choice
    assert made == [{"cpu": True}]


def test_barrier_names_no_device(monkeypatch) -> None:
    """accelerate's wait_for_everyone passes device_ids=[local rank]: cuda:1 on a one-GPU
    machine with two processes, which does not exist. Ours is a plain host barrier."""
    import torch.distributed as dist

    calls: list[tuple] = []
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "barrier", lambda *a, **kw: calls.append((a, kw)))
    P._wait_for_everyone(object())
    P._wait_for_everyone(None)  # one process: nothing to wait for
    assert calls == [((), {})]


# ---------------------------------------------------------------- newcomer fixes (#17)


def test_output_dash_writes_json_lines_on_stdout_only(
    tiny_model_dir: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "o.jsonl"
    assert run(tiny_model_dir, *SEEDS, "--output", out) == 0
    capsys.readouterr()
    assert run(tiny_model_dir, *SEEDS, "--output", "-") == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert [json.loads(line) for line in lines] == read_rows(out)  # nothing else on stdout
    assert not list(tmp_path.glob("*.partial*")) and not Path("-").exists()
    assert run(tiny_model_dir, *SEEDS, "--output", "-", "--resume") == 2


def test_every_input_failing_writes_nothing_and_exits_3(
    tiny_model_dir: Path, tmp_path: Path, caplog
) -> None:
    import warnings

    out, summary = tmp_path / "x.jsonl", tmp_path / "s.json"
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with caplog.at_level(logging.INFO), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = run(tiny_model_dir, empty, tmp_path / "missing.txt", "-o", out, "--summary", summary)
    assert code == P.EXIT_NOTHING_READ == 3
    assert not out.exists() and not summary.exists() and not summary.with_suffix(".png").exists()
    assert "nothing could be read: 2 inputs failed; no output written" in caplog.text
    assert "the others are in" not in caplog.text
    assert not caught  # no matplotlib (or other) warning leaks
    from stance.predict.options import EXIT_CODES_HELP

    assert "3 every input failed" in EXIT_CODES_HELP


def test_empty_summary_draws_no_chart(tmp_path: Path) -> None:
    from stance.predict.summary import SummaryBuilder, write_summary

    path = tmp_path / "s.json"
    path.with_suffix(".png").write_bytes(b"stale")
    write_summary(path, SummaryBuilder().build(claim="c"))
    assert json.loads(path.read_text())["totals"]["stance_score"] is None
    assert not path.with_suffix(".png").exists()


def test_no_stance_chart_and_plurals() -> None:
    from stance.predict.summary import article_summary, render_chart

    one = [article_summary("a", ["neutral"], on_claim=[True])]
    assert one[0]["stance_score"] is None
    assert render_chart(one, "claim")[:4] == b"\x89PNG"
    from stance.util.wording import plural

    assert plural(1, "article") == "1 article" and plural(2, "input") == "2 inputs"
    assert (
        plural(1, "entry", "entries") == "1 entry" and plural(0, "entry", "entries") == "0 entries"
    )


SAVED_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Troops head home, ministry says</title>
<script>var tracking = {"id": 42};</script><style>.nav {color: red}</style></head>
<body>
<nav><ul><li><a href="/">Home</a></li><li><a href="/world">World</a></li>
<li><a href="/sport">Sport</a></li></ul></nav>
<article>
<h1>Troops head home, ministry says</h1>
<p>The defence ministry said on Wednesday that several units had finished their exercises and
were loading tanks onto trains bound for their home garrisons.</p>
<p>Officials in two neighbouring capitals said they had not yet seen any sign of a pullback
and asked for satellite pictures before they would believe the announcement.</p>
<p>Analysts who follow rail traffic in the region said the number of trains leaving the area
had risen over the past two days, though it was too early to say whether they were empty.</p>
</article>
<footer><p>Copyright 2026 Example News. All rights reserved.</p>
<a href="/privacy">Privacy policy</a></footer>
</body></html>
"""


def test_directory_scan_logs_skips_reads_upper_case_and_html(
    tiny_model_dir: Path, tmp_path: Path, caplog
) -> None:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "RUSSIA.TXT").write_text("Troops left the border. Officials confirmed it.\n")
    (folder / "article.html").write_text(SAVED_PAGE, encoding="utf-8")
    (folder / "notes.md").write_text("not an article\n")
    (folder / ".hidden").write_text("x\n")
    out = tmp_path / "o.jsonl"
    with caplog.at_level(logging.WARNING):
        assert run(tiny_model_dir, folder, "--output", out) == 0
    assert f"{folder}: skipped 2 entries, not .txt/.html/.htm files: notes.md, sub/" in caplog.text
    rows = read_rows(out)
    assert ids_in_order(rows) == ["RUSSIA", "article"]
    page = " ".join(r["text"] for r in rows if r["article_id"] == "article")
    assert "loading tanks onto trains" in page and "satellite pictures" in page
    for debris in ("<", "tracking", "Privacy policy", "Sport", "color: red"):
        assert debris not in page


def test_html_named_directly_is_read_as_a_page(tiny_model_dir: Path, tmp_path: Path) -> None:
    page = tmp_path / "Saved Page.HTM"
    page.write_text(SAVED_PAGE, encoding="utf-8")
    out = tmp_path / "o.jsonl"
    assert run(tiny_model_dir, page, "--output", out) == 0
    texts = [r["text"] for r in read_rows(out)]
    assert not any("<" in t or "tracking" in t for t in texts)
    assert any("satellite pictures" in t for t in texts)
    nav_only = tmp_path / "menu.html"
    nav_only.write_text("<html><body><script>var a = 1;</script></body></html>")
    assert run(tiny_model_dir, nav_only, page, "--output", out) == 1


def test_parsing_arguments_imports_no_torch() -> None:
    """--help and argument errors answer without importing torch (it takes seconds)."""
    code = (
        "import sys, time; t = time.perf_counter(); from stance import cli; "
        "p = cli.build_parser(); p.parse_args(['predict', '--model', 'm', 'a.txt', '-o', '-']); "
        "heavy = [m for m in ('torch', 'transformers', 'datasets') if m in sys.modules]; "
        "print(heavy, time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy, seconds = out.stdout.rsplit(" ", 1)
    assert heavy == "[]" and float(seconds) < 1.0
    start = time.perf_counter()
    cmd = [
        sys.executable,
        "-m",
        "stance.cli",
        "predict",
        "--model",
        "nope",
        "a.txt",
        "-o",
        "o.jsonl",
    ]
    bad = subprocess.run(cmd, capture_output=True, text=True)
    assert bad.returncode == 2 and "nope: model directory not found" in bad.stderr
    assert time.perf_counter() - start < 3.0  # python start-up included; torch alone takes 4 s


def test_pipeline_dict_form_equals_the_package(tiny_model_dir: Path, predictor) -> None:
    """README: pass the pair as {"text": claim, "text_pair": sentence}; a bare sentence
    would be classified without the claim."""
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(tiny_model_dir), device="cpu")
    sentence = "Units are returning to their bases."
    pair = pipe({"text": predictor.claim, "text_pair": sentence}, top_k=None)
    ours = predictor.predict([sentence])[0]
    assert {d["label"]: d["score"] for d in pair} == pytest.approx(ours.probs, abs=1e-5)
    assert max(pair, key=lambda d: d["score"])["label"] == ours.label
    alone = {d["label"]: d["score"] for d in pipe(sentence, top_k=None)}
    assert alone != pytest.approx(ours.probs, abs=1e-5)  # pipe(sentence) drops the claim


def test_stdout_reader_leaving_early_is_no_traceback(tiny_model_dir: Path) -> None:
    """`stance predict -o - | head`: exit 141 like any program on a closed pipe, no traceback."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "stance.cli", "predict", "--model", str(tiny_model_dir)]
    # 3 x 74 rows, about 130 kB: more than a pipe buffer holds, so the writer meets the close
    cmd += ["--device", "cpu", "--no-relevance", *map(str, SEEDS * 3), "-o", "-"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stdout.read(10)
    proc.stdout.close()  # the reader goes away before the rows are all written
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 141, err.decode()[-2000:]
    assert b"Traceback" not in err and b"Exception ignored" not in err


def test_a_long_article_spans_chunks_and_resumes_byte_identical(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 26 item 3: one big file is saved a chunk at a time, so a crash keeps its first
    parts; --resume finishes it byte for byte, and the parts read as one article again."""
    big = tmp_path / "big.txt"
    big.write_text("\n".join(p.read_text(encoding="utf-8") for p in SEEDS * 2), encoding="utf-8")
    args = [big, "--chunk-chars", "3000", "--summary"]
    ref = tmp_path / "ref.jsonl"
    assert run(tiny_model_dir, *args, tmp_path / "ref.json", "--output", ref) == 0
    rows = read_rows(ref)
    assert {r["article_id"] for r in rows} == {"big"}
    assert [r["sentence_index"] for r in rows] == list(range(len(rows)))
    assert [r["text"] for r in rows] == split_sentences(big.read_text(encoding="utf-8"))
    (entry,) = json.loads((tmp_path / "ref.json").read_text())["articles"]
    assert entry["article_id"] == "big" and entry["sentences"] == len(rows)

    out = tmp_path / "out.jsonl"
    calls = _crash_after_first_chunk(monkeypatch)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tiny_model_dir, *args, tmp_path / "s.json", "--output", out)
    sidecar = P.partial_path(out).read_text().splitlines()
    assert len(sidecar) == 2 and json.loads(sidecar[1])["articles"][0]["id"] == "big"
    monkeypatch.undo()
    monkeypatch.setattr("stance.inference.relevance.MiniLMEmbedder", FakeEmbedder)
    assert run(tiny_model_dir, *args, tmp_path / "s.json", "--output", out, "--resume") == 0
    assert out.read_bytes() == ref.read_bytes() and len(calls) == 2


def test_progress_bar_counts_sentences_without_a_terminal(
    tiny_model_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    """Issue 26 item 3: `stance predict` shows its progress in sentences on stderr even when
    stderr is not a terminal (sparsely there, as training's bar)."""
    out = tmp_path / "out.jsonl"
    assert run(tiny_model_dir, *SEEDS, "--output", out) == 0
    n = len(read_rows(out))
    err = capfd.readouterr().err
    assert re.search(rf"predict: .*\b{n}(/\?)? *sent\b|predict: .*\b{n}sent\b", err), err[-2000:]
