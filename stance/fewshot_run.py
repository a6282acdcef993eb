"""A training run of the few-shot kind (`model.kind: sentence`): train, score, save.

The run directory it writes (config.json, head.safetensors, body/, ...) is stance.rundir's.
"""

from __future__ import annotations

import logging
import time

from .config import RunConfig
from .fewshot import KIND, predict_proba, rows_of, train_sentence_model

logger = logging.getLogger(__name__)


def run_sentence_training(cfg: RunConfig) -> dict:
    """Train on every labelled row (no dev split: the recipe was chosen by `stance cv`), score
    `data.dev` when given, and write the run directory."""
    from .data import label_counts, load_sources, load_statements
    from .metrics import compute_metrics
    from .rundir import mark_incomplete, save_run

    train_ds = load_sources([(s.path, s.weight) for s in cfg.data.train], cfg.data.claim)
    logger.info(
        "train %d rows %s (all of them: no dev split)", len(train_ds), label_counts(train_ds)
    )
    start = time.perf_counter()
    model = train_sentence_model(cfg, train_ds)
    metrics: dict = {
        "kind": KIND,
        "dev": None,
        "train_rows": len(train_ds),
        "train_seconds": round(time.perf_counter() - start, 2),
    }
    if cfg.data.dev:
        dev_ds = load_statements(cfg.data.dev, model.config.stance_claim)
        texts, _, prevs, nexts = rows_of(dev_ds)
        preds = predict_proba(model, texts, prevs, nexts).argmax(-1).tolist()
        metrics |= {"dev": compute_metrics(preds, list(dev_ds["label"])), "dev_rows": len(dev_ds)}
    mark_incomplete(cfg)
    save_run(cfg, model, metrics)
    return metrics
