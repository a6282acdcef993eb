"""From text to padded id tensors for `StancePredictor`: a private copy of the Rust tokenizer
(truncating pairs longest-first, as training does), windows of encodings (tokenised ahead on
threads where the GPU would otherwise wait) and batches cut out of one array per window.

The host work per sentence is the tokenizer's own: each window's ids go from the Rust
encodings into one flat numpy copy, then into one padded (rows, longest) array; sorting by
length and cutting batches are numpy indexing on that array, with no Python list per row.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.segment import normalise
from ..errors import StanceError

Inputs = list[tuple[str, str]] | list[str]


def pad_rows(rows: Iterable[Sequence[int]], filled: np.ndarray, pad: int) -> np.ndarray:
    """(B, T) int64: the rows' tokens where `filled` (B, T) is True, `pad` elsewhere. One flat
    copy instead of a Python loop over rows (the loop capped GPU work at the host's pace)."""
    out = np.full(filled.shape, pad, dtype=np.int64)
    out[filled] = np.fromiter(chain.from_iterable(rows), np.int64, int(filled.sum()))
    return out


def round_up(n: int, step: int) -> int:
    return -(-n // step) * step


@dataclass
class Window:
    """One window's token ids, padded to its longest row (rounded up to the bucket).

    `ids` (N, W) int64 (pad id beyond each row's length); `types` (N, W) token type ids, or
    None where the model reads none; `lengths` (N,) tokens per row; `truncated` (N,) bool.
    """

    ids: np.ndarray
    types: np.ndarray | None
    lengths: np.ndarray
    truncated: np.ndarray

    def __len__(self) -> int:
        return len(self.lengths)

    def distinct(self) -> tuple[Window, np.ndarray | None]:
        """The window without repeated rows (first occurrences, in order) and, per row of
        this window, its row there; (self, None) when no row repeats. News corpora repeat
        sentences (wire copy run by several outlets, page furniture, datelines), and a row's
        logits depend on its tokens alone, so each distinct row is run once."""
        key = self.ids if self.types is None else np.concatenate([self.ids, self.types], 1)
        first: dict[bytes, int] = {}
        inverse = np.fromiter(
            (first.setdefault(row.tobytes(), len(first)) for row in key), np.int64, len(key)
        )
        if len(first) == len(key):
            return self, None
        keep = np.unique(inverse, return_index=True)[1]  # first row of each distinct row
        return self.take(keep), inverse

    def take(self, rows: np.ndarray) -> Window:
        """A window of these rows (indices), in this order."""
        types = self.types[rows] if self.types is not None else None
        return Window(self.ids[rows], types, self.lengths[rows], self.truncated[rows])

    def order(self) -> np.ndarray:
        """Row indices shortest first (stable): similar lengths share a batch."""
        return np.argsort(self.lengths, kind="stable")

    @classmethod
    def from_rows(
        cls,
        ids: Sequence[Sequence[int]],
        types: Sequence[Sequence[int]] | None,
        pad: int,
        step: int = 1,
    ) -> Window:
        """A window of token-id rows, none of them truncated."""
        lengths = np.fromiter(map(len, ids), np.int64, len(ids))
        return cls.build(ids, types, lengths, pad, step, np.zeros(len(ids), bool))

    @classmethod
    def build(
        cls,
        ids: Iterable[Sequence[int]],
        types: Iterable[Sequence[int]] | None,
        lengths: np.ndarray,
        pad: int,
        step: int,
        truncated: np.ndarray,
    ) -> Window:
        """Rows of these `lengths` (iterables, read once) padded into one array per column,
        each filled by one flat copy."""
        width = round_up(int(lengths.max(initial=0)), step)
        filled = np.arange(width) < lengths[:, None]  # (N, W): where the tokens go
        typed = pad_rows(types, filled, 0) if types is not None else None
        return cls(pad_rows(ids, filled, pad), typed, lengths, truncated)


def prepare(
    items: Sequence[str] | Sequence[tuple[str, str]], claim: str, pairs: bool, model: Any
) -> Inputs:
    """What the tokenizer reads of these items (sentences, paired with `claim`, or (claim,
    sentence) pairs): the pairs, or for a one-claim model (`pairs` False) the statements."""
    if not pairs and all(isinstance(s, str) for s in items):
        return list(items)  # sentences of this model's own claim: nothing to check
    rows = [(claim, s) if isinstance(s, str) else (s[0], s[1]) for s in items]
    if pairs:
        return rows
    if any(normalise(c) != claim for c, _ in rows):
        raise StanceError(f"{model} judges one claim only: {claim!r}")
    return [text for _, text in rows]


class BatchEncoder:
    """Token ids of (claim, sentence) pairs or of statements alone, and padded batches.

    `bucket`: batches are padded to a multiple of it, in length and in rows (1: neither);
    `threads`: windows tokenised ahead on this many threads (0: in turn).
    """

    def __init__(self, tokenizer: Any, max_length: int, model_dir: str | Path):
        from tokenizers import Tokenizer

        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise StanceError(f"{model_dir}: needs a fast (Rust-backed) tokenizer")
        # A copy: the transformers tokenizer re-configures its backend on every call.
        self._tokenizer = Tokenizer.from_str(backend.to_str())
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length, strategy="longest_first")
        self.token_types = "token_type_ids" in tokenizer.model_input_names
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.bucket = 1
        self.threads = 0

    def encode(self, inputs: Inputs) -> tuple[list[Any], np.ndarray]:
        """Rust encodings of the inputs and whether each was truncated."""
        # encode_batch_fast skips the character offsets, which nothing here reads.
        encode = getattr(self._tokenizer, "encode_batch_fast", self._tokenizer.encode_batch)
        encodings = encode(list(inputs))
        truncated = np.fromiter((bool(e.overflowing) for e in encodings), bool, len(encodings))
        return encodings, truncated

    def encode_window(self, inputs: Inputs) -> Window:
        """The inputs' token ids (and type ids where the model reads them) as one window."""
        encodings, truncated = self.encode(inputs)
        # Generators, not lists: each row's ids go straight into the window's flat copy.
        ids = (e.ids for e in encodings)
        types = (e.type_ids for e in encodings) if self.token_types else None
        lengths = np.fromiter(map(len, encodings), np.int64, len(encodings))
        return Window.build(ids, types, lengths, self.pad_id, self.bucket, truncated)

    def windows(
        self, items: Sequence[Any], size: int, prepare: Callable[[Sequence[Any]], Inputs]
    ) -> Iterator[Window]:
        """Each window of `size` items, `prepare`d and encoded, in order. With `threads` the
        next windows are tokenised on threads while the caller works on this one (the Rust
        tokenizer releases the GIL, and threads scale whatever TOKENIZERS_PARALLELISM says)."""

        def encode(window: Sequence[Any]) -> Window:
            return self.encode_window(prepare(window))

        windows = (items[i : i + size] for i in range(0, len(items), size))
        if not self.threads:
            yield from map(encode, windows)
            return
        with ThreadPoolExecutor(self.threads, "stance-tokenise") as pool:
            ahead: deque[Future[Window]] = deque()
            for window in windows:
                ahead.append(pool.submit(encode, window))
                if len(ahead) > self.threads:
                    yield ahead.popleft().result()
            while ahead:
                yield ahead.popleft().result()

    def batch(self, window: Window, rows: np.ndarray) -> dict[str, torch.Tensor]:
        """The window's `rows` (indices, at least one) padded to their own longest, rounded up
        to a multiple of `bucket`.

        With `bucket` > 1 the rows are rounded up too, with copies of the first row (the
        caller keeps only the real rows). A batch without padding gets no attention mask: the
        encoders then skip masking, and on CUDA nothing has to be read back to find that out.
        """
        step = self.bucket
        # Filler rows copy a real one: an all-padding row would be fully masked (NaN in SDPA).
        extra = round_up(len(rows), step) - len(rows)
        sel = np.concatenate([rows, np.repeat(rows[:1], extra)]) if extra else np.asarray(rows)
        lengths = window.lengths[sel]
        longest = round_up(int(lengths.max()), step)
        mask = np.arange(longest) < lengths[:, None]  # (B, T)
        batch = {"input_ids": _columns(window.ids, sel, longest, self.pad_id)}
        if not mask.all():
            batch["attention_mask"] = mask.astype(np.int64)
        if self.token_types:
            if window.types is not None:
                batch["token_type_ids"] = _columns(window.types, sel, longest, 0)
            else:
                batch["token_type_ids"] = np.zeros(mask.shape, dtype=np.int64)
        return {k: torch.from_numpy(v) for k, v in batch.items()}

    def batches(self, window: Window, size: int) -> Iterator[tuple[np.ndarray, dict]]:
        """(rows, batch) of `size` rows at a time, shortest rows first."""
        order = window.order()
        for b in range(0, len(order), size):
            rows = order[b : b + size]
            yield rows, self.batch(window, rows)

    def collate(
        self, ids: Sequence[Sequence[int]], types: Sequence[Sequence[int]] | None = None
    ) -> dict[str, torch.Tensor]:
        """One batch of token-id rows, in their order (see `batch`)."""
        window = Window.from_rows(ids, types or None, self.pad_id, self.bucket)
        return self.batch(window, np.arange(len(ids)))


def _columns(array: np.ndarray, rows: np.ndarray, width: int, pad: int) -> np.ndarray:
    """array[rows, :width] as a new (len(rows), width) array, padded if `width` is wider."""
    if width <= array.shape[1]:
        return array[rows, :width]
    out = np.full((len(rows), width), pad, dtype=np.int64)
    out[:, : array.shape[1]] = array[rows]
    return out
