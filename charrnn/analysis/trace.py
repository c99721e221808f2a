"""Run a CharRNN with the textbook cell equations, keeping every internal signal.

The fused nn.RNN/GRU/LSTM kernels only return the last layer's outputs; to see gates, cell states and the
hidden state of every layer at every character we replay the same weights (tests check that the result
matches the fused model). Layer by layer: each layer's input projection is one matrix product over the
whole text, and only the recurrent part loops over time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from charrnn.cells import cell_info
from charrnn.model import CharRNN



@dataclass
class Trace:
    """Everything the model computed over a text of T tokens."""

    logits: torch.Tensor  # (T, V): the prediction of token t+1 after reading token t
    hidden: list[torch.Tensor]  # per layer, (T, H): h_t
    cell: list[torch.Tensor] = field(default_factory=list)  # per layer, (T, H): c_t (LSTM only)
    gates: list[dict[str, torch.Tensor]] = field(default_factory=list)  # per layer, gate name -> (T, H)


def recurrent_step(cell: str, gi: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None, w_hh: torch.Tensor,
                   b_hh: torch.Tensor):
    """One time step of one layer, given its input projection gi = x W_ih^T + b_ih. Returns (h, c, gates)."""
    gh = h @ w_hh.T + b_hh
    if cell == "lstm":
        i, f, g, o = (gi + gh).chunk(4, dim=-1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c = f * c + i * g
        return o * torch.tanh(c), c, {"input": i, "forget": f, "cell": g, "output": o}
    if cell == "gru":
        i_r, i_z, i_n = gi.chunk(3, dim=-1)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return (1 - z) * n + z * h, None, {"reset": r, "update": z, "new": n}
    pre = gi + gh
    return (torch.tanh(pre) if cell == "rnn_tanh" else torch.relu(pre)), None, {}


@torch.no_grad()
def trace(model: CharRNN, ids) -> Trace:
    """Replay the model over token ids (T,) from a zero state, recording every layer at every step."""
    config = model.config
    params = {name: p.detach() for name, p in model.rnn.named_parameters()}
    ids = torch.as_tensor(ids, dtype=torch.long)
    x = model.embedding.weight.detach()[ids]  # (T, E)
    hidden, cells, gates = [], [], []
    for layer in range(config.num_layers):
        gi_all = x @ params[f"weight_ih_l{layer}"].T + params[f"bias_ih_l{layer}"]  # (T, G)
        w_hh, b_hh = params[f"weight_hh_l{layer}"], params[f"bias_hh_l{layer}"]
        h = torch.zeros(config.hidden_size)
        c = torch.zeros(config.hidden_size) if config.cell == "lstm" else None
        hs, cs, gs = [], [], {name: [] for name in cell_info(config.cell).blocks}
        for t in range(len(ids)):
            h, c, g = recurrent_step(config.cell, gi_all[t], h, c, w_hh, b_hh)
            hs.append(h)
            if c is not None:
                cs.append(c)
            for name, value in g.items():
                gs[name].append(value)
        hidden.append(torch.stack(hs))
        if cs:
            cells.append(torch.stack(cs))
        gates.append({name: torch.stack(v) for name, v in gs.items()})
        x = hidden[-1]  # the next layer reads this one's outputs (no dropout at inference)
    return Trace(logits=model.head(x), hidden=hidden, cell=cells, gates=gates)
