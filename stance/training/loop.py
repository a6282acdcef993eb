"""The training loop, top to bottom: `fit` prepares, resumes, runs `train_loop` (epochs of
`train_step`, evaluation and checkpoints on schedule) and ends on the best dev weights kept by
`EarlyStopping`; `TrainState` is what a checkpoint carries besides weights, optimizer,
scheduler and RNG. Also the evaluation pass (`predict_loader`, `predict_pairs`).

Resuming is bit-identical to an uninterrupted run: the loader's own generator, the
registered TrainState and `skip_done` put a resumed run on the same batches and RNG.
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
from accelerate.utils import set_seed
from datasets import Dataset
from safetensors.torch import load_file
from torch.utils.data import DataLoader
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..config import RunConfig, TrainConfig
from ..metrics import compute_metrics
from .batching import MODEL_INPUTS, PadCollator, tokenize
from .checkpoints import last_checkpoint, save_checkpoint
from .progress import Progress
from .setup import Prepared, make_accelerator, make_loader, prepare

# Logged as before the split (log lines name their logger): the training's one name.
logger = logging.getLogger("stance.train")


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


def weighted_loss(
    logits: torch.Tensor, labels: torch.Tensor, row_weight: torch.Tensor, cls_weight: torch.Tensor
) -> torch.Tensor:
    # logits (B, C), labels (B,), row_weight (B,): mean of CE weighted by row and class.
    w = row_weight * cls_weight[labels]
    ce = F.cross_entropy(logits.float(), labels, reduction="none")
    return (ce * w).sum() / w.sum().clamp_min(1e-8)


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
            "step %d dev macro-F1 %.4f accuracy %.4f (best macro-F1 %.4f at step %d)",
            s.step,
            f1,
            metrics["accuracy"],
            s.best_f1,
            s.best_step,
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
