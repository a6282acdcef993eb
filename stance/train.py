"""Fine-tune a claim-conditioned classifier with accelerate: read this file top to bottom.

`run_training(cfg)` loads the data, builds the base model, calls `fit` (the loop) and writes
the run directory. The same code runs on CPU, one GPU (bf16) or many (`accelerate launch`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, set_seed
from datasets import Dataset
from safetensors.torch import load_file
from torch.utils.data import DataLoader
from transformers import PreTrainedModel, PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from .batching import MODEL_INPUTS, LengthGroupedBatches, PadCollator, tokenize
from .checkpoints import last_checkpoint, save_checkpoint
from .config import RunConfig, TrainConfig
from .data import group_split, label_counts, load_sources, load_statements, paraphrase_claims
from .errors import StanceError
from .labels import LABELS
from .metrics import compute_metrics
from .modeling import load_base
from .progress import Progress
from .rundir import mark_incomplete, save_run

logger = logging.getLogger(__name__)


@dataclass
class TrainState:
    """Everything besides model/optimizer/scheduler/RNG that a resumed run needs."""

    step: int = 0  # optimizer steps taken
    epoch: int = 0  # epoch in progress
    batches_in_epoch: int = 0  # batches of that epoch already consumed
    best_f1: float = -1.0
    best_step: int = 0
    evals_without_gain: int = 0
    examples_seen: int = 0
    history: list[dict] = field(default_factory=list)

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        self.__dict__.update(state)


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


def weighted_loss(
    logits: torch.Tensor, labels: torch.Tensor, row_weight: torch.Tensor, cls_weight: torch.Tensor
) -> torch.Tensor:
    # logits (B, C), labels (B,), row_weight (B,): mean of CE weighted by row and class.
    w = row_weight * cls_weight[labels]
    ce = F.cross_entropy(logits.float(), labels, reduction="none")
    return (ce * w).sum() / w.sum().clamp_min(1e-8)


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


def model_inputs(batch: dict) -> dict:
    return {k: batch[k] for k in MODEL_INPUTS if k in batch}


@torch.inference_mode()
def predict_loader(model, loader, accelerator: Accelerator) -> tuple[list[int], list[int]]:
    """(predictions, references) over a loader, gathered across processes."""
    was_training = model.training
    model.eval()
    preds, refs = [], []
    for batch in loader:
        logits = model(**model_inputs(batch)).logits  # (B, C)
        logits, labels = accelerator.gather_for_metrics((logits, batch["labels"]))
        preds.append(logits.argmax(-1))
        refs.append(labels)
    model.train(was_training)
    if not preds:
        return [], []
    # Read back once at the end, not once a batch (each read waits for the GPU).
    return torch.cat(preds).tolist(), torch.cat(refs).tolist()


def predict_pairs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    ds: Dataset,
    max_length: int,
    batch_size: int = 64,
    accelerator: Accelerator | None = None,
) -> tuple[list[int], list[int]]:
    """(predicted, gold) label ids of `ds`, paired, in length-sorted order."""
    accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    tokenized = tokenize(ds, tokenizer, max_length)
    loader, _ = make_loader(tokenized, batch_size, PadCollator(tokenizer.pad_token_id), False, 0)
    model, loader = accelerator.prepare(model, loader)
    return predict_loader(model, loader, accelerator)


def resume_from_checkpoint(
    accelerator: Accelerator, run_dir: Path | None, tracker: EarlyStopping
) -> None:
    """Load the newest complete checkpoint (weights, optimizer, scheduler, RNG, TrainState)
    and the best weights kept so far; without one, the run starts afresh."""
    ckpt = last_checkpoint(run_dir) if run_dir else None
    if ckpt is None:
        logger.warning("--resume: no complete checkpoint under %s; starting afresh", run_dir)
        return
    accelerator.load_state(str(ckpt))
    if (ckpt / "best_model.safetensors").is_file():
        tracker.best = load_file(str(ckpt / "best_model.safetensors"))
    logger.info("resumed from %s (step %d)", ckpt, tracker.state.step)


# ---------------------------------------------------------------- the loop's parts


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


def make_collator(tokenizer: PreTrainedTokenizerBase, precision: str) -> PadCollator:
    # Multiples of 8 suit tensor cores under mixed precision; in fp32 they only add padding.
    # The package's PadCollator, not DataCollatorWithPadding: the same tensors, but with
    # MiniLM's fast tokenizer `tokenizer.pad` took 1962 against 130 us a batch of 16 and 24.5
    # against 2.3 ms at 256 (2-core CPU), time a GPU step waits on.
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
    pairs = cfg.model.kind != "sentence"  # a sentence model reads the statement alone
    train_tok = tokenize(train_ds, tokenizer, cfg.data.max_length, pairs)
    workers = t.loader_workers if t.loader_workers >= 0 else 2 * torch.cuda.is_available()
    train_dl, _ = make_loader(train_tok, t.batch_size, collate, True, t.seed, workers)
    if dev_ds is None:
        return train_dl, None
    dev_tok = tokenize(dev_ds, tokenizer, cfg.data.max_length, pairs)
    return train_dl, make_loader(dev_tok, t.eval_batch_size, collate, False, t.seed)[0]


@dataclass
class EarlyStopping:
    """Keeps the weights of the best dev macro-F1; says when patience has run out.

    The counters live in the TrainState, so a checkpoint carries them; the best weights are
    saved beside it (`best_model.safetensors`).
    """

    state: TrainState
    patience: int  # evaluations without gain before stopping; 0: never stop
    best: dict | None = None

    def observe(self, metrics: dict, model: torch.nn.Module) -> bool:
        """Record one evaluation (history, best weights); True when training should stop."""
        s, f1 = self.state, metrics["macro_f1"]
        s.history.append(
            {
                "step": s.step,
                "epoch": s.epoch,
                "dev_macro_f1": f1,
                "dev_accuracy": metrics["accuracy"],
            }
        )
        if f1 > s.best_f1:
            s.best_f1, s.best_step, s.evals_without_gain = f1, s.step, 0
            weights = model.state_dict()
            self.best = {
                k: v.detach().to("cpu", copy=True).contiguous() for k, v in weights.items()
            }
        else:
            s.evals_without_gain += 1
        logger.info(
            "step %d dev macro-F1 %.4f (best %.4f at step %d)", s.step, f1, s.best_f1, s.best_step
        )
        return bool(self.patience) and s.evals_without_gain >= self.patience


def train_step(p: Prepared, batch: dict, max_grad_norm: float) -> torch.Tensor:
    """One forward/backward (an optimizer step when accumulation is complete); the loss."""
    with p.accelerator.accumulate(p.model):
        logits = p.model(**model_inputs(batch)).logits  # (B, C)
        loss = weighted_loss(logits, batch["labels"], batch["weight"], p.cls_weight)
        p.accelerator.backward(loss)
        if p.accelerator.sync_gradients and max_grad_norm:
            p.accelerator.clip_grad_norm_(p.model.parameters(), max_grad_norm)
        p.optimizer.step()
        p.scheduler.step()
        p.optimizer.zero_grad(set_to_none=True)
    return loss


# ---------------------------------------------------------------- the loop


@dataclass
class FitResult:
    model: PreTrainedModel
    state: TrainState
    dev_metrics: dict | None
    seconds: float
    eval_times: list[tuple[int, float, float]] = field(default_factory=list)  # step, s, F1


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


def fit(
    cfg: RunConfig,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train_ds: Dataset,
    dev_ds: Dataset | None = None,
    run_dir: Path | None = None,
    resume: bool = False,
    accelerator: Accelerator | None = None,
) -> FitResult:
    """Train `model` on `train_ds`; early-stop on dev macro-F1 when `dev_ds` is given.

    Returns the best (or, without dev, the last) weights loaded into the unwrapped model.
    """
    accelerator = accelerator or make_accelerator(cfg)
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    set_seed(cfg.train.seed)
    if cfg.train.compile:
        model.compile()  # in place: state_dict keys and checkpoints stay as they are
    start = time.perf_counter()
    p = prepare(cfg, model, tokenizer, train_ds, dev_ds, accelerator)
    state = TrainState()
    accelerator.register_for_checkpointing(state)
    tracker = EarlyStopping(state, cfg.train.patience)
    if resume:
        resume_from_checkpoint(accelerator, run_dir, tracker)
    progress = Progress(accelerator, p.total_steps, state.step)
    eval_times: list[tuple[int, float, float]] = []

    def evaluate() -> bool:
        """Score dev, keep the best weights; True when patience has run out."""
        progress.read_losses(state)  # the steps before this evaluation come first in history
        metrics = compute_metrics(*predict_loader(p.model, p.dev_dl, accelerator))
        eval_times.append((state.step, time.perf_counter() - start, metrics["macro_f1"]))
        return tracker.observe(metrics, accelerator.unwrap_model(p.model))

    train_loop(cfg.train, p, state, progress, evaluate, tracker, run_dir)
    progress.close(state)

    unwrapped = accelerator.unwrap_model(p.model)
    dev_metrics = None
    if p.dev_dl is not None:
        # The step limit ends the loop before the epoch's own evaluation (and epochs=0 never
        # reaches one): the final weights are candidates too.
        evaluated = [h["step"] for h in state.history if "dev_macro_f1" in h]
        if not evaluated or evaluated[-1] != state.step:
            evaluate()
        if tracker.best is not None:
            unwrapped.load_state_dict(tracker.best)
        dev_metrics = compute_metrics(*predict_loader(p.model, p.dev_dl, accelerator))
    return FitResult(unwrapped, state, dev_metrics, time.perf_counter() - start, eval_times)


def train_loop(
    t: TrainConfig,
    p: Prepared,
    state: TrainState,
    progress: Progress,
    evaluate: Callable[[], bool],
    tracker: EarlyStopping,
    run_dir: Path | None,
) -> None:
    """Epochs of steps from wherever `state` stands; evaluate and checkpoint on schedule."""
    accelerator, model = p.accelerator, p.model
    model.train()
    stop = state.step >= p.total_steps
    while not stop and state.epoch < math.ceil(t.epochs):
        p.train_dl.set_epoch(state.epoch)  # accelerate passes it on to the batch sampler
        for batch in skip_done(accelerator, p.train_dl, state.batches_in_epoch):
            loss = train_step(p, batch, t.max_grad_norm)
            state.batches_in_epoch += 1
            n = batch["labels"].shape[0] * accelerator.num_processes
            state.examples_seen += n
            progress.examples(n)
            if not accelerator.sync_gradients:
                continue
            state.step += 1
            progress.step(state, loss)
            if p.dev_dl is not None and t.eval_every and state.step % t.eval_every == 0:
                stop = evaluate()
            if t.checkpoint_every and run_dir and state.step % t.checkpoint_every == 0:
                progress.read_losses(state)  # the history is part of the checkpoint
                save_checkpoint(accelerator, run_dir, state, tracker.best, t.keep_checkpoints)
            if stop or state.step >= p.total_steps:
                stop = True
                break
        else:
            state.epoch += 1
            state.batches_in_epoch = 0
            if p.dev_dl is not None and not t.eval_every:
                stop = evaluate() or stop


def skip_done(accelerator: Accelerator, loader: DataLoader, batches: int) -> DataLoader:
    """The loader, past the batches of this epoch a resumed run has already trained on."""
    return accelerator.skip_first_batches(loader, batches) if batches else loader


# ---------------------------------------------------------------- a whole run


def augment(cfg: RunConfig, train_ds: Dataset) -> Dataset:
    """The training rows plus their claim paraphrases (`data.paraphrases`; after any split)."""
    d = cfg.data
    return paraphrase_claims(train_ds, d.paraphrases, d.paraphrase_weight, cfg.train.seed)


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
