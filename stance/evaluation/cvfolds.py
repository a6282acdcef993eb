"""Rows and whole-article folds shared by the CV table's recipes (stance.evaluation.cvtable,
stance.evaluation.cvtop): the rows of a table's data, which of them are scored, how scored
articles are dealt into folds, and the cache key of a recipe's training."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..config import RunConfig, load_config


@dataclass
class Setting:
    """A config file and its overrides: the data and base recipe of one block of the table."""

    config: str
    overrides: list[str] = field(default_factory=list)

    @property
    def cfg(self) -> RunConfig:
        return load_config(self.config, self.overrides)


@dataclass
class Rows:
    """Every row of a table's data: scored rows and train-only rows, in one order."""

    texts: list[str]
    prevs: list[str]
    nexts: list[str]
    labels: np.ndarray
    groups: np.ndarray
    scored: np.ndarray  # False: written statements, variants (they only ever train)
    ds: object  # the datasets.Dataset of the same rows, for the tuned recipes
    sources: np.ndarray | None = None  # the data file (config path) of each row


@dataclass
class OutOfFold:
    """Held-out probabilities of the scored rows, in `Rows` order of the scored rows."""

    probs: np.ndarray
    seconds_per_fold: float


def load_rows(cfg: RunConfig) -> Rows:
    from datasets import concatenate_datasets

    from ..data.statements import load_sources

    parts = [(s, load_sources([(s.path, s.weight)], cfg.data.claim)) for s in cfg.data.train]
    ds = concatenate_datasets([d for _, d in parts])
    scored = np.concatenate([np.full(len(d), s.cv_score) for s, d in parts])
    return Rows(
        texts=list(ds["text"]),
        prevs=list(ds["prev_text"]),
        nexts=list(ds["next_text"]),
        labels=np.asarray(ds["label"]),
        groups=np.asarray(ds["group"]),
        scored=scored,
        ds=ds,
        sources=np.concatenate([np.full(len(d), s.path) for s, d in parts]),
    )


def held_out_groups(rows: Rows) -> list[str]:
    return sorted(set(rows.groups[rows.scored]))


def deal_folds(groups: list[str], k: int = 0) -> list[list[str]]:
    """Whole articles into folds: one fold per article (k <= 0 or k >= articles), or the
    sorted ids dealt round-robin into k folds (as the nested calibration's inner folds)."""
    held = sorted(set(groups))
    if k <= 0 or k >= len(held):
        return [[g] for g in held]
    return [held[i::k] for i in range(k)]


def fold_masks(rows: Rows, fold: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row masks of a fold: its articles' rows (train-only rows of the same
    articles included) never train; only its scored rows are tested."""
    out = np.isin(rows.groups, fold)
    return ~out, out & rows.scored


def fold_name(fold: list[str]) -> str:
    return "+".join(fold)


def fold_ids(rows: Rows, folds: int) -> np.ndarray:
    """The fold index of each scored row (in `Rows` order of the scored rows)."""
    groups = rows.groups[rows.scored]
    out = np.full(len(groups), -1)
    for i, fold in enumerate(deal_folds(held_out_groups(rows), folds)):
        out[np.isin(groups, fold)] = i
    return out


def recipe_key(cfg: RunConfig, rows: Rows) -> str:
    """The cache key of a tuned recipe: what it trains and on what, not the run's name."""
    f = cfg.fewshot  # cache_frozen does nothing without frozen layers: the same training
    f = dataclasses.replace(f, cache_frozen=f.caches_frozen)
    recipe = [repr(cfg.data), repr(cfg.model), repr(f), repr(cfg.train)]
    recipe += base_digest(cfg.model.base)
    payload = json.dumps([recipe, rows.texts, rows.labels.tolist()])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def base_digest(base: str) -> list[str]:
    """For a body directory named as `model.base` (e.g. scripts/adapt_body.py's), the sha256
    of its weights, so that every cache keyed by config notices a body re-trained in place;
    a named base ('mpnet', ...) is its name alone, which keeps the keys of earlier runs."""
    if base in ("tiny", "minilm", "mpnet"):
        return []
    return [_weights_sha256(str(Path(base).resolve()))]


@functools.lru_cache(maxsize=8)
def _weights_sha256(path: str) -> str:
    digest = hashlib.sha256()
    for weights in sorted(Path(path).glob("*.safetensors")):
        with open(weights, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def held_out_probs(rows: Rows, test: np.ndarray, predict: Callable) -> np.ndarray:
    """`predict(texts, prevs, nexts)` on the rows `test` (indices): each with its context."""
    return predict(
        [rows.texts[i] for i in test],
        [rows.prevs[i] for i in test],
        [rows.nexts[i] for i in test],
    )


def cached_oof(
    rows: Rows,
    name: str,
    cache_dir: Path,
    folds: int,
    fit_fold: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> OutOfFold:
    """Per fold of whole articles, `fit_fold(train_rows, test_rows)` -> held-out probabilities,
    each fold saved on disk as `oof-{name}-{fold}.npz` so that a cut run resumes."""
    index = np.flatnonzero(rows.scored)
    out = np.zeros((len(index), 3))
    seconds = []
    cache_dir.mkdir(parents=True, exist_ok=True)
    for fold in tqdm(deal_folds(held_out_groups(rows), folds), desc=f"{name} folds"):
        train, test = fold_masks(rows, fold)
        test = np.flatnonzero(test)
        path = cache_dir / f"oof-{name}-{fold_name(fold)}.npz"
        if not path.exists():
            start = time.perf_counter()
            probs = fit_fold(np.flatnonzero(train), test)
            np.savez(path, probs=probs, seconds=time.perf_counter() - start)
        saved = np.load(path)
        out[np.searchsorted(index, test)] = saved["probs"]
        seconds.append(float(saved["seconds"]))
    return OutOfFold(out, float(np.mean(seconds)))
