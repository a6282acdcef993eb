"""Resumable training checkpoints: atomic, marked COMPLETE, rotated.

A checkpoint is `accelerator.save_state` (model, optimizer, scheduler, RNG, the registered
TrainState) plus the best weights so far, written under a `partial-` name, marked COMPLETE
and renamed to `step-<n>`; only complete ones are read or rotated.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from safetensors.torch import save_file

CHECKPOINT_DIR = "checkpoints"
COMPLETE_MARKER = "COMPLETE"
# accelerate's own rotation (ProjectConfiguration(total_limit=...)) is not used: it works only
# with automatic_checkpoint_naming, which writes straight into the final `checkpoint_<n>` folder
# (a killed save leaves a folder that looks complete), deletes old checkpoints *before* the new
# one exists, counts half-written folders, numbers by save call rather than optimizer step and
# refuses an existing folder on resume. Here a checkpoint is written under a `partial-` name,
# marked COMPLETE and renamed, and only complete ones are rotated.


def checkpoint_root(run_dir: Path) -> Path:
    return run_dir / CHECKPOINT_DIR


def last_checkpoint(run_dir: Path) -> Path | None:
    """The newest checkpoint with its COMPLETE marker; half-written ones are ignored."""
    root = checkpoint_root(run_dir)
    done = [p for p in root.glob("step-*") if (p / COMPLETE_MARKER).is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def save_checkpoint(
    accelerator: Accelerator, run_dir: Path, state: Any, best: dict | None, keep: int
) -> None:
    """Checkpoint `state.step`; keep the newest `keep` complete checkpoints."""
    root = checkpoint_root(run_dir)
    final = root / f"step-{state.step:07d}"
    partial = root / f"partial-step-{state.step:07d}"
    if accelerator.is_main_process and partial.exists():
        shutil.rmtree(partial)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))  # model, optimizer, scheduler, RNG, TrainState
    if accelerator.is_main_process:
        if best is not None:
            save_file(best, str(partial / "best_model.safetensors"))
        (partial / COMPLETE_MARKER).write_text(f"{state.step}\n")
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)  # the marker and the name appear together
        complete = sorted(p for p in root.glob("step-*") if (p / COMPLETE_MARKER).is_file())
        for old in complete[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
