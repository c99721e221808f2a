"""Batches for truncated backpropagation through time."""

from __future__ import annotations

import numpy as np
import torch

from charrnn.errors import check


class StreamBatcher:
    """Cuts the token array into `batch_size` contiguous streams and walks down them `seq_len` at a time,
    so the hidden state at the end of one batch is the right start for the next (stateful TBPTT):

        tokens:  a b c d e f g h i j k l m n o p q r s t u v w x ...
        stream 0: a b c d e f | g h i j k l | ...      step 0 takes columns 0-5 of every stream,
        stream 1: m n o p q r | s t u v w x | ...      step 1 columns 6-11, and so on.

    Each epoch starts at a different offset (from the seed), so chunk boundaries move between epochs.
    Batch `step` is a pure function of `step`: resuming needs only the step number.
    """

    def __init__(self, tokens: np.ndarray, batch_size: int, seq_len: int, seed: int = 0):
        self.tokens, self.batch_size, self.seq_len, self.seed = tokens, batch_size, seq_len, seed
        usable = len(tokens) - 1 - seq_len  # room for targets and the largest epoch offset
        self.steps_per_epoch = max(usable // batch_size, 0) // seq_len
        check(self.steps_per_epoch >= 1,
              f"the training text has {len(tokens)} tokens, fewer than one batch needs "
              f"({batch_size} streams x {seq_len} + {seq_len + 1}); use a smaller --batch-size or --seq-len, "
              "or more text")
        self.stream_len = self.steps_per_epoch * seq_len

    def epoch_offset(self, epoch: int) -> int:
        return 0 if epoch == 0 else int(np.random.default_rng([self.seed, epoch]).integers(self.seq_len))

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """(inputs (B, T), targets (B, T), starts_epoch): at an epoch start the hidden state must be reset."""
        epoch, position = divmod(step, self.steps_per_epoch)
        starts = self.epoch_offset(epoch) + np.arange(self.batch_size) * self.stream_len + position * self.seq_len
        chunk = np.asarray(self.tokens[starts[:, None] + np.arange(self.seq_len + 1)], dtype=np.int64)  # (B, T+1)
        x, y = torch.from_numpy(chunk[:, :-1].copy()), torch.from_numpy(chunk[:, 1:].copy())
        return x, y, position == 0
