"""Shared benchmark helpers: timing, memory, FLOP counts, tables."""

from __future__ import annotations

import csv
import json
import os
import platform
import resource
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from pathlib import Path

import torch

from stance.data.statements import load_statements
from stance.util.atomic import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
SEED_DATA = ROOT / "data" / "withdrawal.jsonl"


def seed_pairs(n: int, claim: str | None = None) -> tuple[list[str], list[str]]:
    """(claims, sentences): the labelled seed statements repeated to `n` pairs."""
    ds = load_statements(SEED_DATA, claim)
    texts, claims = list(ds["text"]), list(ds["claim"])
    reps = -(-n // len(texts))
    return (claims * reps)[:n], (texts * reps)[:n]


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def matmul_gflops(
    sizes: Sequence[int] = (1024, 2048, 3072),
    repeat: int = 5,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
) -> float:
    """Measured dense matmul rate on this machine (best size, best of `repeat`): the MFU ceiling."""
    rates = []
    for size in sizes:
        a = torch.randn(size, size, dtype=dtype, device=device)
        b = torch.randn(size, size, dtype=dtype, device=device)
        best = float("inf")
        for _ in range(repeat):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            a @ b
            if device == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
        rates.append(2 * size**3 / best / 1e9)
    return max(rates)


def encoder_flops(config, lengths: Sequence[int]) -> float:
    """Forward FLOPs of a BERT encoder over sequences of these (unpadded) lengths.

    Per token, every non-embedding weight does one multiply-add (2 FLOPs); attention adds
    QK^T and AV, 4*T*d per token per layer. Training is about 3x this (forward + backward).
    """
    d, layers, ff = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    weights = layers * (4 * d * d + 2 * d * ff)  # Q, K, V, O and the two feed-forward matrices
    return sum(2 * t * weights + 4 * layers * t * t * d + 2 * d * d for t in lengths)


def fnc1_bodies(bodies_csv: str | Path) -> Iterator[tuple[str, str]]:
    """(Body ID, articleBody) of an FNC-1 bodies CSV, in file order (news never trained on)."""
    csv.field_size_limit(1 << 30)  # some bodies are longer than csv's default field limit
    with open(bodies_csv, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            yield row["Body ID"], row["articleBody"]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [
        [
            f"{v:.3g}"
            if isinstance(v, float) and abs(v) < 1000
            else (f"{v:,.0f}" if isinstance(v, float) else str(v))
            for v in row
        ]
        for row in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += [
        "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |"
        for r in cells[1:]
    ]
    return "\n".join(lines)


def machine() -> dict:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {
        "date": date.today().isoformat(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
        "torch": torch.__version__,
        "commit": commit or "uncommitted",
    }


def top_ops(fn: Callable[[], object], rows: int) -> str:
    """torch.profiler's table of the operators taking the most self CPU time while `fn` runs."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def write_json(path: str | None, payload: dict) -> None:
    if path:
        atomic_write_text(path, json.dumps(payload, indent=2) + "\n")
