"""Tests for stance.atomic: staged files committed as one step that signals cannot split,
and `stance predict` interrupted for real (subprocesses, real SIGINT) around that step."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stance.atomic import Staging, atomic_write_text, deferred_signals

ROOT = Path(__file__).resolve().parents[1]
SEEDS = sorted((ROOT / "seeds").glob("*.txt"))
ENV = {
    **os.environ,
    "PYTHONPATH": str(ROOT),
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
}


def test_atomic_write_replaces_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    atomic_write_text(target, "one\n")
    atomic_write_text(target, "two\n")
    assert target.read_text() == "two\n" and os.listdir(tmp_path) == ["a.txt"]


def test_a_failed_stage_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), Staging() as stage:
        with stage.open(tmp_path / "out.jsonl") as f:
            f.write("x\n")
        raise RuntimeError("before the commit")
    assert os.listdir(tmp_path) == []


def test_sigint_during_commit_is_held_until_the_step_is_done(tmp_path: Path) -> None:
    marker = tmp_path / "out.partial"
    marker.write_text("sidecar")

    def interrupt_then_remove() -> None:
        os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, between the renames and the rest
        marker.unlink()

    with Staging() as stage:
        for name in ("out.jsonl", "summary.json", "summary.png"):
            with stage.open(tmp_path / name) as f:
                f.write(name)
        stage.commit(then=[interrupt_then_remove])  # no KeyboardInterrupt escapes
    assert stage.interrupted
    assert sorted(os.listdir(tmp_path)) == ["out.jsonl", "summary.json", "summary.png"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)  # after the step, Ctrl-C interrupts again
    with deferred_signals() as received:
        os.kill(os.getpid(), signal.SIGTERM)
    assert received == [signal.SIGTERM]


# A driver: `stance predict` in a fresh interpreter, with a real SIGINT sent to itself at
# one chosen moment (the moment is the only thing patched; the signal is real).
DRIVER = textwrap.dedent(
    """
    import os, signal, sys
    from stance import cli, engine
    when = sys.argv[1]
    real_replace, real_chunk = os.replace, engine.StancePredictor.predict_chunk
    def replace(src, dst):
        real_replace(src, dst)
        if when == "finish" and str(dst).endswith(".jsonl"):
            os.kill(os.getpid(), signal.SIGINT)  # the output just appeared
    calls = []
    def chunk(self, articles, progress=None):
        calls.append(1)
        if when == "run" and len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return real_chunk(self, articles, progress)
    os.replace = replace
    engine.StancePredictor.predict_chunk = chunk
    sys.exit(cli.main(sys.argv[2:]))
    """
)


def _predict(tiny_model_dir: Path, tmp_path: Path, when: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", DRIVER, when, "predict", "--model", str(tiny_model_dir)]
    cmd += [*map(str, SEEDS), "--device", "cpu", "--no-relevance", "--chunk-chars", "3000"]
    cmd += ["-o", str(tmp_path / "out.jsonl"), "--summary", str(tmp_path / "s.json")]
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_ctrl_c_as_the_output_appears_finishes_the_step(tiny_model_dir: Path, tmp_path) -> None:
    """Issue 26 item 2: the output, the summary and its chart are all there and the sidecar
    is gone; the run reports success, since nothing is left to resume."""
    proc = _predict(tiny_model_dir, tmp_path, "finish")
    assert "Fatal Python error" not in proc.stderr
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SIGINT arrived while the output was being put in place" in proc.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["out.jsonl", "s.json", "s.png"]


def test_ctrl_c_mid_run_names_resume(tiny_model_dir: Path, tmp_path: Path) -> None:
    proc = _predict(tiny_model_dir, tmp_path, "run")
    assert proc.returncode == 130, proc.stderr[-3000:]
    assert "Fatal Python error" not in proc.stderr
    assert "interrupted: finished chunks are kept in OUT.partial" in proc.stderr
    assert "--resume" in proc.stderr
    assert not (tmp_path / "out.jsonl").exists() and (tmp_path / "out.jsonl.partial").exists()
