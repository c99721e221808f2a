"""Where the time of a training step goes, for the work on a faster step (issue 28, section 1).

Two views of the step `charrnn train` takes (charrnn.train.step.train_step, with the batch copy and the moving
average around it, as charrnn.bench.training times it):

- Whole steps, timed with the device synchronised, in variants that each leave one thing out or change it: the step
  as trained; the recurrent stack fused (cuDNN's own dropout between the layers, which --resume cannot restore:
  charrnn.model.LAYER_BY_LAYER_DEVICES); no dropout at all; no moving average; and the bench's plain nn.LSTM loop.
  The difference between two rows is what the thing left out costs on the clock, launches and waits included.
- One profile of a few steps as trained (torch.profiler): the device's time, the host's time and the kernels
  launched, per phase (batch copy, forward, backward, dropout, clip, optimizer, moving average). Device time per
  step well below the wall time means the GPU waits for the host (launches): fewer launches (a CUDA graph) pay.
  Dropout is its own phase, forward and backward together, and is left out of the other two.
"""

from __future__ import annotations

import contextlib
import gzip
import shutil
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from charrnn import model as model_module
from charrnn.bench.timing import synchronize
from charrnn.bench.training import VOCAB, Shape, charrnn_model, plain_training
from charrnn.config import TrainConfig
from charrnn.device import autocast_dtype, loss_scaler
from charrnn.model import CharRNN
from charrnn.train.build import make_optimizer
from charrnn.train.step import MovingAverage, to_device, train_step

PHASES = ("batch copy", "forward", "backward", "dropout", "clip", "optimizer", "moving average", "other")
LABELS = ("batch copy", "forward", "clip", "moving average")  # record_function labels put around the step's parts


def phase_of(event) -> str:
    """The phase an operator belongs to, from the chain of operators and labels that called it."""
    names = []
    while event is not None:
        names.append(event.name)
        event = event.cpu_parent
    if any("dropout" in name.lower() for name in names):
        return "dropout"
    for name in names:
        if name in LABELS:
            return name
        if name.startswith("Optimizer.step"):  # torch.optim's own label
            return "optimizer"
        if name.startswith("autograd::engine::evaluate_function"):  # the backward pass's thread
            return "backward"
    return "other"


@contextlib.contextmanager
def labelled(model: torch.nn.Module):
    """The model's forward and the gradient clipping inside train_step, each under a profiler label."""
    forward, clip = model.forward, torch.nn.utils.clip_grad_norm_

    def labelled_forward(*args, **kwargs):
        with record_function("forward"):
            return forward(*args, **kwargs)

    def labelled_clip(*args, **kwargs):
        with record_function("clip"):
            return clip(*args, **kwargs)

    model.forward, torch.nn.utils.clip_grad_norm_ = labelled_forward, labelled_clip
    try:
        yield
    finally:
        del model.forward
        torch.nn.utils.clip_grad_norm_ = clip


def make_step(shape: Shape, amp_dtype, device: torch.device, dropout: float | None = None, average: bool = True):
    """A training step as charrnn.bench.training.charrnn_training takes it, and its model."""
    cfg = TrainConfig()
    torch.manual_seed(0)
    model = charrnn_model(shape)
    if dropout is not None:
        model = CharRNN(replace(model.config, dropout=dropout))
    model = model.to(device).train()
    optimizer = make_optimizer(model, cfg)
    ema = MovingAverage(model, cfg.ema_decay) if average else None
    scaler = loss_scaler(amp_dtype, device)
    x, y = torch.randint(0, VOCAB, (shape.batch, shape.seq_len)), torch.randint(0, VOCAB, (shape.batch, shape.seq_len))
    state = {"hidden": None}

    def step():
        with record_function("batch copy"):
            xd, yd = to_device(x, device), to_device(y, device)
        _, _, state["hidden"] = train_step(model, optimizer, xd, yd, state["hidden"], amp_dtype, cfg.clip,
                                           scaler=scaler)
        if ema is not None:
            with record_function("moving average"):
                ema.update_parameters(model)

    return step, model


def seconds_per_step(step, device: torch.device, steps: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return (time.perf_counter() - start) / steps


@contextlib.contextmanager
def stack_devices(devices: tuple[str, ...]):
    """charrnn.model.LAYER_BY_LAYER_DEVICES set to `devices` for a while."""
    before = model_module.LAYER_BY_LAYER_DEVICES
    model_module.LAYER_BY_LAYER_DEVICES = devices
    try:
        yield
    finally:
        model_module.LAYER_BY_LAYER_DEVICES = before


def variants(shape: Shape, amp_dtype, device: torch.device, steps: int) -> list[dict]:
    """Whole steps on the clock: the step as trained, and the variants the module's docstring lists."""
    rows = []

    def add(name: str, seconds: float) -> None:
        rows.append({"variant": name, "ms_per_step": round(seconds * 1e3, 3), "chars_s": round(shape.chars / seconds)})

    add("as trained", seconds_per_step(make_step(shape, amp_dtype, device)[0], device, steps))
    with stack_devices(()):
        add("fused stack (cuDNN's dropout between layers)",
            seconds_per_step(make_step(shape, amp_dtype, device)[0], device, steps))
    add("no dropout", seconds_per_step(make_step(shape, amp_dtype, device, dropout=0.0)[0], device, steps))
    add("no moving average", seconds_per_step(make_step(shape, amp_dtype, device, average=False)[0], device, steps))
    add("plain nn.LSTM loop (the bench's)", plain_training(shape, amp_dtype, device, steps).seconds)
    plain = rows[-1]["ms_per_step"]
    for row in rows:
        row["vs_plain"] = round(plain / row["ms_per_step"], 3)
    return rows


def phases(shape: Shape, amp_dtype, device: torch.device, steps: int, trace: Path | None) -> dict:
    """The profile of `steps` steps as trained, per phase and per step: device ms, host ms, kernels."""
    step, model = make_step(shape, amp_dtype, device)
    gpu = device.type == "cuda"
    for _ in range(3):
        step()
    synchronize(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
    with labelled(model), profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        synchronize(device)
        wall = (time.perf_counter() - start) / steps
    totals = {phase: {"device_us": 0.0, "host_us": 0.0, "kernels": 0} for phase in PHASES}
    for event in prof.events():
        if event.device_type.name != "CPU":  # kernels are counted with the operator that launched them
            continue
        phase = totals[phase_of(event)]
        phase["host_us"] += event.self_cpu_time_total
        # On a CPU the operators' own time is the device's.
        phase["device_us"] += event.self_device_time_total if gpu else event.self_cpu_time_total
        phase["kernels"] += len(event.kernels)
    rows = [{"phase": name, "device_ms": round(t["device_us"] / steps / 1e3, 3),
             "host_ms": round(t["host_us"] / steps / 1e3, 3), "kernels": round(t["kernels"] / steps, 1)}
            for name, t in totals.items()]
    busy = sum(row["device_ms"] for row in rows)
    for row in rows:
        row["share"] = round(row["device_ms"] / busy, 3) if busy else 0.0
    if trace is not None:
        raw = trace.with_suffix("")  # profile_trace.json, gzipped into trace
        prof.export_chrome_trace(str(raw))
        with open(raw, "rb") as source, gzip.open(trace, "wb") as target:
            shutil.copyfileobj(source, target)
        raw.unlink()
    return {"wall_ms": round(wall * 1e3, 3), "device_busy_ms": round(busy, 3), "rows": rows}


def run(device: torch.device, tiny: bool, trace: Path | None = None) -> dict:
    """The check's profile part: the shape and precision the issue measured (2 x 512, batch 256, seq 128, bf16),
    or tiny ones on a CPU."""
    shape = Shape(2, 32, 8, 16) if tiny else Shape(2, 512, 256, 128)
    amp_dtype = None if tiny else autocast_dtype("auto", device)
    steps = 3 if tiny else 20
    precision = str(amp_dtype or "fp32").replace("torch.", "")
    whole = variants(shape, amp_dtype, device, steps)
    profiled = phases(shape, amp_dtype, device, 3 if tiny else 5, trace)
    table = [f"training step, {shape.model} LSTM, batch {shape.batch} x {shape.seq_len}, {precision}, on "
             f"{device.type}:", "", "| variant | ms/step | chars/s | vs plain |", "|---|---|---|---|"]
    table += [f"| {r['variant']} | {r['ms_per_step']} | {r['chars_s']:,} | x{r['vs_plain']} |" for r in whole]
    table += ["", f"one step as trained, profiled: {profiled['wall_ms']} ms on the clock, the device busy "
                  f"{profiled['device_busy_ms']} ms of it", "",
              "| phase | device ms | share | host ms | kernels |", "|---|---|---|---|---|"]
    table += [f"| {r['phase']} | {r['device_ms']} | {r['share']:.0%} | {r['host_ms']} | {r['kernels']} |"
              for r in profiled["rows"]]
    trained, plain = whole[0], whole[-1]
    top = sorted(profiled["rows"], key=lambda r: -r["device_ms"])[:3]
    summary = (f"{shape.model} b{shape.batch} {precision}: {trained['ms_per_step']} ms/step, x{trained['vs_plain']} "
               f"the plain loop ({plain['ms_per_step']} ms); device busy {profiled['device_busy_ms']} of "
               f"{profiled['wall_ms']} ms; most: " + ", ".join(f"{r['phase']} {r['device_ms']}" for r in top))
    return {"summary": summary, "details": {"variants": whole, "profile": profiled}, "tables": ["\n".join(table)]}
