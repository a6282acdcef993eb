"""What `stance predict` writes: the sidecar part files (`OUT.partial[.rank]`: a settings
header, then one fsynced line a finished chunk; recovered on --resume), and the output
itself (JSON Lines or CSV, written atomically from the sidecars) with its summary.

The format and the crash guarantees are described in `stance.predict.run`.
"""

from __future__ import annotations

import contextlib
import csv
import heapq
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..errors import StanceError
from ..inference.records import COLUMNS, ArticleResult, InputFailure, record_rows
from ..labels import LABELS
from ..util.atomic import Staging
from ..util.wording import plural
from .options import EXIT_NOTHING_READ, EXIT_PARTIAL, STDOUT, output_format

if TYPE_CHECKING:  # the engine imports torch; this module needs only its attributes
    from ..inference.engine import StancePredictor

# `stance predict`'s one logger, as before the split (log lines name their logger).
logger = logging.getLogger("stance.predict.run")

# /2: long articles are cut into parts (records.iter_chunks); /1 sidecars are not resumed.
PARTIAL_FORMAT = "stance-predict-partial/2"


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


def sidecar_dir(output: Path, world: int, resume: bool) -> tuple[Path, Any]:
    """Where the sidecars go: beside OUT, or a temporary folder when OUT is stdout."""
    if str(output) != STDOUT:
        return output, None
    if resume or world > 1:
        raise StanceError("--output - (stdout) cannot be resumed or split over processes")
    import tempfile

    tmp = tempfile.TemporaryDirectory(prefix="stance-predict-")
    return Path(tmp.name) / "stdout.jsonl", tmp


class PartialWriter:
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


class _Tally:
    """One article's sentences so far (its parts arrive as consecutive records): the next
    sentence index, and its labels, relevance and truncation for the summary and report."""

    def __init__(self, record: dict[str, Any]):
        self.id = record["id"]
        self.sentences = 0
        self.labels: list[int] = []
        self.probs: list[list[float]] = []
        self.on_claim: list[bool] | None = [] if "on_claim" in record else None
        self.truncated = 0

    def add(self, record: dict[str, Any]) -> None:
        self.sentences += len(record["sentences"])
        self.labels += record["labels"]
        self.probs += record["probs"]
        if self.on_claim is not None:
            self.on_claim += record["on_claim"]
        self.truncated += len(record["truncated"])


def _write_rows(f: IO[str], writer: Any, record: dict[str, Any], start: int) -> None:
    for row in record_rows(record, start):
        if writer is not None:
            # JSON's spelling of booleans, so both formats read the same
            writer.writerow(str(v).lower() if isinstance(v, bool) else v for v in row.values())
        else:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _write_output(
    output: Path,
    chunks: Iterable[tuple[int, list[dict[str, Any]]]],
    report: RunReport,
    summary: Any | None,
    stage: Staging,
) -> list[str]:
    """Stream the sidecar records into OUT's staged file; returns up to 10 truncated articles."""
    fmt = output_format(output)
    truncated_ids: list[str] = []  # a sample for the log, not every id (memory stays flat)
    to_stdout = str(output) == STDOUT
    tally: _Tally | None = None

    def close(t: _Tally | None) -> None:
        if t is None:
            return
        report.articles += 1
        report.sentences += t.sentences
        report.truncated += t.truncated
        if t.truncated:
            report.truncated_articles += 1
            if len(truncated_ids) < 10:
                truncated_ids.append(t.id)
        if summary is not None:
            labels = (LABELS[k] for k in t.labels)
            summary.add_article(t.id, labels, t.truncated, t.on_claim, t.probs)

    with contextlib.nullcontext(sys.stdout) if to_stdout else stage.open(output, "w") as f:
        writer = csv.writer(f, lineterminator="\n") if fmt == ".csv" else None
        if writer is not None:
            writer.writerow(COLUMNS)
        for _, records in chunks:
            for rec in records:
                if not rec.get("part") or tally is None:  # a new article
                    close(tally)
                    tally = _Tally(rec)
                _write_rows(f, writer, rec, tally.sentences)
                tally.add(rec)
        close(tally)
    return truncated_ids


def finish_output(
    predictor: StancePredictor, parts: list[Path], report: RunReport, summary: str | Path | None
) -> None:
    """Merge the finished sidecars into the output (and the summary), then remove them.

    Everything is staged first; the renames into place and the sidecars' removal are one
    step that SIGINT/SIGTERM cannot split (stance.util.atomic.Staging.commit): outputs first, the
    sidecars last, so even a SIGKILL leaves either a resumable run or a finished one.
    """
    from .summary import SummaryBuilder, write_summary

    builder = SummaryBuilder() if summary is not None else None
    # Each part lists its chunks in increasing order; merging by index restores input order.
    merged = heapq.merge(*(_read_partial(p) for p in parts), key=lambda c: c[0])
    with Staging() as stage:
        truncated_ids = _write_output(report.output, merged, report, builder, stage)
        if builder is not None and summary is not None:
            for fail in report.failures:
                builder.add_failure(fail.input, fail.line, fail.error)
            write_summary(summary, builder.build(**_summary_meta(predictor, report)), stage)
            report.summary = Path(summary)
        stage.commit(then=[p.unlink for p in parts if p.exists()])
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


def _summary_meta(predictor: StancePredictor, report: RunReport) -> dict[str, Any]:
    return {
        "model": str(predictor.model_dir),
        "claim": predictor.claim,
        "labels": list(LABELS),
        "max_length": predictor.max_length,
        "precision": predictor.precision,
        "relevance": predictor.relevance_settings(),
        "output": str(report.output),
    }


def log_outcome(report: RunReport) -> None:
    """The run in one line (or why nothing was written), and whether inputs failed."""
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
