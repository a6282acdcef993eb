"""Results snippets: provenance, atomic writes, Markdown shapes, README copies."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from stance.evaluation.crossval import markdown_report, summarise
from stance.util.snippets import (
    as_markdown,
    command_line,
    describe_machine,
    markdown_table,
    stdout_snippet,
    sync_includes,
    write_snippet,
)

LSCPU = """Architecture:        x86_64
Model name:          AMD EPYC
Flags:               fpu sse2 avx2 avx512f avx512_vnni avx512_bf16 foo
"""


def test_machine_names_the_model_cores_and_speed_flags_only():
    text = describe_machine(LSCPU, cores=2)
    assert text == "AMD EPYC, 2 cores, flags avx2 avx512f avx512_bf16 avx512_vnni"
    assert describe_machine("Model name: Some CPU\nFlags: fpu sse2\n", cores=4) == (
        "Some CPU, 4 cores"
    )


def test_a_snippet_carries_title_date_machine_and_command(tmp_path):
    path = write_snippet(
        tmp_path / "s" / "x.md", "A title", "| a |\n|---|\n| 1 |", command="cmd --x", machine="M"
    )
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "**A title**"
    assert lines[2].startswith("*20") and "UTC, M; produced by `cmd --x`.*" in lines[2]
    assert lines[4:] == ["| a |", "|---|", "| 1 |"]


def test_a_failed_run_leaves_the_old_snippet(tmp_path, capsys):
    path = tmp_path / "x.md"
    path.write_text("old\n")
    before = sys.stdout
    with pytest.raises(RuntimeError), stdout_snippet(path, "t"):
        print("half a table")
        raise RuntimeError("the benchmark failed")
    assert path.read_text() == "old\n"
    assert sys.stdout is before  # restored
    assert "half a table" in capsys.readouterr().out


def test_printed_output_becomes_a_snippet(tmp_path, capsys):
    path = tmp_path / "x.md"
    with stdout_snippet(path, "Speed"):
        print("one line of context")
        print()
        print("| a | b |\n|---|---|\n| 1 | 2 |")
        print()
        print("engine   rate\nfast     9.0")
    assert "engine   rate" in capsys.readouterr().out  # still printed
    text = path.read_text()
    assert "one line of context\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```text\nengine" in text
    assert text.rstrip().endswith("```")


def test_nothing_is_written_without_a_path(tmp_path, capsys):
    with stdout_snippet(None, "t"):
        print("x")
    assert capsys.readouterr().out == "x\n"
    assert not list(tmp_path.iterdir())


def test_a_table_inside_a_printed_block_stays_a_table():
    text = as_markdown("title\n| a |\n|---|\n| 1 |\nfooter")
    assert text == "title\n\n| a |\n|---|\n| 1 |\n\nfooter"


def test_as_markdown_never_breaks_out_of_its_fence():
    text = as_markdown("a\n```\nb")
    assert text.startswith("````text\n") and text.endswith("\n````")


def test_markdown_table_aligns_numbers_right_and_escapes_pipes():
    table = markdown_table(["name", "score"], [["a|b", 0.12345], ["c", 1.0]])
    assert table.splitlines() == [
        "| name | score |",
        "|---|---:|",
        r"| a\|b | 0.123 |",
        "| c | 1.000 |",
    ]


def test_command_line_is_written_as_a_user_types_it(monkeypatch, tmp_path):
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    cli = str(root / "stance" / "cli.py")
    assert command_line([cli, "cv", "--seeds", "1"]) == ".venv/bin/stance cv --seeds 1"
    script = str(root / "scripts" / "bench_train.py")
    assert (
        command_line([script, "--collate"]) == ".venv/bin/python scripts/bench_train.py --collate"
    )
    assert command_line(["/x/.venv/bin/stance", "cv", "a b"]) == ".venv/bin/stance cv 'a b'"


def test_readme_copies_are_refreshed_from_their_files(tmp_path):
    (tmp_path / "s.md").write_text("new table\n")
    text = "intro\n<!-- include: s.md -->\nold table\n<!-- /include -->\nend\n"
    assert sync_includes(text, tmp_path) == (
        "intro\n<!-- include: s.md -->\nnew table\n<!-- /include -->\nend\n"
    )
    with pytest.raises(FileNotFoundError):
        sync_includes("<!-- include: missing.md -->\n<!-- /include -->", tmp_path)


def test_cv_report_as_markdown_has_a_row_per_fold_and_the_pooled_score():
    runs = [
        {"fold": f, "seed": 0, "n": 2, "macro_f1": f1, "accuracy": acc, "seconds": 1.0,
         "predictions": p, "references": [0, 1]}
        for f, f1, acc, p in (("000", 1.0, 1.0, [0, 1]), ("003", 1 / 3, 0.5, [0, 0]))
    ]  # fmt: skip
    baselines = [{"fold": "000", "macro_f1": 0.3}, {"fold": "003", "macro_f1": 0.2}]
    report = {"name": "x", "runs": runs, "baseline": baselines}
    report["summary"] = summarise(runs, baselines)
    text = markdown_report(report)
    lines = text.splitlines()
    assert lines[0].startswith("| held-out article | n | runs | macro-F1")
    assert lines[2] == "| 000 | 2 | 1 | 1.000 ± 0.000 | 1.000 ± 0.000 | 0.300 |"
    assert lines[4].startswith("| **mean** |  | 2 | 0.667 ± 0.333 | 0.750 ± 0.250 | 0.250 |")
    assert "Pooled macro-F1" in text and "s per fold-run" in text
