"""What a training run shows while it runs: the progress bar, examples/s and the losses."""

from __future__ import annotations

import sys
import time
from typing import Any

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

LOSS_READ_EVERY = 50  # steps between reads of the per-step losses (see LossLog)


class LossLog:
    """Per-step losses kept where they were computed, read into the history in batches.

    `loss.item()` every step makes the host wait for the GPU at every step, so it cannot
    queue the next step's kernels; reading a stack of them now and then gives the same
    floats. Read before anything else enters the history (evaluations) and before a
    checkpoint saves it, so the history is what per-step reads would have written.
    """

    def __init__(self, every: int = LOSS_READ_EVERY):
        self.every = every
        self._pending: list[tuple[int, torch.Tensor]] = []

    def add(self, step: int, loss: torch.Tensor) -> bool:
        """Keep one step's loss; True when it is time to read them."""
        self._pending.append((step, loss.detach()))
        return len(self._pending) >= self.every

    def read_into(self, history: list[dict]) -> float | None:
        """Append the pending losses to `history` in step order; the last one, if any."""
        if not self._pending:
            return None
        values = torch.stack([loss for _, loss in self._pending]).tolist()  # one sync
        history.extend(
            {"step": step, "loss": v} for (step, _), v in zip(self._pending, values, strict=True)
        )
        self._pending.clear()
        return values[-1]


class Progress:
    """The progress bar, the examples/s shown on it, and the per-step losses (LossLog)."""

    def __init__(self, accelerator: Accelerator, total_steps: int, initial: int):
        self.losses = LossLog()
        self.rate = 0.0
        self.bar = tqdm(
            mininterval=1.0 if sys.stderr.isatty() else 30.0,  # keep CI logs short
            total=total_steps,
            initial=initial,
            desc="training",
            unit="step",
            disable=not accelerator.is_local_main_process,
        )
        self._examples, self._since = 0, time.perf_counter()

    def examples(self, n: int) -> None:
        self._examples += n

    def step(self, state: Any, loss: torch.Tensor) -> None:
        self.rate = self._examples / max(time.perf_counter() - self._since, 1e-9)
        self.bar.update(1)
        if self.losses.add(state.step, loss):
            self.read_losses(state)

    def read_losses(self, state: Any) -> None:
        last = self.losses.read_into(state.history)
        if last is not None:
            self.bar.set_postfix(loss=f"{last:.4f}", ex_s=f"{self.rate:.1f}")

    def close(self, state: Any) -> None:
        self.read_losses(state)
        self.bar.close()
