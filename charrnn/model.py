"""The model: embedding -> stacked recurrent cell -> linear head. Plain nn.Modules, no I/O."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from charrnn.config import ModelConfig, parameter_shapes  # noqa: F401 (re-exported: torch-free, in config)

# Hidden state as nn.RNN/GRU/LSTM use it: a (layers, B, H) tensor, or an (h, c) pair of them for LSTM.
Hidden = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def _recurrent_layer(config: ModelConfig) -> nn.Module:
    common = dict(
        input_size=config.embedding_size,
        hidden_size=config.hidden_size,
        num_layers=config.num_layers,
        batch_first=True,
        dropout=config.dropout if config.num_layers > 1 else 0.0,
    )
    if config.cell == "lstm":
        return nn.LSTM(**common)
    if config.cell == "gru":
        return nn.GRU(**common)
    return nn.RNN(nonlinearity=config.cell.removeprefix("rnn_"), **common)


class CharRNN(nn.Module):
    """A stacked recurrent language model over token ids (characters or subwords)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size)
        self.rnn = _recurrent_layer(config)
        self.drop = nn.Dropout(config.dropout)
        self.input_drop = nn.Dropout(config.input_dropout)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)
        self._init_weights()
        if config.tie_weights:
            self.head.weight = self.embedding.weight

    def _init_weights(self) -> None:
        nn.init.normal_(self.embedding.weight, std=1.0)
        nn.init.zeros_(self.head.bias)
        if self.config.cell == "lstm":
            # Forget-gate bias 1 (gate order i, f, g, o): the cell starts out remembering, as in char-rnn.
            hidden = self.config.hidden_size
            for name, param in self.rnn.named_parameters():
                if name.startswith("bias_ih"):
                    with torch.no_grad():
                        param.zero_()
                        param[hidden:2 * hidden].fill_(1.0)
                elif name.startswith("bias_hh"):
                    nn.init.zeros_(param)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def init_hidden(self, batch_size: int, device=None) -> Hidden:
        c = self.config
        zeros = torch.zeros(c.num_layers, batch_size, c.hidden_size, device=device)
        return (zeros, zeros.clone()) if c.cell == "lstm" else zeros

    def forward(self, idx: torch.Tensor, hidden: Hidden | None = None, targets: torch.Tensor | None = None):
        """idx (B, T) token ids -> logits (B, T, V), the new hidden state, and the mean loss if targets given."""
        x = self.input_drop(self.embedding(idx))  # (B, T, E)
        out, hidden = self._recurrent(x, hidden)  # (B, T, H)
        logits = self.head(self.drop(out))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
        return logits, hidden, loss

    def _recurrent(self, x: torch.Tensor, hidden: Hidden | None):
        if not (self.training and self.config.weight_drop > 0):
            return self.rnn(x, hidden)
        # Weight drop: one dropout mask on each W_hh for the whole batch, the same at every time step, so the
        # fused kernel still runs; it regularizes the recurrence without disturbing the memory as dropout on
        # the hidden state would (Merity et al., AWD-LSTM).
        weights = {name: F.dropout(param, self.config.weight_drop) if name.startswith("weight_hh") else param
                   for name, param in self.rnn.named_parameters()}
        return torch.func.functional_call(self.rnn, weights, (x, hidden))
