"""Tests for stance.util.atomic: staged files committed as one step that signals cannot split,
and `stance predict` interrupted for real (subprocesses, real SIGINT) around that step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stance.util.atomic import Staging, atomic_write_text, deferred_signals

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


@pytest.fixture
def ctrl_c():
    """Python's own SIGINT handler for the test: a suite started in the background (`make test
    &`) inherits SIGINT ignored, and nothing could be interrupted."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_sigint_during_commit_is_held_until_the_step_is_done(tmp_path: Path, ctrl_c) -> None:
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
    signal.signal(signal.SIGINT, signal.default_int_handler)  # not SIG_IGN from a background job
    from stance import cli
    from stance.inference import engine
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


@pytest.mark.slow
def test_ctrl_c_at_random_moments_leaves_a_finished_or_resumable_run(tiny_model_dir, tmp_path):
    """Real SIGINTs at random times (STANCE_KILL_SEED, printed): never a fatal error; either
    everything is there and no sidecar, or no output and --resume completes it."""
    import random
    import time

    seed = int(os.environ.get("STANCE_KILL_SEED") or random.SystemRandom().randrange(10**6))
    print(f"STANCE_KILL_SEED={seed}")
    rng = random.Random(seed)
    corpus = tmp_path / "corpus.jsonl"
    with corpus.open("w", encoding="utf-8") as f:
        for i, path in enumerate(SEEDS * 4):
            f.write(json.dumps({"id": f"a{i}", "text": path.read_text(encoding="utf-8")}) + "\n")

    def cmd(out: Path, *extra: str) -> list[str]:
        base = [sys.executable, "-m", "stance.cli", "predict", "--model", str(tiny_model_dir)]
        base += [str(corpus), "--device", "cpu", "--no-relevance", "--chunk-chars", "4000"]
        return [*base, "-o", str(out / "out.jsonl"), "--summary", str(out / "s.json"), *extra]

    ref = tmp_path / "ref"
    start = time.perf_counter()
    subprocess.run(cmd(ref), env=ENV, check=True, capture_output=True, timeout=300, cwd=ROOT)
    took = time.perf_counter() - start
    for k in range(3):
        out = tmp_path / f"run{k}"
        proc = subprocess.Popen(cmd(out), env=ENV, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        assert proc.stderr is not None
        seen = []  # up to the model's log line: main() runs, so Ctrl-C is the CLI's to handle
        while not any("stance.predict.run: model" in line for line in seen[-1:]):
            seen.append(proc.stderr.readline())
            assert seen[-1], "".join(seen)[-3000:]
        time.sleep(rng.uniform(0, took / 2))
        proc.send_signal(signal.SIGINT)
        err = "".join(seen) + proc.communicate(timeout=300)[1]
        assert "Fatal Python error" not in err and proc.returncode in (0, 130), err[-3000:]
        if proc.returncode == 130:
            assert "--resume" in err and not (out / "out.jsonl").exists()
            done = subprocess.run(cmd(out, "--resume"), env=ENV, capture_output=True, cwd=ROOT)
            assert done.returncode == 0, done.stderr[-3000:]
        names = sorted(p.name for p in out.iterdir())
        assert names == ["out.jsonl", "s.json", "s.png"], (proc.returncode, names)
        assert (out / "out.jsonl").read_bytes() == (ref / "out.jsonl").read_bytes()
