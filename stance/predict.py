"""Batch stance prediction: every sentence of new articles, classified against a claim.

API::

    predictor = StancePredictor("models/withdrawal")          # claim: the model's own
    rows = predictor.predict(["An article. Two sentences.", {"id": "a7", "text": "..."}])
    probs = predictor.classify(["one sentence", "another"])   # (N, len(LABELS)), LABELS order

CLI: ``stance predict --model DIR INPUT... --output OUT.{jsonl,csv} [--summary S.json]``.

Design
------
The engine (`StancePredictor`: length-sorted batches, int8, the fast BERT forward) is in
`stance.engine`; this module reads inputs, streams chunks through it and writes outputs.

Streaming and crash safety (`run_prediction`): inputs are read lazily, one article at a
time, and grouped into chunks of about `chunk_chars` characters (whole articles only; no
segmentation needed to cut them, so every process of a multi-GPU run cuts the same chunks).
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
claim_similarity, furniture (does the sentence bear on the claim; stance.relevance; null
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
import contextlib
import csv
import heapq
import json
import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .atomic import atomic_open
from .data import json_lines, parse_json_line
from .engine import StancePredictor
from .errors import InputError, StanceError
from .labels import LABELS
from .predict_options import (  # noqa: F401  (re-exported: this module's API as before)
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
from .records import (
    COLUMNS,
    Article,
    ArticleResult,
    InputFailure,
    iter_chunks,
    record_rows,
)
from .segment import (
    ARTICLE_SUFFIXES,
    article_id_from_path,
    decode_text,
    normalise,
    read_article,
)
from .wording import plural

logger = logging.getLogger(__name__)

PARTIAL_FORMAT = "stance-predict-partial/1"


# ---------------------------------------------------------------- inputs


def _check_article(text: str, max_bytes: int | None, name: str, line: int | None = None) -> None:
    size = len(text.encode("utf-8")) if max_bytes is not None else 0
    if max_bytes is not None and size > max_bytes:
        raise InputError(f"article is {size:,} bytes, over the limit of {max_bytes:,}", name, line)
    # The segmenter drops NULs and BOMs; an article of nothing else would yield no sentence.
    if not normalise(text.replace("\x00", " ").replace("\ufeff", "")):
        raise InputError("empty article (no sentences)", name, line)


def _read_txt(path: Path, max_bytes: int | None) -> Article:
    text = read_article(path, max_bytes)
    _check_article(text, max_bytes, str(path))
    return Article(article_id_from_path(path), text, str(path))


def _read_stdin(max_bytes: int | None) -> Article:
    name = "<stdin>"
    stream = sys.stdin
    buffer = getattr(stream, "buffer", None)
    limit = -1 if max_bytes is None else max_bytes + 1  # one byte over is enough to refuse
    data = buffer.read(limit) if buffer is not None else stream.read().encode("utf-8")
    if max_bytes is not None and len(data) > max_bytes:
        raise InputError(f"article is over the limit of {max_bytes:,} bytes", name)
    text = decode_text(data, name)
    _check_article(text, max_bytes, name)
    return Article("stdin", text, name)


def _read_jsonl(path: Path, max_bytes: int | None) -> Iterator[Article | InputFailure]:
    """One article per line: {"id": ..., "text": ...}; a bad line fails alone."""
    found = False
    for lineno, raw in json_lines(path, refuse_binary=True):
        found = True
        try:
            yield _parse_jsonl_line(raw, path, lineno, max_bytes)
        except InputError as e:
            yield InputFailure(str(path), lineno, str(e))
    if not found:
        raise InputError("empty file (no JSON lines)", path)


def _parse_jsonl_line(raw: bytes, path: Path, lineno: int, max_bytes: int | None) -> Article:
    obj = parse_json_line(raw, path, lineno)
    text = obj.get("text")
    if not isinstance(text, str):
        what = "no 'text' field" if text is None else "'text' is not a string"
        raise InputError(what, path, lineno)
    _check_article(text, max_bytes, str(path), lineno)
    raw_id = obj.get("id")
    article_id = f"{article_id_from_path(path)}-{lineno}" if raw_id is None else str(raw_id)
    return Article(article_id, text, str(path), lineno)


def iter_inputs(
    inputs: Sequence[str], max_article_bytes: int | None = DEFAULT_MAX_ARTICLE_BYTES
) -> Iterator[Article | InputFailure]:
    """Articles (raw ids) and failures, lazily, in input order.

    `.jsonl`: one article a line; a directory: its `.txt`/`.html`/`.htm` files (any case),
    sorted, not recursive, with whatever else it holds logged as skipped; `-`: standard
    input, one article; `.html`/`.htm`: a saved web page (its main text); anything else: a
    UTF-8 text file, one article.
    """
    for name in inputs:
        try:
            if name == STDIN:
                yield _read_stdin(max_article_bytes)
                continue
            path = Path(name)
            if path.is_dir():
                for file in _scan_directory(path):
                    try:
                        yield _read_txt(file, max_article_bytes)
                    except InputError as e:
                        yield InputFailure.from_error(e, str(file))
            elif path.suffix.lower() == ".jsonl":
                yield from _read_jsonl(path, max_article_bytes)
            else:
                yield _read_txt(path, max_article_bytes)
        except InputError as e:
            yield InputFailure.from_error(e, name)


def _scan_directory(path: Path) -> list[Path]:
    """The article files of a directory, sorted; logs what it skips and why."""
    files, skipped = [], []
    for p in sorted(path.iterdir()):
        if p.is_file() and p.suffix.lower() in ARTICLE_SUFFIXES:
            files.append(p)
        elif not p.name.startswith("."):  # hidden files (.DS_Store, editor swap) are noise
            skipped.append(p.name + ("/" if p.is_dir() else ""))
    if skipped:
        shown = ", ".join(skipped[:10]) + (
            f" and {len(skipped) - 10} more" if len(skipped) > 10 else ""
        )
        what = plural(len(skipped), "entry", "entries")
        logger.warning("%s: skipped %s, not .txt/.html/.htm files: %s", path, what, shown)
    if not files:
        raise InputError("directory holds no .txt, .html or .htm files", path)
    return files


def unique_ids(items: Iterable[Article | InputFailure]) -> Iterator[Article | InputFailure]:
    """Make article ids unique in stream order: a repeated id gets -2, -3, ... (warned)."""
    seen: set[str] = set()
    for item in items:
        if isinstance(item, Article):
            uid, k = item.article_id, 1
            while uid in seen:
                k += 1
                uid = f"{item.article_id}-{k}"
            if uid != item.article_id:
                where = f"{item.source}:{item.line}" if item.line else item.source
                logger.warning(
                    "%s: article id %r already used; renamed %r", where, item.article_id, uid
                )
                item = Article(uid, item.text, item.source, item.line)
            seen.add(uid)
        yield item


# ---------------------------------------------------------------- sidecar (part file)


def partial_path(output: Path, rank: int = 0, world: int = 1) -> Path:
    """`OUT.partial`, or `OUT.partial.<rank>` for one process of several."""
    suffix = ".partial" if world == 1 else f".partial.{rank}"
    return output.with_name(output.name + suffix)


def _recover_partial(path: Path, header: dict[str, Any]) -> set[int] | None:
    """Chunk indices a sidecar holds, after cutting a torn last line; None: not ours."""
    with path.open("r+b") as f:
        first = f.readline()
        try:
            saved = json.loads(first) if first.endswith(b"\n") else None
        except ValueError:
            saved = None
        if saved != header:
            keys = sorted(
                k for k in header if not isinstance(saved, dict) or saved.get(k) != header[k]
            )
            logger.warning(
                "%s was written with other settings (%s); starting over",
                path,
                ", ".join(keys) or "format",
            )
            return None
        done: set[int] = set()
        good = f.tell()
        for line in iter(f.readline, b""):
            # A killed run can leave a half-written last line: it and anything after are dropped.
            try:
                index = json.loads(line)["chunk"] if line.endswith(b"\n") else None
            except (ValueError, KeyError, TypeError):
                index = None
            if not isinstance(index, int):
                logger.warning("%s: dropping a torn chunk at byte %d", path, good)
                break
            done.add(index)
            good = f.tell()
        f.truncate(good)
    return done


def _read_partial(path: Path) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """(chunk index, article records) of a finished sidecar, in file order."""
    with path.open("rb") as f:
        f.readline()  # header
        for line in f:
            rec = json.loads(line)
            yield rec["chunk"], rec["articles"]


class _PartialWriter:
    """Appends finished chunks to the sidecar; each one flushed and fsynced."""

    def __init__(self, path: Path, header: dict[str, Any], resume: bool):
        self.path = path
        self.done: set[int] = set()
        if path.exists():
            recovered = _recover_partial(path, header) if resume else None
            if recovered is None:
                if not resume:
                    logger.info("discarding %s from an earlier run (--resume continues it)", path)
                path.unlink()
            else:
                self.done = recovered
                logger.info("resuming: %d finished chunks in %s", len(recovered), path)
        elif resume:
            logger.info("--resume: no %s; starting from the beginning", path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f: IO[bytes] = path.open("ab")
        if not self._f.tell():
            self._write(header)

    def _write(self, obj: dict[str, Any]) -> None:
        self._f.write(json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def add(self, index: int, results: Sequence[ArticleResult]) -> None:
        self._write({"chunk": index, "articles": [r.to_record() for r in results]})

    def close(self) -> None:
        self._f.close()


# ---------------------------------------------------------------- output


@dataclass
class RunReport:
    """What a run did: counts, failures, where things went."""

    output: Path
    articles: int = 0
    sentences: int = 0
    truncated: int = 0
    truncated_articles: int = 0
    failures: list[InputFailure] = field(default_factory=list)
    seconds: float = 0.0
    summary: Path | None = None

    @property
    def nothing_read(self) -> bool:
        """Every input failed: no article to classify, so nothing was written."""
        return bool(self.failures) and self.articles == 0

    @property
    def exit_code(self) -> int:
        if self.nothing_read:
            return EXIT_NOTHING_READ
        return EXIT_PARTIAL if self.failures else 0


def _write_output(
    output: Path,
    chunks: Iterable[tuple[int, list[dict[str, Any]]]],
    report: RunReport,
    summary: Any | None,
) -> list[str]:
    """Stream the sidecar records into OUT atomically; returns up to 10 truncated articles."""
    fmt = output_format(output)
    truncated_ids: list[str] = []  # a sample for the log, not every id (memory stays flat)
    to_stdout = str(output) == STDOUT
    with contextlib.nullcontext(sys.stdout) if to_stdout else atomic_open(output, "w") as f:
        writer = csv.writer(f, lineterminator="\n") if fmt == ".csv" else None
        if writer is not None:
            writer.writerow(COLUMNS)
        for _, records in chunks:
            for rec in records:
                report.articles += 1
                report.sentences += len(rec["sentences"])
                report.truncated += len(rec["truncated"])
                if rec["truncated"]:
                    report.truncated_articles += 1
                    if len(truncated_ids) < 10:
                        truncated_ids.append(rec["id"])
                for row in record_rows(rec):
                    if writer is not None:
                        # JSON's spelling of booleans, so both formats read the same
                        writer.writerow(
                            str(v).lower() if isinstance(v, bool) else v for v in row.values()
                        )
                    else:
                        f.write(json.dumps(row, ensure_ascii=False) + "\n")
                if summary is not None:
                    labels = (LABELS[k] for k in rec["labels"])
                    truncated = len(rec["truncated"])
                    summary.add_article(rec["id"], labels, truncated, rec.get("on_claim"))
    return truncated_ids


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


def _sidecar_dir(output: Path, world: int, resume: bool) -> tuple[Path, Any]:
    """Where the sidecars go: beside OUT, or a temporary folder when OUT is stdout."""
    if str(output) != STDOUT:
        return output, None
    if resume or world > 1:
        raise StanceError("--output - (stdout) cannot be resumed or split over processes")
    import tempfile

    tmp = tempfile.TemporaryDirectory(prefix="stance-predict-")
    return Path(tmp.name) / "stdout.jsonl", tmp


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
    from tqdm.auto import tqdm

    output = Path(output)
    output_format(output)
    if summary is not None and Path(summary).suffix.lower() != ".json":
        raise StanceError(f"{summary}: the summary must be a .json file")
    rank, world, state = process_group
    main = rank == 0
    start = time.perf_counter()
    report = RunReport(output)
    header = {
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
    sidecar_base, tmp = _sidecar_dir(output, world, resume)
    part = _PartialWriter(partial_path(sidecar_base, rank, world), header, resume)
    bar = tqdm(unit="sent", desc="predict", disable=None, dynamic_ncols=True)
    read = 0  # articles read, by every process alike (each reads the whole input stream)

    def articles() -> Iterator[Article]:
        nonlocal read
        for item in unique_ids(iter_inputs(inputs, max_article_bytes)):
            if isinstance(item, InputFailure):
                report.failures.append(item)
                if main:
                    logger.error("%s", item.error)
            else:
                read += 1
                yield item

    try:
        for chunk in iter_chunks(articles(), chunk_chars):
            if chunk.index % world != rank or chunk.index in part.done:
                continue  # another process's, or finished before an interruption
            part.add(chunk.index, predictor.predict_chunk(chunk.articles, bar.update))
    finally:
        part.close()
        bar.close()

    _wait_for_everyone(state)
    parts = [partial_path(sidecar_base, r, world) for r in range(world)]
    try:
        if main and read:
            _finish(predictor, parts, report, summary)
        if main:
            for p in parts:
                p.unlink(missing_ok=True)
    finally:
        if tmp is not None:  # stdout's sidecar: nothing to resume from, so always removed
            tmp.cleanup()
    _wait_for_everyone(state)
    report.seconds = time.perf_counter() - start
    return report


def _finish(
    predictor: StancePredictor, parts: list[Path], report: RunReport, summary: str | Path | None
) -> None:
    """Merge the finished sidecars into the output (and the summary); log truncation."""
    from .summary import SummaryBuilder, write_summary

    builder = SummaryBuilder() if summary is not None else None
    # Each part lists its chunks in increasing order; merging by index restores input order.
    merged = heapq.merge(*(_read_partial(p) for p in parts), key=lambda c: c[0])
    truncated_ids = _write_output(report.output, merged, report, builder)
    if report.truncated:
        more = report.truncated_articles - len(truncated_ids)
        shown = ", ".join(truncated_ids) + (f" and {more} more" if more else "")
        logger.warning(
            "%s longer than %d tokens were truncated, in %s: %s",
            plural(report.truncated, "sentence"),
            predictor.max_length,
            plural(report.truncated_articles, "article"),
            shown,
        )
    if builder is not None and summary is not None:
        for fail in report.failures:
            builder.add_failure(fail.input, fail.line, fail.error)
        meta = {
            "model": str(predictor.model_dir),
            "claim": predictor.claim,
            "labels": list(LABELS),
            "max_length": predictor.max_length,
            "precision": predictor.precision,
            "relevance": predictor.relevance_settings(),
            "output": str(report.output),
        }
        write_summary(summary, builder.build(**meta))
        report.summary = Path(summary)


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
        _log_outcome(report)
    return report.exit_code


def _log_outcome(report: RunReport) -> None:
    failed = plural(len(report.failures), "input")
    if report.nothing_read:
        logger.error("nothing could be read: %s failed; no output written", failed)
        return
    rate = report.sentences / report.seconds if report.seconds else 0.0
    where = "stdout" if str(report.output) == STDOUT else str(report.output)
    logger.info(
        "%s of %s in %.1f s (%.0f sentences/s) -> %s%s",
        plural(report.sentences, "sentence"),
        plural(report.articles, "article"),
        report.seconds,
        rate,
        where,
        f" + {report.summary}" if report.summary else "",
    )
    if report.failures:
        logger.error("%s failed; the others are in %s", failed, where)
