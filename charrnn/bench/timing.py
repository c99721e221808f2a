"""Timing work on a device: warmed up, synchronised (a GPU runs behind the host), with the memory it took."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch


def synchronize(device: torch.device) -> None:
    """Wait until the device has done the work queued for it (a GPU's work is queued by the host and runs later,
    so a clock read without this measures the queueing)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Timing:
    seconds: float  # per call
    peak_bytes: int | None  # GPU memory allocated at the peak of the timed calls (None on a CPU)


def timed(fn: Callable[[], object], repeats: int, device: torch.device, warmup: int = 3) -> Timing:
    """Seconds per call of fn, after `warmup` calls (cuDNN, oneDNN and the allocators prepare on the first ones)."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    synchronize(device)
    seconds = (time.perf_counter() - start) / repeats
    return Timing(seconds, torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None)


def matmul_ceiling(dtype: torch.dtype, device: torch.device, n: int, repeats: int = 10) -> float:
    """TFLOP/s of an n x n matrix product: what the device's arithmetic can do at best."""
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    return 2 * n**3 / timed(lambda: a @ b, repeats, device).seconds / 1e12
