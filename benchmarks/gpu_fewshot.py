"""The few-shot kind (the default model) in `scripts/gpu_check.py` (issue 23, part 2).

On all-mpnet-base-v2's shape (untrained weights: the real 438 MB cannot travel; a tiny MPNet
on `--dry-run`), with the default model's own recipe (configs/withdrawal.yaml):

- `recipe`: `stance train` of the few-shot kind end to end (linear probe, LP-FT with the
  lowest layers frozen, head re-fitted), then its LP-FT steps alone at the check's mpnet
  batch, examples/s and MFU (bf16 autocast on CUDA, as `train.mixed_precision: auto` picks);
- `predict`: StancePredictor.classify sentences/s (bf16 weights on CUDA), the network alone,
  `stance predict` end to end (files in, JSON Lines out), against sentence-transformers'
  `encode` + the head (the library path a user would write), with label agreement;
- `labels`: labels on the device against float32 on the CPU, on the seed sentences and on
  2,000 unseen FNC-1 sentences (where ../shared/data/fnc1 is present).

MFU counts only the tokens actually computed: every row's real (non-padding) tokens, summed
per batch as the encoder's FLOPs at that length (benchmarks.gpu_common.encoder_flops_per_example:
2 FLOPs per weight per token, plus attention's 4*T*d per token per layer); padding is work
done but not counted. Training counts the forward through every layer and the backward (2x)
through the trainable ones only: autograd stops below the lowest trainable layer.
The attention implementation is reported as found (transformers' MPNet has no SDPA path: its
relative position bias runs eagerly), not claimed.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .common import fnc1_bodies
from .gpu_bundle import ROOT

STEP_NAMES = ("few-shot mpnet: recipe", "few-shot mpnet: predict", "few-shot mpnet: labels")
FNC1_SENTENCES = 2000


def fnc1_bodies_csv() -> Path:
    shared = Path(os.environ.get("STANCE_SHARED", ROOT.parent / "shared"))
    return shared / "data" / "fnc1" / "train_bodies.csv"


def unseen_sentences(n: int | None = None) -> list[str]:
    """The first `n` (FNC1_SENTENCES) sentences of FNC-1's bodies (news on other claims,
    never trained on)."""
    from stance.data.segment import split_sentences

    n = FNC1_SENTENCES if n is None else n

    bodies = (body for _, body in fnc1_bodies(fnc1_bodies_csv()))
    sentences = (s for body in bodies for s in split_sentences(body))
    return list(itertools.islice(sentences, n))


def fewshot_config(ctx: Any, *overrides: str) -> Any:
    """configs/withdrawal.yaml (the default model's recipe) on the mpnet-shaped base; fewer
    frozen layers where the dry run's MPNet has fewer than the recipe freezes."""
    from transformers import AutoConfig

    from stance.config import load_config

    base = ctx.models["mpnet"]
    layers = AutoConfig.from_pretrained(base).num_hidden_layers
    cfg = load_config(ROOT / "configs" / "withdrawal.yaml", [f"model.base={base}"])
    frozen = min(cfg.fewshot.freeze_layers, layers - 1)
    over = [f"model.base={base}", f"output_dir={ctx.workdir / 'fewshot'}"]
    return load_config(
        ROOT / "configs" / "withdrawal.yaml", [*over, f"fewshot.freeze_layers={frozen}", *overrides]
    )


def body_config(model: Any) -> Any:
    return model.body[0].auto_model.config


def token_lengths(model: Any, texts: Sequence[str], max_length: int) -> list[int]:
    """Real tokens per statement (alone, truncated as the run is): what is computed."""
    enc = model.tokenizer(list(texts), truncation=True, max_length=max_length)
    return [len(ids) for ids in enc["input_ids"]]


def train_flops_per_example(config: Any, lengths: Sequence[int], trainable: int) -> float:
    """Forward through every layer, backward (2x forward) through the `trainable` top ones."""
    from .gpu_common import encoder_flops_per_example

    forward = encoder_flops_per_example(config, lengths)
    return forward * (1 + 2 * trainable / config.num_hidden_layers)


def attention_of(model: Any) -> str:
    config = body_config(model)
    return str(getattr(config, "_attn_implementation", None) or "unknown")


def recipe_rows(ctx: Any, util: Any) -> list[Any]:
    """The recipe end to end (saved to ctx.trained['fewshot']), then its LP-FT steps alone."""
    from stance.kinds.sentence_training import run_sentence_training

    from .gpu_common import Row, synchronize

    cfg = fewshot_config(ctx)
    synchronize(ctx)
    start = time.perf_counter()
    with util.sampling():
        metrics = run_sentence_training(cfg)
    synchronize(ctx)
    seconds = time.perf_counter() - start
    ctx.trained["fewshot"] = cfg.run_dir
    rows = [
        Row(
            check=f"train few-shot mpnet recipe ({'bf16' if ctx.cuda else 'fp32'})",
            setting=f"configs/withdrawal.yaml, {metrics['train_rows']} rows",
            stance=f"{seconds:.1f} s end to end",
            gpu_util=util.summary(),
            detail={"model": ctx.notes.get("mpnet"), "seconds": seconds, **metrics},
        )
    ]
    for batch in ctx.sizes.mpnet_train_batches:
        rows.append(lpft_speed_row(ctx, util, batch))
    return rows


def timed_lpft(ctx: Any, batch: int, steps: int, ds: Any) -> float:
    """Seconds of the recipe's LP-FT `fit` for `steps` steps from the trained run."""
    from stance.kinds.sentence import load_sentence_model
    from stance.kinds.sentence_model import freeze_lower_layers
    from stance.training.loop import fit

    from .gpu_common import synchronize

    cfg = fewshot_config(
        ctx, f"train.max_steps={steps}", f"train.batch_size={batch}", "train.epochs=1000",
        "train.warmup_ratio=0.0",
    )  # fmt: skip
    model = load_sentence_model(ctx.trained["fewshot"]).train()
    freeze_lower_layers(model.body, cfg.fewshot.freeze_layers)
    synchronize(ctx)
    start = time.perf_counter()
    fit(cfg, model, model.tokenizer, ds)
    synchronize(ctx)
    return time.perf_counter() - start


def lpft_speed_row(ctx: Any, util: Any, batch: int) -> Any:
    from stance.kinds.sentence import load_sentence_model

    from .gpu_common import Row
    from .gpu_models import repeated_rows
    from .gpu_training import _mfu, steady_seconds

    s = ctx.sizes
    ds = repeated_rows(max(s.train_rows, 2 * batch))
    model = load_sentence_model(ctx.trained["fewshot"])
    cfg = fewshot_config(ctx)
    config = body_config(model)
    trainable = config.num_hidden_layers - cfg.fewshot.freeze_layers
    lengths = token_lengths(model, ds["text"], cfg.data.max_length)
    flops = train_flops_per_example(config, lengths, trainable)
    seconds = steady_seconds(
        lambda n: timed_lpft(ctx, batch, n, ds), s.warm_steps, s.timed_steps, util
    )
    rate = s.timed_steps * batch / seconds
    return Row(
        check=f"train few-shot mpnet LP-FT {'bf16' if ctx.cuda else 'fp32'} (examples/s)",
        setting=f"batch {batch}, {s.timed_steps} steps, top {trainable} layers trained",
        stance=f"{rate:,.0f}",
        mfu=_mfu(ctx, rate * flops),
        gpu_util=util.summary(),
        detail={
            "examples_per_s": rate,
            "train_flops_per_example": flops,
            "mean_real_tokens": sum(lengths) / len(lengths),
            "attention": attention_of(model),
            "mfu_counts": "real (non-padding) tokens; backward through trained layers only",
        },
    )


def steps(ctx: Any, util: Any, needs: Any) -> list[Any]:
    """The three steps, in STEP_NAMES order; `needs(name, step)` runs a step only where the
    model it needs was made (gpu_check.steps)."""
    from .gpu_fewshot_predict import label_rows, predict_rows

    ctx.notes.setdefault("fewshot", "not run: the few-shot recipe did not train a model")
    return [
        needs("mpnet", lambda: recipe_rows(ctx, util)),
        needs("fewshot", lambda: predict_rows(ctx, util)),
        needs("fewshot", lambda: label_rows(ctx, util)),
    ]
