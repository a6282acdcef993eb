"""A training run of the cross-encoder kind: load the data, build the base, `fit` (the loop,
in stance.training.loop) and write the run directory. The same code runs on CPU, one GPU (bf16)
or many (`accelerate launch`)."""

from __future__ import annotations

import logging

from accelerate.utils import set_seed
from datasets import Dataset

from ..config import RunConfig
from ..data.statements import label_counts
from ..data.training_rows import augment, load_training_data
from ..rundir.files import mark_incomplete, save_run
from ..training.loop import fit, predict_pairs
from ..training.setup import make_accelerator
from .backbones import load_base

logger = logging.getLogger(__name__)


def run_pair_training(cfg: RunConfig, resume: bool = False) -> dict:
    """Train per `cfg` and write the run directory; returns the metrics written to metrics.json."""
    run_dir = cfg.run_dir
    mark_incomplete(cfg, run_dir)
    train_ds, dev_ds = load_training_data(cfg)
    logger.info(
        "train %d rows %s, dev %d rows %s",
        len(train_ds),
        label_counts(train_ds),
        len(dev_ds),
        label_counts(dev_ds),
    )
    set_seed(cfg.train.seed)  # the tiny model's initial weights depend on it
    model, tokenizer = load_base(cfg.model, [train_ds[0]["claim"], *train_ds["text"]])
    accelerator = make_accelerator(cfg)
    result = fit(cfg, model, tokenizer, train_ds, dev_ds, run_dir, resume, accelerator)
    metrics = {
        "dev": result.dev_metrics,
        "best_step": result.state.best_step,
        "steps": result.state.step,
        "train_rows": len(train_ds),
        "dev_rows": len(dev_ds),
        "dev_groups": sorted(set(dev_ds["group"])),
        "train_seconds": round(result.seconds, 2),
        "history": result.state.history,
    }
    if accelerator.is_main_process:
        save_run(cfg, result.model, metrics, tokenizer)
    accelerator.wait_for_everyone()
    return metrics


def fit_predict(cfg: RunConfig, train_ds: Dataset, test_ds: Dataset) -> tuple[list[int], list[int]]:
    """One CV fold: train per `cfg` (none with 0 epochs); (predicted, gold) ids of `test_ds`."""
    model, tokenizer = load_base(cfg.model, [train_ds[0]["claim"], *train_ds["text"]])
    if cfg.train.epochs > 0:
        model = fit(cfg, model, tokenizer, augment(cfg, train_ds)).model
    return predict_pairs(model, tokenizer, test_ds, cfg.data.max_length, cfg.train.eval_batch_size)
