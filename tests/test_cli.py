"""Tests for stance.cli: usage and path errors answer without importing torch."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT


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


def test_evaluate_and_predict_give_the_same_labels_with_a_cross_encoder(
    tiny_model_dir, tmp_path, capsys
) -> None:
    """One inference path (issue 14), for the cross-encoder kind (tests/test_fewshot.py has
    the few-shot kind): `stance evaluate` scores exactly StancePredictor's labels, and
    `stance predict` writes them."""
    import json
    from pathlib import Path

    import numpy as np
    from sklearn.metrics import confusion_matrix

    from stance.cli import main
    from stance.data.statements import load_statements
    from stance.inference.engine import StancePredictor
    from stance.labels import LABELS

    root = Path(__file__).resolve().parents[1]
    data = root / "data" / "withdrawal.jsonl"
    predictor = StancePredictor(tiny_model_dir)
    ds = load_statements(data, predictor.claim)
    predicted = predictor.classify(list(zip(ds["claim"], ds["text"], strict=True))).argmax(-1)
    assert main(["evaluate", "--model", str(tiny_model_dir), "--data", str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    gold = np.array(ds["label"])
    assert report["accuracy"] == pytest.approx(float((predicted == gold).mean()))
    expected = confusion_matrix(gold, predicted, labels=range(len(LABELS))).tolist()
    assert report["confusion_matrix"] == expected
    out = tmp_path / "p.jsonl"
    argv = ["predict", "--model", str(tiny_model_dir), str(root / "seeds"), "--output", str(out)]
    assert main([*argv, "--no-relevance"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    labels = predictor.classify([r["text"] for r in rows]).argmax(-1)
    assert [r["label"] for r in rows] == [LABELS[i] for i in labels]


def test_import_without_the_corpus_says_what_and_where(tmp_path, caplog):
    """Issue 26 item 7: `make emergent` without ../shared names the corpus and its source."""
    from stance.cli import main

    assert main(["import", "emergent", str(tmp_path / "shared/data/emergent"), "-o", "x"]) == 2
    msg = caplog.text
    assert "no such folder" in msg and "Emergent corpus" in msg
    assert "github.com/willferreira/mscproject" in msg and "SHARED=" in msg
    assert "url-versions-2015-06-14-clean-train.csv" in msg


def _cli_subprocess(argv, cwd):
    """`stance` in a fresh interpreter: (exit code, heavy modules imported, stderr)."""
    script = (
        "import sys\nfrom stance import cli\nrc = cli.main(sys.argv[1:])\n"
        "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "print('RESULT', rc, heavy, file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, *map(str, argv)], capture_output=True, text=True, cwd=cwd
    )
    return proc.stderr


def test_missing_inputs_answer_before_the_model_loads(tiny_model_dir, tmp_path):
    """Issue 26 item 8: when no input exists, exit 3 at once (no torch), no output."""
    err = _cli_subprocess(
        ["predict", "--model", tiny_model_dir, "a.txt", "b.jsonl", "-o", "o.jsonl"], tmp_path
    )
    assert "RESULT 3 []" in err and "a.txt" in err and "b.jsonl" in err, err[-2000:]
    assert not (tmp_path / "o.jsonl").exists()


def test_a_run_shows_no_loading_weights_bar(tiny_model_dir, tmp_path):
    """Issue 26 item 8: transformers' "Loading weights" bar is not drawn (-v shows it)."""
    seeds = sorted((ROOT / "seeds").glob("*.txt"))
    argv = ["predict", "--model", tiny_model_dir, "--no-relevance", *seeds, "-o", "o.jsonl"]
    err = _cli_subprocess(argv, tmp_path)
    assert "RESULT 0" in err, err[-2000:]
    assert "Loading weights" not in err and "predict:" in err


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["predict", "--help"], ["sentences per forward pass", "where the model runs"]),
        (["evaluate", "--help"], ["sentences per forward pass"]),
        (["cv", "--help"], ["(default: 3)", "--resume"]),
        (["annotate", "--help"], [".html", ".jsonl"]),
        (["segment", "--help"], [".html", ".jsonl"]),
    ],
)
def test_help_explains_every_option(argv, needles, capsys):
    from stance.cli import main

    with pytest.raises(SystemExit):
        main(argv)
    text = " ".join(capsys.readouterr().out.split())
    assert all(n in text for n in needles), text


def test_evaluate_refuses_bad_data_before_the_model_loads(tiny_model_dir, tmp_path):
    """Issue 26 item 8: a missing or broken --data file answers before torch loads."""
    err = _cli_subprocess(["evaluate", "--model", tiny_model_dir, "--data", "no.jsonl"], tmp_path)
    assert "RESULT 2 []" in err and "no.jsonl" in err, err[-2000:]
    (tmp_path / "bad.jsonl").write_text('{"id": "1", "text": "t", "label": "maybe"}\n')
    err = _cli_subprocess(["evaluate", "--model", tiny_model_dir, "--data", "bad.jsonl"], tmp_path)
    assert "RESULT 2 []" in err and "bad.jsonl" in err, err[-2000:]
