"""What the training loop works on, built from a config: the Accelerator (precision,
accumulation), tokenised length-grouped loaders, class weights, AdamW with its schedule, all
handed to `accelerator.prepare` (`prepare` -> `Prepared`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration
from datasets import Dataset
from torch.utils.data import DataLoader
from transformers import PreTrainedModel, PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from ..config import RunConfig, TrainConfig
from ..kinds.registry import get_kind
from ..labels import LABELS
from .batching import LengthGroupedBatches, PadCollator, tokenize


def choose_precision(setting: str) -> str:
    if setting != "auto":
        return setting
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "no"


def make_accelerator(cfg: RunConfig) -> Accelerator:
    """The run's Accelerator: precision and accumulation from the config; CPU without CUDA."""
    cuda = torch.cuda.is_available()
    return Accelerator(
        mixed_precision=choose_precision(cfg.train.mixed_precision),
        gradient_accumulation_steps=cfg.train.grad_accum,
        cpu=not cuda,
        # Batches come from pinned memory on CUDA (make_loader), so their copies can overlap
        # the previous step's kernels; on the CPU there is nothing to copy.
        dataloader_config=DataLoaderConfiguration(non_blocking=cuda),
    )


def class_weights(labels: list[int], weights: list[float]) -> torch.Tensor:
    """Inverse frequency (by row weight), normalised so a balanced set gives all ones."""
    totals = torch.zeros(len(LABELS))
    for y, w in zip(labels, weights, strict=True):
        totals[y] += w
    present = totals > 0
    out = torch.ones(len(LABELS))
    out[present] = totals.sum() / (present.sum() * totals[present])
    return out


def make_loader(
    tokenized: Dataset,
    batch_size: int,
    collate: PadCollator,
    shuffle: bool,
    seed: int,
    workers: int = 0,
) -> tuple[DataLoader, LengthGroupedBatches]:
    batches = LengthGroupedBatches(
        list(tokenized["length"]), batch_size, shuffle=shuffle, seed=seed
    )
    # Its own generator: creating an iterator must not draw from the global RNG, or a resumed
    # run's dropout masks would drift from an uninterrupted run's.
    loader = DataLoader(
        tokenized.remove_columns(["length"]),
        batch_sampler=batches,
        collate_fn=collate,
        pin_memory=torch.cuda.is_available(),
        generator=torch.Generator().manual_seed(seed),
        num_workers=workers,
        persistent_workers=workers > 0,
    )
    return loader, batches


def make_collator(tokenizer: PreTrainedTokenizerBase, precision: str) -> PadCollator:
    # Multiples of 8 suit tensor cores under mixed precision; in fp32 they only add padding.
    # The package's PadCollator, not DataCollatorWithPadding: the same tensors, but with
    # MiniLM's fast tokenizer `tokenizer.pad` took 6.8 against 0.54 ms a batch of 256 (2-core
    # CPU, `scripts/bench_train.py --collate`), time a GPU step waits on.
    return PadCollator(tokenizer.pad_token_id, 8 if precision != "no" else None)


def make_loaders(
    cfg: RunConfig,
    tokenizer: PreTrainedTokenizerBase,
    train_ds: Dataset,
    dev_ds: Dataset | None,
) -> tuple[DataLoader, DataLoader | None]:
    """Tokenised, length-grouped loaders: shuffled for training, in length order for dev."""
    t = cfg.train
    collate = make_collator(tokenizer, choose_precision(t.mixed_precision))
    pairs = get_kind(cfg.model.kind).pairs  # False: the model reads the statement alone
    train_tok = tokenize(train_ds, tokenizer, cfg.data.max_length, pairs)
    workers = t.loader_workers if t.loader_workers >= 0 else 2 * torch.cuda.is_available()
    train_dl, _ = make_loader(train_tok, t.batch_size, collate, True, t.seed, workers)
    if dev_ds is None:
        return train_dl, None
    dev_tok = tokenize(dev_ds, tokenizer, cfg.data.max_length, pairs)
    return train_dl, make_loader(dev_tok, t.eval_batch_size, collate, False, t.seed)[0]


def make_optimizer(
    model: torch.nn.Module, t: TrainConfig, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (no weight decay on biases and LayerNorm) with linear warm-up and decay."""
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    named = list(model.named_parameters())
    groups = [
        {
            "params": [p for n, p in named if not n.endswith(no_decay)],
            "weight_decay": t.weight_decay,
        },
        {"params": [p for n, p in named if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    # Fused AdamW runs on CPU too (torch >= 2.4): one kernel per step instead of a Python loop.
    optimizer = torch.optim.AdamW(groups, lr=t.lr, fused=True)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(t.warmup_ratio * total_steps), max(total_steps, 1)
    )
    return optimizer, scheduler


def count_steps(t: TrainConfig, batches_per_epoch: int) -> int:
    """Optimizer steps of the whole run, counted before `prepare` shards the loader (as
    nlp_example does)."""
    total = math.ceil(t.epochs * math.ceil(batches_per_epoch / t.grad_accum))
    return min(total, t.max_steps) if t.max_steps else total


@dataclass
class Prepared:
    """What the loop works on, wrapped by `accelerator.prepare`."""

    accelerator: Accelerator
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    train_dl: DataLoader
    dev_dl: DataLoader | None
    cls_weight: torch.Tensor  # (C,) loss weight per label
    total_steps: int


def prepare(
    cfg: RunConfig,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train_ds: Dataset,
    dev_ds: Dataset | None,
    accelerator: Accelerator,
) -> Prepared:
    """Loaders, loss weights, optimizer and schedule, handed to accelerate."""
    t = cfg.train
    train_dl, dev_dl = make_loaders(cfg, tokenizer, train_ds, dev_ds)
    cls_weight = (
        class_weights(list(train_ds["label"]), list(train_ds["weight"]))
        if t.class_weights
        else torch.ones(len(LABELS))
    )
    total_steps = count_steps(t, len(train_dl))
    optimizer, scheduler = make_optimizer(model, t, total_steps)
    model, optimizer, train_dl, scheduler = accelerator.prepare(
        model, optimizer, train_dl, scheduler
    )
    dev_dl = accelerator.prepare(dev_dl) if dev_dl is not None else None
    return Prepared(
        accelerator, model, optimizer, scheduler, train_dl, dev_dl,
        cls_weight.to(accelerator.device), total_steps,
    )  # fmt: skip
