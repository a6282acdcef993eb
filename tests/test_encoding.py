"""stance.inference.encoding: windows as one padded array, batches cut out of it (issue 23).

The reference below is the collation before issue 23 (a list of ids per row, rows gathered
per batch, one flat copy per column), kept here verbatim in substance: the new path must give
exactly its tensors (values, dtype, shape, strides, which keys) for every batch.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import numpy as np
import pytest
import torch

from stance.errors import StanceError
from stance.inference.encoding import BatchEncoder, Window, pad_rows, prepare

CLAIM = "Russia is withdrawing its troops from near Ukraine's borders."
WORDS = ["troops", "russia", "border", "ukraine", "withdrawal", "satellite", "images"]


def old_collate(enc: BatchEncoder, ids: Sequence, types: Sequence | None) -> dict:
    step = enc.bucket
    rows = list(ids) + [ids[0]] * (-(-len(ids) // step) * step - len(ids))
    lengths = np.fromiter(map(len, rows), np.int64, len(rows))
    longest = int(-(-lengths.max() // step) * step)
    mask = np.arange(longest) < lengths[:, None]
    batch = {"input_ids": pad_rows(rows, mask, enc.pad_id)}
    if not mask.all():
        batch["attention_mask"] = mask.astype(np.int64)
    if enc.token_types:
        if types:
            type_rows = list(types) + [types[0]] * (len(rows) - len(types))
            batch["token_type_ids"] = pad_rows(type_rows, mask, 0)
        else:
            batch["token_type_ids"] = np.zeros(mask.shape, dtype=np.int64)
    return {k: torch.from_numpy(v) for k, v in batch.items()}


def old_batches(enc: BatchEncoder, inputs: list, size: int) -> Iterator[tuple[np.ndarray, dict]]:
    """The engine's loop before issue 23: lists per row, sorted, gathered, collated."""
    encodings, _ = enc.encode(inputs)
    ids = [e.ids for e in encodings]
    types = [e.type_ids for e in encodings] if enc.token_types else None
    order = np.argsort(np.fromiter(map(len, ids), np.int64, len(ids)), kind="stable")
    for b in range(0, len(order), size):
        sel = order[b : b + size]
        rows = [ids[i] for i in sel]
        yield sel, old_collate(enc, rows, [types[i] for i in sel] if types is not None else None)


def assert_same(new: dict, old: dict) -> None:
    assert new.keys() == old.keys()
    for key, tensor in old.items():
        assert new[key].dtype == tensor.dtype and new[key].stride() == tensor.stride(), key
        assert torch.equal(new[key], tensor), key


@pytest.fixture(scope="module")
def tokenizer():
    from conftest import build_tiny_classifier

    return build_tiny_classifier()[1]


def encoder(tokenizer, token_types: bool, max_length: int = 24) -> BatchEncoder:
    enc = BatchEncoder(tokenizer, max_length, "tiny")
    enc.token_types = token_types  # False: a model reading no type ids (MPNet's inputs)
    return enc


def texts(rng: random.Random, n: int, most: int = 30) -> list[str]:
    return [" ".join(rng.choices(WORDS, k=rng.randint(0, most))) for _ in range(n)]


CASES = {
    "random": lambda rng: texts(rng, 97),
    "one sentence": lambda rng: texts(rng, 1),
    "identical sentences": lambda rng: texts(rng, 1) * 13,
    "all the same length": lambda rng: [" ".join(rng.choices(WORDS, k=6)) for _ in range(21)],
    "over max_length": lambda rng: texts(rng, 40, most=80),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("pairs", [True, False])
@pytest.mark.parametrize("token_types", [True, False])
@pytest.mark.parametrize("bucket,size", [(1, 64), (8, 16), (4, 3), (1, 1)])
def test_batches_are_the_old_collations_exactly(
    tokenizer, case: str, pairs: bool, token_types: bool, bucket: int, size: int
) -> None:
    enc = encoder(tokenizer, token_types)
    enc.bucket = bucket
    sentences = CASES[case](random.Random(len(case) * 31 + bucket))
    inputs = prepare(sentences, CLAIM, pairs, "tiny")
    window = enc.encode_window(inputs)
    assert len(window) == len(sentences)
    _, truncated = enc.encode(inputs)
    np.testing.assert_array_equal(window.truncated, truncated)
    if case == "over max_length":
        assert window.truncated.any() and not window.truncated.all()
    old = list(old_batches(enc, inputs, size))
    new = list(enc.batches(window, size))
    assert len(new) == len(old)
    for (sel, batch), (old_sel, old_batch) in zip(new, old, strict=True):
        np.testing.assert_array_equal(sel, old_sel)
        assert_same(batch, old_batch)


def test_an_empty_window_has_no_batch(tokenizer) -> None:
    enc = encoder(tokenizer, True)
    enc.bucket = 8
    window = enc.encode_window([])
    assert len(window) == 0 and window.ids.shape == (0, 0)
    assert list(enc.batches(window, 4)) == []
    assert list(enc.windows([], 4, lambda s: prepare(s, CLAIM, True, "tiny"))) == []


def test_collate_of_rows_is_the_old_collate(tokenizer) -> None:
    """`collate` (rows as lists, in their order) is kept for callers with rows at hand."""
    rng = np.random.default_rng(0)
    for token_types in (True, False):
        enc = encoder(tokenizer, token_types)
        for bucket in (1, 4):
            enc.bucket = bucket
            rows = [list(rng.integers(5, 50, rng.integers(1, 9))) for _ in range(7)]
            types = [[int(i > len(r) // 2) for i in range(len(r))] for r in rows]
            assert_same(enc.collate(rows, types), old_collate(enc, rows, types))
            assert_same(enc.collate(rows), old_collate(enc, rows, None))


def test_a_wider_bucket_than_the_window_pads_the_batch(tokenizer) -> None:
    """The bucket changed after the window was built: the batch is still padded out."""
    enc = encoder(tokenizer, True)
    window = Window.from_rows([[5, 6, 7], [8]], [[0, 0, 1], [0]], enc.pad_id)
    enc.bucket = 4
    batch = enc.batch(window, np.array([1, 0]))
    pad = enc.pad_id
    assert (
        batch["input_ids"].tolist() == [[8, pad, pad, pad], [5, 6, 7, pad]] + [[8] + [pad] * 3] * 2
    )
    assert batch["token_type_ids"].tolist() == [[0] * 4, [0, 0, 1, 0], [0] * 4, [0] * 4]


def test_prepare_pairs_and_one_claim_statements() -> None:
    assert prepare(["a", ("c", "b")], "x", True, "m") == [("x", "a"), ("c", "b")]
    assert prepare(["a", "b"], "x", False, "m") == ["a", "b"]
    assert prepare([("x ", "a")], "x", False, "m") == ["a"]  # the claim, normalised
    with pytest.raises(StanceError, match="judges one claim only"):
        prepare(["a", ("another claim", "b")], "x", False, "m")


@pytest.mark.parametrize("token_types", [False, True])
def test_distinct_runs_each_repeated_row_once(tokenizer, token_types: bool) -> None:
    enc = encoder(tokenizer, token_types, max_length=8)
    sentences = ["b c", "a", "b c", "a long one past the limit of eight", "a", "b c"]
    window = enc.encode_window(prepare(sentences, CLAIM, True, "tiny"))
    distinct, inverse = window.distinct()
    assert len(distinct) == 3 and inverse is not None
    assert inverse.tolist() == [0, 1, 0, 2, 1, 0]  # first occurrences, in order
    np.testing.assert_array_equal(distinct.ids[inverse], window.ids)
    np.testing.assert_array_equal(distinct.lengths[inverse], window.lengths)
    np.testing.assert_array_equal(distinct.truncated[inverse], window.truncated)
    if token_types:
        np.testing.assert_array_equal(distinct.types[inverse], window.types)


def test_distinct_keeps_a_window_without_repeats(tokenizer) -> None:
    window = encoder(tokenizer, False).encode_window(prepare(["a", "b"], CLAIM, True, "tiny"))
    same, inverse = window.distinct()
    assert same is window and inverse is None


def test_rows_differing_only_in_token_types_stay_apart() -> None:
    ids = np.array([[1, 2, 3], [1, 2, 3]])
    window = Window(ids, np.array([[0, 0, 1], [0, 1, 1]]), np.array([3, 3]), np.zeros(2, bool))
    assert window.distinct()[1] is None
