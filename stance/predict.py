"""Batch stance prediction: every sentence of new articles, classified against a claim.

API::

    predictor = StancePredictor("models/withdrawal")          # claim: the model's own
    rows = predictor.predict(["An article. Two sentences.", {"id": "a7", "text": "..."}])
    probs = predictor.classify(["one sentence", "another"])   # (N, len(LABELS)), LABELS order

CLI: ``stance predict --model DIR INPUT... --output OUT.{jsonl,csv} [--summary S.json]``.

Design
------
Engine (`StancePredictor.classify`): (claim, sentence) pairs are tokenised in windows of
`window` pairs with the fast (Rust) tokenizer in one batched call, sorted by token length
inside the window, cut into batches of `batch_size`, each padded only to its own longest
pair, run under `torch.inference_mode`, and the probabilities are scattered back to input
order. Truncation is `longest_first` at `max_length` tokens, exactly as in training; every
truncated pair is flagged (counted per article in the summary and logged). On CUDA the
forward pass runs under bf16 autocast (fp16 where bf16 is unsupported) from pinned host
memory.

BERT classifiers (MiniLM, the tiny test model) run through `FastBertClassifier`: the same
weights and arithmetic with less work (fused Q/K/V GEMM, prepacked oneDNN linears with
fused bias and GELU, [CLS]-only last layer). It is checked against the transformers forward
on a probe batch at load time and not used if they differ; other architectures use their
own forward. `quantize="int8"` is torch.ao dynamic quantisation of the encoder's nn.Linear
layers (int8 weights per output channel, activations per batch), CPU only.

Streaming and crash safety (`run_prediction`): inputs are read lazily, one article at a
time, and grouped into chunks of about `chunk_chars` characters (whole articles only; no
segmentation needed to cut them, so every process of a multi-GPU run cuts the same chunks).
Each finished chunk is appended as one JSON line to the sidecar `OUT.partial` (after a
header line holding the run settings), then flushed and fsynced. Only when every chunk is
done is the sidecar converted into OUT through a temporary file and a rename, so OUT is
never partial, and the sidecar is removed. Memory therefore stays flat: one chunk of text
and its tokens at a time, plus one small record per article for ids and the summary.

`--resume` reads the sidecar, drops a torn last line, skips the chunks it holds and
continues; chunks are formed from the same article stream, so each resumed chunk is batched
exactly as in an uninterrupted run and the final OUT is identical. A sidecar written with
other settings (model, claim, inputs, ...) is discarded with a warning, as is any sidecar
when `--resume` is not given.

Output rows (both formats, the same flat scheme): article_id, sentence_index, text, label,
score (probability of the label), and p_<label> for every label in LABELS; probabilities
are rounded to 6 decimals. `article_id` is the original id (JSONL `id`, or the file name via
segment.article_id_from_path, or `stdin`); ids repeated across inputs get a `-2`, `-3`, ...
suffix, with a warning. Ids are never used in paths here; anything that does must go
through segment.safe_id.

Bad inputs (missing, empty, binary, non-UTF-8, over `max_article_bytes`, bad JSONL lines)
are logged with the input and line, listed in the summary, and skipped; the others go on
and the exit code is 1.

Several GPUs (``accelerate launch -m stance.cli predict ...``): process r handles the
chunks with index % world == r into `OUT.partial.r`; the main process merges the part
files by chunk index (so in input order) into OUT. Chunks are dealt round-robin rather than
with `split_between_processes` so no process has to materialise the article list.
"""

from __future__ import annotations

import argparse
import csv
import heapq
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .atomic import atomic_open
from .errors import InputError, StanceError
from .labels import DEFAULT_CLAIM, LABELS
from .segment import article_id_from_path, decode_text, normalise, split_sentences

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 64
DEFAULT_MAX_LENGTH = 128
DEFAULT_MAX_ARTICLE_BYTES = 5_000_000
# About 3,000 news sentences: large enough to sort well, small enough to lose little on a crash.
DEFAULT_CHUNK_CHARS = 500_000
SORT_WINDOW = 4096
DECIMALS = 6
PROB_COLUMNS: tuple[str, ...] = tuple(f"p_{label}" for label in LABELS)
COLUMNS: tuple[str, ...] = ("article_id", "sentence_index", "text", "label", "score", *PROB_COLUMNS)
OUTPUT_FORMATS = (".jsonl", ".csv")
PARTIAL_FORMAT = "stance-predict-partial/1"
STDIN = "-"
PROBE = "A longer probe sentence, so that the batch has padding in it, to check the encoder."

Progress = Callable[[int], None]


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

    def as_row(self) -> dict[str, Any]:
        """The output row: COLUMNS, with flat p_<label> probabilities."""
        return {
            "article_id": self.article_id,
            "sentence_index": self.sentence_index,
            "text": self.text,
            "label": self.label,
            "score": self.score,
            **{f"p_{label}": p for label, p in self.probs.items()},
        }


@dataclass
class ArticleResult:
    """Every sentence of one article with its probabilities (N, len(LABELS)) in LABELS order."""

    article_id: str
    sentences: list[str]
    probs: np.ndarray
    truncated: np.ndarray

    @property
    def label_ids(self) -> np.ndarray:
        return self.probs.argmax(axis=1) if len(self.sentences) else np.zeros(0, dtype=int)

    def predictions(self) -> list[SentencePrediction]:
        out = []
        for i, (text, k, p, t) in enumerate(
            zip(self.sentences, self.label_ids, self.probs, self.truncated, strict=True)
        ):
            probs = {label: float(x) for label, x in zip(LABELS, p, strict=True)}
            out.append(
                SentencePrediction(self.article_id, i, text, LABELS[k], float(p[k]), probs, bool(t))
            )
        return out

    def to_record(self) -> dict[str, Any]:
        """The compact form kept in the sidecar (probabilities already rounded)."""
        # float64 before rounding, so the stored decimals print short (0.412345, not 0.41234499...).
        probs = self.probs.astype(np.float64).round(DECIMALS)
        return {
            "id": self.article_id,
            "sentences": self.sentences,
            "labels": self.label_ids.tolist(),
            "probs": probs.tolist(),
            "truncated": np.flatnonzero(self.truncated).tolist(),
        }


def record_rows(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Output rows of one sidecar article record."""
    for i, (text, k, probs) in enumerate(
        zip(record["sentences"], record["labels"], record["probs"], strict=True)
    ):
        row = {
            "article_id": record["id"],
            "sentence_index": i,
            "text": text,
            "label": LABELS[k],
            "score": probs[k],
        }
        row.update(zip(PROB_COLUMNS, probs, strict=True))
        yield row


# ---------------------------------------------------------------- engine


def resolve_device(device: str | torch.device) -> torch.device:
    """`auto`: CUDA when available, else CPU. Asking for CUDA without one is an error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise StanceError("--device cuda: no CUDA device is available (use --device cpu)")
    return dev


def run_max_length(model_dir: str | Path) -> int:
    """`data.max_length` of the run's config.yaml, or 128 when the run has none."""
    import yaml

    path = Path(model_dir) / "config.yaml"
    try:
        saved = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, yaml.YAMLError) as e:
        logger.warning("%s: unreadable (%s); max_length %d", path, e, DEFAULT_MAX_LENGTH)
        return DEFAULT_MAX_LENGTH
    value = ((saved or {}).get("data") or {}).get("max_length", DEFAULT_MAX_LENGTH)
    return int(value)


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


def quantize_int8(model: nn.Module, only: Callable[[str], bool] | None = None) -> nn.Module:
    """Dynamic int8 quantisation of nn.Linear layers: int8 weights (one scale per output
    channel), activations quantised per batch. `only(name)` picks layers (default: all)."""
    try:
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    except ImportError as e:  # removed from a future torch
        raise StanceError(f"--quantize int8 needs torch.ao.quantization: {e}") from None
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    spec = {n: per_channel_dynamic_qconfig for n in names if only is None or only(n)}
    with warnings.catch_warnings():
        # torch announces the move to torchao; the eager API still works in this torch.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return quantize_dynamic(model, spec, dtype=torch.qint8)


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
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        h = self.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)  # (B, T, H)
        # No mask at all lets SDPA take its fastest path; length-sorted batches often need none.
        mask = None if bool(attention_mask.all()) else attention_mask[:, None, None, :].bool()
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
    `config.yaml` (`data.max_length`, else 128); `device`: auto|cpu|cuda[:n];
    `quantize`: none|int8 (CPU only); `fast`: use FastBertClassifier for BERT models
    (checked against the transformers forward at load time).
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
    ):
        from .modeling import load_classifier

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
        self.quantize = quantize
        self.batch_size = batch_size
        self.window = window

        model, tokenizer = load_classifier(self.model_dir)
        saved_claim = getattr(model.config, "stance_claim", None)
        if claim is None and not saved_claim:
            logger.warning("%s carries no stance_claim; using the default claim", model_dir)
        self.claim: str = normalise(claim if claim is not None else saved_claim or DEFAULT_CLAIM)
        if not self.claim:
            raise StanceError("the claim is empty")

        self.max_length = max_length if max_length is not None else run_max_length(model_dir)
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
        self.autocast_dtype: torch.dtype | None = None
        if self.device.type == "cuda":
            bf16 = torch.cuda.is_bf16_supported()
            self.autocast_dtype = torch.bfloat16 if bf16 else torch.float16
        self.net = self._build_net(fast)
        # oneDNN keeps compiled kernels for every GEMM shape it meets, so memory would grow with
        # the number of distinct (rows, length) pairs; multiples of 8 bound them (~16 x 8 shapes)
        # at ~4 padding tokens per pair. On CUDA multiples of 8 suit the tensor cores.
        packed = isinstance(self.net, FastBertClassifier) and self.net.packed
        self._bucket = 8 if packed or self.device.type == "cuda" else 1

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
            probe = self._collate(self.encode([(self.claim, "A probe."), (self.claim, PROBE)])[0])
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
        return str(self.autocast_dtype or torch.float32).replace("torch.", "")

    def encode(self, pairs: Sequence[tuple[str, str]]) -> tuple[list[Any], np.ndarray]:
        """Rust encodings of (claim, sentence) pairs and whether each was truncated."""
        encode = getattr(self._encoder, "encode_batch_fast", self._encoder.encode_batch)
        encodings = encode(list(pairs))
        truncated = np.fromiter((bool(e.overflowing) for e in encodings), bool, len(encodings))
        return encodings, truncated

    def _collate(self, encodings: Sequence[Any]) -> dict[str, torch.Tensor]:
        """Pad a batch to its own longest pair, rounded up to a multiple of `_bucket`.

        With `_bucket` > 1 the rows are rounded up too, with copies of the first row (the
        caller keeps only the real rows).
        """
        step = self._bucket
        longest = -(-max(len(e.ids) for e in encodings) // step) * step
        rows = -(-len(encodings) // step) * step
        ids = np.full((rows, longest), self._pad_id, dtype=np.int64)  # (B, T)
        mask = np.zeros((rows, longest), dtype=np.int64)
        types = np.zeros((rows, longest), dtype=np.int64) if self._token_types else None
        for r, e in enumerate(encodings):
            n = len(e.ids)
            ids[r, :n] = e.ids
            mask[r, :n] = 1
            if types is not None:
                types[r, :n] = e.type_ids
        # Filler rows copy a real one: an all-padding row would be fully masked (NaN in SDPA).
        ids[len(encodings) :], mask[len(encodings) :] = ids[0], mask[0]
        batch = {"input_ids": ids, "attention_mask": mask}
        if types is not None:
            types[len(encodings) :] = types[0]
            batch["token_type_ids"] = types
        return {k: torch.from_numpy(v) for k, v in batch.items()}

    @torch.inference_mode()
    def _forward(self, batch: dict[str, torch.Tensor]) -> np.ndarray:
        """Probabilities (B, len(LABELS)) in LABELS order."""
        if self.device.type == "cuda":
            # Pinned host memory lets the copy run asynchronously with the previous kernel.
            batch = {k: v.pin_memory().to(self.device, non_blocking=True) for k, v in batch.items()}
            with torch.autocast("cuda", dtype=self.autocast_dtype):
                logits = self.net(**batch)
        else:
            logits = self.net(**batch)
        probs = torch.softmax(logits.float(), dim=-1)[:, self._columns.to(logits.device)]
        return probs.cpu().numpy()

    def classify_detailed(
        self,
        items: Sequence[str] | Sequence[tuple[str, str]],
        progress: Progress | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities (N, len(LABELS)) in input order, and a truncated flag per item.

        `items`: sentences (paired with this predictor's claim) or (claim, sentence) pairs.
        """
        n = len(items)
        probs = np.zeros((n, len(LABELS)), dtype=np.float32)
        truncated = np.zeros(n, dtype=bool)
        for start in range(0, n, self.window):
            window = items[start : start + self.window]
            pairs = [(self.claim, s) if isinstance(s, str) else (s[0], s[1]) for s in window]
            encodings, truncated[start : start + len(pairs)] = self.encode(pairs)
            lengths = np.fromiter((len(e.ids) for e in encodings), np.int64, len(encodings))
            order = np.argsort(lengths, kind="stable")  # similar lengths share a batch
            for b in range(0, len(order), self.batch_size):
                sel = order[b : b + self.batch_size]
                batch = self._collate([encodings[i] for i in sel])
                probs[start + sel] = self._forward(batch)[: len(sel)]
                if progress is not None:
                    progress(len(sel))
        return probs, truncated

    def classify(self, items: Sequence[str] | Sequence[tuple[str, str]]) -> np.ndarray:
        """Probabilities (N, len(LABELS)) in LABELS order, rows in input order."""
        return self.classify_detailed(items)[0]

    def predict_chunk(
        self, articles: Sequence[Article], progress: Progress | None = None
    ) -> list[ArticleResult]:
        """Segment a few articles and classify all their sentences in one sorted pass."""
        sentences = [split_sentences(a.text) for a in articles]
        flat = [s for sents in sentences for s in sents]
        probs, truncated = self.classify_detailed(flat, progress)
        results, at = [], 0
        for a, sents in zip(articles, sentences, strict=True):
            end = at + len(sents)
            results.append(ArticleResult(a.article_id, sents, probs[at:end], truncated[at:end]))
            at = end
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


# ---------------------------------------------------------------- inputs


def _check_article(text: str, max_bytes: int | None, name: str, line: int | None = None) -> None:
    size = len(text.encode("utf-8")) if max_bytes is not None else 0
    if max_bytes is not None and size > max_bytes:
        raise InputError(f"article is {size:,} bytes, over the limit of {max_bytes:,}", name, line)
    # The segmenter drops NULs and BOMs; an article of nothing else would yield no sentence.
    if not normalise(text.replace("\x00", " ").replace("\ufeff", "")):
        raise InputError("empty article (no sentences)", name, line)


def _read_txt(path: Path, max_bytes: int | None) -> Article:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InputError("no such file or directory", path) from None
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", path) from None
    if max_bytes is not None and size > max_bytes:  # refuse before reading it all
        raise InputError(f"article is {size:,} bytes, over the limit of {max_bytes:,}", path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", path) from None
    text = decode_text(data, path)
    _check_article(text, max_bytes, str(path))
    return Article(article_id_from_path(path), text, str(path))


def _read_stdin(max_bytes: int | None) -> Article:
    name = "<stdin>"
    stream = sys.stdin
    buffer = getattr(stream, "buffer", None)
    limit = -1 if max_bytes is None else max_bytes + 1  # one byte over is enough to refuse
    data = buffer.read(limit) if buffer is not None else stream.read().encode("utf-8")
    if max_bytes is not None and len(data) > max_bytes:
        raise InputError(f"article is over the limit of {max_bytes:,} bytes", name)
    text = decode_text(data, name)
    _check_article(text, max_bytes, name)
    return Article("stdin", text, name)


def _read_jsonl(path: Path, max_bytes: int | None) -> Iterator[Article | InputFailure]:
    """One article per line: {"id": ..., "text": ...}; a bad line fails alone."""
    name = str(path)
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise InputError("no such file or directory", path) from None
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", path) from None
    with f:
        if b"\x00" in f.read(8192):
            raise InputError("looks binary (NUL bytes), expected UTF-8 JSON Lines", path)
        f.seek(0)
        found = False
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            found = True
            try:
                yield _parse_jsonl_line(raw, path, lineno, max_bytes)
            except InputError as e:
                yield InputFailure(name, lineno, str(e))
    if not found:
        raise InputError("empty file (no JSON lines)", path)


def _parse_jsonl_line(raw: bytes, path: Path, lineno: int, max_bytes: int | None) -> Article:
    try:
        line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"not valid UTF-8 (byte {e.start} of the line)", path, lineno) from None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise InputError(f"not valid JSON ({e.msg}, column {e.colno})", path, lineno) from None
    if not isinstance(obj, dict):
        raise InputError(f"expected a JSON object, got {type(obj).__name__}", path, lineno)
    text = obj.get("text")
    if not isinstance(text, str):
        what = "no 'text' field" if text is None else "'text' is not a string"
        raise InputError(what, path, lineno)
    _check_article(text, max_bytes, str(path), lineno)
    raw_id = obj.get("id")
    article_id = f"{article_id_from_path(path)}-{lineno}" if raw_id is None else str(raw_id)
    return Article(article_id, text, str(path), lineno)


def iter_inputs(
    inputs: Sequence[str], max_article_bytes: int | None = DEFAULT_MAX_ARTICLE_BYTES
) -> Iterator[Article | InputFailure]:
    """Articles (raw ids) and failures, lazily, in input order.

    `.jsonl`: one article a line; a directory: its `*.txt` files, sorted (not recursive);
    `-`: standard input, one article; anything else: a UTF-8 text file, one article.
    """
    for name in inputs:
        try:
            if name == STDIN:
                yield _read_stdin(max_article_bytes)
                continue
            path = Path(name)
            if path.is_dir():
                files = sorted(p for p in path.glob("*.txt") if p.is_file())
                if not files:
                    raise InputError("directory holds no .txt files", path)
                for file in files:
                    try:
                        yield _read_txt(file, max_article_bytes)
                    except InputError as e:
                        yield InputFailure.from_error(e, str(file))
            elif path.suffix.lower() == ".jsonl":
                yield from _read_jsonl(path, max_article_bytes)
            else:
                yield _read_txt(path, max_article_bytes)
        except InputError as e:
            yield InputFailure.from_error(e, name)


def unique_ids(items: Iterable[Article | InputFailure]) -> Iterator[Article | InputFailure]:
    """Make article ids unique in stream order: a repeated id gets -2, -3, ... (warned)."""
    seen: set[str] = set()
    for item in items:
        if isinstance(item, Article):
            uid, k = item.article_id, 1
            while uid in seen:
                k += 1
                uid = f"{item.article_id}-{k}"
            if uid != item.article_id:
                where = f"{item.source}:{item.line}" if item.line else item.source
                logger.warning(
                    "%s: article id %r already used; renamed %r", where, item.article_id, uid
                )
                item = Article(uid, item.text, item.source, item.line)
            seen.add(uid)
        yield item


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


# ---------------------------------------------------------------- sidecar (part file)


def partial_path(output: Path, rank: int = 0, world: int = 1) -> Path:
    """`OUT.partial`, or `OUT.partial.<rank>` for one process of several."""
    suffix = ".partial" if world == 1 else f".partial.{rank}"
    return output.with_name(output.name + suffix)


def _recover_partial(path: Path, header: dict[str, Any]) -> set[int] | None:
    """Chunk indices a sidecar holds, after cutting a torn last line; None: not ours."""
    with path.open("r+b") as f:
        first = f.readline()
        try:
            saved = json.loads(first) if first.endswith(b"\n") else None
        except ValueError:
            saved = None
        if saved != header:
            keys = sorted(
                k for k in header if not isinstance(saved, dict) or saved.get(k) != header[k]
            )
            logger.warning(
                "%s was written with other settings (%s); starting over",
                path,
                ", ".join(keys) or "format",
            )
            return None
        done: set[int] = set()
        good = f.tell()
        for line in iter(f.readline, b""):
            # A killed run can leave a half-written last line: it and anything after are dropped.
            try:
                index = json.loads(line)["chunk"] if line.endswith(b"\n") else None
            except (ValueError, KeyError, TypeError):
                index = None
            if not isinstance(index, int):
                logger.warning("%s: dropping a torn chunk at byte %d", path, good)
                break
            done.add(index)
            good = f.tell()
        f.truncate(good)
    return done


def _read_partial(path: Path) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """(chunk index, article records) of a finished sidecar, in file order."""
    with path.open("rb") as f:
        f.readline()  # header
        for line in f:
            rec = json.loads(line)
            yield rec["chunk"], rec["articles"]


class _PartialWriter:
    """Appends finished chunks to the sidecar; each one flushed and fsynced."""

    def __init__(self, path: Path, header: dict[str, Any], resume: bool):
        self.path = path
        self.done: set[int] = set()
        if path.exists():
            recovered = _recover_partial(path, header) if resume else None
            if recovered is None:
                if not resume:
                    logger.info("discarding %s from an earlier run (--resume continues it)", path)
                path.unlink()
            else:
                self.done = recovered
                logger.info("resuming: %d finished chunks in %s", len(recovered), path)
        elif resume:
            logger.info("--resume: no %s; starting from the beginning", path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f: IO[bytes] = path.open("ab")
        if not self._f.tell():
            self._write(header)

    def _write(self, obj: dict[str, Any]) -> None:
        self._f.write(json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def add(self, index: int, results: Sequence[ArticleResult]) -> None:
        self._write({"chunk": index, "articles": [r.to_record() for r in results]})

    def close(self) -> None:
        self._f.close()


# ---------------------------------------------------------------- output


def output_format(path: str | Path) -> str:
    """`.jsonl` or `.csv` from the output's extension; anything else is a usage error."""
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise StanceError(f"{path}: output must end in .jsonl or .csv, not {suffix or '(none)'}")
    return suffix


@dataclass
class RunReport:
    """What a run did: counts, failures, where things went."""

    output: Path
    articles: int = 0
    sentences: int = 0
    truncated: int = 0
    truncated_articles: int = 0
    failures: list[InputFailure] = field(default_factory=list)
    seconds: float = 0.0
    summary: Path | None = None

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0


def _write_output(
    output: Path,
    chunks: Iterable[tuple[int, list[dict[str, Any]]]],
    report: RunReport,
    summary: Any | None,
) -> list[str]:
    """Stream the sidecar records into OUT atomically; returns up to 10 truncated articles."""
    fmt = output_format(output)
    truncated_ids: list[str] = []  # a sample for the log, not every id (memory stays flat)
    with atomic_open(output, "w") as f:
        writer = csv.writer(f, lineterminator="\n") if fmt == ".csv" else None
        if writer is not None:
            writer.writerow(COLUMNS)
        for _, records in chunks:
            for rec in records:
                report.articles += 1
                report.sentences += len(rec["sentences"])
                report.truncated += len(rec["truncated"])
                if rec["truncated"]:
                    report.truncated_articles += 1
                    if len(truncated_ids) < 10:
                        truncated_ids.append(rec["id"])
                for row in record_rows(rec):
                    if writer is not None:
                        writer.writerow(row.values())
                    else:
                        f.write(json.dumps(row, ensure_ascii=False) + "\n")
                if summary is not None:
                    labels = (LABELS[k] for k in rec["labels"])
                    summary.add_article(rec["id"], labels, len(rec["truncated"]))
    return truncated_ids


def _process_group() -> tuple[int, int, Any]:
    """(rank, world size, accelerate PartialState or None) under `accelerate launch`."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1, None
    from accelerate import PartialState

    state = PartialState()
    return state.process_index, state.num_processes, state


def run_prediction(
    predictor: StancePredictor,
    inputs: Sequence[str],
    output: str | Path,
    summary: str | Path | None = None,
    resume: bool = False,
    max_article_bytes: int | None = DEFAULT_MAX_ARTICLE_BYTES,
    chunk_chars: int = DEFAULT_CHUNK_CHARS,
    process_group: tuple[int, int, Any] = (0, 1, None),
) -> RunReport:
    """Classify every sentence of `inputs` into `output` (see the module docstring)."""
    from tqdm.auto import tqdm

    output = Path(output)
    output_format(output)
    if summary is not None and Path(summary).suffix.lower() != ".json":
        raise StanceError(f"{summary}: the summary must be a .json file")
    rank, world, state = process_group
    main = rank == 0
    start = time.perf_counter()
    report = RunReport(output)
    header = {
        "format": PARTIAL_FORMAT,
        "model": str(predictor.model_dir.resolve()),
        "claim": predictor.claim,
        "max_length": predictor.max_length,
        "precision": predictor.precision,
        "chunk_chars": chunk_chars,
        "max_article_bytes": max_article_bytes,
        "inputs": list(inputs),
        "labels": list(LABELS),
        "world": world,
    }
    part = _PartialWriter(partial_path(output, rank, world), header, resume)
    bar = tqdm(unit="sent", desc="predict", disable=None, dynamic_ncols=True)

    def articles() -> Iterator[Article]:
        for item in unique_ids(iter_inputs(inputs, max_article_bytes)):
            if isinstance(item, InputFailure):
                report.failures.append(item)
                if main:
                    logger.error("%s", item.error)
            else:
                yield item

    try:
        for chunk in iter_chunks(articles(), chunk_chars):
            if chunk.index % world != rank or chunk.index in part.done:
                continue  # another process's, or finished before an interruption
            part.add(chunk.index, predictor.predict_chunk(chunk.articles, bar.update))
    finally:
        part.close()
        bar.close()

    if state is not None:
        state.wait_for_everyone()
    if main:
        from .summary import SummaryBuilder, write_summary

        builder = SummaryBuilder() if summary is not None else None
        parts = [partial_path(output, r, world) for r in range(world)]
        # Each part lists its chunks in increasing order; merging by index restores input order.
        merged = heapq.merge(*(_read_partial(p) for p in parts), key=lambda c: c[0])
        truncated_ids = _write_output(output, merged, report, builder)
        if report.truncated:
            more = report.truncated_articles - len(truncated_ids)
            shown = ", ".join(truncated_ids) + (f" and {more} more" if more else "")
            logger.warning(
                "%d sentences longer than %d tokens were truncated, in %d articles: %s",
                report.truncated,
                predictor.max_length,
                report.truncated_articles,
                shown,
            )
        if builder is not None and summary is not None:
            for fail in report.failures:
                builder.add_failure(fail.input, fail.line, fail.error)
            meta = {
                "model": str(predictor.model_dir),
                "claim": predictor.claim,
                "labels": list(LABELS),
                "max_length": predictor.max_length,
                "precision": predictor.precision,
                "output": str(output),
            }
            write_summary(summary, builder.build(**meta))
            report.summary = Path(summary)
        for p in parts:
            p.unlink(missing_ok=True)
    if state is not None:
        state.wait_for_everyone()
    report.seconds = time.perf_counter() - start
    return report


# ---------------------------------------------------------------- CLI


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of `stance predict`."""
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="article .txt files, directories of them, .jsonl files "
        '({"id", "text"} a line), or - for standard input',
    )
    p.add_argument("--model", required=True, help="run directory (save_pretrained + config.yaml)")
    p.add_argument("--claim", help="claim to test each sentence against (default: the model's)")
    p.add_argument("--output", "-o", required=True, help="OUT.jsonl or OUT.csv, one row a sentence")
    p.add_argument("--summary", help="per-article summary .json (and a .png chart beside it)")
    p.add_argument("--batch-size", type=_positive_int, default=DEFAULT_BATCH_SIZE)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument(
        "--quantize",
        default="none",
        choices=["none", "int8"],
        help="int8: dynamic quantisation of the linear layers (CPU)",
    )
    p.add_argument(
        "--max-length",
        type=_positive_int,
        default=None,
        help="tokens per (claim, sentence) pair; longer is truncated and counted "
        "(default: the run's data.max_length, else 128)",
    )
    p.add_argument(
        "--max-article-bytes",
        type=_positive_int,
        default=DEFAULT_MAX_ARTICLE_BYTES,
        help="larger articles are refused (that input fails, the others go on)",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue an interrupted run from OUT.partial"
    )
    p.add_argument("--threads", type=_positive_int, default=None, help="CPU threads for torch")
    p.add_argument(
        "--chunk-chars",
        type=_positive_int,
        default=DEFAULT_CHUNK_CHARS,
        help="characters of text per chunk (the unit of crash recovery)",
    )


def run_cli(args: argparse.Namespace) -> int:
    """`stance predict`: 0 when every input was used, 1 when any failed (2: raised errors)."""
    output_format(args.output)
    group = _process_group()
    device = args.device
    if group[2] is not None and device != "cpu":
        device = group[2].device  # one GPU per process under accelerate launch
    predictor = StancePredictor(
        args.model,
        claim=args.claim,
        device=device,
        quantize=args.quantize,
        batch_size=args.batch_size,
        max_length=args.max_length,
        num_threads=args.threads,
    )
    logger.info(
        "model %s on %s (%s), max_length %d, claim: %s",
        args.model,
        predictor.device,
        predictor.precision,
        predictor.max_length,
        predictor.claim,
    )
    report = run_prediction(
        predictor,
        args.inputs,
        args.output,
        summary=args.summary,
        resume=args.resume,
        max_article_bytes=args.max_article_bytes,
        chunk_chars=args.chunk_chars,
        process_group=group,
    )
    if group[0] == 0:
        rate = report.sentences / report.seconds if report.seconds else 0.0
        logger.info(
            "%d sentences of %d articles in %.1f s (%.0f sentences/s) -> %s%s",
            report.sentences,
            report.articles,
            report.seconds,
            rate,
            report.output,
            f" + {report.summary}" if report.summary else "",
        )
        if report.failures:
            logger.error(
                "%d inputs failed; the others are in %s", len(report.failures), report.output
            )
    return report.exit_code
