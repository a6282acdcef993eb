from stance.labels import DEFAULT_CLAIM, ID2LABEL, LABEL2ID, LABELS


def test_labels_are_the_three_stances_in_order():
    assert LABELS == ("supports", "doubts", "neutral")


def test_mappings_derive_from_labels():
    assert [ID2LABEL[i] for i in range(len(LABELS))] == list(LABELS)
    assert all(ID2LABEL[LABEL2ID[label]] == label for label in LABELS)


def test_default_claim_is_the_guides_claim():
    guide = (__import__("conftest").ROOT / "data" / "ANNOTATION.md").read_text(encoding="utf-8")
    assert f"**{DEFAULT_CLAIM}**" in guide
