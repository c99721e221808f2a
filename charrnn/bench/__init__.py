"""Speed benchmark: prints its figures as tables, measured in one run on this machine.

    charrnn bench                       # this machine's GPU if it has one, else its CPU (~3 minutes on 2 cores)
    charrnn bench --device cuda         # LSTMs of 2 x 512 and 3 x 1024 at batches of 64, 256 and 1024
    charrnn bench --device cpu --quick  # tiny shapes, a few steps: checks that the benchmark runs

Training: chars/s of charrnn's training step (the batch copied to the device, forward, backward, clip, fused
AdamW, the moving average) beside a plain nn.Embedding + nn.LSTM + nn.Linear loop with Adam at the same shapes
and precision, with the peak GPU memory of each. On a GPU: bf16 autocast (fp16 with a loss scaler where bf16
is missing); on a CPU: fp32, and bf16 autocast where the CPU has it. Sampling: chars/s of charrnn's streaming
sampler (one sample, and a batch of samples) beside a naive loop that calls the model on the device once per
character. Also the matmul ceiling, and on a CPU, when the shipped checkpoints are present, batch-1 sampling
of each shipped model and the three Compare streams running at the same time, as the app runs them. Ends
with one JSON line of every figure.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

import torch

from charrnn import service
from charrnn.bench.sampling import charrnn_sampling, compare_streams, naive_sampling, shipped_sampling
from charrnn.bench.timing import matmul_ceiling
from charrnn.bench.training import Shape, charrnn_model, charrnn_training, plain_training
from charrnn.device import autocast_dtype, bf16_supported, pick_device
from charrnn.errors import ArgumentParser, cli_errors
from charrnn.tokenizer import CharTokenizer
from charrnn.train.build import hardware_description

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
    of that in a batch and in the naive loop."""
    torch.manual_seed(0)
    model = charrnn_model(shape).to(device).eval()
    tokenizer = CharTokenizer("".join(chr(32 + i) for i in range(model.config.vocab_size - 2)) + "\n")
    print_header(["sampler", "samples at once", "chars/s, all samples"])
    measures = [("charrnn streaming sampler (steps on the CPU)", 1,
                 lambda: charrnn_sampling(model, tokenizer, steps)),
                ("charrnn streaming sampler (steps on the CPU)", samples,
                 lambda: charrnn_sampling(model, tokenizer, steps // 4, samples)),
                *((f"naive: the model called once per character on {device.type}", batch,
                   lambda batch=batch: naive_sampling(model, steps // 4, batch)) for batch in (1, samples))]
    rows = []
    for sampler, batch, measure in measures:
        rows.append({"sampler": sampler, "samples": batch, "chars_s": round(measure())})
        print_row([sampler, batch, rows[-1]["chars_s"]])
    return rows


@cli_errors
def main(argv=None) -> dict:
    parser = ArgumentParser(prog="charrnn bench", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where to measure (default: auto, a CUDA GPU when there is one)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer repetitions on a GPU; on a CPU tiny shapes and no shipped models: a check that "
                             "the benchmark runs, not figures to compare")
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as charrnn train sets it
    what = plan(device, args.quick)
    results = {"device": device.type, "hardware": hardware_description(device), "torch": torch.__version__,
               "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        results["cudnn"] = torch.backends.cudnn.version()
    print(f"charrnn bench on {device.type}: {results['hardware']}, torch {torch.__version__}"
          + (f", cuDNN {results['cudnn']}" if "cudnn" in results else ""), flush=True)

    n = what.matmul_n
    results["matmul_tflops"] = {precision_name(dtype): round(matmul_ceiling(dtype or torch.float32, device, n), 3)
                                for dtype in dict.fromkeys([None, *what.precisions])}  # fp32 first, once
    print(f"matmul ceiling ({n}^3): "
          + ", ".join(f"{name} {tflops} TFLOP/s" for name, tflops in results["matmul_tflops"].items()), flush=True)

    print("\ntraining:", flush=True)
    results["training"] = training_rows(device, what.shapes, what.precisions, what.repeats)
    shape = what.shapes[0]
    print(f"\nsampling, {shape.model} LSTM:", flush=True)
    results["sampling"] = sampling_rows(device, shape, what.steps, what.samples)

    if device.type == "cpu" and not args.quick:  # what the app does on this CPU
        library = service.ModelLibrary()
        available = library.names()
        shipped = shipped_sampling(library, available, what.steps // 2)
        if shipped:
            results["sample_shipped_chars_s"] = shipped
            print(f"\nbatch-1 sampling of the shipped models: {shipped} chars/s", flush=True)
        compare = compare_streams(library, available, what.steps // 2)
        if compare:
            results["compare_streams_chars_s_each"] = compare
            print(f"Compare tab, three shipped models at the same time: {compare} chars/s each", flush=True)
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
