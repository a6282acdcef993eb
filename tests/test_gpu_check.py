"""Tests for benchmarks/gpu_check.py (and the gpu_common, gpu_models, gpu_training,
gpu_prediction and gpu_bundle modules it runs): the CPU dry run, rows, wheels."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def gc(monkeypatch):
    # The repository's benchmarks package, not pysbd's top-level `benchmarks`.
    monkeypatch.syspath_prepend(str(ROOT))
    for name in [m for m in sys.modules if m == "benchmarks" or m.startswith("benchmarks.")]:
        monkeypatch.delitem(sys.modules, name)
    from benchmarks import gpu_check

    return gpu_check


def test_dry_run_runs_every_step_on_the_cpu(gc, monkeypatch, tmp_path: Path) -> None:
    """`--dry-run`: the whole check on the CPU with the tiny model (and a tiny MPNet for the
    mpnet-shape rows); one table, a JSON file, MiniLM's and the compiled run's rows say why
    they did not run, and nothing fails."""
    small = gc.Sizes(128, 64, (64, 512), (16,), 1, 1, 64, 2, 2, (64,), (16,), 16)
    monkeypatch.setattr(gc.Sizes, "dry", classmethod(lambda cls: small))
    bodies = _fnc1_like(tmp_path)  # whether or not ../shared is here
    monkeypatch.setattr(gc.gpu_fewshot, "fnc1_bodies_csv", lambda: bodies)
    monkeypatch.setattr(gc.gpu_fewshot, "FNC1_SENTENCES", 40)
    out = tmp_path / "check.json"
    assert gc.main(["--dry-run", "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    rows = payload["rows"]
    checks = [r["check"] for r in rows]
    assert [r["status"] for r in rows if r["status"] != "ok"] == [
        "not run: --dry-run uses the tiny model only",
        "not run: no --before checkout given",
        "not run: torch.compile is timed on CUDA only",
        "not run: no --profile folder given",
    ]
    assert sum(c.startswith("predict mpnet (pairs/s)") for c in checks) == 1
    assert sum(c.startswith("train mpnet fp32") for c in checks) == 1
    labels = next(r for r in rows if r["check"].startswith("labels tiny"))
    assert labels["detail"]["agreement"] == 1.0  # the same fp32 arithmetic on one device
    predict = next(r for r in rows if r["check"].startswith("predict tiny (pairs/s)"))
    assert predict["detail"]["network_alone_pairs_per_s"] > 0
    assert "train + evaluate tiny fp32" in checks
    assert sum(c.startswith("predict tiny (pairs/s)") for c in checks) == 2
    assert sum(c.startswith("train tiny fp32") for c in checks) == 1
    two = next(r for r in rows if "2 processes" in r["check"])
    assert two["detail"]["identical"] and two["detail"]["sentences"] > 20
    assert payload["exit_code"] == 0 and payload["machine"]["device"] == "cpu"
    _check_fewshot_rows(rows)


def _fnc1_like(tmp_path: Path) -> Path:
    """A bodies CSV in FNC-1's columns, with made-up text: 45 sentences over 3 bodies."""
    import csv

    path = tmp_path / "bodies.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Body ID", "articleBody"])
        for body in range(3):
            text = " ".join(f"Report {body}.{i} says units moved {i} km today." for i in range(15))
            writer.writerow([body, text])
    return path


def _check_fewshot_rows(rows: list[dict]) -> None:
    """The few-shot kind's rows (issue 23): the recipe trained, LP-FT timed with its FLOPs
    from real tokens, predict end to end, and labels agreeing on seeds and unseen text."""
    by = {r["check"]: r for r in rows}
    recipe = by["train few-shot mpnet recipe (fp32)"]
    assert recipe["status"] == "ok" and recipe["detail"]["train_rows"] > 100
    lpft = by["train few-shot mpnet LP-FT fp32 (examples/s)"]
    assert lpft["detail"]["examples_per_s"] > 0 and lpft["detail"]["mean_real_tokens"] > 3
    predict = by["predict few-shot mpnet (sentences/s)"]
    assert predict["detail"]["stance_predict_sentences"] > 20
    assert predict["detail"]["label_agreement_with_library"] >= 0.99
    labels = [r for r in rows if r["check"].startswith("labels few-shot mpnet")]
    assert [r["detail"]["sentences"] for r in labels] == [63, 40]
    assert all(r["detail"]["agreement"] == 1.0 for r in labels)  # fp32 on one device


def test_training_flops_count_the_backward_of_trained_layers_only(gc) -> None:
    from types import SimpleNamespace

    from benchmarks.gpu_common import encoder_flops_per_example
    from benchmarks.gpu_fewshot import train_flops_per_example

    config = SimpleNamespace(hidden_size=8, num_hidden_layers=4, intermediate_size=32)
    forward = encoder_flops_per_example(config, [5, 7])
    assert train_flops_per_example(config, [5, 7], 0) == forward
    assert train_flops_per_example(config, [5, 7], 4) == 3 * forward
    assert train_flops_per_example(config, [5, 7], 1) == 1.5 * forward


def test_no_gpu_is_not_run_not_a_crash(gc, tmp_path: Path, capsys) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = tmp_path / "check.json"
    assert gc.main(["--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert table.count("not run: no CUDA device") == len(gc.STEP_NAMES)


def test_failed_steps_set_the_exit_code_and_steps_that_cannot_run_do_not(gc, tmp_path) -> None:
    ctx = gc.Context("cpu", gc.Sizes.dry(), tmp_path, deadline=float("inf"), peak_tflops=None)
    rows: list = []

    def boom() -> list:
        raise ValueError("a broken step")

    def cannot() -> list:
        raise gc.NotRun("no MiniLM here")

    gc.run_step(ctx, rows, "cannot", cannot)
    assert gc.exit_code(rows) == 0 and rows[0].status == "not run: no MiniLM here"
    gc.run_step(ctx, rows, "boom", boom)
    assert rows[1].status == "FAILED: ValueError: a broken step" and gc.exit_code(rows) == 1
    ctx.deadline = 0.0
    gc.run_step(ctx, rows, "late", boom)
    assert rows[2].status.startswith("not run: the time budget")
    table = gc.render_table(rows)
    assert len(table.splitlines()) == 2 + len(rows) and "a broken step" in table


def test_peak_is_looked_up_by_device_name(gc) -> None:
    assert gc.peak_tflops("NVIDIA H200") == 989.0
    assert gc.peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert gc.peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert gc.peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert gc.peak_tflops("Some Future GPU") is None


def _wheel(folder: Path, name: str) -> Path:
    """A minimal pure-Python wheel holding one module."""
    path = folder / f"{name}-0.1-py3-none-any.whl"
    info = f"{name}-0.1.dist-info"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}/__init__.py", "VALUE = 42\n")
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        z.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        z.writestr(f"{info}/RECORD", "")
    return path


def test_missing_modules_are_installed_from_carried_wheels(gc, monkeypatch, tmp_path) -> None:
    """On the bare GPU machine: pip install --no-index from .whl/, then importable."""
    from benchmarks import gpu_bundle

    name = "stance_gpu_check_probe"
    monkeypatch.setattr(gpu_bundle, "NEEDED_MODULES", (name,))
    monkeypatch.setattr(sys, "path", list(sys.path))
    wheels, site = tmp_path / "whl", tmp_path / "site"
    wheels.mkdir()
    assert gpu_bundle.ensure_packages(wheels, site) == [name]  # no wheel: still missing
    _wheel(wheels, name)
    assert gpu_bundle.ensure_packages(wheels, site) == []
    assert __import__(name).VALUE == 42
    monkeypatch.delitem(sys.modules, name)
