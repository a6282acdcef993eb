"""`FastSentenceClassifier`: the few-shot kind's inference forward (body -> mean pooling -> L2
norm -> linear head) over the same weights, for BERT bodies (MiniLM, the tiny test body) and
MPNet bodies (all-mpnet-base-v2, the default).

Same arithmetic as sentence-transformers' path, less work on the CPU (profiled on mpnet, batch
32 x 40 tokens: 15% of the time in copies, 5% in a separate GELU pass, 8% in attention's
matmul/softmax/add): Q, K and V in one prepacked oneDNN GEMM; bias and GELU fused into the
linears; PyTorch's SDPA reading strided Q, K, V (no copies); MPNet's relative position bias
computed once per length and broadcast over the batch instead of copied per sentence. It is
checked against the reference forward at load time (StancePredictor) and used only where it
agrees. Honours the forward contract of stance.inference.kernels (no mask: no padding).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .kernels import _ACTIVATIONS, PackedLinears, _Linear


class _Layer(nn.Module):
    """One encoder layer's weights, whatever the architecture named them."""

    def __init__(self, qkv: list[nn.Linear], out: nn.Linear, ln_attn: nn.Module, layer: Any, act):
        super().__init__()
        self.qkv = _Linear.fuse(qkv)
        self.attn_out = _Linear(out)
        self.ln_attn = ln_attn
        self.ffn_in = _Linear(layer.intermediate.dense, act)
        self.ffn_out = _Linear(layer.output.dense)
        self.ln_ffn = layer.output.LayerNorm


def _bert_layer(layer: Any, act: str) -> _Layer:
    sa = layer.attention.self
    out = layer.attention.output
    return _Layer([sa.query, sa.key, sa.value], out.dense, out.LayerNorm, layer, act)


def _mpnet_layer(layer: Any, act: str) -> _Layer:
    at = layer.attention
    return _Layer([at.attn.q, at.attn.k, at.attn.v], at.attn.o, at.LayerNorm, layer, act)


class FastSentenceClassifier(PackedLinears):
    """Inference-only forward of a stance.fewshot.SentenceStanceClassifier; returns logits."""

    def __init__(self, model: nn.Module):
        super().__init__()
        encoder = model.body[0].auto_model
        config = encoder.config
        self.mpnet = config.model_type == "mpnet"
        self.embeddings = encoder.embeddings
        self.heads = config.num_attention_heads
        self.head_size = config.hidden_size // self.heads
        make = _mpnet_layer if self.mpnet else _bert_layer
        self.layers = nn.ModuleList(
            make(layer, config.hidden_act) for layer in encoder.encoder.layer
        )
        self.scaling = self.head_size**-0.5
        self.encoder = encoder.encoder  # MPNet: relative_attention_bias and its bucketing
        self.head = model.head
        self._bias_cache: dict[tuple[int, Any, Any], torch.Tensor] = {}

    @staticmethod
    def supports(model: nn.Module) -> bool:
        """Mean-pooled BERT or MPNet bodies with an activation the linears can fuse."""
        try:
            transformer, pooling = model.body[0], model.body[1]
            config = transformer.auto_model.config
            mean = pooling.get_config_dict().get("pooling_mode") == "mean"
        except (AttributeError, IndexError, TypeError, KeyError):
            return False
        bert = config.model_type == "bert" and (
            getattr(config, "position_embedding_type", "absolute") == "absolute"
            and not config.is_decoder
        )
        return (
            mean and (bert or config.model_type == "mpnet") and (config.hidden_act in _ACTIVATIONS)
        )

    @staticmethod
    def int8_layer(name: str) -> bool:
        """Every encoder linear, not the head: the head sees one vector per sentence (nothing
        to gain) and moves the label most directly. With per-row activation scales
        (Int8Linear) all four linears of a layer in int8 agreed with float32 on every seed
        and variant label of the mpnet default (scripts/bench_fewshot.py)."""
        return name.startswith("layers.")

    def _position_bias(self, length: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """MPNet's relative position bias (1, heads, T, T), once per length (weights fixed)."""
        key = (length, dtype, device)
        if key not in self._bias_cache:
            probe = torch.empty(1, length, 1, device=device)
            self._bias_cache[key] = self.encoder.compute_position_bias(probe).to(dtype)
        return self._bias_cache[key]

    def _mask(self, attention_mask: torch.Tensor | None, h: torch.Tensor) -> Any:
        """SDPA's mask: None, a boolean padding mask, or an additive float mask (MPNet)."""
        pad = None if attention_mask is None else attention_mask[:, None, None, :].bool()
        if not self.mpnet:
            return pad
        bias = self._position_bias(h.shape[1], h.dtype, h.device)
        if pad is None:
            return bias
        return bias.masked_fill(~pad, torch.finfo(h.dtype).min)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self.mpnet:
            h = self.embeddings(input_ids=input_ids)
        else:
            h = self.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        mask = self._mask(attention_mask, h)
        b, t = h.shape[:2]
        for layer in self.layers:
            q, k, v = layer.qkv(h).view(b, t, 3, self.heads, self.head_size).permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scaling)
            h = layer.ln_attn(layer.attn_out(a.transpose(1, 2).flatten(2)) + h)
            h = layer.ln_ffn(layer.ffn_out(layer.ffn_in(h)) + h)
        if attention_mask is None:
            pooled = h.mean(1)
        else:
            weights = attention_mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        features = F.normalize(pooled.float(), dim=-1).to(pooled.dtype)  # as the model does
        return self.head(features)
