"""The benchmark's tables: which shapes and precisions to measure on a device, and the rows it prints."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch

from charrnn.bench.sampling import charrnn_sampling, naive_sampling
from charrnn.bench.training import Shape, charrnn_model, charrnn_training, plain_training
from charrnn.device import autocast_dtype, bf16_supported
from charrnn.sampling.torch_stepper import TorchStepper
from charrnn.tokenizer import CharTokenizer

GPU_SHAPES = [Shape(layers, hidden, batch, 128) for layers, hidden in ((2, 512), (3, 1024))
              for batch in (64, 256, 1024)]
CPU_SHAPES = [Shape(2, 512, 16, 64)]  # the training defaults on a CPU
TINY_SHAPES = [Shape(layers, hidden, batch, 16) for layers, hidden in ((1, 32), (2, 64)) for batch in (4, 8)]


@dataclass(frozen=True)
class Plan:
    """What a run measures."""

    shapes: list[Shape]  # training; sampling uses the first one's model
    precisions: list[torch.dtype | None]  # autocast dtypes, None for fp32
    repeats: int  # timed training steps per measurement
    steps: int  # characters a batch-1 sample writes (a quarter of that in the other sampling rows)
    samples: int  # samples at once in the batched sampling rows
    matmul_n: int  # size of the matmul ceiling's matrices


def plan(device: torch.device, quick: bool) -> Plan:
    if device.type == "cuda":
        return Plan(GPU_SHAPES, [autocast_dtype("auto", device)], repeats=10 if quick else 30,
                    steps=1000 if quick else 4000, samples=64, matmul_n=8192)
    precisions = [None, torch.bfloat16] if bf16_supported(device) else [None]
    if quick:
        return Plan(TINY_SHAPES, precisions, repeats=3, steps=200, samples=4, matmul_n=256)
    return Plan(CPU_SHAPES, precisions, repeats=30, steps=4000, samples=16, matmul_n=2048)


def precision_name(amp_dtype: torch.dtype | None) -> str:
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[amp_dtype]


def print_row(values: list) -> None:
    """A row of a markdown table (to read in a terminal, and to paste into docs/benchmarks.md), printed as soon
    as its figures are measured."""
    print("| " + " | ".join(f"{v:,}" if isinstance(v, int) else str(v) for v in values) + " |", flush=True)


def print_header(headers: list[str]) -> None:
    print_row(headers)
    print("|" + "---|" * len(headers), flush=True)


def gib(peak_bytes: int) -> str:
    return f"{peak_bytes / 2**30:.2f}"


def training_rows(device: torch.device, shapes: list[Shape], precisions: list, repeats: int) -> list[dict]:
    gpu = device.type == "cuda"
    print_header(["model", "batch x seq", "precision", "charrnn chars/s", "plain nn.LSTM loop chars/s",
                  "charrnn / plain", *(["peak GPU GiB, charrnn / plain"] if gpu else [])])
    rows = []
    for shape in shapes:
        for amp_dtype in precisions:
            ours = charrnn_training(shape, amp_dtype, device, repeats)
            plain = plain_training(shape, amp_dtype, device, repeats)
            row = {"model": shape.model, "batch": shape.batch, "seq_len": shape.seq_len,
                   "precision": precision_name(amp_dtype), "charrnn_chars_s": round(shape.chars / ours.seconds),
                   "plain_chars_s": round(shape.chars / plain.seconds)}
            if gpu:
                row.update(charrnn_peak_bytes=ours.peak_bytes, plain_peak_bytes=plain.peak_bytes)
            print_row([shape.model, f"{shape.batch} x {shape.seq_len}", row["precision"], row["charrnn_chars_s"],
                       row["plain_chars_s"], f"x{plain.seconds / ours.seconds:.2f}",
                       *([f"{gib(ours.peak_bytes)} / {gib(plain.peak_bytes)}"] if gpu else [])])
            rows.append(row)
    return rows


def sampling_rows(device: torch.device, shape: Shape, steps: int, samples: int) -> list[dict]:
    """Batch-1 and batched sampling of a model of `shape`: `steps` characters per sample at batch 1, a quarter
    of that in a batch and in the naive loop. On a GPU, charrnn's sampler stepping there too (a TorchStepper), as
    `charrnn sample` does for CUDA_SAMPLING_ROWS samples or more: the figures its rule rests on."""
    torch.manual_seed(0)
    model = charrnn_model(shape).to(device).eval()
    tokenizer = CharTokenizer("".join(chr(32 + i) for i in range(model.config.vocab_size - 2)) + "\n")
    print_header(["sampler", "samples at once", "chars/s, all samples"])
    steppers = {"the CPU": None}
    if device.type == "cuda":
        steppers[device.type] = TorchStepper(model, draw_compiled=True)  # the CPU rows compiled the draw
    measures = []
    for where, stepper in steppers.items():
        measures += [(f"charrnn streaming sampler (steps on {where})", 1,
                      partial(charrnn_sampling, model, tokenizer, steps, 1, stepper)),
                     (f"charrnn streaming sampler (steps on {where})", samples,
                      partial(charrnn_sampling, model, tokenizer, steps // 4, samples, stepper))]
    measures += [(f"naive: the model called once per character on {device.type}", batch,
                  partial(naive_sampling, model, steps // 4, batch)) for batch in (1, samples)]
    rows = []
    for sampler, batch, measure in measures:
        rows.append({"sampler": sampler, "samples": batch, "chars_s": round(measure())})
        print_row([sampler, batch, rows[-1]["chars_s"]])
    return rows
