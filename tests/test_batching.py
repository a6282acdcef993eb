"""stance.training.batching: the pad collator against a row-by-row reference."""

from __future__ import annotations

import torch

from stance.training.batching import MODEL_INPUTS, PadCollator


def _reference(rows: list[dict], pad_id: int, multiple: int | None) -> dict[str, torch.Tensor]:
    longest = max(len(r["input_ids"]) for r in rows)
    if multiple:
        longest = -(-longest // multiple) * multiple
    out = {}
    for key in MODEL_INPUTS:
        if key in rows[0]:
            pad = pad_id if key == "input_ids" else 0
            t = torch.full((len(rows), longest), pad, dtype=torch.long)
            for i, r in enumerate(rows):
                t[i, : len(r[key])] = torch.tensor(r[key])
            out[key] = t
    return out


def test_pad_collator_matches_row_by_row_padding() -> None:
    rows = [
        {"input_ids": [101, 7, 8, 102], "attention_mask": [1] * 4, "label": 2, "weight": 0.5},
        {"input_ids": [101, 9, 102], "attention_mask": [1] * 3, "label": 0, "weight": 1.0},
        {
            "input_ids": [101, 1, 2, 3, 4, 5, 6, 7, 8, 102],
            "attention_mask": [1] * 10,
            "label": 1,
            "weight": 1.0,
        },
    ]
    for multiple in (None, 8):
        batch = PadCollator(pad_token_id=3, pad_to_multiple_of=multiple)(rows)
        expected = _reference(rows, 3, multiple)
        assert set(batch) == {*expected, "labels", "weight"}
        for key, value in expected.items():
            assert batch[key].dtype == torch.long
            torch.testing.assert_close(batch[key], value)
        assert batch["labels"].tolist() == [2, 0, 1]
        assert batch["weight"].tolist() == [0.5, 1.0, 1.0]
    assert PadCollator(0, 8)(rows)["input_ids"].shape == (3, 16)
