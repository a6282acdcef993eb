"""The claim must matter: the swap count of stance.evaluation.claimcheck on hand-made labels,
and the
mechanics it relies on, on the tiny model: the claim reaches the tokenizer as the first
segment of every pair in training, `stance evaluate`, `StancePredictor` and
`transformers.pipeline` on a run directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, tiny_config

from stance import train as train_module
from stance.cli import main
from stance.errors import StanceError
from stance.evaluation.claimcheck import PASS_AT, check_claims, count_swaps, format_check
from stance.inference.encoding import BatchEncoder
from stance.inference.engine import StancePredictor
from stance.labels import DEFAULT_CLAIM, LABELS
from stance.training import setup as train_setup

NEGATED = "Russia is not withdrawing its troops from near Ukraine's borders."
REVERSED = "Russia is sending more troops to Ukraine's borders."


# ---------------------------------------------------------------- the swap count


def test_count_swaps_on_a_hand_made_case() -> None:
    before = ["supports", "supports", "doubts", "doubts", "neutral", "supports", "neutral"]
    after = ["doubts", "supports", "supports", "neutral", "supports", "doubts", "neutral"]
    c = count_swaps(before, after, NEGATED)
    # Polar before: rows 0, 1, 2, 3, 5; swapped: 0, 2, 5; row 3 went neutral, row 1 stayed.
    assert (c.n, c.swapped, c.to_neutral, c.unchanged) == (5, 3, 1, 1)
    assert c.fraction == pytest.approx(0.6) and not c.passed
    assert c.as_dict()["fraction"] == pytest.approx(0.6)


def test_count_swaps_passes_at_the_threshold_and_not_on_nothing() -> None:
    before = ["supports"] * 4 + ["doubts"]
    assert count_swaps(before, ["doubts"] * 4 + ["doubts"], NEGATED).fraction == PASS_AT
    assert count_swaps(before, ["doubts"] * 4 + ["doubts"], NEGATED).passed
    nothing = count_swaps(["neutral", "neutral"], ["supports", "doubts"], NEGATED)
    assert nothing.n == 0 and nothing.fraction == 0.0 and not nothing.passed
    with pytest.raises(ValueError):
        count_swaps(["supports"], [], NEGATED)


class ReadsNot:
    """A stand-in predictor: supports for 'home' statements, doubts otherwise, flipped when the
    claim says 'not'; 'talks' statements are neutral whatever the claim."""

    pairs = True
    model_dir = Path("fake")

    def classify(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        out = np.zeros((len(pairs), len(LABELS)), dtype=np.float32)
        for i, (claim, text) in enumerate(pairs):
            if "talks" in text:
                label = "neutral"
            else:
                polar = "home" in text
                label = "supports" if polar != (" not " in claim) else "doubts"
            out[i, LABELS.index(label)] = 1.0
        return out


def test_check_claims_counts_each_negation_and_the_verdict() -> None:
    texts = ["Units head home.", "More tanks arrived.", "Diplomatic talks go on."]
    check = check_claims(ReadsNot(), texts, DEFAULT_CLAIM, [NEGATED, REVERSED])
    negated, reversed_ = check.counts
    assert (negated.n, negated.swapped) == (2, 2) and negated.passed
    assert (reversed_.n, reversed_.swapped, reversed_.unchanged) == (2, 0, 2)
    assert not check.passed  # every negation must pass
    text = format_check(check)
    assert "2 of 2 supports/doubts swapped (1.000" in text and "claim check: FAIL" in text
    assert check.as_dict()["negations"][0]["passed"] is True


def test_a_one_claim_model_is_refused() -> None:
    class OneClaim(ReadsNot):
        pairs = False

    with pytest.raises(StanceError, match="refuses any other claim by design"):
        check_claims(OneClaim(), ["x"], DEFAULT_CLAIM, [NEGATED])
    with pytest.raises(StanceError, match="at least one"):
        check_claims(ReadsNot(), ["x"], DEFAULT_CLAIM, [])


# ---------------------------------------------------------------- the claim is segment one


def first_segment(ids: list[int], sep_id: int) -> list[int]:
    """The ids between the leading special token and the first separator: segment one."""
    return list(ids[1 : list(ids).index(sep_id)])


def claim_ids(tokenizer, claim: str) -> list[int]:
    return tokenizer(claim, add_special_tokens=False)["input_ids"]


def test_training_tokenises_the_claim_first(tmp_path: Path, monkeypatch) -> None:
    seen = []
    real = train_setup.tokenize  # what make_loaders tokenises with

    def spy(ds, tokenizer, max_length, pairs=True):
        out = real(ds, tokenizer, max_length, pairs)
        seen.append((ds, tokenizer, out))
        return out

    monkeypatch.setattr(train_setup, "tokenize", spy)
    train_module.run_training(tiny_config(tmp_path / "run", "train.epochs=1"))
    assert len(seen) == 2  # the training and the dev side
    for ds, tokenizer, tok in seen:
        sep = tokenizer.sep_token_id
        for claim, text, ids in zip(ds["claim"], ds["text"], tok["input_ids"], strict=True):
            assert first_segment(ids, sep) == claim_ids(tokenizer, claim)
            second = ids[len(first_segment(ids, sep)) + 2 : -1]
            assert second == claim_ids(tokenizer, text)[: len(second)]


@pytest.fixture
def encoded(monkeypatch) -> list[tuple[tuple[str, str], list[int], int]]:
    """Every (pair, ids, sep id) StancePredictor's encoder sees from here on."""
    seen = []
    real = BatchEncoder.encode

    def spy(self, pairs):
        encodings, truncated = real(self, pairs)
        sep = self._tokenizer.token_to_id("[SEP]")
        seen.extend((p, e.ids, sep) for p, e in zip(pairs, encodings, strict=True))
        return encodings, truncated

    monkeypatch.setattr(BatchEncoder, "encode", spy)
    return seen


def _check_first_segments(seen, tokenizer) -> set[str]:
    for (claim, _text), ids, sep in seen:
        assert first_segment(ids, sep) == claim_ids(tokenizer, claim)
    return {claim for (claim, _), _, _ in seen}


def test_evaluate_and_its_claim_check_encode_the_claim_first(
    tiny_model_dir: Path, encoded, capsys
) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    args = ["evaluate", "--model", str(tiny_model_dir), "--data", str(DATA)]
    code = main([*args, "--claim-check", NEGATED, "--claim-check", REVERSED, "--json"])
    out = json.loads(capsys.readouterr().out)
    check = out["claim_check"]
    assert code == (0 if check["passed"] else 1)
    assert [c["claim"] for c in check["negations"]] == [NEGATED, REVERSED]
    assert check["negations"][0]["n"] <= out["n"] == 63
    assert _check_first_segments(encoded, tokenizer) == {DEFAULT_CLAIM, NEGATED, REVERSED}
    # the probe pair at load time is there too; each scored pass saw all 63 statements
    assert sum(p[0] == NEGATED for p, _, _ in encoded) == 63


def test_claim_check_of_a_multi_claim_file_is_refused(tiny_model_dir: Path, tmp_path) -> None:
    rows = [
        {"id": "a", "claim": "One claim.", "text": "A text.", "label": "supports"},
        {"id": "b", "claim": "Another claim.", "text": "B text.", "label": "doubts"},
    ]
    path = tmp_path / "two.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["evaluate", "--model", str(tiny_model_dir), "--data", str(path)]
    assert main([*args, "--claim-check", NEGATED]) == 2


def test_predictor_encodes_its_claim_first(tiny_model_dir: Path, encoded) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    predictor = StancePredictor(tiny_model_dir, claim=REVERSED, device="cpu")
    predictor.predict(["Tanks were loaded onto trains. The drills ended."])
    assert _check_first_segments(encoded, tokenizer) == {REVERSED}


def test_pipeline_dict_form_tokenises_the_claim_first(tiny_model_dir: Path) -> None:
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(tiny_model_dir), device="cpu")
    inputs = pipe.preprocess({"text": NEGATED, "text_pair": "Units head home."})
    ids = inputs["input_ids"][0].tolist()
    assert first_segment(ids, pipe.tokenizer.sep_token_id) == claim_ids(pipe.tokenizer, NEGATED)
