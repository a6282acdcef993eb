"""Top-layer recipes of the CV table (`lpft-top`, `lpft-top-lr5e-5`, `setfit-top`): LP-FT and
SetFit-style contrastive tuning (hard pairs) of the body's top layers only. The lower layers
are frozen in both, so their output is computed once per text (`TopLayers`, cached on disk as
safetensors) and each fold runs and trains the top layers alone: the recipes of
`stance.kinds.sentence_model.train_sentence_model` (the same probe, head re-fit, pair
sampling, losses, optimiser and schedule), minus dropout in the frozen layers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..config import RunConfig, load_config
from ..kinds.top_layers import TopLayers, top_lpft
from .cvfolds import Rows, Setting, base_digest, cached_oof, held_out_probs, recipe_key

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


def top_states(cfg: RunConfig, rows: Rows, cache_dir: Path):
    """(body, its states after the frozen layers for every text of `rows`), cached on disk."""
    from ..kinds.sentence_model import load_body

    texts = sorted(set([*rows.texts, *rows.prevs, *rows.nexts]) - {""})
    body = load_body(cfg, texts)
    frozen = cfg.fewshot.freeze_layers
    tag = json.dumps(
        [cfg.model.base, cfg.data.max_length, frozen, texts, *base_digest(cfg.model.base)]
    )
    path = cache_dir / f"states-{hashlib.sha256(tag.encode()).hexdigest()[:16]}.safetensors"
    if path.exists() and cfg.model.base != "tiny":
        return body, load_file(path)  # safetensors, keyed by text: nothing is unpickled
    states = TopLayers.hidden_states(body, frozen, texts)
    if cfg.model.base != "tiny":
        cache_dir.mkdir(parents=True, exist_ok=True)
        save_file(states, path)
    return body, states


def _top_model(cfg: RunConfig, body, states, claim: str):
    from ..kinds.sentence_model import SentenceStanceClassifier, embedding_size, stance_config

    top = TopLayers(body, cfg.fewshot.freeze_layers, states)
    config = stance_config(embedding_size(body), claim, cfg.data.max_length, cfg.model.base)
    config.stance_context_weight = cfg.fewshot.context_weight
    return SentenceStanceClassifier(top, config)


def top_setfit(cfg: RunConfig, model, ds) -> None:
    """SetFit's contrastive step on the top layers: sentence-transformers' CosineSimilarityLoss
    (MSE of the pair's cosine against 1 / 0) with its trainer's defaults (AdamW, no weight
    decay, linear warm-up 10% and decay, clipping at 1)."""
    from transformers import get_linear_schedule_with_warmup

    from ..kinds.sentence_model import contrastive_pairs

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


def top_fitter(
    setting: Setting, rows: Rows, recipe: str, cache_dir: Path
) -> tuple[RunConfig, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """(the recipe's config, `fit(train, test)`): row indices -> probabilities of the `test`
    rows, read in context, after fresh top layers, a probe, the tuning (LP-FT or contrastive
    pairs) and the head re-fitted on `train` (the package's probe and predict_proba). The
    body and its states load on the first call."""
    from ..kinds.sentence_model import fit_linear_probe, predict_proba

    # `config` (stance.evaluation.cvtable): the table's config as it is, no overrides.
    cfg = load_config(setting.config, [*setting.overrides, *TOP.get(recipe, [])])
    claim = rows.ds[0]["claim"]
    loaded: dict = {}

    def fit(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        if not loaded:  # the body and its cached states, only if a fold has to be trained
            body, loaded["states"] = top_states(cfg, rows, cache_dir)
            loaded["body"], loaded["layers"] = body, body[0].auto_model.encoder.layer
            loaded["initial"] = {k: v.clone() for k, v in loaded["layers"].state_dict().items()}
        loaded["layers"].load_state_dict(loaded["initial"])  # fresh weights every fold
        torch.manual_seed(cfg.train.seed)
        model = _top_model(cfg, loaded["body"], loaded["states"], claim)
        ds = rows.ds.select(train)
        fit_linear_probe(model, ds, cfg.fewshot.head_c, cfg.train.seed)
        (top_setfit if cfg.fewshot.adapt == "setfit" else top_lpft)(cfg, model, ds)
        fit_linear_probe(model, ds, cfg.fewshot.head_c, cfg.train.seed)
        return held_out_probs(rows, test, lambda *a: predict_proba(model, *a))

    return cfg, fit


def top_oof(setting: Setting, rows: Rows, recipe: str, cache_dir: Path, folds: int = 0):
    """Per fold of whole articles, `top_fitter`'s held-out probabilities (cached per fold)."""
    cfg, fit = top_fitter(setting, rows, recipe, cache_dir)
    return cached_oof(rows, f"{recipe}-{recipe_key(cfg, rows)}", cache_dir, folds, fit)
