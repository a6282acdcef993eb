"""The GPU check's shared pieces: sizes, result rows, the run context, and measuring
(peak TFLOP/s, GPU utilisation sampling, synchronising, encoder FLOPs)."""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .gpu_bundle import ROOT

logger = logging.getLogger(__name__)

SEED_DATA = ROOT / "data" / "withdrawal.jsonl"
# Dense bf16 tensor-core peaks from the vendor's data sheets (TFLOP/s, no sparsity), matched
# against torch.cuda.get_device_name(); MFU is reported against these, not a measured rate.
PEAK_TFLOPS = {
    "H200": 989.0,
    "H100 SXM": 989.0,
    "H100 80GB HBM3": 989.0,  # the SXM part's name as the driver reports it
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
}
OK = "ok"
CHUNK_CHARS = 20_000  # several chunks per process in the two-process prediction


@dataclass
class Sizes:
    """How much work each step does: the GPU run's, or the dry run's few seconds."""

    predict_pairs: int = 65_536
    pipeline_pairs: int = 8_192
    predict_batches: tuple[int, ...] = (64, 512, 2048)
    train_batches: tuple[int, ...] = (16, 256)
    warm_steps: int = 5
    timed_steps: int = 20
    train_rows: int = 4096
    tiny_steps: int = 60
    article_copies: int = 40  # the seed articles repeated, for the two-process prediction
    mpnet_predict_batches: tuple[int, ...] = (512,)
    mpnet_train_batches: tuple[int, ...] = (32,)  # configs/emergent-mpnet.yaml's batch
    compile_batch: int = 256

    @classmethod
    def dry(cls) -> Sizes:
        return cls(256, 128, (64, 512, 2048), (16, 256), 1, 2, 512, 4, 2, (64,), (16,), 16)


@dataclass
class Row:
    """One line of the table; `detail` goes to the JSON file only."""

    check: str
    setting: str = ""
    stance: str = ""
    baseline: str = ""
    ratio: str = ""
    mfu: str = ""
    gpu_util: str = ""
    status: str = OK
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    """What the steps share: device, sizes, where models live, the deadline."""

    device: str
    sizes: Sizes
    workdir: Path
    deadline: float
    peak_tflops: float | None
    models: dict[str, Path] = field(default_factory=dict)  # base models by name
    trained: dict[str, Path] = field(default_factory=dict)  # run directories by name
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def cuda(self) -> bool:
        return self.device == "cuda"


# ---------------------------------------------------------------- measuring


def peak_tflops(device_name: str) -> float | None:
    """The assumed bf16 dense peak of a GPU by name (longest matching key), None if unknown."""
    matches = [k for k in PEAK_TFLOPS if k.lower() in device_name.lower()]
    return PEAK_TFLOPS[max(matches, key=len)] if matches else None


def _nvidia_smi_utilization() -> float | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    query = [exe, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"]
    out = subprocess.run(query, capture_output=True, text=True, timeout=5).stdout.strip()
    return float(out.splitlines()[0]) if out else None


def utilization_reader() -> tuple[Callable[[], float | None] | None, str]:
    """A function returning the GPU's utilisation in percent, and what it reads; None if none."""
    import torch

    if not torch.cuda.is_available():
        return None, "unavailable: no GPU"
    try:
        torch.cuda.utilization()
        return (lambda: float(torch.cuda.utilization())), "torch.cuda.utilization (NVML)"
    except Exception as e:  # noqa: BLE001 - pynvml missing or NVML refused: try nvidia-smi
        logger.info("torch.cuda.utilization unavailable (%s)", e)
    try:
        if _nvidia_smi_utilization() is not None:
            return _nvidia_smi_utilization, "nvidia-smi"
    except (OSError, ValueError, subprocess.SubprocessError) as e:
        logger.info("nvidia-smi unavailable (%s)", e)
    return None, "unavailable: neither NVML nor nvidia-smi answered"


class UtilSampler:
    """Samples GPU utilisation in a thread while a block runs (mean and max, percent)."""

    def __init__(self, read: Callable[[], float | None] | None, why: str, every: float = 0.1):
        self.read, self.why, self.every = read, why, every
        self.samples: list[float] = []

    @contextmanager
    def sampling(self) -> Iterator[UtilSampler]:
        self.samples = []
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(self.every):
                try:
                    value = self.read() if self.read else None
                except Exception:  # noqa: BLE001 - a failed read is one sample fewer
                    value = None
                if value is not None:
                    self.samples.append(value)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()

    def summary(self) -> str:
        if self.read is None:
            return self.why
        if not self.samples:
            return "no sample (too short)"
        mean = sum(self.samples) / len(self.samples)
        return f"{mean:.0f}% (max {max(self.samples):.0f})"


def synchronize(ctx: Context) -> None:
    if ctx.cuda:
        import torch

        torch.cuda.synchronize()


def encoder_flops_per_example(config: Any, lengths: Sequence[int]) -> float:
    """Mean forward FLOPs of one example of these unpadded lengths through a BERT encoder.

    Per token every non-embedding weight does one multiply-add (2 FLOPs); attention adds
    QK^T and AV, 4*T*d per token per layer. Training is counted as 3x the forward.
    """
    d, layers, ff = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    weights = layers * (4 * d * d + 2 * d * ff)
    total = sum(2 * t * weights + 4 * layers * t * t * d + 2 * d * d for t in lengths)
    return total / max(len(lengths), 1)


def _rate(n: float, seconds: float) -> str:
    return f"{n / seconds:,.0f}" if seconds > 0 else "n/a"


class NotRun(Exception):
    """A step that cannot run here; its message says why."""
