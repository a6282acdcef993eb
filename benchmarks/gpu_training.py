"""The GPU check's training steps: our loop against transformers.Trainer (examples/s, MFU),
and a short train-and-evaluate run (benchmarks/gpu_check.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from .gpu_common import (
    OK,
    SEED_DATA,
    Context,
    Row,
    UtilSampler,
    _rate,
    encoder_flops_per_example,
    synchronize,
)
from .gpu_models import load_fp32, mean_lengths, repeated_rows, save_base, train_config

logger = logging.getLogger(__name__)


def timed_fit(
    ctx: Context, name: str, batch: int, steps: int, ds: Any, compile: bool = False
) -> float:
    """Seconds of `stance.training.loop.fit` for `steps` steps (tokenising and set-up included)."""
    from accelerate.utils import set_seed

    from stance.training.loop import fit

    cfg = train_config(ctx, name, batch, steps, compile)
    set_seed(cfg.train.seed)
    model, tokenizer = load_fp32(cfg)
    synchronize(ctx)
    start = time.perf_counter()
    fit(cfg, model, tokenizer, ds)
    synchronize(ctx)
    return time.perf_counter() - start


def timed_trainer(ctx: Context, name: str, batch: int, steps: int, ds: Any) -> float:
    """Seconds of `transformers.Trainer.train` for `steps` steps, same model, rows and batch."""
    from accelerate.utils import set_seed
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from stance.training.batching import tokenize

    cfg = train_config(ctx, name, batch, steps)
    set_seed(cfg.train.seed)
    model, tokenizer = load_fp32(cfg)
    t = cfg.train
    args = TrainingArguments(
        output_dir=str(ctx.workdir / "trainer"),
        per_device_train_batch_size=batch,
        learning_rate=t.lr,
        weight_decay=t.weight_decay,
        max_steps=steps,
        max_grad_norm=t.max_grad_norm,
        seed=t.seed,
        save_strategy="no",
        report_to=[],
        logging_strategy="no",
        disable_tqdm=True,
        use_cpu=not ctx.cuda,
        bf16=ctx.cuda,
        dataloader_num_workers=0,
    )
    data = tokenize(ds, tokenizer, cfg.data.max_length).remove_columns(["weight"])
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=data,
        data_collator=DataCollatorWithPadding(tokenizer),
    )
    synchronize(ctx)
    start = time.perf_counter()
    trainer.train()
    synchronize(ctx)
    return time.perf_counter() - start


def steady_seconds(
    run: Callable[[int], float], warm: int, timed: int, util: UtilSampler, long_first: bool = False
) -> float:
    """Seconds for `timed` steps after `warm` ones: a long run minus a short run, so set-up
    (tokenising, moving the model, CUDA start-up) cancels out. `long_first` for compiled runs:
    the second compile hits torch's caches, so the long run pays the full compile and the
    difference, if anything, overstates the time (understates the speed)."""
    if long_first:
        with util.sampling():
            long = run(warm + timed)
        short = run(warm)
    else:
        short = run(warm)
        with util.sampling():
            long = run(warm + timed)
    return long - short if long > short else long  # noise on a tiny dry run: the whole run


def training_speed_rows(
    ctx: Context,
    util: UtilSampler,
    name: str | None = None,
    batches: Sequence[int] | None = None,
    compile: bool = False,
) -> list[Row]:
    """Examples/s and MFU of stance's loop and Trainer at each batch size (bf16 on CUDA);
    with `compile`, stance's loop with torch.compile against the same Trainer."""
    from transformers import AutoConfig, AutoTokenizer

    name = name or ("minilm" if "minilm" in ctx.models else "tiny")
    s = ctx.sizes
    config = AutoConfig.from_pretrained(ctx.models[name])
    tokenizer = AutoTokenizer.from_pretrained(ctx.models[name])
    rows = []
    for batch in batches or s.train_batches:
        ds = repeated_rows(max(s.train_rows, 2 * batch))
        flops = 3 * encoder_flops_per_example(config, mean_lengths(tokenizer, ds))
        ours = steady_seconds(
            lambda n, b=batch, d=ds: timed_fit(ctx, name, b, n, d, compile),
            s.warm_steps,
            s.timed_steps,
            util,
            long_first=compile,
        )
        ours_util = util.summary()
        theirs = steady_seconds(
            lambda n, b=batch, d=ds: timed_trainer(ctx, name, b, n, d),
            s.warm_steps,
            s.timed_steps,
            util,
        )
        examples = s.timed_steps * batch
        row = _training_row(ctx, name, batch, examples, ours, theirs, flops, ours_util)
        row.detail["trainer_gpu_util"] = util.summary()
        if compile:
            row.check = row.check.replace("train ", "train compiled ", 1)
        rows.append(row)
    return rows


def _mfu(ctx: Context, flops_per_s: float) -> str:
    if ctx.peak_tflops is None:
        return "n/a: peak unknown" if ctx.cuda else "n/a: CPU"
    return f"{100 * flops_per_s / (ctx.peak_tflops * 1e12):.1f}%"


def _training_row(
    ctx: Context,
    name: str,
    batch: int,
    examples: int,
    ours: float,
    theirs: float,
    flops: float,
    util: str,
) -> Row:
    ours_rate, theirs_rate = examples / ours, examples / theirs
    return Row(
        check=f"train {name} {'bf16' if ctx.cuda else 'fp32'} (examples/s)",
        setting=f"batch {batch}, {ctx.sizes.timed_steps} steps",
        stance=f"{ours_rate:,.0f}",
        baseline=f"{theirs_rate:,.0f} Trainer",
        ratio=f"{ours_rate / theirs_rate:.2f}x",
        mfu=f"{_mfu(ctx, ours_rate * flops)} / {_mfu(ctx, theirs_rate * flops)}",
        gpu_util=util,
        detail={
            "model": ctx.notes.get(name, name),
            "stance_seconds": ours,
            "trainer_seconds": theirs,
            "examples": examples,
            "train_flops_per_example": flops,
            "stance_examples_per_s": ours_rate,
            "trainer_examples_per_s": theirs_rate,
        },
    )


def train_and_evaluate(ctx: Context, name: str, util: UtilSampler) -> list[Row]:
    """A short training run with dev evaluation, saved, reloaded and evaluated on dev."""
    from accelerate.utils import set_seed

    from stance.data.statements import group_split, load_statements
    from stance.metrics import compute_metrics
    from stance.rundir.files import load_classifier
    from stance.training.loop import fit, predict_pairs

    cfg = train_config(ctx, name, 16, ctx.sizes.tiny_steps)
    train_ds, dev_ds = group_split(load_statements(SEED_DATA), 0.25, cfg.train.seed)
    set_seed(cfg.train.seed)
    model, tokenizer = load_fp32(cfg, [train_ds[0]["claim"], *train_ds["text"]])
    with util.sampling():
        result = fit(cfg, model, tokenizer, train_ds, dev_ds)
    run_dir = ctx.workdir / f"trained-{name}"
    result.model.config.stance_claim = cfg.data.claim
    save_base(result.model, tokenizer, run_dir)
    ctx.trained[name] = run_dir
    reloaded, tokenizer = load_classifier(run_dir)
    metrics = compute_metrics(*predict_pairs(reloaded, tokenizer, dev_ds, cfg.data.max_length))
    seen = result.state.examples_seen
    precision = "bf16" if ctx.cuda else "fp32"
    return [
        Row(
            check=f"train + evaluate {name} {precision}",
            setting=f"batch 16, {result.state.step} steps, dev n={len(dev_ds)}",
            stance=f"{_rate(seen, result.seconds)} ex/s, dev F1 {metrics['macro_f1']:.3f}",
            gpu_util=util.summary(),
            status=OK,
            detail={
                "model": ctx.notes.get(name, name),
                "fit_dev_macro_f1": (result.dev_metrics or {}).get("macro_f1"),
                "reloaded_dev_accuracy": metrics["accuracy"],
                "reloaded_dev_macro_f1": metrics["macro_f1"],
                "seconds": result.seconds,
            },
        )
    ]
