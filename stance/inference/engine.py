"""The inference engine behind `stance predict`: a trained classifier, fast batched forward.

`StancePredictor.classify` tokenises (claim, sentence) pairs in windows with the fast
tokenizer, sorts each window by token length, cuts it into batches padded only to their own
longest pair, runs them under `torch.inference_mode` and scatters the probabilities back to
input order. Truncation is `longest_first` at `max_length`, as in training, and every
truncated pair is flagged. On CUDA the weights are bf16 (fp16 where bf16 is unsupported),
batches are copied from pinned memory without waiting, logits are read back once a window,
and the next window is tokenised on a thread meanwhile; `quantize="int8"` runs the encoder's
linears in int8 on the CPU with the kernel this CPU runs fast
(stance.inference.int8.int8_kernel; float32 with a warning where there is none). The
model's kind (stance.kinds) loads it and names its lean forward: `FastBertClassifier` for
BERT cross-encoders, `FastSentenceClassifier` for few-shot sentence models (BERT or MPNet
bodies), over the same weights, checked against the reference forward at load time on a
padded and an unpadded probe (falling back to it on mismatch). Every network honours one
forward contract (stance.inference.kernels): no attention mask, no padding. Whole articles:
stance.inference.articles.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.segment import normalise
from ..errors import StanceError
from ..kinds.calibration import Calibration
from ..labels import LABELS, claim_key
from . import DEFAULT_BATCH_SIZE
from .articles import ArticlePredictions, relevance_scorer
from .encoding import BatchEncoder, Inputs, Window, prepare
from .int8 import kernel_for, quantize_int8
from .kernels import FastBertClassifier, TransformersForward, int8_layer
from .runtime import resolve_device, set_threads, tune_allocator
from .sentence_kernels import FastSentenceClassifier

logger = logging.getLogger(__name__)


SORT_WINDOW = 4096
# Short: every process runs the reference network on it once (mpnet: seconds on a CPU).
PROBE = "A longer probe, so the batch is padded."
# int8 rows whose two best probabilities are closer than this are run again in float32.
TIE_MARGIN = 0.05

Progress = Callable[[int], None]
FAST_NETS = (FastBertClassifier, FastSentenceClassifier)


class StancePredictor(ArticlePredictions):
    """A trained stance classifier ready for fast batched inference.

    `claim`: default the model's (`config.stance_claim`); `max_length`: default the run's
    trained one (stance.rundir.files.load_run); `device`: auto|cpu|cuda[:n];
    `quantize`: none|int8 (CPU only); `fast`: use FastBertClassifier for BERT models
    (checked against the transformers forward at load time); `relevance`: judge whether each
    sentence bears on the claim (stance.inference.relevance): False (off), True (the bundled MiniLM
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
        from ..kinds.registry import get_kind
        from ..rundir.files import load_classifier, load_run

        if quantize not in ("none", "int8"):
            raise StanceError(f"quantize must be 'none' or 'int8', not {quantize!r}")
        if batch_size < 1 or window < 1:
            raise StanceError("batch_size and window must be positive")
        self.model_dir = Path(model_dir)
        self.quantize = quantize
        self.batch_size = batch_size
        self.window = window
        self.device = self._setup_device(device, num_threads)
        self.int8_kernel = kernel_for(quantize)  # None: float32
        self._float32: nn.Module | None = None  # int8's float32 network for near ties

        model, tokenizer = load_classifier(self.model_dir)
        run = load_run(self.model_dir)
        self.kind = get_kind(run.kind)  # what differs between kinds (stance.kinds)
        self._read_claim(model, run, claim)
        self.relevance = relevance_scorer(relevance, self.claim, relevance_threshold)
        asked = run.max_length if max_length is None else max_length
        self.max_length = self._max_length(model, tokenizer, asked)

        # Columns of the model's logits in LABELS order (id2label order may differ).
        label2id = {name: int(i) for i, name in model.config.id2label.items()}
        self._columns = torch.tensor([label2id[label] for label in LABELS])
        self.encoder = BatchEncoder(tokenizer, self.max_length, self.model_dir)
        # Threads tokenising ahead of the GPU (0: tokenise in turn, as on the CPU).
        self.encoder.threads = min(8, os.cpu_count() or 1) if self.device.type == "cuda" else 0

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
        packed = isinstance(self.net, FAST_NETS) and self.net.packed
        bucket = packed or self.int8_kernel is not None or self.device.type == "cuda"
        self.encoder.bucket = 8 if bucket else 1

    def _setup_device(self, device: str | torch.device, num_threads: int | None) -> torch.device:
        """The device to run on; on the CPU, threads and the allocator set for inference."""
        # int8 kernels are CPU kernels: `auto` means the CPU then, even beside a GPU.
        int8 = self.quantize == "int8"
        resolved = resolve_device("cpu" if int8 and device == "auto" else device)
        if int8 and resolved.type != "cpu":
            raise StanceError("--quantize int8 is a CPU optimisation; use it with --device cpu")
        if resolved.type == "cpu":
            set_threads(num_threads)
            tune_allocator()
        return resolved

    def _read_claim(self, model: nn.Module, run: Any, claim: str | None) -> None:
        """The claim to judge, the model kind (pairs or one-claim statements) and context."""
        saved_claim = run.saved_claim
        if claim is None and not saved_claim:
            logger.warning("%s carries no stance_claim; using the default claim", self.model_dir)
        self.claim: str = normalise(claim if claim is not None else run.claim)
        if not self.claim:
            raise StanceError("the claim is empty")
        # A one-claim kind (the few-shot sentence kind) reads the statement alone: its head
        # knows one claim.
        self.pairs = self.kind.pairs
        self.context_weight = float(getattr(model.config, "stance_context_weight", 0.0))
        if self.context_weight:  # in LABELS order, as the few-shot head is
            self._head_bias = model.head.bias.detach().float().cpu().numpy()
        # Fitted at training time on out-of-fold predictions (stance.kinds.calibration); None: off.
        self.calibration = Calibration.from_dict(getattr(model.config, "stance_calibration", None))
        if not self.pairs and claim_key(self.claim) != claim_key(saved_claim or ""):
            raise StanceError(
                f"{self.model_dir} is a few-shot model of one claim ({saved_claim!r}); it "
                f"cannot judge {self.claim!r}. Train one for that claim, or use a "
                "cross-encoder model."
            )

    def _max_length(self, model: nn.Module, tokenizer: Any, asked: int) -> int:
        """The truncation length: as asked (or trained), within the model's positions."""
        limit = getattr(model.config, "max_position_embeddings", None)
        if limit and asked > limit:
            logger.warning("max_length %d > the model's %d positions", asked, limit)
            asked = int(limit)
        if asked < tokenizer.num_special_tokens_to_add(pair=True) + 2:
            raise StanceError(f"max_length {asked} is too short for a claim pair")
        return asked

    def _build_net(self, fast: bool) -> nn.Module:
        """The module that maps a batch to logits: the fast encoder where it is exact, its
        linears in int8 where asked (and fast on this CPU), the rest prepacked on the CPU."""
        reference = TransformersForward(self.model).eval()
        net = (self._fast_net(reference) if fast else None) or reference
        if self.int8_kernel is not None:
            # A fast net's int8 linears are copies, so the reference stays float32 and can
            # settle near ties (_settle_ties); quantising the reference itself leaves none.
            self._float32 = reference if net is not reference else None
            net = quantize_int8(net, self._int8_layers(net), self.int8_kernel)
            self._pack(net)  # the float32 linears int8 leaves (attention, pooler)
        return net.eval()

    def _pack(self, net: nn.Module) -> None:
        if self.device.type == "cpu" and hasattr(net, "pack"):
            try:
                net.pack()
            except (RuntimeError, AttributeError) as e:  # a torch without oneDNN linear
                logger.debug("oneDNN prepacking unavailable (%s)", e)

    def _fast_net(self, reference: nn.Module) -> nn.Module | None:
        """The lean forward for this model's architecture, if any, checked against the
        reference on two probe batches: one padded, one without padding (so without a mask:
        the forward contract of stance.inference.kernels). A transformers upgrade that changes the
        architecture must not change the answers silently."""
        fast = next((k for k in self.kind.fast_networks() if k.supports(self.model)), None)
        if fast is None:
            return None
        candidate = fast(self.model).to(self.device).eval()
        if self.int8_kernel is None:
            self._pack(candidate)  # before the check, so the packed kernels are checked
        for items in (["A probe.", PROBE], [PROBE]):
            window = self.encoder.encode_window(self._prepare(items))
            probe = self.encoder.batch(window, np.arange(len(window)))
            probe = self._to_device(probe)  # collated on the CPU, like every batch
            with torch.inference_mode():
                theirs = reference(**probe)
                try:  # the oneDNN ops are torch internals: a failure means "not here"
                    ours = candidate(**probe)
                except (RuntimeError, NotImplementedError) as e:
                    logger.warning("fast encoder unavailable (%s); using transformers", e)
                    return None
            if not torch.allclose(ours, theirs, atol=1e-4, rtol=1e-4):
                diff = (ours - theirs).abs().max().item()
                logger.warning("fast encoder differs from transformers by %.2g; not used", diff)
                return None
        return candidate

    def _int8_layers(self, net: nn.Module) -> Callable[[str], bool] | None:
        """Which linears int8 takes (None: all): per network, see stance.inference.kernels."""
        if isinstance(net, FastBertClassifier):
            return int8_layer
        if isinstance(net, FastSentenceClassifier):
            return FastSentenceClassifier.int8_layer
        return self.kind.int8_layers()  # the model's own forward: the kind's policy

    @property
    def precision(self) -> str:
        """What the numbers are computed in; part of the sidecar header (results depend on it)."""
        if self.int8_kernel == "int_mm":
            return "int8"
        if self.int8_kernel is not None:
            return f"int8-{self.int8_kernel}"
        return str(self.compute_dtype).replace("torch.", "")

    def relevance_settings(self) -> dict[str, Any] | None:
        """How relevance is judged (None: it is not); outputs depend on it."""
        return self.relevance.settings() if self.relevance is not None else None

    def _prepare(self, items: Sequence[str] | Sequence[tuple[str, str]]) -> Inputs:
        """What the tokenizer reads of these items (sentences, paired with this predictor's
        claim, or (claim, sentence) pairs): the pairs, or for a one-claim model the statements."""
        return prepare(items, self.claim, self.pairs, self.model_dir)

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
    def _forward(
        self, batch: dict[str, torch.Tensor], net: nn.Module | None = None
    ) -> torch.Tensor:
        """Logits (B, C) in the model's column order, left on the device: nothing here waits
        for the GPU, so the host prepares the next batch while this one runs."""
        return (net or self.net)(**self._to_device(batch))

    def _window_logits(self, window: Window, progress: Progress | None) -> np.ndarray:
        """Logits (N, len(LABELS)) of one window's token rows, in LABELS order, rows in order;
        a row that repeats an earlier one in the window is run once (Window.distinct)."""
        distinct, inverse = window.distinct()
        logits = self._rows_logits(distinct, progress)
        if inverse is None:
            return logits
        if progress is not None:
            progress(len(window) - len(distinct))
        return logits[inverse]

    def _rows_logits(
        self, window: Window, progress: Progress | None, net: nn.Module | None = None
    ) -> np.ndarray:
        """Logits of each row of `window` on `net` (default this one; near ties: float32)."""
        outs = []
        for sel, batch in self.encoder.batches(window, self.batch_size):  # shortest first
            outs.append(self._forward(batch, net)[: len(sel)])
            if progress is not None:
                progress(len(sel))
        # One read-back per window; columns picked on the host (no index tensor per batch).
        sorted_logits = torch.cat(outs).float().cpu()[:, self._columns].numpy()
        logits = np.empty_like(sorted_logits)
        logits[window.order()] = sorted_logits
        return logits

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
        stance.kinds.sentence_model.context_features), other models ignore them.
        """
        n = len(items)
        logits = np.zeros((n, len(LABELS)), dtype=np.float32)
        truncated = np.zeros(n, dtype=bool)
        start = 0
        for window in self.encoder.windows(items, self.window, self._prepare):
            truncated[start : start + len(window)] = window.truncated
            logits[start : start + len(window)] = self._window_logits(window, progress)
            start += len(window)
        probs = self._probabilities(logits, neighbours)
        if self._float32 is not None:
            probs = self._settle_ties(items, logits, probs, neighbours)
        return probs, truncated

    def _probabilities(self, logits: np.ndarray, neighbours: Any) -> np.ndarray:
        """The network's logits in context (few-shot), calibrated, as probabilities."""
        if self.context_weight and neighbours is not None:
            logits = self._in_context(logits, neighbours)
        if self.calibration is not None:
            logits = self.calibration.apply_logits(logits)
        return torch.softmax(torch.from_numpy(logits), dim=-1).numpy()

    def _settle_ties(
        self,
        items: Sequence[Any],
        logits: np.ndarray,
        probs: np.ndarray,
        neighbours: Sequence[tuple[int, int]] | None,
    ) -> np.ndarray:
        """Near ties of int8 (final probabilities within TIE_MARGIN) and the neighbours
        their context reads, run again in float32: int8 moves probabilities by hundredths,
        so only near ties can change label (docs/notes/engine.md)."""
        top2 = np.sort(probs, 1)[:, -2:]
        near = np.flatnonzero(top2[:, 1] - top2[:, 0] < TIE_MARGIN)
        if not near.size:
            return probs
        if self.context_weight and neighbours is not None:
            around = np.asarray(neighbours, dtype=np.int64).reshape(-1, 2)[near].ravel()
            near = np.union1d(near, around[around >= 0])
        logger.debug("int8: %d of %d rows re-run in float32", near.size, len(probs))
        window = self.encoder.encode_window(self._prepare([items[i] for i in near]))
        logits = logits.copy()
        logits[near] = self._rows_logits(window, None, self._float32)
        return self._probabilities(logits, neighbours)

    def classify(self, items: Sequence[str] | Sequence[tuple[str, str]]) -> np.ndarray:
        """Probabilities (N, len(LABELS)) in LABELS order, rows in input order."""
        return self.classify_detailed(items)[0]
