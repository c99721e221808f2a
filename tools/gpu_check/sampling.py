"""Sampling on the CPU's compiled kernels beside sampling on the GPU, from one sample to many, and scoring a text on
each (issue 28, section 4): the figures behind charrnn.device.CUDA_SAMPLING_ROWS, the number of samples at once from
which `charrnn sample` steps on the GPU."""

from __future__ import annotations

import copy
import time

import numpy as np
import torch

from charrnn.bench.tables import GPU_SHAPES, TINY_SHAPES
from charrnn.bench.timing import synchronize
from charrnn.bench.training import charrnn_model
from charrnn.device import CUDA_SAMPLING_ROWS
from charrnn.evaluate import evaluate_ids
from charrnn.sampling.generate import SamplingSettings, stream
from charrnn.sampling.torch_stepper import TorchStepper
from charrnn.tokenizer import CharTokenizer

ROWS = (1, 2, 4, 8, 16, 64)


def chars_per_second(model, tokenizer, rows: int, steps: int, stepper=None) -> float:
    """Characters per second, all rows together, after a few steps of warm-up."""
    settings = SamplingSettings(temperature=0.8)
    for _ in stream(model, tokenizer, "ROMEO:", 10, settings, seed=0, num_samples=rows, stepper=stepper):
        pass
    start = time.perf_counter()
    for _ in stream(model, tokenizer, "ROMEO:", steps, settings, seed=0, num_samples=rows, stepper=stepper):
        pass
    return steps * rows / (time.perf_counter() - start)


def scoring_speed(model, ids: np.ndarray, device: torch.device) -> float:
    """Tokens per second of evaluate_ids (what `charrnn evaluate` runs) with the model on `device`."""
    evaluate_ids(model, ids[:2048], device=device)  # warm-up
    synchronize(device)
    start = time.perf_counter()
    evaluate_ids(model, ids, device=device)
    return (len(ids) - 1) / (time.perf_counter() - start)


def run(device: torch.device, tiny: bool) -> dict:
    """The check's sampling part. On a CPU (tiny) the "GPU" side is torch on the CPU: the code path, not figures."""
    shape = TINY_SHAPES[0] if tiny else GPU_SHAPES[0]
    torch.manual_seed(0)
    model = charrnn_model(shape).eval()
    tokenizer = CharTokenizer("".join(chr(32 + i) for i in range(model.config.vocab_size - 2)) + "\n")
    device_model = copy.deepcopy(model).to(device)
    on_device = TorchStepper(device_model, draw_compiled=True)
    rows_list, steps = ((1, 4), 20) if tiny else (ROWS, 100)
    rows = []
    for count in rows_list:
        cpu = chars_per_second(model, tokenizer, count, steps)
        gpu = chars_per_second(device_model, tokenizer, count, steps, on_device)
        rows.append({"samples": count, "cpu_chars_s": round(cpu), "device_chars_s": round(gpu),
                     "faster": "device" if gpu > cpu else "cpu"})
    crossover = next((r["samples"] for r in rows if r["faster"] == "device"), None)
    # The rule holds where the faster side is the one it picks, at every count measured.
    holds = all((r["faster"] == "device") == (r["samples"] >= CUDA_SAMPLING_ROWS) for r in rows)
    ids = np.random.default_rng(0).integers(1, model.config.vocab_size, 20_000 if tiny else 100_000)
    scoring = {"cpu_tokens_s": round(scoring_speed(model, ids, torch.device("cpu"))),
               "device_tokens_s": round(scoring_speed(device_model, ids, device))}
    table = [f"sampling a {shape.model} LSTM, chars/s of all samples together (charrnn.device.CUDA_SAMPLING_ROWS = "
             f"{CUDA_SAMPLING_ROWS})", "", f"| samples at once | CPU's compiled kernels | torch on {device.type} | "
             f"faster |", "|---|---|---|---|"]
    where = f"torch on {device.type}"
    table += [f"| {r['samples']} | {r['cpu_chars_s']:,} | {r['device_chars_s']:,} | "
              f"{where if r['faster'] == 'device' else 'CPU'} |" for r in rows]
    table += ["", f"scoring {len(ids):,} tokens (charrnn evaluate): CPU {scoring['cpu_tokens_s']:,} tokens/s, "
                  f"{where} {scoring['device_tokens_s']:,} tokens/s"]
    summary = f"{where} faster from {crossover} samples at once" if crossover else f"{where} never faster"
    summary += (f"; the rule (>= {CUDA_SAMPLING_ROWS}) {'holds' if holds else 'does NOT hold'}; scoring "
                f"x{scoring['device_tokens_s'] / max(scoring['cpu_tokens_s'], 1):.1f} on {device.type}")
    return {"summary": summary, "details": {"rows": rows, "crossover": crossover, "rule_holds": holds,
                                            "cuda_sampling_rows": CUDA_SAMPLING_ROWS, "scoring": scoring},
            "tables": ["\n".join(table)]}
