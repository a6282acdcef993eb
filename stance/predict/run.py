"""Batch stance prediction: every sentence of new articles, classified against a claim.

API::

    predictor = StancePredictor("models/withdrawal")          # claim: the model's own
    rows = predictor.predict(["An article. Two sentences.", {"id": "a7", "text": "..."}])
    probs = predictor.classify(["one sentence", "another"])   # (N, len(LABELS)), LABELS order

CLI: ``stance predict --model DIR INPUT... --output OUT.{jsonl,csv} [--summary S.json]``.

Design
------
The engine (`StancePredictor`: length-sorted batches, int8, the fast BERT forward) is in
`stance.inference.engine`; inputs are read in `stance.predict.inputs`, the sidecars and the output
written in `stance.predict.outputs`; this module runs the one through the other (chunks,
processes) and is the entry point of `stance predict`.

Streaming and crash safety (`run_prediction`): inputs are read lazily, one article at a
time, and grouped into chunks of about `chunk_chars` characters; an article longer than that
is cut, at line ends, into parts that go into successive chunks and are joined again in
OUT (records.iter_chunks; every process of a multi-GPU run cuts the same chunks).
Each finished chunk is appended as one JSON line to the sidecar `OUT.partial` (after a
header line holding the run settings), then flushed and fsynced. Only when every chunk is
done is the sidecar converted into OUT through a temporary file and a rename, so OUT is
never partial, and the sidecar is removed. Memory therefore stays flat: one chunk of text
and its tokens at a time, plus one small record per article for ids and the summary.

`--resume` reads the sidecar, drops a torn last line, skips the chunks it holds and
continues; chunks are formed from the same article stream, so each resumed chunk is batched
exactly as in an uninterrupted run and the final OUT is identical. A sidecar written with
other settings (model, claim, inputs, ...) is discarded with a warning, as is any sidecar
when `--resume` is not given.

Output rows (both formats, the same flat scheme): article_id, sentence_index, text, label,
score (probability of the label), p_<label> for every label in LABELS, and on_claim,
claim_similarity, furniture (does the sentence bear on the claim; stance.inference.relevance; null
with --no-relevance); probabilities are rounded to 6 decimals. `article_id` is the original
id (JSONL `id`, or the file name via segment.article_id_from_path, or `stdin`); ids
repeated across inputs get a `-2`, `-3`, ... suffix, with a warning. Ids are never used in
paths here; anything that does must go through segment.safe_id.

Bad inputs (missing, empty, binary, non-UTF-8, over `max_article_bytes`, bad JSONL lines)
are logged with the input and line, listed in the summary, and skipped; the others go on
and the exit code is 1. When every input fails nothing is written and the exit code is 3.

Several GPUs (``accelerate launch -m stance.cli predict ...``): process r handles the
chunks with index % world == r into `OUT.partial.r`; the main process merges the part
files by chunk index (so in input order) into OUT. Chunks are dealt round-robin rather than
with `split_between_processes` so no process has to materialise the article list.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import StanceError
from ..inference.engine import StancePredictor
from ..inference.records import COLUMNS, Chunk, iter_chunks  # noqa: F401  (COLUMNS: re-exported)
from ..labels import LABELS
from .inputs import (  # noqa: F401  (iter_inputs, unique_ids: re-exported)
    ArticleStream,
    iter_inputs,
    unique_ids,
)
from .options import (  # noqa: F401  (re-exported: this module's API as before)
    DEFAULT_BATCH_SIZE,
    DEFAULT_CHUNK_CHARS,
    DEFAULT_MAX_ARTICLE_BYTES,
    EXIT_NOTHING_READ,
    EXIT_PARTIAL,
    OUTPUT_FORMATS,
    STDIN,
    STDOUT,
    add_arguments,
    output_format,
)
from .outputs import (
    PARTIAL_FORMAT,
    PartialWriter,
    RunReport,
    finish_output,
    log_outcome,
    partial_path,
    sidecar_dir,
)

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------- processes


def _process_group(cpu: bool = False) -> tuple[int, int, Any]:
    """(rank, world size, accelerate PartialState or None) under `accelerate launch`/torchrun.

    `cpu`: processes on the CPU (accelerate starts no CPU process group unless told).
    """
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched <= 1:
        return 0, 1, None
    import torch
    from accelerate import PartialState

    # Prediction exchanges no tensors, only barriers: gloo runs them on the host, where NCCL
    # refuses two processes on one GPU and accelerate's barrier names cuda:<local rank>,
    # which does not exist when processes outnumber GPUs (accelerate still deals the
    # processes over the GPUs, local rank modulo their count).
    gpu = not cpu and torch.cuda.is_available()
    state = PartialState(cpu=cpu, backend="gloo") if gpu else PartialState(cpu=cpu)
    if state.num_processes != launched:
        # Each process would believe it is alone and they would share one sidecar.
        raise StanceError(
            f"launched as {launched} processes but accelerate sees {state.num_processes}; "
            "on the CPU pass --device cpu (or use accelerate launch --cpu)"
        )
    return state.process_index, state.num_processes, state


def _wait_for_everyone(state: Any) -> None:
    """A host barrier across the launched processes (no-op in a single process).

    Not `state.wait_for_everyone()`: it passes device_ids=[local rank], and a barrier on a
    device that does not exist fails on a machine with fewer GPUs than processes.
    """
    if state is None:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
    else:
        state.wait_for_everyone()


# ---------------------------------------------------------------- the run


def run_prediction(
    predictor: StancePredictor,
    inputs: Sequence[str],
    output: str | Path,
    summary: str | Path | None = None,
    resume: bool = False,
    max_article_bytes: int | None = DEFAULT_MAX_ARTICLE_BYTES,
    chunk_chars: int = DEFAULT_CHUNK_CHARS,
    process_group: tuple[int, int, Any] = (0, 1, None),
) -> RunReport:
    """Classify every sentence of `inputs` into `output` (see the module docstring).

    `output` `-` writes JSON Lines to stdout (no resume). When every input fails, nothing is
    written and the report's exit code is EXIT_NOTHING_READ.
    """
    output = _checked_output(output, summary)
    rank, world, state = process_group
    start = time.perf_counter()
    report = RunReport(output)
    header = _partial_header(predictor, inputs, max_article_bytes, chunk_chars, world)
    sidecar_base, tmp = sidecar_dir(output, world, resume)
    part = PartialWriter(partial_path(sidecar_base, rank, world), header, resume)
    articles = ArticleStream(inputs, max_article_bytes, report.failures, rank == 0)
    chunks = iter_chunks(articles, chunk_chars, split_long=True)
    _classify_chunks(predictor, chunks, part, rank, world)
    _wait_for_everyone(state)
    try:
        if rank == 0:
            parts = [partial_path(sidecar_base, r, world) for r in range(world)]
            _merge_parts(predictor, parts, report, summary, articles.read)
    finally:
        if tmp is not None:  # stdout's sidecar: nothing to resume from, so always removed
            tmp.cleanup()
    _wait_for_everyone(state)
    report.seconds = time.perf_counter() - start
    return report


def _checked_output(output: str | Path, summary: str | Path | None) -> Path:
    """The output path, once its format and the summary's are known to be usable."""
    output = Path(output)
    output_format(output)
    if summary is not None and Path(summary).suffix.lower() != ".json":
        raise StanceError(f"{summary}: the summary must be a .json file")
    return output


def _partial_header(
    predictor: StancePredictor,
    inputs: Sequence[str],
    max_article_bytes: int | None,
    chunk_chars: int,
    world: int,
) -> dict[str, Any]:
    """The settings a sidecar is written with; --resume continues only an identical one."""
    return {
        "format": PARTIAL_FORMAT,
        "model": str(predictor.model_dir.resolve()),
        "claim": predictor.claim,
        "max_length": predictor.max_length,
        "precision": predictor.precision,
        "chunk_chars": chunk_chars,
        "max_article_bytes": max_article_bytes,
        "inputs": list(inputs),
        "labels": list(LABELS),
        "world": world,
        "relevance": predictor.relevance_settings(),
    }


def _classify_chunks(
    predictor: StancePredictor, chunks: Iterable[Chunk], part: PartialWriter, rank: int, world: int
) -> None:
    """Classify this process's unfinished chunks into its sidecar; the sidecar is closed."""
    bar = progress_bar(rank)
    try:
        for chunk in chunks:
            if chunk.index % world != rank or chunk.index in part.done:
                continue  # another process's, or finished before an interruption
            results = predictor.predict_chunk(chunk.articles, bar.update)
            for article, result in zip(chunk.articles, results, strict=True):
                result.part = article.part  # a later piece of a long article
            part.add(chunk.index, results)
    finally:
        part.close()
        bar.close()


def progress_bar(rank: int = 0) -> Any:
    """The sentences classified so far, on stderr (as training's bar: sparse when stderr is
    not a terminal, so logs stay short; only the main process draws one)."""
    import sys

    from tqdm.auto import tqdm

    tty = sys.stderr.isatty()
    return tqdm(
        unit="sent",
        desc="predict",
        mininterval=1.0 if tty else 30.0,
        dynamic_ncols=tty,
        disable=rank != 0,
    )


def _merge_parts(
    predictor: StancePredictor,
    parts: list[Path],
    report: RunReport,
    summary: str | Path | None,
    read: int,
) -> None:
    """(Main process, every part finished) the output from the sidecars, which then go."""
    if read:  # nothing read: nothing is written, and the report says so
        finish_output(predictor, parts, report, summary)  # removes the sidecars too
    for p in parts:
        p.unlink(missing_ok=True)


# ---------------------------------------------------------------- CLI


def run_cli(args: argparse.Namespace) -> int:
    """`stance predict`: 0 when every input was used, 1 when some failed, 3 when all did.

    (2: usage, config and model errors, from the CLI.)
    """
    output_format(args.output)
    group = _process_group(cpu=args.device == "cpu")
    device = args.device
    if group[2] is not None and device != "cpu":
        device = group[2].device  # one GPU per process under accelerate launch
    predictor = StancePredictor(
        args.model,
        claim=args.claim,
        device=device,
        quantize=args.quantize,
        batch_size=args.batch_size,
        max_length=args.max_length,
        num_threads=args.threads,
        relevance=not args.no_relevance,
    )
    logger.info(
        "model %s on %s (%s), max_length %d, claim: %s",
        args.model,
        predictor.device,
        predictor.precision,
        predictor.max_length,
        predictor.claim,
    )
    report = run_prediction(
        predictor,
        args.inputs,
        args.output,
        summary=args.summary,
        resume=args.resume,
        max_article_bytes=args.max_article_bytes,
        chunk_chars=args.chunk_chars,
        process_group=group,
    )
    if group[0] == 0:
        log_outcome(report)
    return report.exit_code
