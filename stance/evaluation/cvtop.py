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
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from ..config import RunConfig, load_config
from .cvfolds import Rows, Setting, cached_oof, held_out_probs, recipe_key

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
    from ..kinds.sentence_model import load_body

    texts = sorted(set([*rows.texts, *rows.prevs, *rows.nexts]) - {""})
    body = load_body(cfg, texts)
    frozen = cfg.fewshot.freeze_layers
    tag = json.dumps([cfg.model.base, cfg.data.max_length, frozen, texts])
    path = cache_dir / f"states-{hashlib.sha256(tag.encode()).hexdigest()[:16]}.safetensors"
    if path.exists() and cfg.model.base != "tiny":
        return body, load_file(path)  # safetensors, keyed by text: nothing is unpickled
    states = TopLayers.hidden_states(body, frozen, texts)
    if cfg.model.base != "tiny":
        cache_dir.mkdir(parents=True, exist_ok=True)
        save_file(states, path)
    return body, states


def _length_batches(lengths: list[int], size: int, rng: np.random.Generator) -> list[list[int]]:
    """Shuffled batches of rows of (mostly) equal length, as the package's length grouping."""
    order = sorted(rng.permutation(len(lengths)).tolist(), key=lambda i: lengths[i])
    batches = [order[i : i + size] for i in range(0, len(order), size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _top_model(cfg: RunConfig, body, states, claim: str):
    from ..kinds.sentence_model import SentenceStanceClassifier, embedding_size, stance_config

    top = TopLayers(body, cfg.fewshot.freeze_layers, states)
    config = stance_config(embedding_size(body), claim, cfg.data.max_length, cfg.model.base)
    config.stance_context_weight = cfg.fewshot.context_weight
    return SentenceStanceClassifier(top, config)


def top_lpft(cfg: RunConfig, model, ds) -> None:
    """LP-FT of the top layers and head (stance.train's loss, optimiser and schedule)."""
    from ..training.loop import weighted_loss
    from ..training.setup import class_weights, make_optimizer

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


def top_oof(setting: Setting, rows: Rows, recipe: str, cache_dir: Path, folds: int = 0):
    """Per fold: fresh top layers, probe, tune (LP-FT or contrastive pairs), head re-fit,
    held-out probabilities in context (stance.fewshot's probe and predict_proba)."""
    from ..kinds.sentence_model import fit_linear_probe, predict_proba

    cfg = load_config(setting.config, [*setting.overrides, *TOP[recipe]])
    claim = rows.ds[0]["claim"]
    loaded: dict = {}

    def fit_fold(train: np.ndarray, test: np.ndarray) -> np.ndarray:
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

    return cached_oof(rows, f"{recipe}-{recipe_key(cfg, rows)}", cache_dir, folds, fit_fold)
