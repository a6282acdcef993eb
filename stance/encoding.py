"""From text to padded id tensors for `StancePredictor`: a private copy of the Rust tokenizer
(truncating pairs longest-first, as training does), windows of encodings (tokenised ahead on
threads where the GPU would otherwise wait) and batches padded as one flat copy per column.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import StanceError

# A window's token ids, type ids (None: the model reads none) and truncated flags.
Window = tuple[list[list[int]], list[list[int]] | None, np.ndarray]
Inputs = list[tuple[str, str]] | list[str]


def pad_rows(rows: Iterable[Sequence[int]], filled: np.ndarray, pad: int) -> np.ndarray:
    """(B, T) int64: the rows' tokens where `filled` (B, T) is True, `pad` elsewhere. One flat
    copy instead of a Python loop over rows (the loop capped GPU work at the host's pace)."""
    out = np.full(filled.shape, pad, dtype=np.int64)
    out[filled] = np.fromiter(chain.from_iterable(rows), np.int64, int(filled.sum()))
    return out


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
        encode = getattr(self._tokenizer, "encode_batch_fast", self._tokenizer.encode_batch)
        encodings = encode(list(inputs))
        truncated = np.fromiter((bool(e.overflowing) for e in encodings), bool, len(encodings))
        return encodings, truncated

    def encode_window(self, inputs: Inputs) -> Window:
        """Token ids (and type ids where the model reads them) as lists, and truncated flags."""
        encodings, truncated = self.encode(inputs)
        types = [e.type_ids for e in encodings] if self.token_types else None
        return [e.ids for e in encodings], types, truncated

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

    def collate(
        self, ids: Sequence[Sequence[int]], types: Sequence[Sequence[int]] | None = None
    ) -> dict[str, torch.Tensor]:
        """Pad a batch of token-id rows to its own longest, rounded up to a multiple of `bucket`.

        With `bucket` > 1 the rows are rounded up too, with copies of the first row (the
        caller keeps only the real rows). A batch without padding gets no attention mask: the
        encoders then skip masking, and on CUDA nothing has to be read back to find that out.
        """
        step = self.bucket
        rows = list(ids) + [ids[0]] * (-(-len(ids) // step) * step - len(ids))
        lengths = np.fromiter(map(len, rows), np.int64, len(rows))
        longest = int(-(-lengths.max() // step) * step)
        # Filler rows copy a real one: an all-padding row would be fully masked (NaN in SDPA).
        mask = np.arange(longest) < lengths[:, None]  # (B, T)
        batch = {"input_ids": pad_rows(rows, mask, self.pad_id)}
        if not mask.all():
            batch["attention_mask"] = mask.astype(np.int64)
        if self.token_types:
            if types:
                type_rows = list(types) + [types[0]] * (len(rows) - len(types))
                batch["token_type_ids"] = pad_rows(type_rows, mask, 0)
            else:
                batch["token_type_ids"] = np.zeros(mask.shape, dtype=np.int64)
        return {k: torch.from_numpy(v) for k, v in batch.items()}
