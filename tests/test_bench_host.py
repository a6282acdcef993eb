"""benchmarks/host_pipeline.py (scripts/bench_host.py): the host pipeline against the bare
tokenizer, with the tiny model's tokenizer standing in for mpnet's and MiniLM's."""

from __future__ import annotations

import csv
import re
from argparse import Namespace
from pathlib import Path

import pytest


@pytest.fixture()
def hp(monkeypatch):
    from conftest import build_tiny_classifier

    from benchmarks import host_pipeline

    tokenizer = build_tiny_classifier()[1]
    monkeypatch.setattr(host_pipeline, "tokenizer_of", lambda kind: tokenizer)
    return host_pipeline


def test_every_kind_and_thread_count_is_measured_on_the_same_sentences(hp, tmp_path) -> None:
    bodies = tmp_path / "bodies.csv"
    with bodies.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Body ID", "articleBody"])
        writer.writerow([0, "Units moved back. Officials said nothing. Satellites saw trucks."])
    for source in (None, bodies):
        args = Namespace(n=300, rounds=1, threads=[1, 2], batch_size=16, bucket=8)
        args.kinds, args.bodies = list(hp.KINDS), source
        text, results = hp.run(args)
        assert [(r.kind, r.threads) for r in results] == [
            (kind, t) for t in (1, 2) for kind in hp.KINDS
        ]
        assert all(r.sentences == 300 and r.host_per_s > 0 and r.bare_per_s > 0 for r in results)
        assert ("FNC-1 bodies" if source else "seeds") in text.splitlines()[0]
        segmenting = re.search(r"pysbd, 1 process\): ([\d,]+) sentences/s", text)
        assert bool(segmenting) == bool(source)
        assert not segmenting or int(segmenting.group(1).replace(",", "")) > 0
    line = hp.last_line(results).splitlines()[-1]
    worst = min(r.ratio for r in results)
    pattern = r"host pipeline [\d,]+ sentences/s, bare tokenizer [\d,]+ sentences/s, ratio ([\d.]+)"
    match = re.fullmatch(pattern, line)
    assert match and float(match.group(1)) == pytest.approx(worst, abs=0.005)


def test_sentences_repeat_to_the_asked_number(hp) -> None:
    assert hp.repeated(["a", "b", "c"], 7) == ["a", "b", "c", "a", "b", "c", "a"]
    assert len(hp.seed_sentences()) > 100 and all(hp.seed_sentences())
    assert Path(hp.ROOT / "data" / "withdrawal.jsonl").is_file()
