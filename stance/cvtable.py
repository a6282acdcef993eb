"""Out-of-fold probabilities of several few-shot recipes on the same whole-article folds.

`stance cv` scores one recipe by labels; issue #22 asks for one table of recipes scored by
pooled and per-label F1, the doubt over-prediction and the article-level correlation of the
stance score. That needs each held-out row's *probabilities*, which this module collects:

- `frozen`: the frozen body's embeddings are computed once for every text of the data (cached
  on disk by content) and only the logistic-regression head is fitted per fold, exactly as
  `stance.fewshot.fit_linear_probe` does (plain and in-context copies of each row);
- `frozen+cal`: the same, calibrated (stance.calibration) by nested CV: inside each outer
  training fold, an inner CV over whole articles (INNER_FOLDS folds) gives out-of-fold
  probabilities of the training articles, the calibration is fitted on those, then applied
  to the outer fold, which the fit never sees;
- tuned recipes (`lpft`, `full`, `setfit`): `stance.fewshot.train_sentence_model` per fold
  with the config overrides of `TUNED`; their probabilities are cached on disk by recipe and
  data, since each takes minutes a fold on a CPU;
- `ensemble`: the mean of the `frozen` and `lpft` probabilities;
- top-layer recipes (`lpft-top`, `setfit-top`; `TOP`): LP-FT and SetFit-style contrastive
  tuning (hard pairs) of the body's top layers only. The lower layers are frozen in both, so
  their output is computed once per text (`TopLayers`, cached on disk) and each fold runs and
  trains the top layers alone: the recipes of `stance.fewshot.train_sentence_model` (the
  same probe, head re-fit, pair sampling, losses, optimiser and schedule), minus dropout in
  the frozen layers, at a fraction of the cost;
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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .calibration import fit_calibration, head_probs, oof_head_probs
from .config import RunConfig, load_config

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
# Top-layer recipes: config overrides (fewshot.freeze_layers: the frozen lower layers, so
# mpnet's 12 - 10 = 2 top layers are tuned). lpft-top: the previous default's LP-FT settings
# (configs/withdrawal-seeds-fewshot.yaml: 2 epochs, batch 8, lr 1e-5); setfit-top: hard pairs,
# 1 pair iteration (setfit's default is 20: each pair is two encodings), setfit's lr and batch.
TOP: dict[str, list[str]] = {
    "lpft-top": [
        "fewshot.adapt=lpft",
        "fewshot.freeze_layers=10",
        "train.epochs=2",
        "train.batch_size=8",
        "train.lr=1e-5",
        "train.warmup_ratio=0.1",
        "train.class_weights=true",
    ],
    # The same at the package's default learning rate (train.lr's default, 5x the above).
    "lpft-top-lr5e-5": [
        "fewshot.adapt=lpft",
        "fewshot.freeze_layers=10",
        "train.epochs=2",
        "train.batch_size=8",
        "train.lr=5e-5",
        "train.warmup_ratio=0.1",
        "train.class_weights=true",
    ],
    "setfit-top": [
        "fewshot.adapt=setfit",
        "fewshot.freeze_layers=10",
        "fewshot.setfit_hard_pairs=true",
        "fewshot.setfit_iterations=1",
    ],
}
ENSEMBLE_TOP = ("frozen", "lpft-top", "setfit-top")  # ensemble-top: the mean of their probabilities
# Inner folds of the nested calibration: whole articles, dealt round-robin (one head fit each).
INNER_FOLDS = 5
RECIPES = ("frozen", "frozen+cal", *TUNED, "ensemble", *TOP, "ensemble-top")


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

    from .data import load_sources

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
        from .fewshot import load_body

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
    """(plain, in-context, has-context) per row, as stance.fewshot.context_features."""
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
    emb = embeddings(cfg, [*rows.texts, *rows.prevs, *rows.nexts], cache_dir)
    w = cfg.fewshot.context_weight
    plain, mixed, has = features(rows, emb, w)
    out = np.zeros((int(rows.scored.sum()), 3))
    index = np.flatnonzero(rows.scored)
    start = time.perf_counter()
    dealt = deal_folds(held_out_groups(rows), folds)
    for fold in tqdm(dealt, desc="frozen folds" + (" (calibrated)" if calibrate else "")):
        train, test = fold_masks(rows, fold)
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
    return OutOfFold(out, (time.perf_counter() - start) / len(dealt))


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


def tuned_oof(
    setting: Setting, rows: Rows, recipe: str, cache_dir: Path, folds: int = 0
) -> OutOfFold:
    """Per fold, train the recipe and keep the held-out probabilities (cached on disk)."""
    from .fewshot import predict_proba, train_sentence_model

    fold_cfg = load_config(setting.config, [*setting.overrides, *TUNED[recipe]])
    key = recipe_key(fold_cfg, rows)
    index = np.flatnonzero(rows.scored)
    out = np.zeros((len(index), 3))
    seconds = []
    cache_dir.mkdir(parents=True, exist_ok=True)
    for fold in tqdm(deal_folds(held_out_groups(rows), folds), desc=f"{recipe} folds"):
        train, test = fold_masks(rows, fold)
        test = np.flatnonzero(test)
        path = cache_dir / f"oof-{recipe}-{key}-{fold_name(fold)}.npz"  # a cut run resumes
        if not path.exists():
            start = time.perf_counter()
            model = train_sentence_model(fold_cfg, rows.ds.select(np.flatnonzero(train)))
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
    elif recipe in TOP:
        result = top_oof(setting, rows, recipe, cache_dir, folds)
    else:
        result = tuned_oof(setting, rows, recipe, cache_dir, folds)
    done[recipe] = result
    return result


# ---------------------------------------------------------------- top-layer recipes


def _run_layer(encoder, layer, h: torch.Tensor) -> torch.Tensor:
    """One encoder layer on unpadded states (every row the same length: no mask needed)."""
    if hasattr(encoder, "compute_position_bias"):  # MPNet: relative position bias per layer
        out = layer(h, None, encoder.compute_position_bias(h))
    else:  # BERT (the tiny test body)
        out = layer(h, None)
    return out[0] if isinstance(out, tuple) else out


class TopLayers(torch.nn.Module):
    """A sentence-transformer body whose lowest `frozen` encoder layers are run once per text.

    `states` holds each text's hidden states after the frozen layers (its real tokens only);
    `embed` runs the top layers on them, rows of equal length together (so without padding),
    and mean-pools and L2-normalises as the body does: with the top layers untouched it gives
    the body's own embeddings. `encode` has sentence-transformers' signature, so
    `stance.fewshot` (probe, context features, predict_proba) drives it as a body.
    """

    def __init__(self, body, frozen: int, states: dict[str, torch.Tensor]):
        super().__init__()
        encoder = body[0].auto_model.encoder
        # Not a submodule: its shared parts (MPNet's relative position bias, the lower layers)
        # stay as the cached states saw them; only `layers` train.
        self._encoder = (encoder,)
        self.layers = torch.nn.ModuleList(encoder.layer[frozen:])
        self.states = states

    @staticmethod
    def hidden_states(body, frozen: int, texts: list[str]) -> dict[str, torch.Tensor]:
        """Each text's states after the lowest `frozen` layers (inference, body's max length)."""
        word = body[0]
        order = sorted(set(texts) - {""}, key=len)
        out: dict[str, torch.Tensor] = {}
        with torch.inference_mode():
            for i in tqdm(range(0, len(order), 32), desc=f"states after layer {frozen}"):
                batch = order[i : i + 32]
                enc = word.tokenizer(
                    batch,
                    padding=True,
                    truncation=True,
                    max_length=body.max_seq_length,
                    return_tensors="pt",
                )
                hs = word.auto_model(
                    input_ids=enc["input_ids"],
                    attention_mask=enc["attention_mask"],
                    output_hidden_states=True,
                ).hidden_states[frozen]
                for j, t in enumerate(batch):
                    out[t] = hs[j, : int(enc["attention_mask"][j].sum())].clone()
        return out

    def embed(self, texts: list[str]) -> torch.Tensor:
        by_len: dict[int, list[int]] = {}
        for i, t in enumerate(texts):
            by_len.setdefault(len(self.states[t]), []).append(i)
        out: list[torch.Tensor | None] = [None] * len(texts)
        for idx in by_len.values():
            h = torch.stack([self.states[texts[i]] for i in idx])
            for layer in self.layers:
                h = _run_layer(self._encoder[0], layer, h)
            for i, e in zip(idx, h.mean(dim=1), strict=True):
                out[i] = e
        return torch.nn.functional.normalize(torch.stack(out).float(), dim=-1)

    def encode(self, texts: list[str], batch_size: int = 32, **_) -> np.ndarray:
        step = max(batch_size, 256)  # long chunks: more rows of equal length together
        with torch.inference_mode():
            parts = [self.embed(texts[i : i + step]) for i in range(0, len(texts), step)]
        return torch.cat(parts).numpy() if parts else np.zeros((0, 0), dtype=np.float32)


def top_states(cfg: RunConfig, rows: Rows, cache_dir: Path):
    """(body, its states after the frozen layers for every text of `rows`), cached on disk."""
    from .fewshot import load_body

    texts = sorted(set([*rows.texts, *rows.prevs, *rows.nexts]) - {""})
    body = load_body(cfg, texts)
    frozen = cfg.fewshot.freeze_layers
    tag = json.dumps([cfg.model.base, cfg.data.max_length, frozen, texts])
    path = cache_dir / f"states-{hashlib.sha256(tag.encode()).hexdigest()[:16]}.pt"
    if path.exists() and cfg.model.base != "tiny":
        return body, torch.load(path)
    states = TopLayers.hidden_states(body, frozen, texts)
    if cfg.model.base != "tiny":
        cache_dir.mkdir(parents=True, exist_ok=True)
        torch.save(states, path)
    return body, states


def _length_batches(lengths: list[int], size: int, rng: np.random.Generator) -> list[list[int]]:
    """Shuffled batches of rows of (mostly) equal length, as the package's length grouping."""
    order = sorted(rng.permutation(len(lengths)).tolist(), key=lambda i: lengths[i])
    batches = [order[i : i + size] for i in range(0, len(order), size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _top_model(cfg: RunConfig, body, states, claim: str):
    from .fewshot import SentenceStanceClassifier, embedding_size, stance_config

    top = TopLayers(body, cfg.fewshot.freeze_layers, states)
    config = stance_config(embedding_size(body), claim, cfg.data.max_length, cfg.model.base)
    config.stance_context_weight = cfg.fewshot.context_weight
    return SentenceStanceClassifier(top, config)


def top_lpft(cfg: RunConfig, model, ds) -> None:
    """LP-FT of the top layers and head (stance.train's loss, optimiser and schedule)."""
    from .loop import weighted_loss
    from .train_setup import class_weights, make_optimizer

    t = cfg.train
    texts, labels = list(ds["text"]), torch.tensor(ds["label"])
    weights = torch.tensor(ds["weight"], dtype=torch.float32)
    cls_weight = class_weights(labels.tolist(), weights.tolist()) if t.class_weights else None
    if cls_weight is None:
        cls_weight = torch.ones(3)
    lengths = [len(model.body.states[x]) for x in texts]
    rng = np.random.default_rng(t.seed)
    steps = int(np.ceil(len(texts) / t.batch_size)) * int(np.ceil(t.epochs))
    optimizer, scheduler = make_optimizer(model, t, steps)
    model.train()
    for _ in range(int(np.ceil(t.epochs))):
        for batch in _length_batches(lengths, t.batch_size, rng):
            logits = model.head(model.body.embed([texts[i] for i in batch]))
            loss = weighted_loss(logits, labels[batch], weights[batch], cls_weight)
            loss.backward()
            if t.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), t.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
    model.eval()


def top_setfit(cfg: RunConfig, model, ds) -> None:
    """SetFit's contrastive step on the top layers: sentence-transformers' CosineSimilarityLoss
    (MSE of the pair's cosine against 1 / 0) with its trainer's defaults (AdamW, no weight
    decay, linear warm-up 10% and decay, clipping at 1)."""
    from transformers import get_linear_schedule_with_warmup

    from .fewshot import contrastive_pairs

    f = cfg.fewshot
    texts, labels = list(ds["text"]), list(ds["label"])
    pairs = contrastive_pairs(
        texts, labels, f.setfit_iterations, cfg.train.seed, f.setfit_hard_pairs
    )
    n = len(pairs["score"])
    rng = np.random.default_rng(cfg.train.seed)
    order = rng.permutation(n)
    steps = int(np.ceil(n / f.setfit_batch_size)) * f.setfit_epochs
    params = list(model.body.parameters())
    optimizer = torch.optim.AdamW(params, lr=f.setfit_lr, weight_decay=0.0)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(0.1 * steps), max(steps, 1))
    model.train()
    for _ in range(f.setfit_epochs):
        for i in range(0, n, f.setfit_batch_size):
            idx = order[i : i + f.setfit_batch_size]
            a = [pairs["sentence1"][j] for j in idx]
            b = [pairs["sentence2"][j] for j in idx]
            emb = model.body.embed(a + b)
            cos = (emb[: len(a)] * emb[len(a) :]).sum(-1)  # unit vectors: the cosine
            target = torch.tensor([pairs["score"][j] for j in idx], dtype=torch.float32)
            loss = torch.nn.functional.mse_loss(cos, target)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        order = rng.permutation(n)
    model.eval()


def top_oof(setting: Setting, rows: Rows, recipe: str, cache_dir: Path, folds: int = 0):
    """Per fold: fresh top layers, probe, tune (LP-FT or contrastive pairs), head re-fit,
    held-out probabilities in context (stance.fewshot's probe and predict_proba)."""
    from .fewshot import fit_linear_probe, predict_proba

    cfg = load_config(setting.config, [*setting.overrides, *TOP[recipe]])
    key = recipe_key(cfg, rows)
    index = np.flatnonzero(rows.scored)
    out = np.zeros((len(index), 3))
    seconds = []
    body = states = initial = layers = None
    claim = rows.ds[0]["claim"]
    cache_dir.mkdir(parents=True, exist_ok=True)
    for fold in tqdm(deal_folds(held_out_groups(rows), folds), desc=f"{recipe} folds"):
        train, test = fold_masks(rows, fold)
        test = np.flatnonzero(test)
        path = cache_dir / f"oof-{recipe}-{key}-{fold_name(fold)}.npz"  # a cut run resumes
        if not path.exists():
            if body is None:
                body, states = top_states(cfg, rows, cache_dir)
                layers = body[0].auto_model.encoder.layer
                initial = {k: v.clone() for k, v in layers.state_dict().items()}
            start = time.perf_counter()
            layers.load_state_dict(initial)  # fresh weights every fold
            torch.manual_seed(cfg.train.seed)
            model = _top_model(cfg, body, states, claim)
            ds = rows.ds.select(np.flatnonzero(train))
            fit_linear_probe(model, ds, cfg.fewshot.head_c, cfg.train.seed)
            (top_setfit if cfg.fewshot.adapt == "setfit" else top_lpft)(cfg, model, ds)
            fit_linear_probe(model, ds, cfg.fewshot.head_c, cfg.train.seed)
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
