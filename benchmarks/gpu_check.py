"""One command that checks a GPU machine: train, predict, evaluate, two processes, speed.

`python scripts/gpu_check.py` (after `make gpu-bundle` here, with `.whl` and `.gpu-bundle`
carried) trains the tiny model and MiniLM in bf16 (short runs), predicts, evaluates, runs
the two-process prediction (torchrun, 2 processes on one GPU) and compares speed with
transformers: predict pairs/s against `transformers.pipeline` at batch 64/512/2048, training
examples/s and MFU against `transformers.Trainer` at batch 16/256, with the GPU's
utilisation sampled meanwhile. It prints one table and writes everything to a JSON file.
Whatever cannot run says "not run: why" in its row; a step that raises is "FAILED" and makes
the exit code 1. `--dry-run` runs every step on the CPU with the tiny model in seconds.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import gpu_fewshot
from .gpu_bundle import MINILM_FP16, MPNET_SHAPE, ROOT, SITE, ensure_packages

logger = logging.getLogger(__name__)

SEED_DATA = ROOT / "data" / "withdrawal.jsonl"
# Dense bf16 tensor-core peaks from the vendor's data sheets (TFLOP/s, no sparsity), matched
# against torch.cuda.get_device_name(); MFU is reported against these, not a measured rate.
PEAK_TFLOPS = {
    "H200": 989.0,
    "H100 SXM": 989.0,
    "H100 80GB HBM3": 989.0,  # the SXM part's name as the driver reports it
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
}
OK = "ok"
CHUNK_CHARS = 20_000  # several chunks per process in the two-process prediction


@dataclass
class Sizes:
    """How much work each step does: the GPU run's, or the dry run's few seconds."""

    predict_pairs: int = 65_536
    pipeline_pairs: int = 8_192
    predict_batches: tuple[int, ...] = (64, 512, 2048)
    train_batches: tuple[int, ...] = (16, 256)
    warm_steps: int = 5
    timed_steps: int = 20
    train_rows: int = 4096
    tiny_steps: int = 60
    article_copies: int = 40  # the seed articles repeated, for the two-process prediction
    mpnet_predict_batches: tuple[int, ...] = (512,)
    mpnet_train_batches: tuple[int, ...] = (32,)  # configs/emergent-mpnet.yaml's batch
    compile_batch: int = 256

    @classmethod
    def dry(cls) -> Sizes:
        return cls(256, 128, (64, 512, 2048), (16, 256), 1, 2, 512, 4, 2, (64,), (16,), 16)


@dataclass
class Row:
    """One line of the table; `detail` goes to the JSON file only."""

    check: str
    setting: str = ""
    stance: str = ""
    baseline: str = ""
    ratio: str = ""
    mfu: str = ""
    gpu_util: str = ""
    status: str = OK
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    """What the steps share: device, sizes, where models live, the deadline."""

    device: str
    sizes: Sizes
    workdir: Path
    deadline: float
    peak_tflops: float | None
    models: dict[str, Path] = field(default_factory=dict)  # base models by name
    trained: dict[str, Path] = field(default_factory=dict)  # run directories by name
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def cuda(self) -> bool:
        return self.device == "cuda"


# ---------------------------------------------------------------- measuring


def peak_tflops(device_name: str) -> float | None:
    """The assumed bf16 dense peak of a GPU by name (longest matching key), None if unknown."""
    matches = [k for k in PEAK_TFLOPS if k.lower() in device_name.lower()]
    return PEAK_TFLOPS[max(matches, key=len)] if matches else None


def _nvidia_smi_utilization() -> float | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    query = [exe, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"]
    out = subprocess.run(query, capture_output=True, text=True, timeout=5).stdout.strip()
    return float(out.splitlines()[0]) if out else None


def utilization_reader() -> tuple[Callable[[], float | None] | None, str]:
    """A function returning the GPU's utilisation in percent, and what it reads; None if none."""
    import torch

    if not torch.cuda.is_available():
        return None, "unavailable: no GPU"
    try:
        torch.cuda.utilization()
        return (lambda: float(torch.cuda.utilization())), "torch.cuda.utilization (NVML)"
    except Exception as e:  # noqa: BLE001 - pynvml missing or NVML refused: try nvidia-smi
        logger.info("torch.cuda.utilization unavailable (%s)", e)
    try:
        if _nvidia_smi_utilization() is not None:
            return _nvidia_smi_utilization, "nvidia-smi"
    except (OSError, ValueError, subprocess.SubprocessError) as e:
        logger.info("nvidia-smi unavailable (%s)", e)
    return None, "unavailable: neither NVML nor nvidia-smi answered"


class UtilSampler:
    """Samples GPU utilisation in a thread while a block runs (mean and max, percent)."""

    def __init__(self, read: Callable[[], float | None] | None, why: str, every: float = 0.1):
        self.read, self.why, self.every = read, why, every
        self.samples: list[float] = []

    @contextmanager
    def sampling(self) -> Iterator[UtilSampler]:
        self.samples = []
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(self.every):
                try:
                    value = self.read() if self.read else None
                except Exception:  # noqa: BLE001 - a failed read is one sample fewer
                    value = None
                if value is not None:
                    self.samples.append(value)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()

    def summary(self) -> str:
        if self.read is None:
            return self.why
        if not self.samples:
            return "no sample (too short)"
        mean = sum(self.samples) / len(self.samples)
        return f"{mean:.0f}% (max {max(self.samples):.0f})"


def synchronize(ctx: Context) -> None:
    if ctx.cuda:
        import torch

        torch.cuda.synchronize()


def encoder_flops_per_example(config: Any, lengths: Sequence[int]) -> float:
    """Mean forward FLOPs of one example of these unpadded lengths through a BERT encoder.

    Per token every non-embedding weight does one multiply-add (2 FLOPs); attention adds
    QK^T and AV, 4*T*d per token per layer. Training is counted as 3x the forward.
    """
    d, layers, ff = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    weights = layers * (4 * d * d + 2 * d * ff)
    total = sum(2 * t * weights + 4 * layers * t * t * d + 2 * d * d for t in lengths)
    return total / max(len(lengths), 1)


def _rate(n: float, seconds: float) -> str:
    return f"{n / seconds:,.0f}" if seconds > 0 else "n/a"


# ---------------------------------------------------------------- models and data


def _save_base(model: Any, tokenizer: Any, path: Path) -> Path:
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _seed_texts() -> list[str]:
    from stance.data import load_statements

    ds = load_statements(SEED_DATA)
    return [ds[0]["claim"], *ds["text"]]


def prepare_models(ctx: Context, dry_run: bool) -> None:
    """Base models as directories: tiny always; MiniLM from the bundle, the installed package,
    else an untrained model of MiniLM's shape (the speed is the same, the answers are not)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from stance.config import ModelConfig
    from stance.labels import ID2LABEL, LABEL2ID, LABELS
    from stance.modeling import build_tiny, minilm_path

    torch.manual_seed(0)
    tiny = ModelConfig(base="tiny", tiny_hidden=32, tiny_layers=2, tiny_heads=2, tiny_vocab=1000)
    model, tokenizer = build_tiny(tiny, _seed_texts())
    ctx.models["tiny"] = _save_base(model, tokenizer, ctx.workdir / "tiny-base")
    prepare_mpnet_shape(ctx, dry_run, tokenizer)
    if dry_run:
        ctx.notes["minilm"] = "not run: --dry-run uses the tiny model only"
        return
    if (MINILM_FP16 / "model.safetensors").is_file():
        ctx.models["minilm"], ctx.notes["minilm"] = MINILM_FP16, "MiniLM (fp16 bundle)"
        return
    try:
        ctx.models["minilm"], ctx.notes["minilm"] = minilm_path(), "MiniLM (installed package)"
        return
    except Exception as e:  # noqa: BLE001 - no package: fall back to the shape
        logger.warning("no MiniLM weights (%s); using an untrained model of its shape", e)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
        num_labels=len(LABELS),
        id2label=dict(ID2LABEL),
        label2id=dict(LABEL2ID),
        pad_token_id=tokenizer.pad_token_id,
    )
    shaped = BertForSequenceClassification(config)
    ctx.models["minilm"] = _save_base(shaped, tokenizer, ctx.workdir / "minilm-shaped")
    ctx.notes["minilm"] = "untrained, MiniLM's shape (no weights carried: make gpu-bundle)"


def prepare_mpnet_shape(ctx: Context, dry_run: bool, tiny_tokenizer: Any) -> None:
    """An untrained classifier of all-mpnet-base-v2's shape (its weights cannot travel): from
    the bundle's config and tokenizer; on a dry run a tiny MPNet with the tiny tokenizer."""
    from transformers import AutoConfig, AutoTokenizer, MPNetConfig
    from transformers import AutoModelForSequenceClassification as Classifier

    from stance.labels import ID2LABEL, LABEL2ID

    labels = {"num_labels": 3, "id2label": dict(ID2LABEL), "label2id": dict(LABEL2ID)}
    if dry_run:
        config = MPNetConfig(
            vocab_size=len(tiny_tokenizer), hidden_size=32, num_hidden_layers=2,
            num_attention_heads=2, intermediate_size=64, **labels,
        )  # fmt: skip
        tokenizer = tiny_tokenizer
        tokenizer.model_input_names = ["input_ids", "attention_mask"]  # MPNet has no types
        note = "tiny MPNet (dry run)"
    elif (MPNET_SHAPE / "config.json").is_file():
        config = AutoConfig.from_pretrained(MPNET_SHAPE, **labels)
        tokenizer = AutoTokenizer.from_pretrained(MPNET_SHAPE)
        note = "untrained, all-mpnet-base-v2's shape (its 438 MB of weights cannot travel)"
    else:
        ctx.notes["mpnet"] = "not run: no mpnet shape in .gpu-bundle (make mpnet gpu-bundle)"
        return
    model = Classifier.from_config(config)
    ctx.models["mpnet"] = _save_base(model, tokenizer, ctx.workdir / "mpnet-shaped")
    ctx.notes["mpnet"] = note


def train_config(
    ctx: Context, name: str, batch_size: int, steps: int, compile: bool = False
) -> Any:
    from stance.config import load_config

    overrides = [
        f"model.base={ctx.models[name]}",
        f"train.max_steps={steps}",
        f"train.batch_size={batch_size}",
        "train.epochs=1000",
        "train.patience=0",
        "train.warmup_ratio=0.0",
        "data.max_length=128",
        f"output_dir={ctx.workdir / f'run-{name}'}",
        f"train.compile={str(compile).lower()}",
    ]
    return load_config(ROOT / "configs" / "withdrawal-seeds.yaml", overrides)


def load_fp32(cfg: Any, texts: Sequence[str] = ()) -> tuple[Any, Any]:
    """The base model in fp32 (transformers 5 keeps a checkpoint's dtype; the bundle is fp16)."""
    from stance.modeling import load_base

    model, tokenizer = load_base(cfg.model, texts)
    return model.float(), tokenizer


def repeated_rows(n: int) -> Any:
    from datasets import concatenate_datasets

    from stance.data import load_statements

    ds = load_statements(SEED_DATA)
    return concatenate_datasets([ds] * -(-n // len(ds))).select(range(n))


def mean_lengths(tokenizer: Any, ds: Any, max_length: int = 128) -> list[int]:
    enc = tokenizer(list(ds["claim"]), list(ds["text"]), truncation=True, max_length=max_length)
    return [len(ids) for ids in enc["input_ids"]]


# ---------------------------------------------------------------- training


def timed_fit(
    ctx: Context, name: str, batch: int, steps: int, ds: Any, compile: bool = False
) -> float:
    """Seconds of `stance.train.fit` for `steps` steps (tokenisation and set-up included)."""
    from accelerate.utils import set_seed

    from stance.train import fit

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

    from stance.batching import tokenize

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

    from stance.data import group_split, load_statements
    from stance.metrics import compute_metrics
    from stance.modeling import load_classifier
    from stance.train import fit, predict_pairs

    cfg = train_config(ctx, name, 16, ctx.sizes.tiny_steps)
    train_ds, dev_ds = group_split(load_statements(SEED_DATA), 0.25, cfg.train.seed)
    set_seed(cfg.train.seed)
    model, tokenizer = load_fp32(cfg, [train_ds[0]["claim"], *train_ds["text"]])
    with util.sampling():
        result = fit(cfg, model, tokenizer, train_ds, dev_ds)
    run_dir = ctx.workdir / f"trained-{name}"
    result.model.config.stance_claim = cfg.data.claim
    _save_base(result.model, tokenizer, run_dir)
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


# ---------------------------------------------------------------- prediction


def _timed(ctx: Context, fn: Callable[[], Any]) -> tuple[float, Any]:
    synchronize(ctx)
    start = time.perf_counter()
    out = fn()
    synchronize(ctx)
    return time.perf_counter() - start, out


def forward_only_rate(ctx: Context, predictor: Any, sentences: Sequence[str]) -> float:
    """Pairs/s of the network alone on batches already tokenised, padded and on the device:
    the GPU's share of the work, so the table shows how much the host costs."""
    import numpy as np
    import torch

    window = predictor.encoder.encode_window(predictor._prepare(sentences))
    rows, bs = np.arange(len(window)), predictor.batch_size
    batches = [
        predictor._to_device(predictor.encoder.batch(window, rows[i : i + bs]))
        for i in range(0, len(window), bs)
    ]
    with torch.inference_mode():
        predictor.net(**batches[0])
        seconds, _ = _timed(ctx, lambda: [predictor.net(**b) for b in batches])
    return len(window) / seconds


def predict_speed_rows(
    ctx: Context,
    util: UtilSampler,
    name: str | None = None,
    run_dir: Path | None = None,
    batches: Sequence[int] | None = None,
) -> list[Row]:
    """Pairs/s of StancePredictor against transformers.pipeline at each batch size."""
    import numpy as np
    import torch
    from transformers import pipeline

    from stance.engine import StancePredictor
    from stance.labels import LABELS

    name = name or trained_name(ctx)
    run_dir, s = run_dir or ctx.trained.get(name) or ctx.models[name], ctx.sizes
    texts = _seed_texts()[1:]
    sentences = (texts * -(-s.predict_pairs // len(texts)))[: s.predict_pairs]
    rows = []
    for batch in batches or s.predict_batches:
        predictor = StancePredictor(run_dir, device=ctx.device, batch_size=batch)
        predictor.classify(sentences[: 2 * batch])  # warm-up: kernels, allocator
        with util.sampling():
            ours, probs = _timed(ctx, lambda p=predictor: p.classify(sentences))
        ours_util = util.summary()
        alone = forward_only_rate(ctx, predictor, sentences[: min(len(sentences), 16 * batch)])
        pipe = pipeline(
            "text-classification",
            model=str(run_dir),
            device=0 if ctx.cuda else -1,
            dtype=torch.bfloat16 if ctx.cuda else None,
        )
        pairs = [{"text": predictor.claim, "text_pair": t} for t in sentences[: s.pipeline_pairs]]
        kwargs = {"batch_size": batch, "truncation": True, "max_length": predictor.max_length}
        pipe(pairs[: 2 * batch], **kwargs)
        with util.sampling():
            theirs, answers = _timed(ctx, lambda p=pipe, q=pairs, k=kwargs: p(q, **k))
        ours_labels = [LABELS[k] for k in np.asarray(probs)[: len(pairs)].argmax(1)]
        agree = float(np.mean([a["label"] == b for a, b in zip(answers, ours_labels, strict=True)]))
        ours_rate, theirs_rate = len(sentences) / ours, len(pairs) / theirs
        rows.append(
            Row(
                check=f"predict {name} (pairs/s)",
                setting=f"batch {batch}, {predictor.precision}",
                stance=f"{ours_rate:,.0f} (network alone {alone:,.0f})",
                baseline=f"{theirs_rate:,.0f} pipeline",
                ratio=f"{ours_rate / theirs_rate:.2f}x",
                gpu_util=ours_util,
                detail={
                    "model": ctx.notes.get(name, name),
                    "pairs": len(sentences),
                    "pipeline_pairs": len(pairs),
                    "stance_seconds": ours,
                    "pipeline_seconds": theirs,
                    "pipeline_gpu_util": util.summary(),
                    "label_agreement_with_pipeline": agree,
                    "fast_encoder": type(predictor.net).__name__,
                    "network_alone_pairs_per_s": alone,
                    "tokenizer_threads": predictor.encoder.threads,
                },
            )
        )
        del predictor, pipe
    return rows


def trained_name(ctx: Context) -> str:
    """The model the prediction checks use: MiniLM when it was trained, else the tiny one."""
    return "minilm" if "minilm" in ctx.trained else "tiny"


def child_env(root: Path) -> dict[str, str]:
    """The environment of a child process that imports `stance` from `root` (and the carried
    wheels' folder)."""
    path = [str(root), str(SITE), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}


def _child_predict(
    root: Path, run_dir: Path, pairs: int, batch: int, device: str, parallel: bool = True
) -> float:
    """Seconds of one timed pass of `benchmarks.predict` (after its warm-up pass) in a
    fresh process, with the `stance` package of `root`; `parallel`: TOKENIZERS_PARALLELISM."""
    fd, name = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    out = Path(name)
    env = child_env(root)
    env["TOKENIZERS_PARALLELISM"] = "true" if parallel else "false"
    # The benchmarks left the installed package; an older checkout has them inside it.
    inside = (root / "stance" / "benchmarks" / "predict.py").is_file()
    module = "stance.benchmarks.predict" if inside else "benchmarks.predict"
    cmd = [sys.executable, "-m", module, "stance-fp32", str(run_dir)]
    cmd += [str(pairs), str(batch), device, str(out)]
    try:
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=240)
        if proc.returncode != 0:
            raise RuntimeError(f"{root}: exit {proc.returncode}: {proc.stderr[-1500:]}")
        return float(json.loads(out.read_text())["seconds"])
    finally:
        out.unlink(missing_ok=True)


def before_after_rows(ctx: Context, util: UtilSampler, before: Path | None) -> list[Row]:
    """Prediction pairs/s of an older checkout's engine (`--before DIR`) and this one's, each
    in its own process through the same benchmark entry point, alternating, same card."""
    if before is None:
        raise NotRun("no --before checkout given")
    name = trained_name(ctx)
    n, rows = ctx.sizes.predict_pairs, []
    for batch in ctx.sizes.predict_batches[1:]:
        for parallel in (True, False):
            old = _child_predict(before, ctx.trained[name], n, batch, ctx.device, parallel)
            new = _child_predict(ROOT, ctx.trained[name], n, batch, ctx.device, parallel)
            rows.append(
                Row(
                    check=f"predict {name}: before vs now (pairs/s)",
                    setting=f"batch {batch}, TOKENIZERS_PARALLELISM={str(parallel).lower()}",
                    stance=f"{n / new:,.0f} now",
                    baseline=f"{n / old:,.0f} before ({before.name})",
                    ratio=f"{old / new:.2f}x (now / before)",
                    detail={"before_seconds": old, "now_seconds": new, "pairs": n},
                )
            )
    return rows


def profile_rows(ctx: Context, util: UtilSampler, folder: Path | None) -> list[Row]:
    """torch.profiler over a few training steps (batch 256) and a prediction pass (batch
    512) of MiniLM: the top operators by self CPU and by device time, written to `folder`."""
    if folder is None:
        raise NotRun("no --profile folder given")
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from stance.engine import StancePredictor

    name = trained_name(ctx)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if ctx.cuda else [])
    device_key = "self_cuda_time_total" if ctx.cuda else "self_cpu_time_total"
    batch = ctx.sizes.train_batches[-1]
    ds = repeated_rows(max(ctx.sizes.train_rows, 2 * batch))
    timed_fit(ctx, name, batch, 3, ds)  # warm-up
    predictor = StancePredictor(ctx.trained[name], device=ctx.device, batch_size=512)
    texts = _seed_texts()[1:]
    sentences = (texts * -(-16_384 // len(texts)))[:16_384]
    predictor.classify(sentences[:1024])
    folder.mkdir(parents=True, exist_ok=True)
    for what, run in (
        ("train", lambda: timed_fit(ctx, name, batch, 12, ds)),
        ("predict", lambda: predictor.classify(sentences)),
    ):
        with torch_profile(activities=activities) as prof:
            run()
            synchronize(ctx)
        averages = prof.key_averages()
        text = averages.table(sort_by="self_cpu_time_total", row_limit=25)
        text += "\n" + averages.table(sort_by=device_key, row_limit=25)
        (folder / f"profile-{what}.txt").write_text(text)
    return [Row(check=f"profile {name}", setting=f"{folder}/profile-{{train,predict}}.txt")]


def precision_agreement_rows(ctx: Context, util: UtilSampler) -> list[Row]:
    """Labels of the seed sentences on the device (bf16 weights on CUDA) against float32 on
    the CPU, same trained model: what the lower precision changes."""
    import numpy as np

    from stance.engine import StancePredictor

    name = trained_name(ctx)
    texts = _seed_texts()[1:]
    here = StancePredictor(ctx.trained[name], device=ctx.device).classify(texts)
    cpu = StancePredictor(ctx.trained[name], device="cpu").classify(texts)
    agree = float(np.mean(here.argmax(1) == cpu.argmax(1)))
    gap = float(np.abs(here - cpu).max())
    precision = "bf16" if ctx.cuda else "fp32"
    return [
        Row(
            check=f"labels {name}: {precision} on {ctx.device} vs fp32 on cpu",
            setting=f"{len(texts)} seed sentences",
            stance=f"{100 * agree:.1f}% agree, max prob gap {gap:.3f}",
            detail={"agreement": agree, "max_probability_gap": gap, "sentences": len(texts)},
        )
    ]


def _write_articles(path: Path, copies: int) -> None:
    seeds = sorted((ROOT / "seeds").glob("*.txt"))
    with path.open("w", encoding="utf-8") as f:
        for i, seed in enumerate(seeds * copies):
            f.write(json.dumps({"id": f"a{i}", "text": seed.read_text(encoding="utf-8")}) + "\n")


def _run_predict(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {proc.stderr[-1500:]}")
    return time.perf_counter() - start


def _predict_in_process(ctx: Context, model: Path, articles: Path, output: Path) -> float:
    """The one-process reference, as `stance predict` would write it (no start-up to pay)."""
    from stance.engine import StancePredictor
    from stance.predict import run_prediction

    predictor = StancePredictor(model, device=ctx.device)
    start = time.perf_counter()
    report = run_prediction(predictor, [str(articles)], output, chunk_chars=CHUNK_CHARS)
    if report.failures:
        raise RuntimeError(f"one-process prediction: {report.failures[0].error}")
    return time.perf_counter() - start


def two_process_rows(ctx: Context, util: UtilSampler) -> list[Row]:
    """`stance predict` under torchrun with 2 processes on the one device, against 1 process."""
    name = trained_name(ctx)
    articles = ctx.workdir / "articles.jsonl"
    _write_articles(articles, ctx.sizes.article_copies)
    env = child_env(ROOT)
    env["OMP_NUM_THREADS"] = "1"
    predict = ["-m", "stance.cli", "predict", "--model", str(ctx.trained[name])]
    predict += ["--device", ctx.device, str(articles), "--chunk-chars", str(CHUNK_CHARS)]
    predict += ["--no-relevance"]  # as the in-process reference: the classifier is what is checked
    one, two = ctx.workdir / "one.jsonl", ctx.workdir / "two.jsonl"
    one_s = _predict_in_process(ctx, ctx.trained[name], articles, one)
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    with util.sampling():
        two_s = _run_predict([*launch, "--standalone", *predict, "--output", str(two)], env)
    same = one.read_bytes() == two.read_bytes()
    lines = len(one.read_bytes().splitlines())
    status = OK if same else "FAILED: 2 processes wrote another file than 1 process"
    return [
        Row(
            check=f"predict {name}, 2 processes (torchrun)",
            setting=f"{lines} sentences, 1 {ctx.device}",
            stance=f"{two_s:.1f} s (1 process: {one_s:.1f} s)",
            baseline="same file" if same else "DIFFERENT file",
            gpu_util=util.summary(),
            status=status,
            detail={"sentences": lines, "identical": same, "seconds": two_s, "one_s": one_s},
        )
    ]


# ---------------------------------------------------------------- the run


class NotRun(Exception):
    """A step that cannot run here; its message says why."""


def run_step(ctx: Context, rows: list[Row], check: str, step: Callable[[], list[Row]]) -> None:
    """Append the step's rows; a step that cannot run or raises is one row that says so."""
    if time.monotonic() > ctx.deadline:
        rows.append(Row(check, status="not run: the time budget was spent"))
        return
    logger.info("gpu check: %s", check)
    start, first = time.monotonic(), len(rows)
    try:
        rows.extend(step())
    except NotRun as e:
        rows.append(Row(check, status=f"not run: {e}"))
    except Exception as e:  # noqa: BLE001 - the table reports it; the exit code says so
        logger.error("%s failed:\n%s", check, traceback.format_exc())
        message = f"FAILED: {type(e).__name__}: {e}".splitlines()[0][:160]
        rows.append(Row(check, status=message, detail={"traceback": traceback.format_exc()}))
    for row in rows[first:]:
        row.detail["step_seconds"] = round(time.monotonic() - start, 1)


def machine_info(device: str) -> dict[str, Any]:
    import accelerate
    import torch
    import transformers

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "device": device,
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpus"] = torch.cuda.device_count()
        info["bf16"] = torch.cuda.is_bf16_supported()
    return info


STEP_NAMES = (
    "train + evaluate tiny",
    "train + evaluate minilm",
    "predict (pairs/s)",
    "predict before vs now",
    "labels bf16 vs fp32",
    *gpu_fewshot.STEP_NAMES,  # the default model's kind (issue 23)
    "predict, 2 processes",
    "train (examples/s, MFU)",
    "predict mpnet shape",
    "train mpnet shape",
    "train compiled",
    "profile",
)


def steps(
    ctx: Context, util: UtilSampler, options: dict[str, Any] | None = None
) -> list[tuple[str, Callable[[], list[Row]]]]:
    """The checks in order of importance (the budget may stop the last ones). `options`:
    `before` (an older checkout), `profile` (a folder), `compile` (time torch.compile)."""
    options = options or {}

    def needs(name: str, step: Callable[[], list[Row]]) -> Callable[[], list[Row]]:
        def run() -> list[Row]:
            if name not in ctx.models and name not in ctx.trained:
                raise NotRun(ctx.notes.get(name, f"no {name} model").removeprefix("not run: "))
            return step()

        return run

    s = ctx.sizes
    minilm = needs("minilm", lambda: train_and_evaluate(ctx, "minilm", util))

    def compiled() -> list[Row]:
        if not ctx.cuda:  # compiling on the CPU takes minutes and says nothing about a GPU
            raise NotRun("torch.compile is timed on CUDA only")
        if not options.get("compile"):
            raise NotRun("not asked for (--compile)")
        return training_speed_rows(ctx, util, None, (s.compile_batch,), compile=True)

    runs = [
        lambda: train_and_evaluate(ctx, "tiny", util),
        minilm,
        lambda: predict_speed_rows(ctx, util),
        lambda: before_after_rows(ctx, util, options.get("before")),
        lambda: precision_agreement_rows(ctx, util),
        *gpu_fewshot.steps(ctx, util, needs),
        lambda: two_process_rows(ctx, util),
        lambda: training_speed_rows(ctx, util),
        needs(
            "mpnet", lambda: predict_speed_rows(ctx, util, "mpnet", None, s.mpnet_predict_batches)
        ),
        needs("mpnet", lambda: training_speed_rows(ctx, util, "mpnet", s.mpnet_train_batches)),
        compiled,
        lambda: profile_rows(ctx, util, options.get("profile")),
    ]
    return list(zip(STEP_NAMES, runs, strict=True))


def check(
    device: str,
    sizes: Sizes,
    dry_run: bool,
    budget_s: float,
    options: dict[str, Any] | None = None,
    skip: Sequence[str] = (),
) -> tuple[dict, list[Row]]:
    """Run every step; (machine info, rows)."""
    info = machine_info(device)
    peak = peak_tflops(info.get("gpu", "")) if device == "cuda" else None
    info["peak_bf16_tflops_assumed"] = peak
    read, why = utilization_reader() if device == "cuda" else (None, "unavailable: CPU run")
    info["gpu_util_source"] = why
    util = UtilSampler(read, why)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        ctx = Context(device, sizes, Path(tmp), time.monotonic() + budget_s, peak)
        rows: list[Row] = []
        run_step(ctx, rows, "models", lambda: prepare_models(ctx, dry_run) or [])
        for name, step in steps(ctx, util, options):
            if name in skip:
                rows.append(Row(name, status="not run: --skip"))
            else:
                run_step(ctx, rows, name, step)
    info["models"] = {k: v for k, v in ctx.notes.items()}
    return info, rows


def not_run_rows(why: str) -> list[Row]:
    return [Row(name, status=f"not run: {why}") for name in STEP_NAMES]


# ---------------------------------------------------------------- output

COLUMNS = (
    ("check", "check"),
    ("setting", "setting"),
    ("stance", "stance"),
    ("baseline", "transformers"),
    ("ratio", "x transformers"),
    ("mfu", "MFU stance / transformers"),
    ("gpu_util", "GPU util (stance)"),
    ("status", "status"),
)


def render_table(rows: Sequence[Row]) -> str:
    """One Markdown table of every row."""
    cells = [[h for _, h in COLUMNS]] + [[str(getattr(r, k)) for k, _ in COLUMNS] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]

    def line(row: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def exit_code(rows: Sequence[Row]) -> int:
    """1 when any step failed; steps that could not run are not failures (they say why)."""
    return 1 if any(r.status.startswith("FAILED") for r in rows) else 0


def header(info: dict) -> str:
    gpu = info.get("gpu", "no GPU")
    peak = info.get("peak_bf16_tflops_assumed")
    peak_text = f"{peak:g} TFLOP/s bf16 dense assumed" if peak else "peak unknown: MFU not given"
    versions = ", ".join(f"{k} {info[k]}" for k in ("torch", "transformers", "accelerate"))
    return f"device: {info['device']} ({gpu}); {peak_text}; {versions}"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny model, a few seconds")
    p.add_argument("--json", default="gpu-check.json", help="where to write everything")
    p.add_argument("--budget-s", type=float, default=330.0, help="steps start only within this")
    p.add_argument("--bundle", action="store_true", help="write .whl/ and .gpu-bundle/, exit")
    p.add_argument(
        "--before",
        type=Path,
        help="an older checkout (e.g. `git worktree add`, or `git archive REV stance`): its "
        "prediction speed is measured beside this one's, same card",
    )
    p.add_argument("--profile", type=Path, help="write torch.profiler tables to this folder")
    p.add_argument("--compile", action="store_true", help="also time training with compile")
    p.add_argument("--skip", nargs="*", default=[], choices=STEP_NAMES, help="steps to skip")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.bundle:
        from .gpu_bundle import make_bundle

        written = make_bundle()
        size = sum(p.stat().st_size for p in written) / 2**20
        print(f"{len(written)} files, {size:.1f} MiB: carry .whl and .gpu-bundle")
        return 0
    started = time.monotonic()
    # The GPU machine has no network: the hub libraries must not try it (and wait on it).
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(name, "1")
    # TOKENIZERS_PARALLELISM is left as it is: prediction tokenises with Rust's threads.
    missing = ensure_packages()
    import torch

    device = "cpu" if args.dry_run else "cuda"
    if missing:
        info = {"device": device, "missing": missing}
        rows = not_run_rows(f"{', '.join(missing)} missing (make gpu-bundle; carry .whl)")
    elif device == "cuda" and not torch.cuda.is_available():
        info = machine_info(device)
        rows = not_run_rows("no CUDA device (torch.cuda.is_available() is False)")
    else:
        sizes = Sizes.dry() if args.dry_run else Sizes()
        options = {
            "before": args.before.resolve() if args.before else None,
            "profile": args.profile,
            "compile": args.compile,
        }
        info, rows = check(device, sizes, args.dry_run, args.budget_s, options, args.skip)
        info["sizes"] = asdict(sizes)
    info["seconds"] = round(time.monotonic() - started, 1)
    code = exit_code(rows)
    payload = {"machine": info, "rows": [asdict(r) for r in rows], "exit_code": code}
    Path(args.json).write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(header(info) if "torch" in info else f"device: {device}")
    print(render_table(rows))
    print(f"{info['seconds']} s; everything in {args.json}; exit code {code}")
    return code
