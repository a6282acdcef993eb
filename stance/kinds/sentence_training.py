"""A training run of the few-shot kind (`model.kind: sentence`): train, score, save.

The run directory it writes (config.json, head.safetensors, body/, ...) is stance.rundir.files's.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from datasets import Dataset

from ..config import RunConfig
from .calibration import Calibration, fit_calibration, oof_head_probs
from .sentence_model import (
    KIND,
    SentenceStanceClassifier,
    context_features,
    predict_proba,
    rows_of,
    train_sentence_model,
)

logger = logging.getLogger(__name__)


def run_sentence_training(cfg: RunConfig) -> dict:
    """Train on every labelled row (no dev split: the recipe was chosen by `stance cv`), score
    `data.dev` when given, and write the run directory."""
    from ..data.statements import label_counts, load_sources, load_statements
    from ..metrics import compute_metrics
    from ..rundir.files import mark_incomplete, save_run

    parts = [load_sources([(s.path, s.weight)], cfg.data.claim) for s in cfg.data.train]
    train_ds = load_sources([(s.path, s.weight) for s in cfg.data.train], cfg.data.claim)
    scored = np.concatenate(
        [np.full(len(d), s.cv_score) for s, d in zip(cfg.data.train, parts, strict=True)]
    )
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
    if cfg.fewshot.calibrate:
        cal = fit_run_calibration(model, train_ds, scored, cfg)
        model.config.stance_calibration = cal.as_dict()
        metrics["calibration"] = cal.as_dict()
    if cfg.data.dev:
        dev_ds = load_statements(cfg.data.dev, model.config.stance_claim)
        texts, _, prevs, nexts = rows_of(dev_ds)
        preds = predict_proba(model, texts, prevs, nexts).argmax(-1).tolist()
        metrics |= {"dev": compute_metrics(preds, list(dev_ds["label"])), "dev_rows": len(dev_ds)}
    mark_incomplete(cfg)
    save_run(cfg, model, metrics)
    return metrics


def fit_run_calibration(
    model: SentenceStanceClassifier, ds: Dataset, scored: np.ndarray, cfg: RunConfig
) -> Calibration:
    """Calibration for the run, from leave-one-article-out head predictions of its `scored`
    rows (cv_score files) on the final body's features: the same procedure
    `stance.evaluation.cvtable`
    nests inside each CV fold. With a tuned body (lpft, setfit) these features have seen
    every training row, so the held-out probabilities are a little optimistic."""
    texts, labels, prevs, nexts = rows_of(ds)
    plain, mixed = context_features(model, texts, prevs, nexts)
    has = np.array([bool(p or n) for p, n in zip(prevs, nexts, strict=True)])
    probs, gold = oof_head_probs(
        plain, mixed, has, np.asarray(labels), list(ds["group"]), scored,
        cfg.fewshot.head_c, cfg.train.seed, context=bool(cfg.fewshot.context_weight),
    )  # fmt: skip
    return fit_calibration(probs, gold)
