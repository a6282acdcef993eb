"""Atomic file output: write a temporary file beside the target, then rename over it.

`Staging` extends this to several files that must appear together (an output, its summary
and chart) followed by removing a marker (the resume sidecar): everything is written to
temporary files first, where an interruption only discards them, and `commit` then renames
them into place and runs the clean-ups with SIGINT and SIGTERM held (`deferred_signals`), so
a Ctrl-C cannot split the step into "output there, sidecar still there, chart missing".
"""

from __future__ import annotations

import logging
import os
import signal
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)

HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Yield a file that becomes `path` only when the block ends without an exception."""
    with Staging() as stage:
        with stage.open(path, mode, encoding) as f:
            yield f
        stage.commit()


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_open(path) as f:
        f.write(text)


def atomic_write_lines(path: str | Path, lines: Iterable[str]) -> None:
    with atomic_open(path) as f:
        for line in lines:
            f.write(line + "\n")


@contextmanager
def deferred_signals(signals: Sequence[int] = HELD_SIGNALS) -> Iterator[list[int]]:
    """Hold `signals` for the block: their arrival is only recorded (the yielded list).

    The holding handler appends to a list and nothing else: Python runs it in the main
    thread between bytecodes, and it raises nothing, so the block cannot be cut short. Off
    the main thread (where signal handlers cannot be set) the block runs unprotected.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def hold(signum: int, frame: object) -> None:
        received.append(signum)

    previous = {s: signal.signal(s, hold) for s in signals}
    try:
        yield received
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class Staging:
    """Temporary files beside their targets, renamed into place together by `commit`.

    As a context manager: any temporary file not committed is removed on exit.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []  # (temporary file, target)
        self.interrupted = False

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()

    @contextmanager
    def open(
        self, path: str | Path, mode: str = "w", encoding: str | None = "utf-8"
    ) -> Iterator[IO]:
        """A temporary file for `path` (flushed and fsynced when the block ends)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(name)
        try:
            with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            # mkstemp creates the file 0600; keep the old file's mode, or rw-r--r--.
            os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._pending.append((tmp, path))

    def commit(self, then: Sequence[Callable[[], object]] = ()) -> None:
        """Rename every staged file into place (in staging order), then run `then` (e.g.
        remove a sidecar), with SIGINT/SIGTERM held; a signal that arrived meanwhile is
        logged, not raised: the step it would have split is complete."""
        with deferred_signals() as received:
            for tmp, path in self._pending:
                os.replace(tmp, path)
            self._pending = []
            for step in then:
                step()
        if received:
            self.interrupted = True
            logger.warning(
                "%s arrived while the output was being put in place; it is complete",
                ", ".join(signal.Signals(s).name for s in received),
            )

    def discard(self) -> None:
        for tmp, _ in self._pending:
            tmp.unlink(missing_ok=True)
        self._pending = []
