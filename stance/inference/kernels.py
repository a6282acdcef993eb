"""The networks `StancePredictor` runs: `FastBertClassifier` (a lean BERT forward on the same
weights) and the plain transformers forward for everything else; the int8 linears that can
replace their linears on the CPU are in stance.inference.int8.

The forward contract, honoured by every model kind (cross-encoder, few-shot sentence model,
and whatever a new kind brings): `net(input_ids, attention_mask=None, token_type_ids=None)`
with (B, T) int64 tensors returns logits (B, C). A missing `attention_mask` means "no padding
in this batch": the engine leaves it out of unpadded batches (most length-sorted batches) so
that attention takes its unmasked path and, on CUDA, nothing is read back to find out.

"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

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
