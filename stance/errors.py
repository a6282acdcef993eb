"""The package's own errors: each names the input (and line) at fault."""

from __future__ import annotations

from pathlib import Path


class StanceError(Exception):
    """Base class for every error the package raises on purpose."""


class InputError(StanceError):
    """Bad user input: a file, a row, an article. Names the file and, where known, the line."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.path = str(path) if path is not None else None
        self.line = line
        where = self.path or ""
        if line is not None:
            where = f"{where}:{line}" if where else f"line {line}"
        super().__init__(f"{where}: {message}" if where else message)


class ConfigError(StanceError):
    """A configuration that cannot be used: unknown key, wrong type, missing file."""


class ModelLoadError(StanceError):
    """A model directory that cannot be loaded safely (e.g. pickle-only weights)."""
