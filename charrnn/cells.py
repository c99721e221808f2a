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
    # The step as the Gates view shows it beside the gates: (equation, what it does). `_t` and `_{t-1}` are
    # subscripts. They are what charrnn.analysis.trace computes, in torch's weight layout.
    equations: tuple[tuple[str, str], ...] = ()


RNN_EQUATIONS = (("h_t = tanh(W x_t + U h_{t−1} + b)", ("the new state squashes the old one with the character: "
                                                         "every step multiplies the gradient by U and tanh's slope")),)
GRU_EQUATIONS = (
    ("r_t = σ(W_r x_t + U_r h_{t−1} + b_r)", "reset gate: how much of h_{t−1} the candidate sees"),
    ("z_t = σ(W_z x_t + U_z h_{t−1} + b_z)", "update gate: how much of h_{t−1} is kept"),
    ("n_t = tanh(W_n x_t + b_{in} + r_t ⊙ (U_n h_{t−1} + b_{hn}))", "the candidate state"),
    ("h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t−1}", "z_t near 1 copies the old state: the gradient passes unshrunk"),
)
LSTM_EQUATIONS = (
    ("i_t = σ(W_i x_t + U_i h_{t−1} + b_i)", "input gate: how much of g_t is written"),
    ("f_t = σ(W_f x_t + U_f h_{t−1} + b_f)", "forget gate: how much of c_{t−1} is kept"),
    ("g_t = tanh(W_g x_t + U_g h_{t−1} + b_g)", "the candidate memory"),
    ("o_t = σ(W_o x_t + U_o h_{t−1} + b_o)", "output gate: how much of the memory is shown"),
    ("c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t", "the memory is added to, not remade: f_t near 1 passes the gradient on"),
    ("h_t = o_t ⊙ tanh(c_t)", "the hidden state the next layer and the prediction read"),
)


CELL_TABLE = {cell.name: cell for cell in (
    Cell("rnn_tanh", "RNN (tanh)", "plain RNN (tanh)", "rnn", 1, (), (), 2, "rnn", None, False, RNN_EQUATIONS),
    Cell("rnn_relu", "RNN (ReLU)", "plain RNN (ReLU)", "rnn", 1, (), (), 3, "rnn_relu", None, False,
         ((RNN_EQUATIONS[0][0].replace("tanh", "relu"), RNN_EQUATIONS[0][1].replace("tanh", "relu")),)),
    Cell("gru", "GRU", "GRU", "gru", 3, ("reset", "update", "new"), ("reset", "update"), 1, "gru", "update", False,
         GRU_EQUATIONS),
    Cell("lstm", "LSTM", "LSTM", "lstm", 4, ("input", "forget", "cell", "output"), ("input", "forget", "output"),
         0, "lstm", "forget", True, LSTM_EQUATIONS),
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
