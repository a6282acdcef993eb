"""The inference engine behind `stance predict`: a trained classifier, fast batched forward.

`StancePredictor.classify` tokenises (claim, sentence) pairs in windows with the fast
tokenizer, sorts each window by token length, cuts it into batches padded only to their own
longest pair, runs them under `torch.inference_mode` and scatters the probabilities back to
input order. Truncation is `longest_first` at `max_length`, as in training, and every
truncated pair is flagged. On CUDA the weights are bf16 (fp16 where bf16 is unsupported),
batches are copied from pinned memory without waiting, logits are read back once a window,
and the next window is tokenised on a thread meanwhile; `quantize="int8"` runs the nn.Linear
layers in int8 (CPU).
BERT models run through `FastBertClassifier`, a lean forward over the same weights that is
checked against the transformers forward at load time (and falls back to it on mismatch).
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import InputError, StanceError
from .labels import LABELS
from .predict_options import DEFAULT_BATCH_SIZE, DEFAULT_CHUNK_CHARS  # noqa: F401 (re-exported)
from .segment import normalise, split_sentences

logger = logging.getLogger(__name__)

SORT_WINDOW = 4096
DECIMALS = 6
PROB_COLUMNS: tuple[str, ...] = tuple(f"p_{label}" for label in LABELS)
# on_claim: whether the sentence bears on the claim (stance.relevance; null when not judged),
# claim_similarity: the cosine that decided it, furniture: the page-furniture cue it matched.
RELEVANCE_COLUMNS: tuple[str, ...] = ("on_claim", "claim_similarity", "furniture")
COLUMNS: tuple[str, ...] = (
    *("article_id", "sentence_index", "text", "label", "score"),
    *PROB_COLUMNS,
    *RELEVANCE_COLUMNS,
)
PROBE = "A longer probe sentence, so that the batch has padding in it, to check the encoder."

Progress = Callable[[int], None]
# A window's token ids, type ids (None: the model reads none) and truncated flags.
Window = tuple[list[list[int]], list[list[int]] | None, np.ndarray]


# ---------------------------------------------------------------- records


@dataclass(frozen=True)
class Article:
    """One article to classify; `source` and `line` say where it came from (for messages)."""

    article_id: str
    text: str
    source: str = "<api>"
    line: int | None = None


@dataclass(frozen=True)
class InputFailure:
    """An input (or one JSONL line) that could not be used; `error` names it."""

    input: str
    line: int | None
    error: str

    @classmethod
    def from_error(cls, e: InputError, name: str) -> InputFailure:
        return cls(e.path or name, e.line, str(e))


@dataclass
class SentencePrediction:
    """The stance of one sentence; `probs` has every label, `score` is probs[label]."""

    article_id: str
    sentence_index: int
    text: str
    label: str
    score: float
    probs: dict[str, float]
    truncated: bool = False
    on_claim: bool | None = None  # None: relevance not judged
    claim_similarity: float | None = None
    furniture: str | None = None

    def as_row(self) -> dict[str, Any]:
        """The output row: COLUMNS, with flat p_<label> probabilities."""
        return output_row(
            self.article_id, self.sentence_index, self.text, LABELS.index(self.label),
            [self.probs[label] for label in LABELS], self.on_claim, self.claim_similarity,
            self.furniture,
        )  # fmt: skip


def output_row(
    article_id: str,
    index: int,
    text: str,
    label_id: int,
    probs: Sequence[float],
    on_claim: bool | None,
    similarity: float | None,
    furniture: str | None,
) -> dict[str, Any]:
    """One row of `stance predict`'s output (COLUMNS); probabilities in LABELS order."""
    row = {
        "article_id": article_id,
        "sentence_index": index,
        "text": text,
        "label": LABELS[label_id],
        "score": probs[label_id],
    }
    row.update(zip(PROB_COLUMNS, probs, strict=True))
    row.update(on_claim=on_claim, claim_similarity=similarity, furniture=furniture)
    return row


@dataclass
class ArticleResult:
    """Every sentence of one article with its probabilities (N, len(LABELS)) in LABELS order."""

    article_id: str
    sentences: list[str]
    probs: np.ndarray
    truncated: np.ndarray
    relevance: Any = None  # stance.relevance.Relevance, when judged

    @property
    def label_ids(self) -> np.ndarray:
        return self.probs.argmax(axis=1) if len(self.sentences) else np.zeros(0, dtype=int)

    def predictions(self) -> list[SentencePrediction]:
        out = []
        for i, (text, k, p, t) in enumerate(
            zip(self.sentences, self.label_ids, self.probs, self.truncated, strict=True)
        ):
            probs = {label: float(x) for label, x in zip(LABELS, p, strict=True)}
            pred = SentencePrediction(
                self.article_id, i, text, LABELS[k], float(p[k]), probs, bool(t)
            )
            if self.relevance is not None:
                pred.on_claim = bool(self.relevance.on_claim[i])
                pred.claim_similarity = round(float(self.relevance.similarity[i]), DECIMALS)
                pred.furniture = self.relevance.cues[i]
            out.append(pred)
        return out

    def to_record(self) -> dict[str, Any]:
        """The compact form kept in the sidecar (probabilities already rounded)."""
        # float64 before rounding, so the stored decimals print short (0.412345, not 0.41234499...).
        probs = self.probs.astype(np.float64).round(DECIMALS)
        record = {
            "id": self.article_id,
            "sentences": self.sentences,
            "labels": self.label_ids.tolist(),
            "probs": probs.tolist(),
            "truncated": np.flatnonzero(self.truncated).tolist(),
        }
        if self.relevance is not None:
            rel = self.relevance
            record["on_claim"] = rel.on_claim.tolist()
            record["similarity"] = rel.similarity.astype(np.float64).round(DECIMALS).tolist()
            record["furniture"] = rel.cues
        return record


def record_rows(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Output rows of one sidecar article record."""
    n = len(record["sentences"])
    on_claim = record.get("on_claim", [None] * n)
    similarity = record.get("similarity", [None] * n)
    furniture = record.get("furniture", [None] * n)
    for i, (text, k, probs) in enumerate(
        zip(record["sentences"], record["labels"], record["probs"], strict=True)
    ):
        yield output_row(record["id"], i, text, k, probs, on_claim[i], similarity[i], furniture[i])


# ---------------------------------------------------------------- engine


def _load_libc() -> Any:
    """glibc, for malloc_trim and mallopt; None elsewhere (musl, macOS, Windows)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018 - both must exist
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _load_libc()
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h


def tune_allocator() -> None:
    """Serve batch-sized tensors from the heap rather than from fresh mmaps.

    glibc hands blocks over 128 KB to mmap until frees teach it otherwise, and every fresh
    mmap page faults on first touch: on this project's 2-core VM a new process's int8 passes
    ran about a third slower than with this. Fixed thresholds of 32 MB (glibc's maximum)
    keep those blocks on the heap for reuse; release_memory() still returns them between
    chunks. Process-wide, glibc only, called by StancePredictor on CPU.
    """
    if _LIBC is not None:
        _LIBC.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
        _LIBC.mallopt(_M_TRIM_THRESHOLD, 64 << 20)


def release_memory() -> None:
    """Hand freed heap pages back to the OS between chunks.

    Batches of different shapes leave glibc's heap fragmented, so without this a long run's
    resident memory creeps up with the corpus even though live memory does not.
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def resolve_device(device: str | torch.device) -> torch.device:
    """`auto`: CUDA when available, else CPU. Asking for CUDA without one is an error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise StanceError("--device cuda: no CUDA device is available (use --device cpu)")
    return dev


def _set_threads(num_threads: int | None) -> None:
    """Use the CPUs this process may run on; torch may count cores it cannot use."""
    if num_threads:
        torch.set_num_threads(num_threads)
        return
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    if torch.get_num_threads() > available:
        torch.set_num_threads(available)


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
        scale = rows.abs().amax(1, keepdim=True).clamp_min_(1e-12).div_(127)  # (N, 1)
        q = (rows / scale).round_().to(torch.int8)
        y = torch._int_mm(q, self.weight_t).float().mul_(scale)  # (N, out)
        torch.addcmul(self.bias, y, self.weight_scale, out=y)
        return y.view(*x.shape[:-1], self.out_features)


def quantize_int8(model: nn.Module, only: Callable[[str], bool] | None = None) -> nn.Module:
    """Swap nn.Linear layers for Int8Linear in place; `only(name)` picks them (default: all)."""
    if not hasattr(torch, "_int_mm"):
        raise StanceError(f"--quantize int8 needs torch._int_mm (torch {torch.__version__})")
    targets = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and (only is None or only(name))
    ]
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, Int8Linear(module))
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


class FastBertClassifier(nn.Module):
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

    def pack(self) -> None:
        for m in self.modules():
            if isinstance(m, _Linear) and isinstance(m.linear, nn.Linear):
                m.pack()

    @property
    def packed(self) -> bool:
        return any(isinstance(m, _Linear) and m._packed is not None for m in self.modules())

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


def _ffn_layer(name: str) -> bool:
    """The few-shot body's feed-forward linears (2/3 of a layer's GEMM work). Quantising the
    attention projections too flipped a seed sentence of the mpnet default, and agreed
    less on unseen news sentences (scripts/bench_fewshot.py; BENCHMARKS.md)."""
    ffn = "intermediate.dense" in name or name.endswith("output.dense")
    return ffn and "attention" not in name  # BERT's attention.output.dense is no FFN


def _int8_layer(name: str) -> bool:
    """Which FastBertClassifier linears int8 quantises: all but the pooler and classifier.

    Those two see one vector per sentence (no speed to gain) and move the label most directly.
    """
    return not name.startswith(("pooler", "classifier"))


class _TransformersForward(nn.Module):
    """Any sequence classifier through its own forward; returns logits."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, **batch: torch.Tensor) -> torch.Tensor:
        return self.model(**batch).logits


class StancePredictor:
    """A trained stance classifier ready for fast batched inference.

    `claim`: default the model's (`config.stance_claim`); `max_length`: default the run's
    trained one (stance.rundir.load_run); `device`: auto|cpu|cuda[:n];
    `quantize`: none|int8 (CPU only); `fast`: use FastBertClassifier for BERT models
    (checked against the transformers forward at load time); `relevance`: judge whether each
    sentence bears on the claim (stance.relevance): False (off), True (the bundled MiniLM
    embedder, loaded once) or an `Embedder` to use instead.
    """

    def __init__(
        self,
        model_dir: str | Path,
        claim: str | None = None,
        device: str | torch.device = "auto",
        quantize: str = "none",
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_length: int | None = None,
        num_threads: int | None = None,
        window: int = SORT_WINDOW,
        fast: bool = True,
        relevance: Any = False,
        relevance_threshold: float | None = None,
    ):
        from .modeling import load_classifier
        from .rundir import load_run

        if quantize not in ("none", "int8"):
            raise StanceError(f"quantize must be 'none' or 'int8', not {quantize!r}")
        if batch_size < 1 or window < 1:
            raise StanceError("batch_size and window must be positive")
        self.model_dir = Path(model_dir)
        # int8 kernels are CPU kernels: `auto` means the CPU then, even beside a GPU.
        self.device = resolve_device("cpu" if quantize == "int8" and device == "auto" else device)
        if quantize == "int8" and self.device.type != "cpu":
            raise StanceError("--quantize int8 is a CPU optimisation; use it with --device cpu")
        if self.device.type == "cpu":
            _set_threads(num_threads)
            tune_allocator()
        self.quantize = quantize
        self.batch_size = batch_size
        self.window = window
        # Threads tokenising ahead of the GPU (0: tokenise in turn, as on the CPU).
        self.tokenizer_threads = min(8, os.cpu_count() or 1) if self.device.type == "cuda" else 0

        model, tokenizer = load_classifier(self.model_dir)
        run = load_run(self.model_dir)
        saved_claim = run.saved_claim
        if claim is None and not saved_claim:
            logger.warning("%s carries no stance_claim; using the default claim", model_dir)
        self.claim: str = normalise(claim if claim is not None else run.claim)
        if not self.claim:
            raise StanceError("the claim is empty")
        # A sentence model (stance.fewshot) reads the statement alone: its head knows one claim.
        self.pairs = getattr(model.config, "stance_kind", None) != "sentence"
        self.context_weight = float(getattr(model.config, "stance_context_weight", 0.0))
        if self.context_weight:  # in LABELS order, as the few-shot head is
            self._head_bias = model.head.bias.detach().float().cpu().numpy()
        if not self.pairs and self.claim != normalise(saved_claim or ""):
            raise StanceError(
                f"{model_dir} is a few-shot model of one claim ({saved_claim!r}); it cannot "
                f"judge {self.claim!r}. Train one for that claim, or use a cross-encoder model."
            )
        self.relevance = _relevance_scorer(relevance, self.claim, relevance_threshold)

        self.max_length = max_length if max_length is not None else run.max_length
        limit = getattr(model.config, "max_position_embeddings", None)
        if limit and self.max_length > limit:
            logger.warning("max_length %d > the model's %d positions", self.max_length, limit)
            self.max_length = int(limit)
        if self.max_length < tokenizer.num_special_tokens_to_add(pair=True) + 2:
            raise StanceError(f"max_length {self.max_length} is too short for a claim pair")

        # Columns of the model's logits in LABELS order (id2label order may differ).
        label2id = {name: int(i) for i, name in model.config.id2label.items()}
        self._columns = torch.tensor([label2id[label] for label in LABELS])
        self._token_types = "token_type_ids" in tokenizer.model_input_names
        self._pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._encoder = self._make_encoder(tokenizer)
        self._bucket = 1  # see _collate; set for real once the net is known

        self.model = model.to(self.device).eval()  # the transformers model, as loaded
        self.net = self._build_net(fast)  # checked against transformers in float32
        # On CUDA the weights themselves go to bf16 (fp16 where bf16 is unsupported): no
        # autocast casts per op, half the weight traffic. Logits are read back as float32.
        self.compute_dtype = torch.float32
        if self.device.type == "cuda":
            bf16 = torch.cuda.is_bf16_supported()
            self.compute_dtype = torch.bfloat16 if bf16 else torch.float16
            self.net.to(self.compute_dtype)
        # oneDNN (prepacked fp32 linears, int8 _int_mm) keeps compiled kernels for every GEMM
        # shape it meets, so memory would grow with the number of distinct (rows, length) pairs;
        # multiples of 8 bound them at ~4 padding tokens per pair; on CUDA they suit tensor cores.
        packed = isinstance(self.net, FastBertClassifier) and self.net.packed
        self._bucket = 8 if packed or self.quantize == "int8" or self.device.type == "cuda" else 1

    def _build_net(self, fast: bool) -> nn.Module:
        """The module that maps a batch to logits: the fast encoder where it is exact."""
        reference = _TransformersForward(self.model).eval()
        net: nn.Module = reference
        if fast and FastBertClassifier.supports(self.model):
            candidate = FastBertClassifier(self.model).to(self.device).eval()
            if self.device.type == "cpu" and self.quantize == "none":
                try:
                    candidate.pack()
                except (RuntimeError, AttributeError) as e:  # a torch without oneDNN linear
                    logger.debug("oneDNN prepacking unavailable (%s)", e)
            # Checked on a probe batch (with padding): a transformers upgrade that changes
            # BERT must not change the answers silently.
            encodings = self.encode([(self.claim, "A probe."), (self.claim, PROBE)])[0]
            probe = self._collate([e.ids for e in encodings], [e.type_ids for e in encodings])
            probe = self._to_device(probe)  # collated on the CPU, like every batch
            with torch.inference_mode():
                theirs = reference(**probe)
                try:  # the oneDNN ops are torch internals: a failure means "not here"
                    ours = candidate(**probe)
                except (RuntimeError, NotImplementedError) as e:
                    logger.warning("fast encoder unavailable (%s); using transformers", e)
                    ours = None
            if ours is not None and torch.allclose(ours, theirs, atol=1e-4, rtol=1e-4):
                net = candidate
            elif ours is not None:
                diff = (ours - theirs).abs().max().item()
                logger.warning("fast encoder differs from transformers by %.2g; not used", diff)
        if self.quantize == "int8":
            only = _int8_layer if isinstance(net, FastBertClassifier) else None
            if not self.pairs:
                only = _ffn_layer
            net = quantize_int8(net, only)
        return net.eval()

    def _make_encoder(self, tokenizer: Any) -> Any:
        """A private copy of the Rust tokenizer, truncating pairs longest-first like training."""
        from tokenizers import Tokenizer

        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise StanceError(f"{self.model_dir}: needs a fast (Rust-backed) tokenizer")
        # A copy: the transformers tokenizer re-configures its backend on every call.
        encoder = Tokenizer.from_str(backend.to_str())
        encoder.no_padding()
        encoder.enable_truncation(self.max_length, strategy="longest_first")
        return encoder

    @property
    def precision(self) -> str:
        """What the numbers are computed in; part of the sidecar header (results depend on it)."""
        if self.quantize == "int8":
            return "int8"
        return str(self.compute_dtype).replace("torch.", "")

    def relevance_settings(self) -> dict[str, Any] | None:
        """How relevance is judged (None: it is not); outputs depend on it."""
        return self.relevance.settings() if self.relevance is not None else None

    def _inputs(self, pairs: list[tuple[str, str]]) -> list[tuple[str, str]] | list[str]:
        """What the tokenizer reads: the pairs, or for a one-claim model the statements."""
        if self.pairs:
            return pairs
        if any(normalise(claim) != self.claim for claim, _ in pairs):
            raise StanceError(f"{self.model_dir} judges one claim only: {self.claim!r}")
        return [text for _, text in pairs]

    def encode(
        self, pairs: Sequence[tuple[str, str]] | Sequence[str]
    ) -> tuple[list[Any], np.ndarray]:
        """Rust encodings of (claim, sentence) pairs and whether each was truncated."""
        encode = getattr(self._encoder, "encode_batch_fast", self._encoder.encode_batch)
        encodings = encode(list(pairs))
        truncated = np.fromiter((bool(e.overflowing) for e in encodings), bool, len(encodings))
        return encodings, truncated

    def _collate(
        self, ids: Sequence[Sequence[int]], types: Sequence[Sequence[int]] | None = None
    ) -> dict[str, torch.Tensor]:
        """Pad a batch of token-id rows to its own longest, rounded up to a multiple of `_bucket`.

        With `_bucket` > 1 the rows are rounded up too, with copies of the first row (the
        caller keeps only the real rows). A batch without padding gets no attention mask: the
        encoders then skip masking, and on CUDA nothing has to be read back to find that out.
        """
        step = self._bucket
        rows = list(ids) + [ids[0]] * (-(-len(ids) // step) * step - len(ids))
        lengths = np.fromiter(map(len, rows), np.int64, len(rows))
        longest = int(-(-lengths.max() // step) * step)
        # Filler rows copy a real one: an all-padding row would be fully masked (NaN in SDPA).
        mask = np.arange(longest) < lengths[:, None]  # (B, T)
        # One flat copy per column instead of a Python loop over rows (the loop capped GPU
        # prediction at the host's pace).
        out = np.full((len(rows), longest), self._pad_id, dtype=np.int64)
        out[mask] = np.fromiter(chain.from_iterable(rows), np.int64, int(lengths.sum()))
        batch = {"input_ids": out}
        if not mask.all():
            batch["attention_mask"] = mask.astype(np.int64)
        if self._token_types:
            type_rows = list(types) + [types[0]] * (len(rows) - len(types)) if types else None
            tt = np.zeros((len(rows), longest), dtype=np.int64)
            if type_rows is not None:
                tt[mask] = np.fromiter(chain.from_iterable(type_rows), np.int64, int(lengths.sum()))
            batch["token_type_ids"] = tt
        return {k: torch.from_numpy(v) for k, v in batch.items()}

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A CPU-collated batch on the model's device (unchanged on the CPU)."""
        if self.device.type == "cpu":
            return batch
        if self.device.type == "cuda":
            # Pinned host memory lets the copy run asynchronously with the previous kernel;
            # the softmax's copy back to the host orders it before the result is read.
            return {k: v.pin_memory().to(self.device, non_blocking=True) for k, v in batch.items()}
        return {k: v.to(self.device) for k, v in batch.items()}

    @torch.inference_mode()
    def _forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits (B, C) in the model's column order, left on the device: nothing here waits
        for the GPU, so the host prepares the next batch while this one runs."""
        return self.net(**self._to_device(batch))

    def _window_logits(
        self,
        ids: Sequence[Sequence[int]],
        types: Sequence[Sequence[int]] | None,
        progress: Progress | None,
    ) -> np.ndarray:
        """Logits (N, len(LABELS)) of one window's token rows, in LABELS order, rows in order."""
        order = np.argsort(np.fromiter(map(len, ids), np.int64, len(ids)), kind="stable")
        outs = []
        for b in range(0, len(order), self.batch_size):
            sel = order[b : b + self.batch_size]  # similar lengths share a batch
            rows = [ids[i] for i in sel]
            batch = self._collate(rows, [types[i] for i in sel] if types is not None else None)
            outs.append(self._forward(batch)[: len(sel)])
            if progress is not None:
                progress(len(sel))
        # One read-back per window; columns picked on the host (no index tensor per batch).
        sorted_logits = torch.cat(outs).float().cpu()[:, self._columns].numpy()
        logits = np.empty_like(sorted_logits)
        logits[order] = sorted_logits
        return logits

    def _encode_window(self, items: Sequence[str] | Sequence[tuple[str, str]]) -> Window:
        """A window's token ids (and type ids where the model reads them) as lists, and the
        truncated flags."""
        pairs = [(self.claim, s) if isinstance(s, str) else (s[0], s[1]) for s in items]
        encodings, truncated = self.encode(self._inputs(pairs))
        types = [e.type_ids for e in encodings] if self._token_types else None
        return [e.ids for e in encodings], types, truncated

    def _windows(self, items: Sequence[str] | Sequence[tuple[str, str]]) -> Iterator[Window]:
        """Each window of `items`, encoded. With `tokenizer_threads` (on CUDA) the next windows
        are tokenised on threads while the GPU works (the Rust tokenizer releases the GIL, and
        threads scale whatever TOKENIZERS_PARALLELISM says); on the CPU the forward already
        uses every core, so windows are tokenised in turn."""
        windows = (items[i : i + self.window] for i in range(0, len(items), self.window))
        if not self.tokenizer_threads:
            yield from map(self._encode_window, windows)
            return
        with ThreadPoolExecutor(self.tokenizer_threads, "stance-tokenise") as pool:
            ahead: deque[Future[Window]] = deque()
            for window in windows:
                ahead.append(pool.submit(self._encode_window, window))
                if len(ahead) > self.tokenizer_threads:
                    yield ahead.popleft().result()
            while ahead:
                yield ahead.popleft().result()

    def classify_detailed(
        self,
        items: Sequence[str] | Sequence[tuple[str, str]],
        progress: Progress | None = None,
        neighbours: Sequence[tuple[int, int]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities (N, len(LABELS)) in input order, and a truncated flag per item.

        `items`: sentences (paired with this predictor's claim) or (claim, sentence) pairs.
        `neighbours`: per item, the indices of the sentences just before and after it in its
        article (-1: none); a few-shot model with a context weight reads them (see
        stance.fewshot.context_features), other models ignore them.
        """
        n = len(items)
        logits = np.zeros((n, len(LABELS)), dtype=np.float32)
        truncated = np.zeros(n, dtype=bool)
        start = 0
        for ids, types, flags in self._windows(items):
            truncated[start : start + len(ids)] = flags
            logits[start : start + len(ids)] = self._window_logits(ids, types, progress)
            start += len(ids)
        if self.context_weight and neighbours is not None:
            logits = self._in_context(logits, neighbours)
        return torch.softmax(torch.from_numpy(logits), dim=-1).numpy(), truncated

    def _in_context(self, logits: np.ndarray, neighbours: Sequence[tuple[int, int]]) -> np.ndarray:
        """z + w * (mean(z of the neighbours) - bias): the head on u + w * mean(u of them)."""
        out = logits.copy()
        for i, near in enumerate(neighbours):
            near = [j for j in near if j >= 0]
            if near:
                out[i] += self.context_weight * (logits[near].mean(0) - self._head_bias)
        return out

    def classify_rows(
        self,
        pairs: Sequence[tuple[str, str]],
        prevs: Sequence[str] | None = None,
        nexts: Sequence[str] | None = None,
    ) -> np.ndarray:
        """Probabilities for (claim, statement) rows whose article neighbours are known as text
        (statement files: `prev_text`/`next_text`); a neighbour that is not itself a row is
        classified too, once, for the context. Models that read no context skip all that."""
        if not self.context_weight:
            return self.classify(pairs)
        # A one-claim model: a row's text is all that decides its logits.
        items, index = list(pairs), {text: i for i, (_, text) in enumerate(pairs)}
        neighbours: list[tuple[int, int]] = []
        for near in zip(prevs or [""] * len(items), nexts or [""] * len(items), strict=True):
            ids = []
            for text in near:
                if text and text not in index:
                    index[text] = len(items)
                    items.append((self.claim, text))
                ids.append(index[text] if text else -1)
            neighbours.append((ids[0], ids[1]))
        neighbours += [(-1, -1)] * (len(items) - len(pairs))
        return self.classify_detailed(items, neighbours=neighbours)[0][: len(pairs)]

    def classify(self, items: Sequence[str] | Sequence[tuple[str, str]]) -> np.ndarray:
        """Probabilities (N, len(LABELS)) in LABELS order, rows in input order."""
        return self.classify_detailed(items)[0]

    def predict_chunk(
        self, articles: Sequence[Article], progress: Progress | None = None
    ) -> list[ArticleResult]:
        """Segment a few articles and classify all their sentences in one sorted pass."""
        sentences = [split_sentences(a.text) for a in articles]
        flat = [s for sents in sentences for s in sents]
        neighbours, at = [], 0
        for sents in sentences:  # the sentences just before and after, within the article
            end = at + len(sents)
            neighbours += [
                (i - 1 if i > at else -1, i + 1 if i + 1 < end else -1) for i in range(at, end)
            ]
            at = end
        probs, truncated = self.classify_detailed(flat, progress, neighbours)
        judged = self.relevance.judge(sentences) if self.relevance is not None else None
        results, at = [], 0
        for i, (a, sents) in enumerate(zip(articles, sentences, strict=True)):
            end = at + len(sents)
            rel = judged[i] if judged is not None else None
            results.append(
                ArticleResult(a.article_id, sents, probs[at:end], truncated[at:end], rel)
            )
            at = end
        release_memory()
        return results

    def iter_results(
        self, articles: Iterable[Article], chunk_chars: int = DEFAULT_CHUNK_CHARS
    ) -> Iterator[ArticleResult]:
        """Stream results article by article, classifying chunk by chunk (flat memory)."""
        for chunk in iter_chunks(articles, chunk_chars):
            yield from self.predict_chunk(chunk.articles)

    def predict(
        self, texts_or_articles: Iterable[str | dict | tuple[str, str] | Article]
    ) -> list[SentencePrediction]:
        """Per-sentence predictions, in input order.

        Items: a text (id: its position, "0", "1", ...), a dict with `text` (and `id`),
        an (id, text) pair, or an Article. Ids are used as given.
        """
        return [
            p for r in self.iter_results(as_articles(texts_or_articles)) for p in r.predictions()
        ]


def _relevance_scorer(relevance: Any, claim: str, threshold: float | None) -> Any:
    """A stance.relevance.RelevanceScorer for `claim`, or None when `relevance` is off."""
    if relevance is False or relevance is None:
        return None
    from .relevance import THRESHOLD, load_scorer

    embedder = None if relevance is True else relevance
    return load_scorer(claim, embedder, THRESHOLD if threshold is None else threshold)


def as_articles(items: Iterable[str | dict | tuple[str, str] | Article]) -> Iterator[Article]:
    """Articles from the loose forms `StancePredictor.predict` accepts."""
    for i, item in enumerate(items):
        if isinstance(item, Article):
            yield item
        elif isinstance(item, str):
            yield Article(str(i), item)
        elif isinstance(item, dict):
            if not isinstance(item.get("text"), str):
                raise InputError(f"item {i} has no 'text' string")
            yield Article(str(item.get("id", i)), item["text"])
        else:
            article_id, text = item
            yield Article(str(article_id), text)


@dataclass
class Chunk:
    """Whole articles of about `chunk_chars` characters; `index` counts from 0."""

    index: int
    articles: list[Article] = field(default_factory=list)
    chars: int = 0


def iter_chunks(items: Iterable[Article], chunk_chars: int) -> Iterator[Chunk]:
    """Group articles into chunks; a chunk closes once it holds `chunk_chars` characters."""
    chunk = Chunk(0)
    for article in items:
        chunk.articles.append(article)
        chunk.chars += len(article.text)
        if chunk.chars >= chunk_chars:
            yield chunk
            chunk = Chunk(chunk.index + 1)
    if chunk.articles:
        yield chunk
