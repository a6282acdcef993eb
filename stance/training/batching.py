"""Tokenisation and length-grouped, dynamically padded batches (shared by training and eval)."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from ..inference.encoding import pad_rows

MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask")


def tokenize(
    ds: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int, pairs: bool = True
) -> Dataset:
    """Tokenise (claim, text) pairs (or, for a one-claim sentence model, the text alone) once,
    batched; adds `length`; keeps `label` and `weight`."""

    def encode(batch: dict) -> dict:
        # longest_first trims the longer side first: nearly always the statement, not the claim.
        first = (batch["claim"], batch["text"]) if pairs else (batch["text"],)
        enc = tokenizer(*first, truncation="longest_first", max_length=max_length)
        enc["length"] = [len(ids) for ids in enc["input_ids"]]
        return enc

    keep = {"label", "weight"}
    drop = [c for c in ds.column_names if c not in keep]
    return ds.map(encode, batched=True, remove_columns=drop, desc="tokenising")


class LengthGroupedBatches:
    """Batches of similar length, so dynamic padding wastes little.

    Shuffled (seeded by `seed` and the epoch, never the global RNG, so a resumed run sees the
    same order): indices are shuffled, cut into windows of `window` batches, each window is
    sorted by length and cut into batches, and the batches are shuffled. Without `shuffle`,
    batches are simply in length order (evaluation).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        window: int = 50,
    ):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.window = window
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        n, bs = len(self.lengths), self.batch_size
        if not self.shuffle:
            order = sorted(range(n), key=self.lengths.__getitem__)
            yield from (order[i : i + bs] for i in range(0, n, bs))
            return
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        order = list(range(n))
        rng.shuffle(order)
        span = bs * self.window
        batches = []
        for start in range(0, n, span):
            window = sorted(order[start : start + span], key=self.lengths.__getitem__)
            batches.extend(window[i : i + bs] for i in range(0, len(window), bs))
        rng.shuffle(batches)
        yield from batches


class PadCollator:
    """Pad a list of tokenised rows to the longest in the batch (optionally to a multiple of 8).

    Hand-written rather than DataCollatorWithPadding: one flat numpy copy per column instead
    of a Python loop over rows; at batch 256 it collates in a fraction of the time
    (scripts/bench_train.py --collate), which is what a GPU step waits on.
    """

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        self.pad_token_id = pad_token_id
        self.multiple = pad_to_multiple_of

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        lengths = np.fromiter((len(r["input_ids"]) for r in rows), np.int64, len(rows))
        longest = int(lengths.max())
        if self.multiple:
            longest = -(-longest // self.multiple) * self.multiple
        filled = np.arange(longest) < lengths[:, None]  # (B, T): where the tokens go
        batch: dict[str, torch.Tensor] = {}
        for key in MODEL_INPUTS:
            if key not in rows[0]:
                continue
            pad = self.pad_token_id if key == "input_ids" else 0
            batch[key] = torch.from_numpy(pad_rows((r[key] for r in rows), filled, pad))
        if "label" in rows[0]:
            batch["labels"] = torch.tensor([r["label"] for r in rows], dtype=torch.long)
        if "weight" in rows[0]:
            batch["weight"] = torch.tensor([r["weight"] for r in rows], dtype=torch.float32)
        return batch
