"""Device and precision choice, in one place."""

from __future__ import annotations

import contextlib
import os

import torch

from charrnn.config import CPU_BATCH_SIZE, CUDA_SAMPLING_ROWS, GPU_BATCH_SIZE  # noqa: F401 (re-exported)
from charrnn.errors import CharRNNError


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise CharRNNError("--device cuda was asked for, but no CUDA GPU is available; use --device cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise CharRNNError("--device mps was asked for, but MPS is not available; use --device cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise CharRNNError(f"unknown device {name!r}: choose auto, cpu, cuda or mps")
    return torch.device(name)




def sampling_device(rows: int, name: str = "auto") -> torch.device:
    """Where `rows` samples of one model are stepped: with "auto", a CUDA GPU when there is one and the rows are
    at least CUDA_SAMPLING_ROWS, else the CPU (the compiled Stepper); any other name as pick_device reads it."""
    if name == "auto":
        return torch.device("cuda" if rows >= CUDA_SAMPLING_ROWS and torch.cuda.is_available() else "cpu")
    return pick_device(name)


def use_deterministic_algorithms() -> None:
    """torch's deterministic kernels (cuDNN's too, without its benchmark's timing-dependent choice), so that two
    runs of the same step give the same bits (`--deterministic`). cuBLAS reads its workspace setting when it
    starts, so this comes before the first CUDA work. An operation without a deterministic kernel warns, naming
    itself, instead of stopping the run."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def default_batch_size(device: torch.device) -> int:
    """Text streams per step when --batch-size is not given."""
    return GPU_BATCH_SIZE if device.type == "cuda" else CPU_BATCH_SIZE


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return False


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The lower-precision dtype to autocast to, or None for fp32."""
    if precision == "fp32":
        return None
    if precision == "auto":
        if bf16_supported(device):
            return torch.bfloat16
        return torch.float16 if device.type == "cuda" else None
    if precision == "bf16":
        if not bf16_supported(device):
            raise CharRNNError(f"bf16 is not supported on this {device.type}; use --precision fp32")
        return torch.bfloat16
    if precision == "fp16":
        if device.type != "cuda":
            raise CharRNNError("fp16 autocast needs a CUDA GPU; use --precision bf16 or fp32 on this device")
        return torch.float16
    raise CharRNNError(f"unknown precision {precision!r}: choose auto, fp32, bf16 or fp16")


def loss_scaler(amp_dtype: torch.dtype | None, device: torch.device) -> torch.amp.GradScaler | None:
    """fp16 needs its loss scaled, so that small gradients do not underflow; bf16 and fp32 do not."""
    return torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def one_torch_thread():
    """torch's intra-op threads down to one, for the calling thread, while this lasts: for work made of many small
    steps (a batch of one, a tiny model), too small to share between threads. On a busy host torch's threads spin
    waiting for each other at every such step, many times slower (docs/benchmarks.md). With OpenMP, torch's usual
    CPU build, the count is the calling thread's own, so the server's other requests keep theirs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
