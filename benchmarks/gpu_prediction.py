"""The GPU check's prediction steps: speed against transformers.pipeline, before/after,
profile, precision agreement and the two-process run (benchmarks/gpu_check.py)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .gpu_bundle import ROOT, SITE
from .gpu_common import CHUNK_CHARS, OK, Context, NotRun, Row, UtilSampler, synchronize
from .gpu_models import repeated_rows, seed_texts
from .gpu_training import timed_fit

logger = logging.getLogger(__name__)


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

    from stance.inference.engine import StancePredictor
    from stance.labels import LABELS

    name = name or trained_name(ctx)
    run_dir, s = run_dir or ctx.trained.get(name) or ctx.models[name], ctx.sizes
    texts = seed_texts()[1:]
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

    from stance.inference.engine import StancePredictor

    name = trained_name(ctx)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if ctx.cuda else [])
    device_key = "self_cuda_time_total" if ctx.cuda else "self_cpu_time_total"
    batch = ctx.sizes.train_batches[-1]
    ds = repeated_rows(max(ctx.sizes.train_rows, 2 * batch))
    timed_fit(ctx, name, batch, 3, ds)  # warm-up
    predictor = StancePredictor(ctx.trained[name], device=ctx.device, batch_size=512)
    texts = seed_texts()[1:]
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

    from stance.inference.engine import StancePredictor

    name = trained_name(ctx)
    texts = seed_texts()[1:]
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
    from stance.inference.engine import StancePredictor
    from stance.predict.run import run_prediction

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
