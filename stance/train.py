"""A whole training run: `run_training(cfg)` hands the config to its model kind
(stance.kinds.registry), which builds the base, trains and writes the run directory."""

from __future__ import annotations

import logging
from pathlib import Path

from .config import RunConfig
from .errors import StanceError
from .kinds.registry import get_kind

logger = logging.getLogger(__name__)


def run_training(cfg: RunConfig, resume: bool = False) -> dict:
    """Train per `cfg` and write the run directory; returns the metrics written to metrics.json."""
    return get_kind(cfg.model.kind).train(cfg, resume)


def check_trainable(cfg: RunConfig) -> None:
    for source in cfg.data.train:
        if not Path(source.path).is_file():
            raise StanceError(f"data.train: {source.path}: no such file")
