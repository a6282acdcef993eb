"""Process-level tuning for inference: the device, CPU threads and glibc's allocator."""

from __future__ import annotations

import os
from typing import Any

import torch

from ..errors import StanceError


def _load_libc() -> Any:
    """glibc, for malloc_trim and mallopt; None elsewhere (musl, macOS, Windows)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018 - both must exist
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _load_libc()
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h


def tune_allocator() -> None:
    """Serve batch-sized tensors from the heap rather than from fresh mmaps.

    glibc hands blocks over 128 KB to mmap until frees teach it otherwise, and every fresh
    mmap page faults on first touch: on this project's 2-core VM a new process's int8 passes
    ran about a third slower than with this. Fixed thresholds of 32 MB (glibc's maximum)
    keep those blocks on the heap for reuse; release_memory() still returns them between
    chunks. Process-wide, glibc only, called by StancePredictor on CPU.
    """
    if _LIBC is not None:
        _LIBC.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
        _LIBC.mallopt(_M_TRIM_THRESHOLD, 64 << 20)


def release_memory() -> None:
    """Hand freed heap pages back to the OS between chunks.

    Batches of different shapes leave glibc's heap fragmented, so without this a long run's
    resident memory creeps up with the corpus even though live memory does not.
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def resolve_device(device: str | torch.device) -> torch.device:
    """`auto`: CUDA when available, else CPU. Asking for CUDA without one is an error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise StanceError("--device cuda: no CUDA device is available (use --device cpu)")
    return dev


def set_threads(num_threads: int | None) -> None:
    """Use the CPUs this process may run on; torch may count cores it cannot use."""
    if num_threads:
        torch.set_num_threads(num_threads)
        return
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    if torch.get_num_threads() > available:
        torch.set_num_threads(available)
