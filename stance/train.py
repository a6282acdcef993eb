"""A whole training run: read this file top to bottom.

`run_training(cfg)` loads the data, builds the base model, calls `fit` (the loop, in
`stance.loop`; what it works on is built in `stance.train_setup`) and writes the run
directory. The same code runs on CPU, one GPU (bf16) or many (`accelerate launch`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from accelerate.utils import set_seed
from datasets import Dataset

from .config import RunConfig
from .data import group_split, label_counts, load_sources, load_statements, paraphrase_claims
from .errors import StanceError
from .loop import fit, predict_pairs, weighted_loss  # noqa: F401  (re-exported: the API as before)
from .modeling import load_base
from .negation import negate_claims
from .rundir import mark_incomplete, save_run
from .train_setup import class_weights, make_accelerator  # noqa: F401  (class_weights re-exported)

logger = logging.getLogger(__name__)


def augment(cfg: RunConfig, train_ds: Dataset) -> Dataset:
    """The training rows plus their claim paraphrases (`data.paraphrases`) and negations
    (`data.negations`), made after any split from training rows only."""
    d = cfg.data
    ds = paraphrase_claims(train_ds, d.paraphrases, d.paraphrase_weight, cfg.train.seed)
    return negate_claims(ds) if d.negations else ds


def split_training_data(cfg: RunConfig) -> tuple[Dataset, Dataset]:
    """(train, dev) as read: dev from `data.dev`, else whole groups split off the training data."""
    sources = [(s.path, s.weight) for s in cfg.data.train]
    train_ds = load_sources(sources, cfg.data.claim)
    if cfg.data.dev:
        return train_ds, load_statements(cfg.data.dev, cfg.data.claim)
    split_seed = cfg.train.seed if cfg.data.split_seed is None else cfg.data.split_seed
    return group_split(train_ds, cfg.data.dev_fraction, split_seed)


def load_training_data(cfg: RunConfig) -> tuple[Dataset, Dataset]:
    """(train, dev) for a run: the split, with the training side augmented."""
    train_ds, dev_ds = split_training_data(cfg)
    return augment(cfg, train_ds), dev_ds


def run_training(cfg: RunConfig, resume: bool = False) -> dict:
    """Train per `cfg` and write the run directory; returns the metrics written to metrics.json."""
    if cfg.model.kind == "sentence":
        from .fewshot_run import run_sentence_training

        return run_sentence_training(cfg)
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


def check_trainable(cfg: RunConfig) -> None:
    for source in cfg.data.train:
        if not Path(source.path).is_file():
            raise StanceError(f"data.train: {source.path}: no such file")
