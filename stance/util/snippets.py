"""Markdown snippets of measured results, written by the command that measured them.

The documentation site includes these files (pymdownx.snippets) instead of typing numbers, so
a figure in the docs is always the output of a named run: each snippet carries the date, the
machine (lscpu's model name and the SIMD flags that matter for speed) and the command line.
"""

from __future__ import annotations

import io
import os
import platform
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from .atomic import atomic_write_text

# The CPU flags that change what the kernels can use; the full list is hundreds of words.
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8")


def lscpu_fields(text: str) -> dict[str, str]:
    """`Key: value` lines of lscpu's output as a dict."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def describe_machine(lscpu_text: str | None = None, cores: int | None = None) -> str:
    """'AMD EPYC, 2 cores, flags avx2 avx512f ...' from lscpu (or /proc/cpuinfo, or platform)."""
    if lscpu_text is None:
        try:
            lscpu_text = subprocess.run(
                ["lscpu"], capture_output=True, text=True, timeout=10, check=False
            ).stdout
        except (OSError, subprocess.SubprocessError):
            lscpu_text = ""
    fields = lscpu_fields(lscpu_text)
    model = fields.get("Model name") or platform.processor() or platform.machine() or "unknown"
    flags = set(fields.get("Flags", "").split())
    present = [f for f in SPEED_FLAGS if f in flags]
    cores = cores if cores is not None else os.cpu_count()
    text = f"{model}, {cores} cores"
    return text + (f", flags {' '.join(present)}" if present else "")


def command_line(argv: Sequence[str] | None = None) -> str:
    """The running command as a user would type it (repository-relative, `.venv/bin/...`)."""
    argv = list(sys.argv if argv is None else argv)
    if argv and argv[0].endswith("stance/cli.py"):  # python -m stance.cli
        argv = [".venv/bin/stance", *argv[1:]]
    elif argv and argv[0].endswith(".py"):
        with suppress(ValueError):
            argv[0] = str(Path(argv[0]).resolve().relative_to(Path.cwd()))
        argv = [".venv/bin/python", *argv]
    elif argv and Path(argv[0]).name == "stance":
        argv = [".venv/bin/stance", *argv[1:]]
    return shlex.join(argv)


def render(title: str, body: str, command: str, machine: str, when: str) -> str:
    """The snippet's text: a bold title line, the provenance line, then the body as given."""
    provenance = f"*{when}, {machine}; produced by `{command}`.*"
    return f"**{title}**\n\n{provenance}\n\n{body.rstrip()}\n"


def write_snippet(
    path: str | Path,
    title: str,
    body: str,
    command: str | None = None,
    machine: str | None = None,
) -> Path:
    """Write a results snippet to `path` atomically (a reader sees the old file or the new)."""
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = render(
        title,
        body,
        command if command is not None else command_line(),
        machine if machine is not None else describe_machine(),
        when,
    )
    atomic_write_text(path, text)
    return Path(path)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A pipe table; numbers right-aligned (floats to 3 decimals), text left-aligned."""

    def cell(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v).replace("|", r"\|")

    numeric = [
        all(isinstance(r[i], int | float) for r in rows) if rows else False
        for i in range(len(headers))
    ]
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---:" if n else "---" for n in numeric) + "|",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def fence(text: str, lang: str = "text") -> str:
    """`text` as a fenced code block (for a printed report kept as printed)."""
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}"


def as_markdown(text: str) -> str:
    """Printed output as Markdown: pipe tables kept, single lines kept, other runs fenced.

    Column-aligned reports only line up in a monospaced block, so they stay as printed.
    """
    out = []
    for block in re.split(r"\n\s*\n", text.strip("\n")):
        lines = [line for line in block.splitlines() if line.strip()]
        # Runs of table lines and of other lines, in order (a table may sit in a text block).
        runs: list[list[str]] = []
        for line in lines:
            is_table = line.lstrip().startswith("|")
            if runs and runs[-1][0].lstrip().startswith("|") == is_table:
                runs[-1].append(line)
            else:
                runs.append([line])
        for run in runs:
            if run[0].lstrip().startswith("|") or len(run) == 1:
                out.append("\n".join(run))
            else:
                out.append(fence("\n".join(run)))
    return "\n\n".join(out)


class _Tee(io.TextIOBase):
    def __init__(self, stream: TextIO) -> None:
        self.stream, self.buffer_ = stream, io.StringIO()

    def write(self, s: str) -> int:
        self.buffer_.write(s)
        return self.stream.write(s)

    def flush(self) -> None:
        self.stream.flush()


@contextmanager
def stdout_snippet(path: str | Path | None, title: str) -> Iterator[None]:
    """Print as usual; when the block ends without an error, also write what it printed to
    `path` as a snippet (nothing happens when `path` is None; a failed run writes nothing)."""
    if path is None:
        yield
        return
    tee = _Tee(sys.stdout)
    sys.stdout = tee
    try:
        yield
    finally:
        sys.stdout = tee.stream
    write_snippet(path, title, as_markdown(tee.buffer_.getvalue()))


# README.md cannot include files (GitHub renders it as it is), so it holds copies of snippets
# between these markers; `python -m stance.util.snippets README.md` refreshes them and
# tests/test_docs.py fails when a copy differs from its snippet.
INCLUDE = re.compile(r"(<!-- include: (?P<path>\S+) -->\n)(?P<body>.*?)(<!-- /include -->)", re.S)


def sync_includes(text: str, root: Path) -> str:
    """`text` with every include region replaced by the current content of its file."""

    def repl(m: re.Match) -> str:
        body = (root / m["path"]).read_text(encoding="utf-8")
        return m.group(1) + body.rstrip("\n") + "\n" + m.group(4)

    return INCLUDE.sub(repl, text)


def main(argv: Sequence[str] | None = None) -> int:
    """Refresh the include regions of each Markdown file given (paths relative to the cwd)."""
    for name in sys.argv[1:] if argv is None else argv:
        path = Path(name)
        text = path.read_text(encoding="utf-8")
        new = sync_includes(text, Path.cwd())
        if new != text:
            atomic_write_text(path, new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
