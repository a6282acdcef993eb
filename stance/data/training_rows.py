"""The rows a training run reads: the (train, dev) split of a config, and the training side's
augmentation (claim paraphrases, negations), made after the split from training rows only."""

from __future__ import annotations

from datasets import Dataset

from ..config import RunConfig
from .negation import negate_claims
from .statements import group_split, load_sources, load_statements, paraphrase_claims


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
