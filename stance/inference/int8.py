"""int8 on the CPU: which kernel this CPU runs fast, and the linears that use it.

int8 (`quantize_int8`) picks its kernel once per process from what the CPU offers
(`int8_kernel`): torch._int_mm with per-row scales where the CPU has 8-bit dot products (x86
VNNI or AMX; elsewhere where a timed probe finds it faster than float32); float32, with a
warning, on x86 CPUs with AVX2 but no VNNI, where _int_mm runs ~50x slower than a float32
GEMM. torch's fbgemm dynamic quantisation is fast there (1.46x a float32 GEMM) but its one
7-bit scale per batch changed 8-10% of the mpnet default's seed labels, so it is opt-in
(STANCE_INT8_KERNEL=fbgemm), not a silent fallback.
"""

from __future__ import annotations

import functools
import logging
import os
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import StanceError

logger = logging.getLogger(__name__)

INT8_KERNELS = ("int_mm", "fbgemm", "none")
# CPU flags (Linux /proc/cpuinfo) with 8-bit dot products that oneDNN's int8 GEMM uses.
_VNNI = {"avx512_vnni", "avx_vnni", "amx_int8", "avx_vnni_int8"}


def _cpu_flags() -> set[str] | None:
    """The CPU's feature flags (x86 Linux), or None where /proc/cpuinfo has none."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return None


def _faster_than_float32(run: Callable[[], Any], reference: Callable[[], Any]) -> bool:
    """Best of 3 each, after one warm-up: `run` at least 10% faster than `reference`."""

    def best(f: Callable[[], Any]) -> float:
        f()
        times = []
        for _ in range(3):
            start = time.perf_counter()
            f()
            times.append(time.perf_counter() - start)
        return min(times)

    return best(run) < 0.9 * best(reference)


def _probe_int_mm() -> bool:
    """Where the flags say nothing (not x86 Linux): time _int_mm against a float32 GEMM."""
    x, w = torch.randn(256, 768), torch.randn(768, 768)
    qx, qw = x.to(torch.int8), w.to(torch.int8)
    try:
        return _faster_than_float32(lambda: torch._int_mm(qx, qw), lambda: x @ w)
    except RuntimeError:  # no CPU kernel in this build
        return False


@functools.cache
def int8_kernel() -> str:
    """The int8 kernel for this CPU, decided once per process: one of INT8_KERNELS.

    `int_mm`: oneDNN's int8 GEMM with per-row activation scales (Int8Linear); fast with
    VNNI/AMX. `none`: no int8 kernel here that is both fast and faithful; float32 instead.
    `fbgemm` (torch's dynamic quantisation, DynamicInt8Linear) only when forced:
    STANCE_INT8_KERNEL=int_mm|fbgemm|none overrides the choice.
    """
    forced = os.environ.get("STANCE_INT8_KERNEL", "").strip()
    if forced:
        if forced not in INT8_KERNELS:
            raise StanceError(f"STANCE_INT8_KERNEL must be one of {INT8_KERNELS}, not {forced!r}")
        return forced
    flags = _cpu_flags()
    has_int_mm = hasattr(torch, "_int_mm")
    if flags is not None and "avx2" in flags:  # x86: the flags decide, no timing noise
        return "int_mm" if has_int_mm and flags & _VNNI else "none"
    return "int_mm" if has_int_mm and _probe_int_mm() else "none"


def kernel_for(quantize: str) -> str | None:
    """The int8 kernel to use for `--quantize quantize` (none|int8): None means float32, with
    a warning where int8 was asked for and this CPU has no fast, faithful kernel."""
    if quantize != "int8":
        return None
    kernel = int8_kernel()
    if kernel == "none":
        why = (
            "STANCE_INT8_KERNEL=none"
            if os.environ.get("STANCE_INT8_KERNEL")
            else (
                "this CPU has no VNNI/AMX int8 dot products, so int8 would run slower than "
                "float32 (STANCE_INT8_KERNEL=fbgemm forces torch's coarser dynamic int8)"
            )
        )
        logger.warning("--quantize int8: running float32 instead (%s)", why)
        return None
    logger.info("int8 kernel: %s", kernel)
    return kernel


class Int8Linear(nn.Module):
    """nn.Linear in int8 arithmetic: y = (x W^T) + b with int8 x and W, int32 sums.

    W has one scale per output channel, fixed at load time; x one scale per row (per token),
    taken from that row's largest magnitude at run time. torch.ao's dynamic quantisation uses
    one scale per tensor instead (7-bit on x86), so a single outlier token coarsens every
    other token of the batch and a sentence's answer depends on its batch mates; per-row
    scales cost a few elementwise passes and keep each row's error independent of the rest.
    """

    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight = linear.weight.detach().float()  # (out, in)
        scale = weight.abs().amax(1).clamp_min(1e-12) / 127  # (out,)
        # (in, out) as a transposed view: the column-major layout _int_mm reads fastest.
        self.register_buffer("weight_t", torch.round(weight / scale[:, None]).to(torch.int8).t())
        self.register_buffer("weight_scale", scale)
        bias = linear.bias.detach().float() if linear.bias is not None else torch.zeros_like(scale)
        self.register_buffer("bias", bias)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)  # (N, in)
        # max |x| = max(max x, -min x): the same number as abs().amax() without a temporary.
        # Measured (1280 x 3072 float32, 1 thread, scripts/bench_int8.py): amax + amin 0.4 ms,
        # abs().amax() 1.0 ms, linalg.vector_norm(ord=inf) 10.3 ms (no vectorised kernel):
        # that norm was most of int8's overhead.
        largest = torch.maximum(rows.amax(1, keepdim=True), rows.amin(1, keepdim=True).neg_())
        scale = largest.clamp_min_(1e-12).div_(127)  # (N, 1)
        q = torch.div(rows, scale).round_().to(torch.int8)
        # Convert, then scale in place: the same numbers as mul(int32, float), which converts
        # inside a mixed-dtype loop ~25% slower (1280 x 3072 sums, one thread).
        y = torch._int_mm(q, self.weight_t).float().mul_(scale)  # (N, out)
        torch.addcmul(self.bias, y, self.weight_scale, out=y)
        return y.view(*x.shape[:-1], self.out_features)


class DynamicInt8Linear(nn.Module):
    """nn.Linear through torch's fbgemm dynamic quantisation (opt-in: STANCE_INT8_KERNEL=fbgemm):
    per-channel int8 weights packed once, activations quantised with one 7-bit scale per batch
    (`reduce_range`, so AVX2's 16-bit pairwise sums cannot saturate). Fast on CPUs without
    VNNI, but coarse: a sentence's probabilities move with its batch mates, and on the mpnet
    default it changed 8-10% of the seed labels (scripts/bench_fewshot.py)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(1).clamp_min(1e-12) / 127
        zero = torch.zeros(weight.shape[0], dtype=torch.long)
        bias = linear.bias.detach().float() if linear.bias is not None else None
        with warnings.catch_warnings():  # quantized tensors are deprecated, the op is not
            warnings.simplefilter("ignore")
            qweight = torch.quantize_per_channel(weight, scale.double(), zero, 0, torch.qint8)
            self._packed = torch.ops.quantized.linear_prepack(qweight, bias)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).float().contiguous()
        y = torch.ops.quantized.linear_dynamic(rows, self._packed, True)
        return y.view(*x.shape[:-1], self.out_features)


def quantize_int8(
    model: nn.Module, only: Callable[[str], bool] | None = None, kernel: str = "int_mm"
) -> nn.Module:
    """Swap nn.Linear layers for int8 ones in place; `only(name)` picks them (default: all);
    `kernel`: 'int_mm' (Int8Linear) or 'fbgemm' (DynamicInt8Linear), see int8_kernel."""
    if kernel == "int_mm" and not hasattr(torch, "_int_mm"):
        raise StanceError(f"--quantize int8 needs torch._int_mm (torch {torch.__version__})")
    if kernel not in ("int_mm", "fbgemm"):
        raise StanceError(f"no int8 kernel {kernel!r}")
    layer = Int8Linear if kernel == "int_mm" else DynamicInt8Linear
    if kernel == "fbgemm" and "x86" in torch.backends.quantized.supported_engines:
        torch.backends.quantized.engine = "x86"  # fbgemm's kernels, torch's default engine
    targets = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and (only is None or only(name))
    ]
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, layer(module))
    return model
