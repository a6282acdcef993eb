"""`stance evaluate`'s scoring (stance.evaluation.scoring): the result as JSON and as a docs
snippet, with the same numbers in both, on the tiny cross-encoder."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import DATA

from stance.cli import main
from stance.evaluation.claimcheck import ClaimCheck, SwapCount
from stance.evaluation.scoring import Evaluation, markdown_evaluations
from stance.labels import DEFAULT_CLAIM, LABELS

NEGATED = "Russia is not withdrawing its troops from near Ukraine's borders."


def table_rows(text: str, first_cell: str) -> list[list[str]]:
    """The cells of every table row of `text` whose first cell is `first_cell`."""
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()]
    return [r for r in rows if r[0] == first_cell]


def test_evaluate_markdown_holds_the_json_numbers_and_the_claim_check(
    tiny_model_dir: Path, tmp_path: Path, capsys
) -> None:
    snippet = tmp_path / "snippets" / "eval.md"
    argv = ["evaluate", "--model", str(tiny_model_dir), "--data", str(DATA), "--json"]
    code = main([*argv, "--claim-check", NEGATED, "--markdown", str(snippet)])
    report = json.loads(capsys.readouterr().out)
    assert code == (0 if report["claim_check"]["passed"] else 1)
    text = snippet.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0].startswith("**`stance evaluate`:") and "produced by `" in lines[2]
    (row,) = table_rows(text, f"`{tiny_model_dir}`")[:1]
    f1s = [report["per_class"][name]["f1"] for name in LABELS]
    expected = [report["n"], report["accuracy"], report["macro_f1"], *f1s]
    assert row[1] == f"`{DATA}`" and row[2] == report["precision"]
    assert row[3] == str(expected[0])
    assert row[4:9] == [f"{v:.3f}" for v in expected[1:]]
    assert row[9] == ("pass" if report["claim_check"]["passed"] else "**fail**")
    negation = report["claim_check"]["negations"][0]
    (check,) = [r for r in table_rows(text, f"`{tiny_model_dir}`") if NEGATED in r]
    shown = [str(negation["n"]), str(negation["swapped"]), f"{negation['fraction']:.3f}"]
    assert check[3:6] == shown
    assert f'"{DEFAULT_CLAIM}"' in text


def _evaluation(check: ClaimCheck | None) -> Evaluation:
    per_class = {name: {"f1": 0.5} for name in LABELS}
    metrics = {"n": 4, "accuracy": 0.75, "macro_f1": 0.5, "per_class": per_class}
    return Evaluation("models/m", "data/x.jsonl", "fp32", metrics, check)


def test_markdown_without_a_claim_check_has_no_check_table() -> None:
    text = markdown_evaluations([_evaluation(None)])
    assert "| `models/m` | `data/x.jsonl` | fp32 | 4 | 0.750 | 0.500 |" in text
    assert text.rstrip().endswith("| - |") and "Claim sensitivity" not in text


def test_markdown_gives_one_check_row_per_reversed_claim() -> None:
    counts = [SwapCount("A.", 10, 9, 1, 0), SwapCount("B.", 10, 0, 0, 10)]
    text = markdown_evaluations([_evaluation(None), _evaluation(ClaimCheck("C.", counts))])
    assert '("C.")' in text
    assert "| `models/m` | `data/x.jsonl` | A. | 10 | 9 | 0.900 | 1 | 0 | pass |" in text
    assert "| `models/m` | `data/x.jsonl` | B. | 10 | 0 | 0.000 | 0 | 10 | **fail** |" in text
