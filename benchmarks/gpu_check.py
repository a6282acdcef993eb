"""One command that checks a GPU machine: train, predict, evaluate, two processes, speed.

`python scripts/gpu_check.py` (after `make gpu-bundle` here, with `.whl` and `.gpu-bundle`
carried) trains the tiny model and MiniLM in bf16 (short runs), predicts, evaluates, runs
the two-process prediction (torchrun, 2 processes on one GPU) and compares speed with
transformers: predict pairs/s against `transformers.pipeline` at batch 64/512/2048, training
examples/s and MFU against `transformers.Trainer` at batch 16/256, with the GPU's
utilisation sampled meanwhile. It prints one table and writes everything to a JSON file.
Whatever cannot run says "not run: why" in its row; a step that raises is "FAILED" and makes
the exit code 1. `--dry-run` runs every step on the CPU with the tiny model in seconds.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from . import gpu_fewshot
from .gpu_bundle import ensure_packages
from .gpu_common import Context, NotRun, Row, Sizes, UtilSampler, peak_tflops, utilization_reader
from .gpu_models import prepare_models
from .gpu_prediction import (
    before_after_rows,
    precision_agreement_rows,
    predict_speed_rows,
    profile_rows,
    two_process_rows,
)
from .gpu_training import train_and_evaluate, training_speed_rows

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------- the run


def run_step(ctx: Context, rows: list[Row], check: str, step: Callable[[], list[Row]]) -> None:
    """Append the step's rows; a step that cannot run or raises is one row that says so."""
    if time.monotonic() > ctx.deadline:
        rows.append(Row(check, status="not run: the time budget was spent"))
        return
    logger.info("gpu check: %s", check)
    start, first = time.monotonic(), len(rows)
    try:
        rows.extend(step())
    except NotRun as e:
        rows.append(Row(check, status=f"not run: {e}"))
    except Exception as e:  # noqa: BLE001 - the table reports it; the exit code says so
        logger.error("%s failed:\n%s", check, traceback.format_exc())
        message = f"FAILED: {type(e).__name__}: {e}".splitlines()[0][:160]
        rows.append(Row(check, status=message, detail={"traceback": traceback.format_exc()}))
    for row in rows[first:]:
        row.detail["step_seconds"] = round(time.monotonic() - start, 1)


def machine_info(device: str) -> dict[str, Any]:
    import accelerate
    import torch
    import transformers

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "device": device,
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpus"] = torch.cuda.device_count()
        info["bf16"] = torch.cuda.is_bf16_supported()
    return info


STEP_NAMES = (
    "train + evaluate tiny",
    "train + evaluate minilm",
    "predict (pairs/s)",
    "predict before vs now",
    "labels bf16 vs fp32",
    *gpu_fewshot.STEP_NAMES,  # the default model's kind (issue 23)
    "predict, 2 processes",
    "train (examples/s, MFU)",
    "predict mpnet shape",
    "train mpnet shape",
    "train compiled",
    "profile",
)


def steps(
    ctx: Context, util: UtilSampler, options: dict[str, Any] | None = None
) -> list[tuple[str, Callable[[], list[Row]]]]:
    """The checks in order of importance (the budget may stop the last ones). `options`:
    `before` (an older checkout), `profile` (a folder), `compile` (time torch.compile)."""
    options = options or {}

    def needs(name: str, step: Callable[[], list[Row]]) -> Callable[[], list[Row]]:
        def run() -> list[Row]:
            if name not in ctx.models and name not in ctx.trained:
                raise NotRun(ctx.notes.get(name, f"no {name} model").removeprefix("not run: "))
            return step()

        return run

    s = ctx.sizes
    minilm = needs("minilm", lambda: train_and_evaluate(ctx, "minilm", util))

    def compiled() -> list[Row]:
        if not ctx.cuda:  # compiling on the CPU takes minutes and says nothing about a GPU
            raise NotRun("torch.compile is timed on CUDA only")
        if not options.get("compile"):
            raise NotRun("not asked for (--compile)")
        return training_speed_rows(ctx, util, None, (s.compile_batch,), compile=True)

    runs = [
        lambda: train_and_evaluate(ctx, "tiny", util),
        minilm,
        lambda: predict_speed_rows(ctx, util),
        lambda: before_after_rows(ctx, util, options.get("before")),
        lambda: precision_agreement_rows(ctx, util),
        *gpu_fewshot.steps(ctx, util, needs),
        lambda: two_process_rows(ctx, util),
        lambda: training_speed_rows(ctx, util),
        needs(
            "mpnet", lambda: predict_speed_rows(ctx, util, "mpnet", None, s.mpnet_predict_batches)
        ),
        needs("mpnet", lambda: training_speed_rows(ctx, util, "mpnet", s.mpnet_train_batches)),
        compiled,
        lambda: profile_rows(ctx, util, options.get("profile")),
    ]
    return list(zip(STEP_NAMES, runs, strict=True))


def check(
    device: str,
    sizes: Sizes,
    dry_run: bool,
    budget_s: float,
    options: dict[str, Any] | None = None,
    skip: Sequence[str] = (),
) -> tuple[dict, list[Row]]:
    """Run every step; (machine info, rows)."""
    info = machine_info(device)
    peak = peak_tflops(info.get("gpu", "")) if device == "cuda" else None
    info["peak_bf16_tflops_assumed"] = peak
    read, why = utilization_reader() if device == "cuda" else (None, "unavailable: CPU run")
    info["gpu_util_source"] = why
    util = UtilSampler(read, why)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        ctx = Context(device, sizes, Path(tmp), time.monotonic() + budget_s, peak)
        rows: list[Row] = []
        run_step(ctx, rows, "models", lambda: prepare_models(ctx, dry_run) or [])
        for name, step in steps(ctx, util, options):
            if name in skip:
                rows.append(Row(name, status="not run: --skip"))
            else:
                run_step(ctx, rows, name, step)
    info["models"] = {k: v for k, v in ctx.notes.items()}
    return info, rows


def not_run_rows(why: str) -> list[Row]:
    return [Row(name, status=f"not run: {why}") for name in STEP_NAMES]


# ---------------------------------------------------------------- output

COLUMNS = (
    ("check", "check"),
    ("setting", "setting"),
    ("stance", "stance"),
    ("baseline", "transformers"),
    ("ratio", "x transformers"),
    ("mfu", "MFU stance / transformers"),
    ("gpu_util", "GPU util (stance)"),
    ("status", "status"),
)


def render_table(rows: Sequence[Row]) -> str:
    """One Markdown table of every row."""
    cells = [[h for _, h in COLUMNS]] + [[str(getattr(r, k)) for k, _ in COLUMNS] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]

    def line(row: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def exit_code(rows: Sequence[Row]) -> int:
    """1 when any step failed; steps that could not run are not failures (they say why)."""
    return 1 if any(r.status.startswith("FAILED") for r in rows) else 0


def header(info: dict) -> str:
    gpu = info.get("gpu", "no GPU")
    peak = info.get("peak_bf16_tflops_assumed")
    peak_text = f"{peak:g} TFLOP/s bf16 dense assumed" if peak else "peak unknown: MFU not given"
    versions = ", ".join(f"{k} {info[k]}" for k in ("torch", "transformers", "accelerate"))
    return f"device: {info['device']} ({gpu}); {peak_text}; {versions}"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny model, a few seconds")
    p.add_argument("--json", default="gpu-check.json", help="where to write everything")
    p.add_argument("--budget-s", type=float, default=330.0, help="steps start only within this")
    p.add_argument("--bundle", action="store_true", help="write .whl/ and .gpu-bundle/, exit")
    p.add_argument(
        "--before",
        type=Path,
        help="an older checkout (e.g. `git worktree add`, or `git archive REV stance`): its "
        "prediction speed is measured beside this one's, same card",
    )
    p.add_argument("--profile", type=Path, help="write torch.profiler tables to this folder")
    p.add_argument("--compile", action="store_true", help="also time training with compile")
    p.add_argument("--skip", nargs="*", default=[], choices=STEP_NAMES, help="steps to skip")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.bundle:
        from .gpu_bundle import make_bundle

        written = make_bundle()
        size = sum(p.stat().st_size for p in written) / 2**20
        print(f"{len(written)} files, {size:.1f} MiB: carry .whl and .gpu-bundle")
        return 0
    started = time.monotonic()
    # The GPU machine has no network: the hub libraries must not try it (and wait on it).
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(name, "1")
    # TOKENIZERS_PARALLELISM is left as it is: prediction tokenises with Rust's threads.
    missing = ensure_packages()
    import torch

    device = "cpu" if args.dry_run else "cuda"
    if missing:
        info = {"device": device, "missing": missing}
        rows = not_run_rows(f"{', '.join(missing)} missing (make gpu-bundle; carry .whl)")
    elif device == "cuda" and not torch.cuda.is_available():
        info = machine_info(device)
        rows = not_run_rows("no CUDA device (torch.cuda.is_available() is False)")
    else:
        sizes = Sizes.dry() if args.dry_run else Sizes()
        options = {
            "before": args.before.resolve() if args.before else None,
            "profile": args.profile,
            "compile": args.compile,
        }
        info, rows = check(device, sizes, args.dry_run, args.budget_s, options, args.skip)
        info["sizes"] = asdict(sizes)
    info["seconds"] = round(time.monotonic() - started, 1)
    code = exit_code(rows)
    payload = {"machine": info, "rows": [asdict(r) for r in rows], "exit_code": code}
    Path(args.json).write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(header(info) if "torch" in info else f"device: {device}")
    print(render_table(rows))
    print(f"{info['seconds']} s; everything in {args.json}; exit code {code}")
    return code
