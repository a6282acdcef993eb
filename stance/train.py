"""Fine-tune a claim-conditioned classifier with accelerate: read this file top to bottom.

`run_training(cfg)` loads the data, builds the base model, calls `fit` (the loop) and writes
the run directory. The same code runs on CPU, one GPU (bf16) or many (`accelerate launch`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, set_seed
from datasets import Dataset
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from . import card
from .batching import MODEL_INPUTS, LengthGroupedBatches, PadCollator, tokenize
from .config import RunConfig, dump_config
from .data import group_split, label_counts, load_sources, load_statements, paraphrase_claims
from .errors import StanceError
from .labels import LABELS
from .metrics import compute_metrics, plot_confusion
from .modeling import INCOMPLETE_MARKER, load_base

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
COMPLETE_MARKER = "COMPLETE"
LOSS_READ_EVERY = 50  # steps between reads of the per-step losses (see LossLog)


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


class LossLog:
    """Per-step losses kept where they were computed, read into the history in batches.

    `loss.item()` every step makes the host wait for the GPU at every step, so it cannot
    queue the next step's kernels; reading a stack of them now and then gives the same
    floats. Read before anything else enters the history (evaluations) and before a
    checkpoint saves it, so the history is what per-step reads would have written.
    """

    def __init__(self, every: int = LOSS_READ_EVERY):
        self.every = every
        self._pending: list[tuple[int, torch.Tensor]] = []

    def add(self, step: int, loss: torch.Tensor) -> bool:
        """Keep one step's loss; True when it is time to read them."""
        self._pending.append((step, loss.detach()))
        return len(self._pending) >= self.every

    def read_into(self, history: list[dict]) -> float | None:
        """Append the pending losses to `history` in step order; the last one, if any."""
        if not self._pending:
            return None
        values = torch.stack([loss for _, loss in self._pending]).tolist()  # one sync
        history.extend(
            {"step": step, "loss": v} for (step, _), v in zip(self._pending, values, strict=True)
        )
        self._pending.clear()
        return values[-1]


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
    tokenized: Dataset, batch_size: int, collate: PadCollator, shuffle: bool, seed: int
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


# ---------------------------------------------------------------- checkpoints


def checkpoint_root(run_dir: Path) -> Path:
    return run_dir / CHECKPOINT_DIR


def last_checkpoint(run_dir: Path) -> Path | None:
    """The newest checkpoint with its COMPLETE marker; half-written ones are ignored."""
    root = checkpoint_root(run_dir)
    done = [p for p in root.glob("step-*") if (p / COMPLETE_MARKER).is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def save_checkpoint(
    accelerator: Accelerator, run_dir: Path, state: TrainState, best: dict | None, keep: int
) -> None:
    root = checkpoint_root(run_dir)
    final = root / f"step-{state.step:07d}"
    partial = root / f"partial-step-{state.step:07d}"
    if accelerator.is_main_process and partial.exists():
        shutil.rmtree(partial)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))  # model, optimizer, scheduler, RNG, TrainState
    if accelerator.is_main_process:
        if best is not None:
            save_file(best, str(partial / "best_model.safetensors"))
        (partial / COMPLETE_MARKER).write_text(f"{state.step}\n")
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)  # the marker and the name appear together
        complete = sorted(p for p in root.glob("step-*") if (p / COMPLETE_MARKER).is_file())
        for old in complete[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


# ---------------------------------------------------------------- the loop


@dataclass
class FitResult:
    model: PreTrainedModel
    state: TrainState
    dev_metrics: dict | None
    seconds: float
    eval_times: list[tuple[int, float, float]] = field(default_factory=list)  # step, s, F1


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
    t = cfg.train
    precision = choose_precision(t.mixed_precision)
    accelerator = accelerator or make_accelerator(cfg)
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    set_seed(t.seed)
    start = time.perf_counter()

    pad_multiple = 8 if precision != "no" else None
    collate = PadCollator(tokenizer.pad_token_id, pad_multiple)
    pairs = cfg.model.kind != "sentence"  # a sentence model reads the statement alone
    train_tok = tokenize(train_ds, tokenizer, cfg.data.max_length, pairs)
    train_dl, _ = make_loader(train_tok, t.batch_size, collate, True, t.seed)
    dev_dl = None
    if dev_ds is not None:
        dev_tok = tokenize(dev_ds, tokenizer, cfg.data.max_length, pairs)
        dev_dl, _ = make_loader(dev_tok, t.eval_batch_size, collate, False, t.seed)
    cls_weight = (
        class_weights(list(train_ds["label"]), list(train_ds["weight"])).to(accelerator.device)
        if t.class_weights
        else torch.ones(len(LABELS), device=accelerator.device)
    )

    # Total optimizer steps, counted before `prepare` shards the loader (as nlp_example does).
    steps_per_epoch = math.ceil(len(train_dl) / t.grad_accum)
    total_steps = math.ceil(t.epochs * steps_per_epoch)
    if t.max_steps:
        total_steps = min(total_steps, t.max_steps)
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    groups = [
        {
            "params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
            "weight_decay": t.weight_decay,
        },
        {
            "params": [p for n, p in model.named_parameters() if n.endswith(no_decay)],
            "weight_decay": 0.0,
        },
    ]
    # Fused AdamW runs on CPU too (torch >= 2.4): one kernel per step instead of a Python loop.
    optimizer = torch.optim.AdamW(groups, lr=t.lr, fused=True)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(t.warmup_ratio * total_steps), max(total_steps, 1)
    )
    model, optimizer, train_dl, scheduler = accelerator.prepare(
        model, optimizer, train_dl, scheduler
    )
    if dev_dl is not None:
        dev_dl = accelerator.prepare(dev_dl)
    state = TrainState()
    accelerator.register_for_checkpointing(state)

    best: dict | None = None
    eval_times: list[tuple[int, float, float]] = []
    if resume:
        ckpt = last_checkpoint(run_dir) if run_dir else None
        if ckpt is None:
            logger.warning("--resume: no complete checkpoint under %s; starting afresh", run_dir)
        else:
            accelerator.load_state(str(ckpt))
            if (ckpt / "best_model.safetensors").is_file():
                best = load_file(str(ckpt / "best_model.safetensors"))
            logger.info("resumed from %s (step %d)", ckpt, state.step)

    def evaluate_and_track() -> bool:
        """Evaluate on dev, keep the best weights; True when patience has run out."""
        nonlocal best
        read_losses()  # the steps before this evaluation come first in the history
        metrics = compute_metrics(*predict_loader(model, dev_dl, accelerator))
        eval_times.append((state.step, time.perf_counter() - start, metrics["macro_f1"]))
        state.history.append(
            {
                "step": state.step,
                "epoch": state.epoch,
                "dev_macro_f1": metrics["macro_f1"],
                "dev_accuracy": metrics["accuracy"],
            }
        )
        if metrics["macro_f1"] > state.best_f1:
            state.best_f1, state.best_step, state.evals_without_gain = (
                metrics["macro_f1"],
                state.step,
                0,
            )
            weights = accelerator.unwrap_model(model).state_dict()
            best = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in weights.items()}
        else:
            state.evals_without_gain += 1
        logger.info(
            "step %d dev macro-F1 %.4f accuracy %.4f (best macro-F1 %.4f at step %d)",
            state.step,
            metrics["macro_f1"],
            metrics["accuracy"],
            state.best_f1,
            state.best_step,
        )
        return bool(t.patience) and state.evals_without_gain >= t.patience

    losses = LossLog()

    def read_losses() -> None:
        last = losses.read_into(state.history)
        if last is not None:
            bar.set_postfix(loss=f"{last:.4f}", ex_s=f"{rate:.1f}")

    model.train()
    rate = 0.0
    bar = tqdm(
        mininterval=1.0 if sys.stderr.isatty() else 30.0,  # keep CI logs short
        total=total_steps,
        initial=state.step,
        desc="training",
        unit="step",
        disable=not accelerator.is_local_main_process,
    )
    stop = state.step >= total_steps
    window_examples, window_start = 0, time.perf_counter()
    while not stop and state.epoch < math.ceil(t.epochs):
        train_dl.set_epoch(state.epoch)  # accelerate passes it on to the batch sampler
        loader = (
            accelerator.skip_first_batches(train_dl, state.batches_in_epoch)
            if state.batches_in_epoch
            else train_dl
        )
        for batch in loader:
            with accelerator.accumulate(model):
                logits = model(**model_inputs(batch)).logits  # (B, C)
                loss = weighted_loss(logits, batch["labels"], batch["weight"], cls_weight)
                accelerator.backward(loss)
                if accelerator.sync_gradients and t.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), t.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            state.batches_in_epoch += 1
            n = batch["labels"].shape[0] * accelerator.num_processes
            state.examples_seen += n
            window_examples += n
            if not accelerator.sync_gradients:
                continue
            state.step += 1
            rate = window_examples / max(time.perf_counter() - window_start, 1e-9)
            bar.update(1)
            if losses.add(state.step, loss):
                read_losses()
            if dev_dl is not None and t.eval_every and state.step % t.eval_every == 0:
                stop = evaluate_and_track()
            if t.checkpoint_every and run_dir and state.step % t.checkpoint_every == 0:
                read_losses()  # the history is part of the checkpoint
                save_checkpoint(accelerator, run_dir, state, best, t.keep_checkpoints)
            if stop or state.step >= total_steps:
                stop = True
                break
        else:
            state.epoch += 1
            state.batches_in_epoch = 0
            if dev_dl is not None and not t.eval_every:
                stop = evaluate_and_track() or stop
    read_losses()
    bar.close()

    unwrapped = accelerator.unwrap_model(model)
    dev_metrics = None
    if dev_dl is not None:
        evaluated = [h["step"] for h in state.history if "dev_macro_f1" in h]
        if not evaluated or evaluated[-1] != state.step:
            # The step limit ends the loop before the epoch's own evaluation (and epochs=0
            # never reaches one): the final weights are candidates too.
            evaluate_and_track()
        if best is not None:
            unwrapped.load_state_dict(best)
        dev_metrics = compute_metrics(*predict_loader(model, dev_dl, accelerator))
    return FitResult(unwrapped, state, dev_metrics, time.perf_counter() - start, eval_times)


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
        save_run(cfg, result.model, tokenizer, metrics, run_dir)
    accelerator.wait_for_everyone()
    return metrics


def save_run(
    cfg: RunConfig,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    metrics: dict,
    run_dir: Path,
) -> None:
    model.config.stance_claim = cfg.data.claim  # predict's default claim travels with the model
    model.save_pretrained(run_dir)
    tokenizer.save_pretrained(run_dir)
    card.plot_history(metrics["history"], run_dir / "training_curves.png", metrics["best_step"])
    finish_run(cfg, metrics, card.model_card(cfg, metrics), run_dir)


def mark_incomplete(cfg: RunConfig, run_dir: Path) -> None:
    """Mark the run directory unfinished until `finish_run` (model loading refuses it): a
    failed run must not leave a config.yaml that predict would read beside other weights."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / INCOMPLETE_MARKER).write_text(
        "training did not finish; retrain (or --resume) to complete this run\n" + dump_config(cfg),
        encoding="utf-8",
    )


def finish_run(cfg: RunConfig, metrics: dict, model_card: str, run_dir: Path) -> None:
    """The files every run directory has besides its weights, then the marker removed."""
    (run_dir / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    if metrics.get("dev"):
        plot_confusion(metrics["dev"], run_dir / "confusion_matrix.png", f"{cfg.name}: dev")
    (run_dir / "README.md").write_text(model_card, encoding="utf-8")
    (run_dir / INCOMPLETE_MARKER).unlink(missing_ok=True)  # last: every file above is written
    logger.info("saved run to %s", run_dir)


def check_trainable(cfg: RunConfig) -> None:
    for source in cfg.data.train:
        if not Path(source.path).is_file():
            raise StanceError(f"data.train: {source.path}: no such file")
