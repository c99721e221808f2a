"""Gradient flow through time: how much the loss at one character depends on the state k steps earlier.

For a text and an end position T, we measure ||d loss_T / d s_{T-k}|| for k = 0..K, where s_t is the whole
recurrent state at step t (every layer's h, and c for an LSTM). In a plain RNN it falls exponentially with k:
the vanishing gradient, measured. Gates give the LSTM and GRU paths along which it decays much more slowly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from charrnn.analysis.trace import recurrent_step
from charrnn.model import CharRNN


def state_gradient_norms(model: CharRNN, ids: np.ndarray, max_distance: int = 100) -> np.ndarray:
    """Norms of d loss / d s_{T-k} for k = 0..K (index k = distance k), where the loss is the prediction of
    ids[-1] from ids[:-1] and s_T is the state after reading ids[-2]."""
    config = model.config
    params = {name: p.detach() for name, p in model.rnn.named_parameters()}
    ids = torch.as_tensor(np.asarray(ids), dtype=torch.long)
    inputs, target = ids[:-1], ids[-1]
    start = max(len(inputs) - max_distance, 0)
    embedded = model.embedding.weight.detach()[inputs]
    state = [(torch.zeros(config.hidden_size), torch.zeros(config.hidden_size) if config.cell == "lstm" else None)
             for _ in range(config.num_layers)]
    with torch.no_grad():  # run up to the window without building a graph
        for t in range(start):
            state = _step_all_layers(config.cell, params, embedded[t], state)
    state = [(h.requires_grad_(), None if c is None else c.requires_grad_()) for h, c in state]
    states = [state]  # states[j]: the state carried into step start + j (after reading inputs[:start + j])
    for t in range(start, len(inputs)):
        new = _step_all_layers(config.cell, params, embedded[t], states[-1])
        # A copy that only later steps read: its gradient counts paths through time, not the path from a
        # lower layer to the layer above within the same step.
        states.append([(h.clone(), None if c is None else c.clone()) for h, c in new])
    loss = F.cross_entropy(model.head(states[-1][-1][0])[None].float(), target[None])
    flat = [[x for h, c in step for x in (h, c) if x is not None] for step in states]
    grads = torch.autograd.grad(loss, [x for step in flat for x in step], allow_unused=True)
    norms, i = [], 0
    for step in flat:
        squares = [(g ** 2).sum() for g in grads[i:i + len(step)] if g is not None]
        norms.append(torch.sqrt(sum(squares)).item() if squares else 0.0)
        i += len(step)
    return np.array(norms[::-1])  # distance 0 (the last state) first


def _step_all_layers(cell, params, x, state):
    new_state = []
    for layer, (h, c) in enumerate(state):
        gi = x @ params[f"weight_ih_l{layer}"].T + params[f"bias_ih_l{layer}"]
        h, c, _ = recurrent_step(cell, gi, h, c, params[f"weight_hh_l{layer}"], params[f"bias_hh_l{layer}"])
        new_state.append((h, c))
        x = h
    return new_state


def gradient_flow(model: CharRNN, ids: np.ndarray, max_distance: int = 100, positions: int = 8) -> np.ndarray:
    """The state-gradient norms at distance 0..K, each normalised by its value at distance 0 (so models with
    different loss scales compare), averaged over `positions` end points spread over the text.

    The average is geometric (the mean of the logarithms), as the chart's scale is: at one end point a gated
    cell's curve falls in steps, each where a line break lies between (there the cell lets go of the line
    before), and an arithmetic mean of a few end points is ruled by the one with the largest values, so its
    steps show as the average's own (docs/benchmarks.md). An underflow to 0 at any end point gives 0."""
    ids = np.asarray(ids)
    ends = np.linspace(max_distance + 2, len(ids), num=positions, dtype=int)
    ends = sorted(set(int(e) for e in ends if e >= 3))
    curves = []
    for end in ends:
        # 60 characters of warm-up before the window give the state a realistic context at a fraction
        # of the cost of replaying the whole text up to `end`.
        norms = state_gradient_norms(model, ids[max(0, end - max_distance - 61):end], max_distance)
        if norms[0] > 0:
            curves.append(norms / norms[0])
    length = min(len(c) for c in curves)
    with np.errstate(divide="ignore"):  # log10(0) = -inf: an underflow, which stays 0 below
        return 10 ** np.mean([np.log10(c[:length]) for c in curves], axis=0)


def gradient_flow_table(curves: dict[str, np.ndarray]) -> pd.DataFrame:
    """Long format for a line plot: model, distance, relative gradient norm (and its log10).

    A norm of exactly 0 is not a measurement: the product of Jacobians fell below the smallest float32 number
    (~1e-45) and underflowed. Its log10 is NaN, so a plot's line stops there instead of dropping to a floor.
    """
    rows = []
    for name, curve in curves.items():
        for distance, value in enumerate(curve):
            rows.append({"model": name, "distance": distance, "relative gradient norm": float(value),
                         "log10 norm": float(np.log10(value)) if value > 0 else float("nan")})
    return pd.DataFrame(rows, columns=["model", "distance", "relative gradient norm", "log10 norm"])


def first_underflow(curve: np.ndarray) -> int | None:
    """The first distance whose norm underflowed to 0, or None."""
    zeros = np.flatnonzero(np.asarray(curve) <= 0)
    return int(zeros[0]) if len(zeros) else None


def grad_norm_histogram(metrics: dict) -> pd.DataFrame:
    """The pre-clipping gradient norms recorded during training, as a histogram (from a checkpoint's metrics):
    the bins from the first to the last one with any steps, each with its share of all steps."""
    grad = metrics.get("grad_norm") or {}
    edges, counts = grad.get("edges", []), grad.get("counts", [])
    used = [i for i, count in enumerate(counts) if count]
    total = sum(counts)
    rows = []
    for i in range(used[0], used[-1] + 1) if used else ():
        low = 0.0 if i == 0 else edges[i - 1]
        high = edges[i] if i < len(edges) else float("inf")
        rows.append({"norm from": low, "norm to": high, "steps": int(counts[i]), "share": counts[i] / total})
    return pd.DataFrame(rows, columns=["norm from", "norm to", "steps", "share"])
