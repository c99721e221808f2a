"""One step of a model as ONNX, with its state in and out, and the check that it computes what torch does.

The page runs the model one token at a time, as sampling does: the token id and the state of every layer go in,
the next token's logits and the new state come out. The graph is made by torch's default exporter (torch.export,
`dynamo=True`). It specialises the length of the time axis to the example's, so the graph is a single step by
construction; the legacy TorchScript exporter could keep that axis dynamic (a prompt in one call), but it is
deprecated and due to be removed, and a page reads a prompt fast enough one step at a time.

    inputs   ids (1, 1) int64, h (layers, 1, hidden) float32, and c (layers, 1, hidden) for an LSTM
    outputs  logits (1, vocab) float32, h_out and c_out of the same shapes as h and c
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from charrnn.cells import cell_info
from charrnn.config import ModelConfig
from charrnn.errors import CharRNNError
from charrnn.model import CharRNN

TOLERANCE = 1e-4  # the largest difference of a next-token probability the export may make
ONNX_LIMIT = 2**31 - 1  # protobuf's limit on one message: a model file larger than this cannot be written whole


def state_names(config: ModelConfig) -> tuple[str, ...]:
    """The step's state inputs; each output is the name with `_out`."""
    return ("h", "c") if cell_info(config.cell).has_cell_state else ("h",)


def input_names(config: ModelConfig) -> list[str]:
    return ["ids", *state_names(config)]


def output_names(config: ModelConfig) -> list[str]:
    return ["logits", *(f"{name}_out" for name in state_names(config))]


def zero_state(config: ModelConfig) -> list[np.ndarray]:
    """The state a text starts from, one array per state input."""
    shape = (config.num_layers, 1, config.hidden_size)
    return [np.zeros(shape, np.float32) for _ in state_names(config)]


class SingleStep(nn.Module):
    """The model's own forward over one token, with the state as separate tensors (ONNX has no tuples)."""

    def __init__(self, model: CharRNN):
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None = None):
        hidden = h if c is None else (h, c)
        logits, hidden, _ = self.model(ids, hidden)  # (1, 1, V)
        state = hidden if isinstance(hidden, tuple) else (hidden,)
        return (logits[:, -1], *state)  # (1, V), (layers, 1, H) each


def check_packages() -> None:
    """The exporter and the check need packages charrnn does not otherwise install: say so, not a traceback."""
    missing = [name for name in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise CharRNNError(f"exporting a model for the browser needs {', '.join(missing)}: "
                           "pip install 'charrnn[export]' (or pip install -r requirements-dev.txt)")


def reference_copy(model: CharRNN) -> CharRNN:
    """A float32 copy on the CPU in eval mode (no dropout): what the page runs; the caller's model is left as it
    was."""
    return copy.deepcopy(model).float().cpu().eval()


def export_step(model: CharRNN, path: str | Path) -> Path:
    """Write the model's single step to `path` as one self-contained ONNX file (float32 weights)."""
    check_packages()
    path = Path(path)
    config = model.config
    size = 4 * model.num_params()
    if size >= ONNX_LIMIT:
        raise CharRNNError(f"the model's float32 weights take {size / 2**30:.1f} GiB; an ONNX file holds at most "
                           "2 GiB and a web page could not load it anyway: export a smaller model")
    step = SingleStep(reference_copy(model))
    example = (torch.zeros(1, 1, dtype=torch.long), *map(torch.from_numpy, zero_state(config)))
    path.parent.mkdir(parents=True, exist_ok=True)
    with _quiet_exporter():
        torch.onnx.export(step, example, str(path), input_names=input_names(config),
                          output_names=output_names(config), dynamo=True, external_data=False, verbose=False)
    return path


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter reports its stages on stdout and warns about things this model does not use (torchvision's
    operators, the RNN's flattened weights): none of it is the user's to act on."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def step_session(path: str | Path):
    """An onnxruntime session of an exported step, on the CPU."""
    check_packages()
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_steps(session, config: ModelConfig, ids: np.ndarray) -> np.ndarray:
    """Logits (T, V) after each of `ids`, stepping the session's state through them from zeros."""
    state = zero_state(config)
    names = input_names(config)
    logits = []
    for token in np.asarray(ids, dtype=np.int64):
        out = session.run(None, dict(zip(names, [np.array([[token]], np.int64), *state])))
        logits.append(out[0][0])
        state = out[1:]
    return np.stack(logits)


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float64)
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


@torch.no_grad()
def probability_difference(model: CharRNN, session, ids: np.ndarray) -> float:
    """The largest difference between torch's and the ONNX step's next-token probabilities over `ids`.

    torch reads the whole sequence in one call (its fused recurrent kernel), the ONNX step one token at a time
    carrying the state: two independent paths to the same distributions.
    """
    expected, _, _ = reference_copy(model)(torch.as_tensor(np.asarray(ids, dtype=np.int64))[None])  # (1, T, V)
    got = run_steps(session, model.config, ids)
    return float(np.abs(_softmax(expected[0].numpy()) - _softmax(got)).max())


def check_step(model: CharRNN, session, ids: np.ndarray, tolerance: float = TOLERANCE) -> float:
    """probability_difference, raising a CharRNNError when it is over `tolerance`."""
    difference = probability_difference(model, session, ids)
    if not difference <= tolerance:  # NaN fails too
        raise CharRNNError(f"the exported model's next-token probabilities differ from torch's by up to "
                           f"{difference:.2g} over {len(ids)} tokens (tolerance {tolerance:g}); the ONNX file "
                           "is not a faithful copy: please report this with the checkpoint's config.json")
    return difference
