"""`charrnn bench`: speed, prints its figures as tables, measured in one run on this machine.

    charrnn bench                       # this machine's GPU if it has one, else its CPU (~3 minutes on 2 cores)
    charrnn bench --device cuda         # LSTMs of 2 x 512 and 3 x 1024 at batches of 64, 256 and 1024
    charrnn bench --device cpu --quick  # tiny shapes, a few steps: checks that the benchmark runs
    charrnn bench visitors              # many visitors sampling one model at once (--help for its options)
    charrnn bench corpus --gb 0.2       # encoding a generated corpus of that size
    charrnn bench write                 # suggestion latency of the Write tab per keystroke
    charrnn bench inside                # each Inside view against a forward and backward pass
    charrnn bench recipe --dataset F    # the --time-budget recipe against the fixed 2 x 512, 10 minutes each

Training: chars/s of charrnn's training step (the batch copied to the device, forward, backward, clip, fused
AdamW, the moving average) beside a plain nn.Embedding + nn.LSTM + nn.Linear loop with Adam at the same shapes
and precision, with the peak GPU memory of each. On a GPU: bf16 autocast (fp16 with a loss scaler where bf16
is missing); on a CPU: fp32, and bf16 autocast where the CPU has it. Sampling: chars/s of charrnn's streaming
sampler (one sample, and a batch of samples) stepping on the CPU and, on a GPU, stepping there too (the figures
behind charrnn.device.CUDA_SAMPLING_ROWS), beside a naive loop that calls the model on the device once per
character. Also the matmul ceiling, and on a CPU, when the shipped checkpoints are present, batch-1 sampling
of each shipped model and the three Compare streams running at the same time, as the app runs them. Ends
with one JSON line of every figure.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

import torch

from charrnn import service
from charrnn.bench.sampling import compare_streams, shipped_sampling
from charrnn.bench.tables import plan, precision_name, sampling_rows, training_rows
from charrnn.bench.timing import matmul_ceiling
from charrnn.device import pick_device
from charrnn.errors import ArgumentParser, cli_errors
from charrnn.sampling.stepper import kernel_choice
from charrnn.train.build import hardware_description


# `charrnn bench <suite> ...`: measurements of their own, each with its own options
SUITES = {"visitors": "charrnn.cli.bench_visitors", "corpus": "charrnn.cli.bench_corpus",
          "write": "charrnn.cli.bench_write", "inside": "charrnn.cli.bench_inside",
          "recipe": "charrnn.cli.bench_recipe"}


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in SUITES:
        return importlib.import_module(SUITES[argv[0]]).main(argv[1:])
    return speed(argv)


@cli_errors
def speed(argv=None) -> dict:
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
    results["sampling_kernels"] = kernel_choice()
    print(f"sampling kernels: {results['sampling_kernels']}", flush=True)

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
