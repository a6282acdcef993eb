"""Reliability: training killed for real resumes exactly; model loading never runs foreign code.

The kill tests run `scripts/train.py` with the tiny model in subprocesses, send SIGTERM or
SIGKILL once a random number of checkpoints exist (plus a random delay, so the signal can
land inside a step, an evaluation or a checkpoint write), plant half-written checkpoints,
resume with `--resume` and compare everything with an uninterrupted run of the same seed.
The kill point comes from STANCE_KILL_SEED (random when unset; printed on every run). The
reference run and the two kill-and-resume sequences run side by side (threads driving
subprocesses): each subprocess is mostly start-up time, and the machine has 2 cores.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from stance.errors import ModelLoadError
from stance.rundir.files import check_model_dir, load_classifier
from stance.training.checkpoints import COMPLETE_MARKER, last_checkpoint

ROOT = Path(__file__).resolve().parents[1]
STEPS = 36  # 48 training rows / batch 8 = 6 steps an epoch, 6 epochs
TRAIN = [
    sys.executable,
    "scripts/train.py",
    "--config",
    "configs/tiny.yaml",
    "train.epochs=6",
    "train.checkpoint_every=2",
    "train.eval_every=4",
    "train.keep_checkpoints=50",
    "model.dropout=0.2",  # dropout draws from the RNG: resume must restore its state
    "train.num_threads=1",  # 2 shared cores: more threads make every step much slower
]
ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
}
KILL_SEED = int(os.environ.get("STANCE_KILL_SEED") or random.SystemRandom().randrange(10**6))
SIGNALS = (signal.SIGTERM, signal.SIGKILL)


class Run:
    """One `scripts/train.py` subprocess writing to `out`, its log in `out.log`."""

    def __init__(self, out: Path, *extra: str):
        self.out = out
        self.log = out.with_suffix(".log")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*TRAIN, "--output-dir", str(out), *extra],
                cwd=ROOT,
                env=ENV,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait(self, timeout: float = 400) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"training hung for {timeout} s; log: {self.tail()}") from None

    def finish(self) -> dict:
        """Wait for a clean exit; the metrics it wrote."""
        code = self.wait()
        assert code == 0, f"exit {code}; log: {self.tail()}"
        return json.loads((self.out / "metrics.json").read_text())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def complete_steps(run_dir: Path) -> list[int]:
    root = run_dir / "checkpoints"
    return sorted(
        int(p.name.split("-")[1]) for p in root.glob("step-*") if (p / COMPLETE_MARKER).is_file()
    )


def plant_half_written(run_dir: Path) -> list[Path]:
    """What a crash can leave: a `step-*` dir without its marker and a `partial-step-*` dir
    that already holds one (killed between writing COMPLETE and the rename). Their files are
    truncated copies of the last good checkpoint, so loading either would fail loudly."""
    good = last_checkpoint(run_dir)
    planted = []
    for name, marker in (("step-9999999", False), ("partial-step-9999998", True)):
        bad = run_dir / "checkpoints" / name
        shutil.copytree(good, bad)
        for f in bad.iterdir():
            f.write_bytes(f.read_bytes()[: max(f.stat().st_size // 2, 1)])
        (bad / COMPLETE_MARKER).unlink()
        if marker:
            (bad / COMPLETE_MARKER).write_text("9999998\n")
        planted.append(bad)
    return planted


class KillAndResume(threading.Thread):
    """Start a run, kill it with `sig` at a random checkpoint, check what it left, plant
    half-written checkpoints, resume it to the end. Failures are kept for the test."""

    def __init__(self, run_dir: Path, sig: signal.Signals):
        super().__init__(daemon=True)
        rng = random.Random(f"{KILL_SEED}-{sig.name}")
        self.target = rng.randrange(2, STEPS - 14, 2)  # a checkpoint step (every 2 steps)
        self.delay = rng.uniform(0, 0.2)  # then a bit more: into a step, an eval or a save
        self.where = f"STANCE_KILL_SEED={KILL_SEED}: {sig.name} after checkpoint {self.target}"
        self.where += f" + {self.delay:.2f} s"
        self.run_dir, self.sig, self.runs = run_dir, sig, []
        self.notes: list[str] = []
        self.metrics: dict | None = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.metrics = self.kill_and_resume()
        except BaseException as e:  # re-raised in the test's thread
            self.error = e

    def kill_and_resume(self) -> dict:
        victim = Run(self.run_dir)
        self.runs.append(victim)
        deadline, t = time.monotonic() + 300, self.target
        while victim.proc.poll() is None and max(complete_steps(self.run_dir), default=0) < t:
            assert time.monotonic() < deadline, f"no checkpoint {self.target}: {victim.tail()}"
            time.sleep(0.01)
        time.sleep(self.delay)
        victim.proc.send_signal(self.sig)
        code = victim.wait(60)
        # SIGKILL: -9. SIGTERM: stance.cli turns it into SystemExit(143), unwinding like
        # Ctrl-C (-15 would mean the default action).
        if code in (-self.sig, 128 + self.sig):
            self.notes.append(
                f"killed (exit {code}) with checkpoints {complete_steps(self.run_dir)}"
            )
            assert not (self.run_dir / "metrics.json").exists(), "a killed run left metrics"
        else:  # it finished first: resuming a finished run must change nothing
            assert code == 0, f"exit {code}; log: {victim.tail()}"
            self.notes.append("the run had already finished (exit 0): resumed a finished run")

        # Every step-* directory the trainer left is complete: marker and name appear together.
        left = sorted((self.run_dir / "checkpoints").glob("step-*"))
        assert [int(p.name[5:]) for p in left] == complete_steps(self.run_dir)
        assert all((p / COMPLETE_MARKER).read_text().strip() == str(int(p.name[5:])) for p in left)
        good = last_checkpoint(self.run_dir)
        assert good is not None and int(good.name[5:]) >= self.target

        # A half-written checkpoint is never taken for a complete one.
        plant_half_written(self.run_dir)
        assert last_checkpoint(self.run_dir) == good

        resumed = Run(self.run_dir, "--resume")
        self.runs.append(resumed)
        metrics = resumed.finish()
        assert f"resumed from {good}" in resumed.log.read_text(), resumed.tail()
        return metrics


@pytest.fixture(scope="module")
def kill_runs(tmp_path_factory):
    """(uninterrupted reference Run, {signal: KillAndResume}), all started at once."""
    root = tmp_path_factory.mktemp("kill")
    reference = Run(root / "reference")
    jobs = {sig: KillAndResume(root / sig.name, sig) for sig in SIGNALS}
    yield reference, jobs
    for job in jobs.values():
        job.join(5)
        for run in job.runs:
            run.stop()
    reference.stop()


def diff_metrics(got: dict, want: dict) -> str:
    """What differs between a resumed and an uninterrupted run, for the failure message."""
    keys = ("dev", "steps", "best_step")
    lines = [f"{k}: resumed {got[k]!r} != {want[k]!r}" for k in keys if got[k] != want[k]]
    for i, (a, b) in enumerate(zip(got["history"], want["history"], strict=False)):
        if a != b:
            lines.append(f"history[{i}]: resumed {a} != uninterrupted {b}")
            break
    if len(got["history"]) != len(want["history"]):
        lines.append(f"history length {len(got['history'])} != {len(want['history'])}")
    return "\n".join(lines)


@pytest.mark.slow
@pytest.mark.parametrize("sig", SIGNALS, ids=[s.name for s in SIGNALS])
def test_killed_training_resumes_to_the_uninterrupted_result(kill_runs, sig):
    reference, jobs = kill_runs
    job = jobs[sig]
    job.join(900)
    assert not job.is_alive(), f"{job.where}: still running after 900 s"
    print(f"{job.where}: {'; '.join(job.notes)}")
    if job.error is not None:
        raise job.error
    got, want = job.metrics, reference.finish()
    assert (got["dev"], got["steps"], got["history"]) == (
        want["dev"],
        want["steps"],
        want["history"],
    ), f"{job.where}\n{diff_metrics(got, want)}"
    assert got["steps"] == STEPS and got["best_step"] == want["best_step"]
    a = load_file(str(job.run_dir / "model.safetensors"))
    b = load_file(str(reference.out / "model.safetensors"))
    assert a.keys() == b.keys()
    differ = [k for k in a if not (a[k].dtype == b[k].dtype and a[k].equal(b[k]))]
    assert not differ, f"{job.where}: weights differ from the uninterrupted run's: {differ[:5]}"


class Planted:
    """Unpickling this touches a file: proof that a pickle was (never) loaded."""

    def __init__(self, sentinel: Path):
        self.sentinel = sentinel

    def __reduce__(self):
        return (Path.touch, (self.sentinel,))


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "weights.ckpt", "model.pkl"])
def test_pickle_only_model_dir_is_refused_and_never_unpickled(tmp_path, name):
    sentinel = tmp_path / "UNPICKLED"
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "bert"}')
    (model / name).write_bytes(pickle.dumps({"weight": Planted(sentinel)}))
    for load in (check_model_dir, load_classifier):
        with pytest.raises(ModelLoadError, match="refusing to unpickle") as err:
            load(model)
        assert name in str(err.value) and str(model) in str(err.value)
    assert not sentinel.exists(), "a pickle was unpickled"


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path) -> Path:
    path = tmp_path / "model"
    shutil.copytree(tiny_model_dir, path)
    return path


def test_pickle_disguised_as_safetensors_is_never_unpickled(model_copy, tmp_path):
    sentinel = tmp_path / "UNPICKLED"
    (model_copy / "model.safetensors").write_bytes(pickle.dumps({"w": Planted(sentinel)}))
    with pytest.raises(ModelLoadError):
        load_classifier(model_copy)
    assert not sentinel.exists()


def test_corrupt_safetensors_is_a_model_load_error(model_copy):
    (model_copy / "model.safetensors").write_bytes(b"\x80\x04not a safetensors file")
    with pytest.raises(ModelLoadError, match=re.escape(str(model_copy))):
        load_classifier(model_copy)


def test_remote_code_in_a_model_dir_is_never_run(model_copy, tmp_path):
    sentinel = tmp_path / "REMOTE_CODE_RAN"
    config = json.loads((model_copy / "config.json").read_text())
    config["auto_map"] = {
        "AutoConfig": "evil.EvilConfig",
        "AutoModelForSequenceClassification": "evil.EvilModel",
    }
    (model_copy / "config.json").write_text(json.dumps(config))
    (model_copy / "evil.py").write_text(
        f"from pathlib import Path\nPath({str(sentinel)!r}).touch()\n"
    )
    try:
        model, _ = load_classifier(model_copy)
    except ModelLoadError:
        pass
    else:
        assert type(model).__module__.startswith("transformers."), type(model)
    assert not sentinel.exists(), "code shipped inside a model directory was executed"


def test_trust_remote_code_is_never_set_in_the_package():
    sources = sorted((ROOT / "stance").rglob("*.py"))
    assert len(sources) > 10
    for path in sources:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"trust_remote_code\s*[=:]\s*True", text), path
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, ast.keyword) and node.arg == "trust_remote_code":
                pytest.fail(f"{path}:{node.lineno}: passes trust_remote_code")
            if isinstance(node, ast.Constant) and node.value == "trust_remote_code":
                pytest.fail(f"{path}:{node.lineno}: builds a trust_remote_code key")
