"""Tests for stance.cli: usage and path errors answer without importing torch."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--help"], 0, ""),
        (["predict", "--help"], 0, ""),
        (["segment", "--help"], 0, ""),
        (["train", "--help"], 0, ""),
        (["cv", "--help"], 0, ""),
        (["import", "--help"], 0, ""),
        (["train", "--config", "nope.yaml"], 2, "nope.yaml: no such config file"),
        (["cv", "--config", "nope.yaml"], 2, "nope.yaml: no such config file"),
        (["split", "--config", "nope.yaml", "-o", "x"], 2, "nope.yaml: no such config file"),
        (["evaluate", "--model", "nope", "--data", "x.jsonl"], 2, "nope: model directory not"),
        (["predict", "--model", "nope", "a.txt", "-o", "o.jsonl"], 2, "nope: model directory not"),
        (["predict", "--model", "nope", "a.txt", "-o", "o.txt"], 2, "must end in .jsonl or .csv"),
        (["import", "emergent", "nope", "-o", "x"], 2, "nope: no such folder"),
    ],
)
def test_usage_errors_answer_without_torch(argv, code, message, tmp_path):
    script = (
        "import sys\nfrom stance import cli\n"
        "try:\n    rc = cli.main(sys.argv[1:])\nexcept SystemExit as e:\n    rc = e.code\n"
        "heavy = [m for m in ('torch', 'transformers', 'datasets') if m in sys.modules]\n"
        "print('RESULT', rc, heavy, file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, *argv], capture_output=True, text=True, cwd=tmp_path
    )
    assert f"RESULT {code} []" in proc.stderr, proc.stderr[-2000:]
    assert message in proc.stderr
    if argv[-1] == "--help" and argv[0] == "predict":
        assert "exit codes" in proc.stdout and "3 every input failed" in proc.stdout
    if argv[-1] == "--help" and argv[0] == "train":  # the config's own help strings
        assert "train.lr (default 5e-05): peak learning rate of AdamW" in proc.stdout
