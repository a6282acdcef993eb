"""Per-linear CPU timings behind `--quantize int8`: the float32 paths, the int8 kernels and the
passes around `torch._int_mm` (scales, rounding), on mpnet's linear shapes at one batch of
rows (32 sentences x 40 tokens), with the CPU's flags and the kernel stance picks for them.

Each op is timed alone, best of `rounds` runs of `repeat` calls, all in one process, so the
ratios are side by side. The row max |x| is timed three ways because one of them
(`linalg.vector_norm(ord=inf)`) was most of int8's overhead until it was measured here.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import torch
from torch import nn

from stance.inference.int8 import DynamicInt8Linear, Int8Linear, _cpu_flags, int8_kernel
from stance.inference.kernels import _Linear

# mpnet / BERT-base: fused QKV, attention output, FFN in, FFN out.
SHAPES = {"qkv": (768, 2304), "attn out": (768, 768), "ffn in": (768, 3072), "ffn out": (3072, 768)}


def best_ms(fn: Callable[[], object], repeat: int, rounds: int) -> float:
    for _ in range(2):
        fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - start) / repeat)
    return best * 1e3


def ops(d_in: int, d_out: int, rows: int) -> dict[str, Callable[[], object]]:
    """The candidates for one linear of this shape, each a no-argument call."""
    torch.manual_seed(0)
    x, linear = torch.randn(rows, d_in), nn.Linear(d_in, d_out)
    packed = _Linear(linear)
    packed.pack()
    int8 = Int8Linear(linear)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fbgemm = DynamicInt8Linear(linear)
    q = torch.randint(-127, 128, (rows, d_in), dtype=torch.int8)
    return {
        "fp32 nn.Linear": lambda: linear(x),
        "fp32 oneDNN prepacked": lambda: packed(x),
        "int8 _int_mm alone": lambda: torch._int_mm(q, int8.weight_t),
        "int8 Int8Linear (whole)": lambda: int8(x),
        "int8 fbgemm dynamic": lambda: fbgemm(x),
        "max|x| amax/amin": lambda: torch.maximum(x.amax(1), x.amin(1).neg_()),
        "max|x| abs().amax()": lambda: x.abs().amax(1),
        "max|x| vector_norm(inf)": lambda: torch.linalg.vector_norm(x, float("inf"), 1),
    }


def run(rows: int, threads: int, repeat: int, rounds: int) -> tuple[list[str], list[list]]:
    """(headers, rows): milliseconds per call of each op on each shape, and x fp32 prepacked."""
    torch.set_num_threads(threads)
    headers = ["op", *(f"{name} {a}x{b} ms" for name, (a, b) in SHAPES.items()), "x fp32 packed"]
    times: dict[str, list[float]] = {}
    with torch.inference_mode():
        for d_in, d_out in SHAPES.values():
            for name, fn in ops(d_in, d_out, rows).items():
                times.setdefault(name, []).append(best_ms(fn, repeat, rounds))
    base = sum(times["fp32 oneDNN prepacked"])
    table = [[name, *ms, f"{base / sum(ms):.2f}x"] for name, ms in times.items()]
    return headers, table


def describe() -> str:
    flags = _cpu_flags() or set()
    shown = sorted(f for f in flags if f in {"avx2", "avx512f", "avx512_vnni", "avx_vnni",
                                             "avx512_bf16", "amx_int8", "amx_bf16"})  # fmt: skip
    return f"CPU flags: {' '.join(shown) or 'none of interest'}; int8 kernel: {int8_kernel()}"
