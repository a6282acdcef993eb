"""The networks `StancePredictor` runs: `FastBertClassifier` (a lean BERT forward on the same
weights), int8 linears for the CPU, and the plain transformers forward for everything else.

The forward contract, honoured by every model kind (cross-encoder, few-shot sentence model,
and whatever a new kind brings): `net(input_ids, attention_mask=None, token_type_ids=None)`
with (B, T) int64 tensors returns logits (B, C). A missing `attention_mask` means "no padding
in this batch": the engine leaves it out of unpadded batches (most length-sorted batches) so
that attention takes its unmasked path and, on CUDA, nothing is read back to find out.

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
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
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
        # max |x| in one pass (abs().amax() wrote a temporary), and the int32 sums scaled as
        # they are converted: two fewer passes over the activations, the same numbers.
        largest = torch.linalg.vector_norm(rows, float("inf"), 1, keepdim=True)
        scale = largest.clamp_min_(1e-12).div_(127)  # (N, 1)
        q = torch.div(rows, scale).round_().to(torch.int8)
        y = torch.mul(torch._int_mm(q, self.weight_t), scale)  # (N, out) float32
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


# Activations the fast encoder can fuse into the oneDNN linear: (post-op, algorithm).
_ACTIVATIONS = {
    "gelu": ("gelu", "none"),
    "gelu_pytorch_tanh": ("gelu", "tanh"),
    "relu": ("relu", "none"),
}


class _Linear(nn.Module):
    """nn.Linear (+ activation) that can run as one prepacked oneDNN op on CPU (fp32).

    The weights stay in `self.linear`, so int8 quantisation can swap that module.
    """

    def __init__(self, linear: nn.Linear, act: str | None = None):
        super().__init__()
        self.linear = linear
        self.act = act
        self._packed: torch.Tensor | None = None

    @classmethod
    def fuse(cls, linears: Sequence[nn.Linear]) -> _Linear:
        """One layer computing several that share an input (Q, K, V): one bigger GEMM."""
        weight = torch.cat([m.weight.detach() for m in linears])
        fused = nn.Linear(weight.shape[1], weight.shape[0], device=weight.device)
        with torch.no_grad():
            fused.weight.copy_(weight)
            fused.bias.copy_(torch.cat([m.bias.detach() for m in linears]))
        return cls(fused)

    def pack(self) -> None:
        """Reorder the weight for oneDNN once; the op then fuses bias and activation."""
        self._packed = torch.ops.mkldnn._reorder_linear_weight(self.linear.weight.detach(), None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._packed is not None:
            post, algorithm = _ACTIVATIONS[self.act] if self.act else ("none", "none")
            return torch.ops.mkldnn._linear_pointwise(
                x, self._packed, self.linear.bias, post, [], algorithm
            )
        y = self.linear(x)
        if self.act == "gelu":
            return F.gelu(y)
        if self.act == "gelu_pytorch_tanh":
            return F.gelu(y, approximate="tanh")
        return F.relu(y) if self.act == "relu" else y


class PackedLinears(nn.Module):
    """A network of `_Linear`s that can prepack its float32 ones for oneDNN (CPU)."""

    def pack(self) -> None:
        for m in self.modules():
            if isinstance(m, _Linear) and isinstance(m.linear, nn.Linear):
                m.pack()

    @property
    def packed(self) -> bool:
        return any(isinstance(m, _Linear) and m._packed is not None for m in self.modules())


class FastBertClassifier(PackedLinears):
    """Inference-only forward of a BertForSequenceClassification, on the same weights.

    Same arithmetic, less work: Q, K and V in one GEMM; bias and activation fused into
    prepacked oneDNN linears on CPU; the padding mask built once per batch (none when the
    batch has no padding); and in the last layer only the [CLS] position, the only one the
    classifier reads, goes through attention output and feed-forward. Returns logits.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        bert, config = model.bert, model.config
        self.embeddings = bert.embeddings
        self.heads = config.num_attention_heads
        self.head_size = config.hidden_size // self.heads
        layers = list(bert.encoder.layer)
        self.scaling = float(layers[0].attention.self.scaling)
        self.qkv, self.attn_out, self.ln_attn = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        self.ffn_in, self.ffn_out, self.ln_ffn = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for i, layer in enumerate(layers):
            sa = layer.attention.self
            if i < len(layers) - 1:
                self.qkv.append(_Linear.fuse([sa.query, sa.key, sa.value]))
            else:  # the last layer needs Q of [CLS] only, K and V of every token
                self.last_q = _Linear(sa.query)
                self.last_kv = _Linear.fuse([sa.key, sa.value])
            self.attn_out.append(_Linear(layer.attention.output.dense))
            self.ln_attn.append(layer.attention.output.LayerNorm)
            self.ffn_in.append(_Linear(layer.intermediate.dense, config.hidden_act))
            self.ffn_out.append(_Linear(layer.output.dense))
            self.ln_ffn.append(layer.output.LayerNorm)
        self.pooler = _Linear(bert.pooler.dense)
        self.classifier = model.classifier

    @staticmethod
    def supports(model: nn.Module) -> bool:
        """Plain BERT classifiers only; anything else runs the transformers forward."""
        from transformers import BertForSequenceClassification

        config = model.config
        return (
            type(model) is BertForSequenceClassification
            and not config.is_decoder
            and not getattr(config, "add_cross_attention", False)
            and getattr(config, "position_embedding_type", "absolute") == "absolute"
            and config.hidden_act in _ACTIVATIONS
            and getattr(model.bert, "pooler", None) is not None
        )

    def _split(self, x: torch.Tensor, parts: int) -> torch.Tensor:
        """(B, T, parts*H) -> (parts, B, heads, T, head_size)."""
        b, t = x.shape[:2]
        return x.view(b, t, parts, self.heads, self.head_size).permute(2, 0, 3, 1, 4)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Any) -> torch.Tensor:
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scaling)
        return a.transpose(1, 2).flatten(2)  # (B, T, H)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        h = self.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)  # (B, T, H)
        # No mask at all lets SDPA take its fastest path; length-sorted batches often need none
        # (the predictor leaves the mask out then; testing it here would wait for the GPU).
        mask = None if attention_mask is None else attention_mask[:, None, None, :].bool()
        last = len(self.attn_out) - 1
        for i in range(last + 1):
            if i < last:
                q, k, v = self._split(self.qkv[i](h), 3)
                residual = h
            else:
                residual = h[:, :1]
                q = self._split(self.last_q(residual), 1)[0]
                k, v = self._split(self.last_kv(h), 2)
            h = self.ln_attn[i](self.attn_out[i](self._attend(q, k, v, mask)) + residual)
            h = self.ln_ffn[i](self.ffn_out[i](self.ffn_in[i](h)) + h)
        return self.classifier(torch.tanh(self.pooler(h[:, 0])))


def ffn_layer(name: str) -> bool:
    """The few-shot body's feed-forward linears, named as in the transformers model: int8's
    choice only on the fallback path (no FastSentenceClassifier), where it keeps the earlier,
    more cautious policy; the fast path quantises every encoder linear (its int8_layer)."""
    ffn = "intermediate.dense" in name or name.endswith("output.dense")
    return ffn and "attention" not in name  # BERT's attention.output.dense is no FFN


def int8_layer(name: str) -> bool:
    """Which FastBertClassifier linears int8 quantises: all but the pooler and classifier.

    Those two see one vector per sentence (no speed to gain) and move the label most directly.
    """
    return not name.startswith(("pooler", "classifier"))


class TransformersForward(nn.Module):
    """Any sequence classifier through its own forward; returns logits."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, **batch: torch.Tensor) -> torch.Tensor:
        return self.model(**batch).logits
