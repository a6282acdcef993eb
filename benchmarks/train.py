"""Training throughput of `stance train`'s loop against `transformers.Trainer`, side by side.

Same base model and initial weights, same tokenised rows (claim, statement pairs truncated
to the same max length), same batch size, dynamic padding in both, same number of optimizer
steps. Trainer runs twice: as users run it (random batches) and with
`train_sampling_strategy="group_by_length"`, the option closest to our length-grouped
batches. Rounds alternate, medians are reported.
"""

from __future__ import annotations

import logging
import tempfile
import time

import torch
from accelerate.utils import set_seed
from datasets import Dataset, concatenate_datasets
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

from stance.config import load_config
from stance.data.statements import group_split, load_statements
from stance.kinds.backbones import load_base
from stance.training.batching import tokenize
from stance.training.loop import fit

from .common import (
    ROOT,
    SEED_DATA,
    encoder_flops,
    machine,
    matmul_gflops,
    median,
    table,
    top_ops,
)

logger = logging.getLogger(__name__)


def _config(steps: int, batch_size: int, max_length: int, extra: list[str]):
    return load_config(
        ROOT / "configs" / "withdrawal-seeds.yaml",
        [
            f"train.max_steps={steps}",
            f"train.batch_size={batch_size}",
            "train.epochs=1000",
            "train.patience=0",
            f"data.max_length={max_length}",
            *extra,
        ],
    )


def _rows(n: int) -> Dataset:
    ds = load_statements(SEED_DATA)
    return concatenate_datasets([ds] * -(-n // len(ds))).select(range(n))


def run_ours(cfg, ds: Dataset) -> float:
    set_seed(cfg.train.seed)
    model, tokenizer = load_base(cfg.model)
    start = time.perf_counter()
    fit(cfg, model, tokenizer, ds)
    return time.perf_counter() - start


def _trainer(
    cfg,
    ds: Dataset,
    group_by_length: bool,
    eval_ds: Dataset | None = None,
    epochs: float | None = None,
    out: str = "",
) -> Trainer:
    set_seed(cfg.train.seed)
    model, tokenizer = load_base(cfg.model)
    tok = tokenize(ds, tokenizer, cfg.data.max_length).remove_columns(["weight"])
    t = cfg.train
    args = TrainingArguments(
        output_dir=out,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.eval_batch_size,
        learning_rate=t.lr,
        weight_decay=t.weight_decay,
        warmup_steps=t.warmup_ratio,  # a float < 1 is a ratio
        max_steps=-1 if epochs else t.max_steps,
        num_train_epochs=epochs or 1,
        max_grad_norm=t.max_grad_norm,
        seed=t.seed,
        train_sampling_strategy="group_by_length" if group_by_length else "random",
        length_column_name="length",
        save_strategy="no",
        report_to=[],
        logging_strategy="no",
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        bf16=torch.cuda.is_available(),
        dataloader_num_workers=0,
        eval_strategy="epoch" if eval_ds is not None else "no",
    )
    eval_tok = None
    if eval_ds is not None:
        eval_tok = tokenize(eval_ds, tokenizer, cfg.data.max_length).remove_columns(["weight"])
    return Trainer(
        model=model,
        args=args,
        train_dataset=tok,
        eval_dataset=eval_tok,
        data_collator=DataCollatorWithPadding(tokenizer),
    )


def run_trainer(cfg, ds: Dataset, group_by_length: bool) -> float:
    with tempfile.TemporaryDirectory() as out:
        trainer = _trainer(cfg, ds, group_by_length, out=out)
        start = time.perf_counter()
        trainer.train()
        return time.perf_counter() - start


def throughput(
    steps: int = 30,
    batch_size: int = 16,
    rounds: int = 3,
    rows: int = 1024,
    max_length: int = 128,
    extra: list[str] | None = None,
) -> dict:
    cfg = _config(steps, batch_size, max_length, extra or [])
    ds = _rows(rows)
    examples = steps * batch_size
    times: dict[str, list[float]] = {"stance": [], "Trainer": [], "Trainer group_by_length": []}
    for r in range(rounds):
        # Alternate the order each round so drift on a shared machine hits all alike.
        order = list(times) if r % 2 == 0 else list(reversed(times))
        for name in order:
            if name == "stance":
                seconds = run_ours(cfg, ds)
            else:
                seconds = run_trainer(cfg, ds, group_by_length=name != "Trainer")
            times[name].append(seconds)
            logger.info("round %d %s: %.1f s", r, name, seconds)
    # Training FLOPs ~ 3x forward over the rows actually seen (unpadded lengths).
    model, tokenizer = load_base(cfg.model)
    lengths = tokenize(ds, tokenizer, max_length)["length"]
    mean_len = sum(lengths) / len(lengths)
    flops = 3 * encoder_flops(model.config, [mean_len] * examples)
    peak = matmul_gflops()
    rows_out = []
    base = median(times["Trainer"])
    for name, ts in times.items():
        m = median(ts)
        gflops = flops / m / 1e9
        rows_out.append([name, examples / m, base / m, gflops, gflops / peak, m])
    return {
        "machine": machine(),
        "steps": steps,
        "batch_size": batch_size,
        "rounds": rounds,
        "mean_tokens": mean_len,
        "matmul_gflops": peak,
        "times": times,
        "table": table(
            ["loop", "examples/s", "x Trainer", "GFLOP/s", "of matmul peak", "median s"], rows_out
        ),
    }


def _row_loop_pad(rows: list[dict], pad_id: int, multiple: int) -> dict[str, torch.Tensor]:
    """The row-by-row padding PadCollator used before (the reference it is timed against)."""
    longest = -(-max(len(r["input_ids"]) for r in rows) // multiple) * multiple
    batch = {}
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        out = torch.full((len(rows), longest), pad_id if key == "input_ids" else 0)
        for i, r in enumerate(rows):
            out[i, : len(r[key])] = torch.as_tensor(r[key])
        batch[key] = out
    return batch


def collate_times(batch_sizes: tuple[int, ...] = (16, 256), repeats: int = 20) -> dict:
    """Milliseconds to pad one batch of MiniLM-tokenised seed rows: the package's PadCollator,
    the row-by-row loop it replaced, and transformers' DataCollatorWithPadding (each to a
    multiple of 8; the same tensors)."""
    from transformers import AutoTokenizer

    from stance.kinds.backbones import minilm_path
    from stance.training.batching import PadCollator

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    tokenized = tokenize(_rows(max(batch_sizes)), tokenizer, 128)
    cols = ["input_ids", "token_type_ids", "attention_mask"]
    ours = PadCollator(tokenizer.pad_token_id, 8)
    theirs = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8)
    rows_out = []
    for bs in batch_sizes:
        rows = tokenized.select_columns(cols).select(range(bs)).to_list()
        timed = []
        for fn in (ours, lambda r: _row_loop_pad(r, tokenizer.pad_token_id, 8), theirs):
            fn(rows)  # warm-up
            start = time.perf_counter()
            for _ in range(repeats):
                fn(rows)
            timed.append(1000 * (time.perf_counter() - start) / repeats)
        rows_out.append([bs, *timed])
    headers = ["batch", "PadCollator ms", "row loop ms", "DataCollatorWithPadding ms"]
    return {"raw": rows_out, "table": table(headers, rows_out)}


def profile(steps: int = 10, batch_size: int = 16) -> str:
    """torch.profiler's top operators (self CPU time) over `steps` steps of stance's loop."""
    cfg = _config(steps, batch_size, 128, [])
    ds = _rows(steps * batch_size)
    run_ours(cfg, ds)  # warm-up: kernels, allocator
    return top_ops(lambda: run_ours(cfg, ds), rows=14)


def epoch_scaling(sizes: tuple[int, ...] = (256, 512, 1024, 2048), batch_size: int = 16) -> dict:
    """Seconds for one epoch of stance's loop against the number of training rows.

    Rows are the seed statements repeated, so the length mix is the same at every size and
    only the count changes: time should grow linearly (constant seconds per 1,000 rows).
    """
    cfg = _config(0, batch_size, 128, ["train.epochs=1"])
    rows = []
    for n in sizes:
        seconds = run_ours(cfg, _rows(n))
        rows.append([n, seconds, 1000 * seconds / n])
        logger.info("epoch of %d rows: %.1f s", n, seconds)
    return {
        "raw": [{"rows": n, "seconds": s} for n, s, _ in rows],
        "table": table(["rows", "seconds per epoch", "seconds per 1,000 rows"], rows),
    }


def time_to_quality(seed: int = 42) -> dict:
    """Full default-config training with both loops on the same split; dev F1 and wall time."""
    cfg = load_config(ROOT / "configs" / "withdrawal-seeds.yaml", [f"train.seed={seed}"])
    train_ds, dev_ds = group_split(load_statements(SEED_DATA), cfg.data.dev_fraction, seed)
    set_seed(seed)
    model, tokenizer = load_base(cfg.model)
    ours = fit(cfg, model, tokenizer, train_ds, dev_ds)
    with tempfile.TemporaryDirectory() as out:
        trainer = _trainer(cfg, train_ds, False, dev_ds, epochs=cfg.train.epochs, out=out)
        start = time.perf_counter()
        trainer.train()
        trainer_seconds = time.perf_counter() - start
        from stance.metrics import compute_metrics

        pred = trainer.predict(trainer.eval_dataset)
        trainer_f1 = compute_metrics(pred.predictions.argmax(-1), pred.label_ids)["macro_f1"]
    target = ours.dev_metrics["macro_f1"]
    reach = next((s for _, s, f1 in ours.eval_times if f1 >= target), ours.seconds)
    rows = [
        ["stance (early stopping)", ours.dev_metrics["macro_f1"], reach, ours.seconds],
        ["Trainer (all epochs)", trainer_f1, float("nan"), trainer_seconds],
    ]
    return {
        "table": table(["loop", "dev macro-F1", "s to best dev F1", "total s"], rows),
        "stance_f1": target,
        "trainer_f1": trainer_f1,
        "stance_seconds": ours.seconds,
        "stance_seconds_to_best": reach,
        "trainer_seconds": trainer_seconds,
    }
