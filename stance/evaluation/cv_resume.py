"""`stance cv --json R.json`: the report grows as each fold-run finishes, and `--resume`
continues from it.

After every fold-seed run the report so far (its runs, the baselines of the folds reached,
the summary of what is done, `"complete": false`) replaces R.json atomically, so an
interruption loses at most the run in progress. The report also records what the runs
depend on (`"resume_key"`: the resolved config and the number of seeds); `--resume` reuses
the runs of a file with the same key and refuses any other, naming the difference.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from ..config import RunConfig, dump_config
from ..errors import ConfigError
from ..util.atomic import atomic_write_text

logger = logging.getLogger(__name__)


def resume_key(cfg: RunConfig, seeds: int) -> dict[str, Any]:
    """What a report's runs depend on: the resolved config (hashed) and the seed count."""
    digest = hashlib.sha256(dump_config(cfg).encode("utf-8")).hexdigest()[:16]
    return {"config_sha256": digest, "seeds": seeds}


def write_partial(path: str | Path, report: dict[str, Any], key: dict[str, Any]) -> None:
    """R.json as it stands (atomic: a reader never sees half a file)."""
    atomic_write_text(path, json.dumps({**report, "resume_key": key}, indent=2) + "\n")


def finished_runs(path: str | Path, key: dict[str, Any]) -> list[dict[str, Any]]:
    """The fold-runs of an earlier report at `path` to reuse (none when there is no file)."""
    path = Path(path)
    if not path.exists():
        logger.info("--resume: no %s yet; starting from the first fold", path)
        return []
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ConfigError(f"{path}: not a cv report ({e}); remove it to start over") from e
    if saved.get("resume_key") != key:
        raise ConfigError(
            f"{path} was written with other settings ({saved.get('resume_key')} vs {key}): "
            "the config or --seeds differ; remove it or pass another --json"
        )
    runs = list(saved.get("runs", []))
    logger.info("--resume: %d fold-runs already in %s", len(runs), path)
    return runs
