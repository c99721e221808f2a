"""The recurrent cells charrnn knows, one row each: everything another module needs to know about a cell.

Adding a cell means adding its row here (and its computation in model.py and sampling/kernels.py); every table
of names, gates, labels and codes elsewhere is read from this one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cell:
    name: str  # as configs, checkpoints and the command line write it
    label: str  # as the page and the tables show it
    long_label: str  # as the model card's prose says it
    hub_tag: str  # the Hub tag of a model of this cell
    weight_blocks: int  # blocks of hidden_size rows in W_ih and W_hh: a layer's weights scale with it
    blocks: tuple[str, ...]  # those blocks in torch's order, as the Inside tab's trace names them
    gates: tuple[str, ...]  # the blocks that are gates (sigmoids between 0 and 1), plotted by the Gates view
    kernel_code: int  # `cell` of sampling.kernels.stack_step
    short_name: str  # a model's name in the app (the plain RNN is `rnn`, as in checkpoints/rnn)
    keep_gate: str | None  # the gate that keeps the memory when near 1 (the LSTM's forget, the GRU's update)
    has_cell_state: bool  # a second state besides the hidden one (the LSTM's c)


CELL_TABLE = {cell.name: cell for cell in (
    Cell("rnn_tanh", "RNN (tanh)", "plain RNN (tanh)", "rnn", 1, (), (), 2, "rnn", None, False),
    Cell("rnn_relu", "RNN (ReLU)", "plain RNN (ReLU)", "rnn", 1, (), (), 3, "rnn_relu", None, False),
    Cell("gru", "GRU", "GRU", "gru", 3, ("reset", "update", "new"), ("reset", "update"), 1, "gru", "update", False),
    Cell("lstm", "LSTM", "LSTM", "lstm", 4, ("input", "forget", "cell", "output"), ("input", "forget", "output"),
         0, "lstm", "forget", True),
)}
CELLS = tuple(CELL_TABLE)  # every cell name, the choices of --cell
GATED = tuple(name for name, cell in CELL_TABLE.items() if cell.gates)  # cells the Gates view can show
TEACHING_TRIO = ("rnn_tanh", "gru", "lstm")  # the cells the app compares (and the memory test trains)


def cell_info(name: str) -> Cell:
    """The row of a cell name; an unknown name raises KeyError (configs check names when they are made)."""
    return CELL_TABLE[name]


def label(name: str) -> str:
    """The page's label of a cell name, or the name itself for one this version does not know."""
    return CELL_TABLE[name].label if name in CELL_TABLE else name
