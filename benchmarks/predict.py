"""Inference throughput of `stance predict`'s engine against `transformers.pipeline`.

Each measurement runs in a fresh subprocess (so peak RSS is that engine's own), on the same
run directory and the same (claim, sentence) pairs: the labelled seed sentences repeated.
Each engine makes one untimed pass (warm-up: every batch shape met once) and one timed pass.
Rows alternate within each round; medians over rounds are reported, with the ratio to the
pipeline measured in the same run, and each row's label agreement with stance's float32.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import (
    ROOT,
    encoder_flops,
    machine,
    matmul_gflops,
    median,
    peak_rss_mb,
    seed_pairs,
    table,
    top_ops,
)

logger = logging.getLogger(__name__)

ENGINES = ("pipeline", "stance-fp32", "stance-int8")
# What else a user might reach for, on the same batches (opt-in: slow to build or optional deps).
ALTERNATIVES = ("torchao-int8", "onnxruntime-fp32", "onnxruntime-int8", "compile-fp32")


class _OrtForward:
    """An ONNX Runtime session standing in for the engine's forward (batch -> logits)."""

    def __init__(self, path: str, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}

    def __call__(self, **batch):
        import torch

        feed = {k: v.numpy() for k, v in batch.items() if k in self.inputs}
        return torch.from_numpy(self.session.run(["logits"], feed)[0])


def _alternative_net(engine: str, predictor, tmp: str):
    """The forward of an ALTERNATIVES engine, on the predictor's own weights and batches."""
    import torch

    from stance.inference.kernels import FastBertClassifier, int8_layer

    if engine == "torchao-int8":  # torch.ao dynamic quantisation: one scale per tensor
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        net = FastBertClassifier(predictor.model).eval()
        names = [n for n, m in net.named_modules() if isinstance(m, torch.nn.Linear)]
        spec = {n: per_channel_dynamic_qconfig for n in names if int8_layer(n)}
        return quantize_dynamic(net, spec, dtype=torch.qint8)
    if engine == "compile-fp32":  # inductor with weight freezing (its own oneDNN packing)
        import torch._inductor.config

        torch._inductor.config.freezing = True
        return torch.compile(FastBertClassifier(predictor.model).eval(), dynamic=True)
    # ONNX Runtime: the transformers model exported with dynamic batch and length.
    path = str(Path(tmp) / "model.onnx")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    probe = torch.ones(2, 16, dtype=torch.long)
    torch.onnx.export(
        predictor.model,
        (probe, probe, torch.zeros_like(probe)),
        path,
        input_names=names,
        output_names=["logits"],
        dynamic_axes={k: {0: "batch", 1: "tokens"} for k in names},
        dynamo=False,
    )
    if engine == "onnxruntime-int8":  # ORT's dynamic quantisation, per-channel weights
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(path, path + ".int8", per_channel=True, weight_type=QuantType.QInt8)
        path += ".int8"
    return _OrtForward(path, torch.get_num_threads())


def _engine_predictor(engine: str, model: str, batch_size: int, device: str, tmp: str):
    """A StancePredictor running `engine`: stance's own forward, or an ALTERNATIVES one on
    the same weights and the same length-sorted batches."""
    from stance.predict.run import StancePredictor

    quantize = "int8" if engine == "stance-int8" else "none"
    predictor = StancePredictor(model, quantize=quantize, batch_size=batch_size, device=device)
    if engine in ALTERNATIVES:
        predictor.net = _alternative_net(engine, predictor, tmp)
        predictor.encoder.bucket = 1  # pad to the batch's longest pair only, as the pipeline does
    return predictor


def _measure(engine: str, model: str, n: int, batch_size: int, device: str, out: str) -> None:
    """Child process: classify `n` pairs with one engine; write seconds, RSS and labels."""
    import torch

    claims, texts = seed_pairs(n)
    if engine == "pipeline":
        from transformers import pipeline

        clf = pipeline("text-classification", model=model, device=device)
        inputs = [{"text": c, "text_pair": t} for c, t in zip(claims, texts, strict=True)]
        clf(inputs, batch_size=batch_size, truncation=True)  # warm-up pass, as below
        start = time.perf_counter()
        with torch.inference_mode():
            outputs = clf(inputs, batch_size=batch_size, truncation=True)
        seconds = time.perf_counter() - start
        labels = [o["label"] for o in outputs]
    else:
        from stance.labels import LABELS

        pairs = list(zip(claims, texts, strict=True))
        with tempfile.TemporaryDirectory() as tmp:
            predictor = _engine_predictor(engine, model, batch_size, device, tmp)
            # Warm-up: one whole pass, so every engine has met every batch shape (oneDNN
            # kernels, torch.compile graphs); the timed pass is the steady state of a long run.
            predictor.classify(pairs)
            start = time.perf_counter()
            probs = predictor.classify(pairs)
            seconds = time.perf_counter() - start
        labels = [LABELS[i] for i in probs.argmax(1)]
    Path(out).write_text(
        json.dumps({"seconds": seconds, "rss_mb": peak_rss_mb(), "labels": labels})
    )


def _run_child(engine: str, model: str, n: int, batch_size: int, device: str) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.predict",
            engine,
            model,
            str(n),
            str(batch_size),
            device,
            f.name,
        ]
        # From the repository root, where `benchmarks` is this folder (not pysbd's package).
        subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
        return json.loads(Path(f.name).read_text())


def throughput(
    model: str,
    n: int = 2048,
    batch_size: int = 32,
    rounds: int = 3,
    device: str = "cpu",
    engines: tuple[str, ...] = ENGINES,
) -> dict:
    results: dict[str, list[dict]] = {e: [] for e in engines}
    for r in range(rounds):
        order = engines if r % 2 == 0 else tuple(reversed(engines))
        for engine in order:
            res = _run_child(engine, model, n, batch_size, device)
            results[engine].append(res)
            logger.info("round %d %s: %.1f pairs/s", r, engine, n / res["seconds"])
    reference = results.get("stance-fp32", results[engines[0]])[0]["labels"]
    base = median([x["seconds"] for x in results["pipeline"]]) if "pipeline" in results else None
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    claims, texts = seed_pairs(n)
    lengths = [len(x) for x in tokenizer(claims, texts, truncation=True)["input_ids"]]
    flops = encoder_flops(AutoConfig.from_pretrained(model), lengths)
    peak = matmul_gflops()
    rows = []
    for engine, runs in results.items():
        secs = median([x["seconds"] for x in runs])
        agree = float(np.mean([a == b for a, b in zip(runs[0]["labels"], reference, strict=True)]))
        gflops = flops / secs / 1e9
        rows.append(
            [
                engine,
                n / secs,
                base / secs if base else float("nan"),
                agree,
                gflops,
                gflops / peak,
                max(x["rss_mb"] for x in runs),
            ]
        )
    result = {
        "machine": machine(),
        "n": n,
        "batch_size": batch_size,
        "rounds": rounds,
        "mean_tokens": float(np.mean(lengths)),
        "flops_per_pair": flops / n,
        "matmul_gflops": peak,
        "seconds": {e: [x["seconds"] for x in runs] for e, runs in results.items()},
        "table": table(
            [
                "engine",
                "pairs/s",
                "x pipeline",
                "agreement with fp32",
                "GFLOP/s",
                "of matmul peak",
                "peak RSS MB",
            ],
            rows,
        ),
    }
    result["report"] = "\n".join(
        [
            json.dumps(result["machine"]),
            f"float32 matmul peak measured: {peak:.0f} GFLOP/s; {np.mean(lengths):.1f} tokens "
            f"and {flops / n / 1e9:.2f} GFLOP per pair",
            result["table"],
        ]
    )
    return result


def agreement(model: str, bodies_csv: str, articles: int = 120) -> str:
    """Label agreement of each int8 path with float32, on two sets of sentences.

    `seeds`: every sentence of the three seed articles. `fnc1`: those of the first
    `articles` bodies of an FNC-1 bodies CSV (news on other claims, never trained on), a
    harder and larger check. For the flipped labels the table gives the median float32 margin
    (top label minus runner-up), and the agreement where that margin is at least 0.1.
    """
    import csv
    import itertools

    from stance.data.segment import split_sentences
    from stance.inference import DEFAULT_BATCH_SIZE

    seeds = sorted((ROOT / "seeds").glob("*.txt"))
    with open(bodies_csv, encoding="utf-8", newline="") as f:
        bodies = [r["articleBody"] for r in itertools.islice(csv.DictReader(f), articles)]
    corpora = {
        "seeds": [s for p in seeds for s in split_sentences(p.read_text(encoding="utf-8"))],
        "fnc1": [s for body in bodies for s in split_sentences(body)],
    }
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = _engine_predictor("stance-fp32", model, DEFAULT_BATCH_SIZE, "cpu", tmp)
        references = {name: fp32.classify(sentences) for name, sentences in corpora.items()}
        out = []
        for engine in ("stance-int8", "torchao-int8", "onnxruntime-int8"):
            try:
                predictor = _engine_predictor(engine, model, DEFAULT_BATCH_SIZE, "cpu", tmp)
            except ImportError as e:
                logger.warning("%s skipped: %s", engine, e)
                continue
            for name, sentences in corpora.items():
                reference = references[name]
                top2 = np.sort(reference, 1)[:, -2:]
                margin = top2[:, 1] - top2[:, 0]
                same = predictor.classify(sentences).argmax(1) == reference.argmax(1)
                sure = margin >= 0.1
                flipped = float(np.median(margin[~same])) if (~same).any() else float("nan")
                row = [engine, name, len(sentences), same.mean(), int((~same).sum()), flipped]
                out.append(row + [same[sure].mean(), int(sure.sum())])
    headers = ["engine", "sentences of", "n", "agreement", "flipped", "median margin flipped"]
    return table(headers + ["agreement, margin >= 0.1", "n, margin >= 0.1"], out)


def profile(model: str, n: int = 512, batch_size: int = 32, quantize: str = "int8") -> str:
    """torch.profiler's top operators (self CPU time) for one engine pass over `n` pairs."""
    from stance.predict.run import StancePredictor

    predictor = StancePredictor(model, quantize=quantize, batch_size=batch_size, device="cpu")
    pairs = list(zip(*seed_pairs(n), strict=True))
    predictor.classify(pairs[:batch_size])
    return top_ops(lambda: predictor.classify(pairs), rows=12)


def scaling(
    model: str, sizes: tuple[int, ...] = (1_000, 10_000, 100_000), quantize: str = "int8"
) -> dict:
    """`stance predict` end to end (segmenting, streaming, writing) on corpora of N sentences."""
    claims, texts = seed_pairs(max(sizes))
    rows, raw = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            corpus = Path(tmp) / f"corpus-{n}.jsonl"
            with corpus.open("w", encoding="utf-8") as f:
                # 10 sentences an article, each sentence a full seed statement.
                for a in range(0, n, 10):
                    f.write(json.dumps({"id": f"a{a}", "text": " ".join(texts[a : a + 10])}) + "\n")
            out = Path(tmp) / f"out-{n}.jsonl"
            cmd = [
                "/usr/bin/time",
                "-f",
                "%M",
                sys.executable,
                "-m",
                "stance.cli",
                "predict",
                "--model",
                model,
                str(corpus),
                "--output",
                str(out),
                "--quantize",
                quantize,
            ]
            start = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            seconds = time.perf_counter() - start
            rss = int(proc.stderr.strip().splitlines()[-1]) / 1024
            written = sum(1 for _ in out.open())
            raw.append({"n": n, "sentences": written, "seconds": seconds, "rss_mb": rss})
            rows.append([n, written, seconds, written / seconds, rss])
            logger.info("scaling %d: %.1f s, %.0f MB", n, seconds, rss)
    return {
        "raw": raw,
        "table": table(
            ["articles x10", "sentences", "seconds", "sentences/s", "peak RSS MB"], rows
        ),
    }


if __name__ == "__main__":
    engine, model, n, batch_size, device, out = sys.argv[1:7]
    _measure(engine, model, int(n), int(batch_size), device, out)
