"""stance.data.negation: claims negated by rule, and the training copies with swapped labels."""

from __future__ import annotations

import pytest

from stance.data.negation import negate_claim, negate_claims
from stance.data.statements import to_dataset
from stance.labels import LABEL2ID


@pytest.mark.parametrize(
    ("claim", "negated"),
    [
        (
            "Russia is withdrawing its troops from near Ukraine's borders.",
            "Russia is not withdrawing its troops from near Ukraine's borders.",
        ),
        ("Apple will release a gold watch", "Apple will not release a gold watch"),
        ("Apple will not release a gold watch", "Apple will release a gold watch"),
        ("The troops are never coming home", "The troops are coming home"),
        (
            "ISIS militants captured a soldier",
            "It is not true that ISIS militants captured a soldier",
        ),
    ],
)
def test_negate_claim(claim: str, negated: str) -> None:
    assert negate_claim(claim) == negated


def test_negating_twice_gives_the_claim_back_where_a_verb_carries_it() -> None:
    claim = "Russia is withdrawing its troops."
    assert negate_claim(negate_claim(claim)) == claim


def test_negate_claims_adds_one_copy_per_row_with_supports_and_doubts_swapped() -> None:
    rows = [
        {"id": "a", "claim": "Troops are leaving.", "text": "They left.", "label": "supports"},
        {"id": "b", "claim": "Troops are leaving.", "text": "Nobody left.", "label": "doubts"},
        {"id": "c", "claim": "Troops are leaving.", "text": "It rained.", "label": "neutral"},
    ]
    for row in rows:
        row.update(group="g1", weight=1.0)
    out = negate_claims(to_dataset(rows), weight=0.5).to_list()
    assert len(out) == 6 and out[:3] == to_dataset(rows).to_list()
    copies = out[3:]
    assert [c["id"] for c in copies] == ["a~not", "b~not", "c~not"]
    assert {c["claim"] for c in copies} == {"Troops are not leaving."}
    assert [c["label"] for c in copies] == [LABEL2ID[x] for x in ("doubts", "supports", "neutral")]
    assert [c["text"] for c in copies] == ["They left.", "Nobody left.", "It rained."]
    assert [c["group"] for c in copies] == ["g1"] * 3  # a copy stays with its source's group
    assert [c["weight"] for c in copies] == [0.5] * 3


def test_a_run_negates_training_rows_only(tmp_path) -> None:
    from conftest import tiny_config

    from stance.data.training_rows import load_training_data

    plain_train, plain_dev = load_training_data(tiny_config(tmp_path))
    train, dev = load_training_data(tiny_config(tmp_path, "data.negations=true"))
    assert len(train) == 2 * len(plain_train)
    assert dev.to_list() == plain_dev.to_list()  # dev is scored as it is
    assert not set(train["group"]) & set(dev["group"])
