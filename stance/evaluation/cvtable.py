"""Out-of-fold probabilities of several few-shot recipes on the same whole-article folds.

`stance cv` scores one recipe by labels; issue #22 asks for one table of recipes scored by
pooled and per-label F1, the doubt over-prediction and the article-level correlation of the
stance score. That needs each held-out row's *probabilities*, which this module collects:

- `frozen`: the frozen body's embeddings are computed once for every text of the data (cached
  on disk by content) and only the logistic-regression head is fitted per fold, exactly as
  `stance.kinds.sentence_model.fit_linear_probe` does (plain and in-context copies of each row);
- `frozen+cal`: the same, calibrated (stance.kinds.calibration) by nested CV: inside each outer
  training fold, an inner CV over whole articles (INNER_FOLDS folds) gives out-of-fold
  probabilities of the training articles, the calibration is fitted on those, then applied
  to the outer fold, which the fit never sees;
- tuned recipes (`lpft`, `full`, `setfit`):
  `stance.kinds.sentence_model.train_sentence_model` per fold with the config overrides
  of `TUNED`; their probabilities are cached on disk by recipe and data, since each takes
  minutes a fold on a CPU;
- `ensemble`: the mean of the `frozen` and `lpft` probabilities;
- top-layer recipes (`lpft-top`, `lpft-top-lr5e-5`, `setfit-top`; stance.evaluation.cvtop):
  LP-FT and contrastive tuning (hard pairs) of the body's top layers only, on cached states of
  the frozen lower layers;
- `ensemble-top`: the mean of the `frozen`, `lpft-top` and `setfit-top` probabilities.

Folds: one per scored article (leave-one-article-out), or with `folds` = K the scored
articles dealt round-robin (sorted ids) into K groups (`deal_folds`). Every recipe of a table
uses the same folds; train-only rows (written statements, variants) train in every fold but
their own article's and are never scored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..config import RunConfig, load_config
from ..errors import ConfigError
from ..kinds.calibration import fit_calibration, head_probs, oof_head_probs
from .cvfolds import (
    OutOfFold,
    Rows,
    Setting,
    base_digest,
    cached_oof,
    deal_folds,
    fold_masks,
    held_out_groups,
    held_out_probs,
    recipe_key,
)
from .cvtop import TOP, top_oof

logger = logging.getLogger(__name__)

# Config overrides of the tuned recipes (on top of the table's config).
TUNED: dict[str, list[str]] = {
    "lpft": ["fewshot.adapt=lpft"],  # the config's own LP-FT settings (top 4 layers)
    "full": ["fewshot.adapt=lpft", "fewshot.freeze_layers=0", "train.lr=2e-5"],
    # 2 pair iterations, not setfit's 20: each pair is a forward and backward of mpnet on CPU.
    "setfit": [
        "fewshot.adapt=setfit",
        "fewshot.setfit_hard_pairs=true",
        "fewshot.setfit_iterations=2",
    ],
}
ENSEMBLE_TOP = ("frozen", "lpft-top", "setfit-top")  # ensemble-top: the mean of their probabilities
# Inner folds of the nested calibration: whole articles, dealt round-robin (one head fit each).
INNER_FOLDS = 5
RECIPES = ("frozen", "frozen+cal", *TUNED, "ensemble", *TOP, "ensemble-top", "config")


# ---------------------------------------------------------------- frozen body


def embeddings(cfg: RunConfig, texts: list[str], cache_dir: Path) -> dict[str, np.ndarray]:
    """Frozen-body embedding of every distinct text. Cached per base model and max length,
    text by text, so a data file that changes only costs its new sentences."""
    unique = sorted(set(texts) - {""})
    key = [cfg.model.base, cfg.data.max_length, *base_digest(cfg.model.base)]
    tag = hashlib.sha256(json.dumps(key).encode()).hexdigest()
    path = cache_dir / f"emb-{tag[:16]}.npz"
    known: dict[str, np.ndarray] = {}
    if path.exists() and cfg.model.base != "tiny":  # a tiny body is built from its texts
        saved = np.load(path)
        known = dict(zip(saved["texts"].tolist(), saved["emb"], strict=True))
    missing = [t for t in unique if t not in known]
    if missing:
        from ..kinds.sentence_model import load_body

        body = load_body(cfg, unique)
        emb = body.encode(missing, batch_size=32, normalize_embeddings=True, show_progress_bar=True)
        known.update(zip(missing, np.asarray(emb, dtype=np.float32), strict=True))
        cache_dir.mkdir(parents=True, exist_ok=True)
        names = sorted(known)
        np.savez(path, texts=np.array(names), emb=np.stack([known[t] for t in names]))
    return {t: known[t] for t in unique}


def features(
    rows: Rows, emb: dict[str, np.ndarray], weight: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(plain, in-context, has-context) per row, as stance.kinds.sentence_model.context_features."""
    plain = np.stack([emb[t] for t in rows.texts])
    mixed = plain.copy()
    has = np.zeros(len(plain), dtype=bool)
    for i, near in enumerate(zip(rows.prevs, rows.nexts, strict=True)):
        near = [emb[t] for t in near if t]
        if near:
            has[i] = True
            if weight:
                mixed[i] += weight * np.mean(near, axis=0)
    return plain, mixed, has


def frozen_oof(
    cfg: RunConfig, rows: Rows, cache_dir: Path, calibrate: bool, folds: int = 0
) -> OutOfFold:
    feats = _frozen_features(cfg, rows, cache_dir)
    plain, mixed, has = feats
    w = cfg.fewshot.context_weight
    out = np.zeros((int(rows.scored.sum()), 3))
    index = np.flatnonzero(rows.scored)
    start = time.perf_counter()
    dealt = deal_folds(held_out_groups(rows), folds)
    for fold in tqdm(dealt, desc="frozen folds" + (" (calibrated)" if calibrate else "")):
        train, test = fold_masks(rows, fold)
        p = _fold_head(cfg, rows, feats, train, test)
        if calibrate:
            inner, gold = oof_head_probs(
                plain[train], mixed[train], has[train], rows.labels[train],
                rows.groups[train], rows.scored[train], cfg.fewshot.head_c, cfg.train.seed,
                context=bool(w), folds=INNER_FOLDS,
            )  # fmt: skip
            p = fit_calibration(inner, gold).apply(p)
        out[np.searchsorted(index, np.flatnonzero(test))] = p
    return OutOfFold(out, (time.perf_counter() - start) / len(dealt))


def frozen_fitter(
    cfg: RunConfig, rows: Rows, cache_dir: Path
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """`fit(train, test)` (row indices) -> the frozen body's head, fitted on `train`, applied to
    `test` in context (stance.evaluation.crossblock's splits, which are not article folds)."""
    feats = _frozen_features(cfg, rows, cache_dir)

    def fit(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        mask = np.zeros(len(rows.texts), dtype=bool)
        mask[train] = True
        return _fold_head(cfg, rows, feats, mask, test)

    return fit


def _frozen_features(cfg: RunConfig, rows: Rows, cache_dir: Path) -> tuple[np.ndarray, ...]:
    """(plain, in-context, has-context) frozen-body features of every row."""
    emb = embeddings(cfg, [*rows.texts, *rows.prevs, *rows.nexts], cache_dir)
    return features(rows, emb, cfg.fewshot.context_weight)


def _fold_head(cfg: RunConfig, rows: Rows, feats, train: np.ndarray, test) -> np.ndarray:
    """The head fitted on the `train` rows (a mask), applied to the `test` rows in context."""
    plain, mixed, has = feats
    x, y = _train_xy(plain, mixed, has, rows.labels, train, bool(cfg.fewshot.context_weight))
    return head_probs(x, y, mixed[test], cfg.fewshot.head_c, cfg.train.seed)


def _train_xy(plain, mixed, has, labels, mask, context: bool) -> tuple[np.ndarray, np.ndarray]:
    """The head's training set: each row alone, and again in context where it has one."""
    x, y = plain[mask], labels[mask]
    if context and (has & mask).any():
        x = np.vstack([x, mixed[has & mask]])
        y = np.concatenate([y, labels[has & mask]])
    return x, y


# ---------------------------------------------------------------- tuned recipes


def tuned_oof(
    setting: Setting, rows: Rows, recipe: str, cache_dir: Path, folds: int = 0
) -> OutOfFold:
    """Per fold, train the recipe and keep the held-out probabilities (cached on disk)."""
    from ..kinds.sentence_model import predict_proba, train_sentence_model

    fold_cfg = load_config(setting.config, [*setting.overrides, *TUNED.get(recipe, [])])

    def fit_fold(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        model = train_sentence_model(fold_cfg, rows.ds.select(train))
        return held_out_probs(rows, test, lambda *a: predict_proba(model, *a))

    # Named by what trains, not by the recipe's name: `config` of a config that equals a tuned
    # recipe (the default is `full` on the previous default) reuses that recipe's folds.
    return cached_oof(rows, f"tuned-{recipe_key(fold_cfg, rows)}", cache_dir, folds, fit_fold)


def recipe_oof(
    setting: Setting,
    rows: Rows,
    recipe: str,
    cache_dir: Path,
    done: dict[str, OutOfFold],
    folds: int = 0,
) -> OutOfFold:
    """The recipe's out-of-fold probabilities; `done` holds those already computed (on the
    same folds: `folds` as in `deal_folds`)."""
    cfg = setting.cfg
    if recipe in done:
        return done[recipe]
    if recipe in ("frozen", "frozen+cal"):
        dealt = f"-k{folds}" if 0 < folds < len(held_out_groups(rows)) else ""
        path = cache_dir / f"oof-{recipe}-{recipe_key(cfg, rows)}-i{INNER_FOLDS}{dealt}.npz"
        if path.exists():  # the nested calibration refits hundreds of heads: keep its result
            saved = np.load(path)
            result = OutOfFold(saved["probs"], float(saved["seconds"]))
        else:
            result = frozen_oof(cfg, rows, cache_dir, recipe == "frozen+cal", folds)
            np.savez(path, probs=result.probs, seconds=result.seconds_per_fold)
    elif recipe in ("ensemble", "ensemble-top"):
        parts = ("frozen", "lpft") if recipe == "ensemble" else ENSEMBLE_TOP
        oofs = [recipe_oof(setting, rows, r, cache_dir, done, folds) for r in parts]
        result = OutOfFold(
            np.mean([o.probs for o in oofs], axis=0), sum(o.seconds_per_fold for o in oofs)
        )
    elif recipe == "config":
        return config_oof(setting, rows, cache_dir, done, folds)
    elif recipe in TOP:
        result = top_oof(setting, rows, recipe, cache_dir, folds)
    else:
        result = tuned_oof(setting, rows, recipe, cache_dir, folds)
    done[recipe] = result
    return result


def config_oof(
    setting: Setting, rows: Rows, cache_dir: Path, done: dict[str, OutOfFold], folds: int = 0
) -> OutOfFold:
    """Recipe `config`: the table's config as it trains (`make train` prints it beside the
    frozen baseline): the frozen body (calibrated or not), the top-layer path for LP-FT over
    cached lower layers, else `train_sentence_model` per fold."""
    f = setting.cfg.fewshot
    if f.adapt == "none":
        recipe = "frozen+cal" if f.calibrate else "frozen"
        done["config"] = recipe_oof(setting, rows, recipe, cache_dir, done, folds)
    elif f.calibrate:
        raise ConfigError("cv_table: recipe `config` of a tuned, calibrated body is not built")
    elif f.adapt == "lpft" and f.caches_frozen:
        done["config"] = top_oof(setting, rows, "config", cache_dir, folds)
    else:
        done["config"] = tuned_oof(setting, rows, "config", cache_dir, folds)
    return done["config"]
