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
- tuned recipes (`lpft`, `full`, `setfit`): `stance.kinds.sentence_model.train_sentence_model`
  per fold
  with the config overrides of `TUNED`; their probabilities are cached on disk by recipe and
  data, since each takes minutes a fold on a CPU;
- `ensemble`: the mean of the `frozen` and `lpft` probabilities.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..config import RunConfig, load_config
from ..kinds.calibration import fit_calibration, head_probs, oof_head_probs

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
# Inner folds of the nested calibration: whole articles, dealt round-robin (one head fit each).
INNER_FOLDS = 5
RECIPES = ("frozen", "frozen+cal", *TUNED, "ensemble")


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
    )


def held_out_groups(rows: Rows) -> list[str]:
    return sorted(set(rows.groups[rows.scored]))


# ---------------------------------------------------------------- frozen body


def embeddings(cfg: RunConfig, texts: list[str], cache_dir: Path) -> dict[str, np.ndarray]:
    """Frozen-body embedding of every distinct text. Cached per base model and max length,
    text by text, so a data file that changes only costs its new sentences."""
    unique = sorted(set(texts) - {""})
    tag = hashlib.sha256(json.dumps([cfg.model.base, cfg.data.max_length]).encode()).hexdigest()
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


def frozen_oof(cfg: RunConfig, rows: Rows, cache_dir: Path, calibrate: bool) -> OutOfFold:
    emb = embeddings(cfg, [*rows.texts, *rows.prevs, *rows.nexts], cache_dir)
    w = cfg.fewshot.context_weight
    plain, mixed, has = features(rows, emb, w)
    out = np.zeros((int(rows.scored.sum()), 3))
    index = np.flatnonzero(rows.scored)
    start = time.perf_counter()
    folds = held_out_groups(rows)
    for g in tqdm(folds, desc="frozen folds" + (" (calibrated)" if calibrate else "")):
        train = rows.groups != g
        test = (rows.groups == g) & rows.scored
        x, y = _train_xy(plain, mixed, has, rows.labels, train, bool(w))
        p = head_probs(x, y, mixed[test], cfg.fewshot.head_c, cfg.train.seed)
        if calibrate:
            inner, gold = oof_head_probs(
                plain[train], mixed[train], has[train], rows.labels[train],
                rows.groups[train], rows.scored[train], cfg.fewshot.head_c, cfg.train.seed,
                context=bool(w), folds=INNER_FOLDS,
            )  # fmt: skip
            p = fit_calibration(inner, gold).apply(p)
        out[np.searchsorted(index, np.flatnonzero(test))] = p
    return OutOfFold(out, (time.perf_counter() - start) / len(folds))


def _train_xy(plain, mixed, has, labels, mask, context: bool) -> tuple[np.ndarray, np.ndarray]:
    """The head's training set: each row alone, and again in context where it has one."""
    x, y = plain[mask], labels[mask]
    if context and (has & mask).any():
        x = np.vstack([x, mixed[has & mask]])
        y = np.concatenate([y, labels[has & mask]])
    return x, y


# ---------------------------------------------------------------- tuned recipes


def recipe_key(cfg: RunConfig, rows: Rows) -> str:
    """The cache key of a tuned recipe: what it trains and on what, not the run's name."""
    recipe = [repr(cfg.data), repr(cfg.model), repr(cfg.fewshot), repr(cfg.train)]
    payload = json.dumps([recipe, rows.texts, rows.labels.tolist()])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def tuned_oof(setting: Setting, rows: Rows, recipe: str, cache_dir: Path) -> OutOfFold:
    """Per fold, train the recipe and keep the held-out probabilities (cached on disk)."""
    from ..kinds.sentence_model import predict_proba, train_sentence_model

    fold_cfg = load_config(setting.config, [*setting.overrides, *TUNED[recipe]])
    key = recipe_key(fold_cfg, rows)
    index = np.flatnonzero(rows.scored)
    out = np.zeros((len(index), 3))
    seconds = []
    cache_dir.mkdir(parents=True, exist_ok=True)
    for g in tqdm(held_out_groups(rows), desc=f"{recipe} folds"):
        test = np.flatnonzero((rows.groups == g) & rows.scored)
        path = cache_dir / f"oof-{recipe}-{key}-{g}.npz"  # per fold: a cut run resumes
        if not path.exists():
            start = time.perf_counter()
            model = train_sentence_model(fold_cfg, rows.ds.select(np.flatnonzero(rows.groups != g)))
            p = predict_proba(
                model,
                [rows.texts[i] for i in test],
                [rows.prevs[i] for i in test],
                [rows.nexts[i] for i in test],
            )
            np.savez(path, probs=p, seconds=time.perf_counter() - start)
        saved = np.load(path)
        out[np.searchsorted(index, test)] = saved["probs"]
        seconds.append(float(saved["seconds"]))
    return OutOfFold(out, float(np.mean(seconds)))


def recipe_oof(
    setting: Setting, rows: Rows, recipe: str, cache_dir: Path, done: dict[str, OutOfFold]
) -> OutOfFold:
    """The recipe's out-of-fold probabilities; `done` holds those already computed."""
    cfg = setting.cfg
    if recipe in done:
        return done[recipe]
    if recipe in ("frozen", "frozen+cal"):
        path = cache_dir / f"oof-{recipe}-{recipe_key(cfg, rows)}-i{INNER_FOLDS}.npz"
        if path.exists():  # the nested calibration refits hundreds of heads: keep its result
            saved = np.load(path)
            result = OutOfFold(saved["probs"], float(saved["seconds"]))
        else:
            result = frozen_oof(cfg, rows, cache_dir, calibrate=recipe == "frozen+cal")
            np.savez(path, probs=result.probs, seconds=result.seconds_per_fold)
    elif recipe == "ensemble":
        a = recipe_oof(setting, rows, "frozen", cache_dir, done)
        b = recipe_oof(setting, rows, "lpft", cache_dir, done)
        result = OutOfFold((a.probs + b.probs) / 2, a.seconds_per_fold + b.seconds_per_fold)
    else:
        result = tuned_oof(setting, rows, recipe, cache_dir)
    done[recipe] = result
    return result
