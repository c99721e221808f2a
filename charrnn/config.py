"""Configuration dataclasses. The CLI flags, their defaults and help come from these fields."""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field

from charrnn.cells import CELL_TABLE, CELLS
from charrnn.errors import CharRNNError, check

TOKENIZERS = ("char", "sp-bpe", "sp-unigram")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")
CPU_BATCH_SIZE = 16  # --batch-size when not given: small steps learn most in a CPU's short budgets (TrainConfig)
GPU_BATCH_SIZE = 256  # a GPU needs hundreds of text streams per step to be busy

# Samples stepped at once from which `charrnn sample` steps on a CUDA GPU rather than on the CPU's compiled kernels.
# A GPU step costs about the same for 1 row as for 64 (its time is the launches and the read-back of the logits),
# a CPU step grows with the rows: the GPU is slower for one sample and far faster for many. Where they cross, and
# the figures behind this number: docs/benchmarks.md, "Sampling on a GPU".
CUDA_SAMPLING_ROWS = 4


def is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite int or float (bools, strings, NaN and infinities are not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_cell(cell: str) -> str:
    if cell not in CELLS:
        raise CharRNNError(f"unknown cell {cell!r}: choose one of {', '.join(CELLS)}")
    return cell


@dataclass(frozen=True)
class ModelConfig:
    """The shape of a CharRNN: everything needed to rebuild it from its weights."""

    vocab_size: int
    cell: str = "lstm"
    embedding_size: int = 64
    hidden_size: int = 512
    num_layers: int = 2
    dropout: float = 0.0
    input_dropout: float = 0.0  # dropout on the embeddings, the first layer's input (AWD-LSTM's dropouti)
    weight_drop: float = 0.0  # DropConnect on the recurrent matrices W_hh while training (AWD-LSTM)
    tie_weights: bool = False

    def __post_init__(self):
        check_cell(self.cell)
        for name in ("vocab_size", "embedding_size", "hidden_size", "num_layers"):
            value = getattr(self, name)
            check(is_integer(value) and value > 0, f"{name} must be a positive integer, got {value!r}")
        for name in ("dropout", "input_dropout", "weight_drop"):
            value = getattr(self, name)
            check(is_number(value) and 0.0 <= value < 1.0, f"{name} must be in [0, 1), got {value!r}")
        check(isinstance(self.tie_weights, bool), f"tie_weights must be true or false, got {self.tie_weights!r}")
        check(
            not self.tie_weights or self.embedding_size == self.hidden_size,
            "tie_weights needs embedding_size == hidden_size "
            f"(got {self.embedding_size} and {self.hidden_size})",
        )


def _flag(default, help: str, **argparse_kwargs):
    return field(default=default, metadata={"help": help, **argparse_kwargs})


@dataclass
class TrainConfig:
    """Everything `python -m charrnn.train` takes. Stored in each checkpoint."""

    # data
    dataset: str = _flag(None, "text file(s), a folder of .txt or .parquet files, a preset (tiny_shakespeare, "
                               "wikitext2, ...) or a Hub dataset id", nargs="+")
    dataset_config: str = _flag(None, "dataset configuration name (e.g. wikitext-2-raw-v1)")
    split: str = _flag("train", "training split, in datasets split syntax (train, train[:90%%])")
    val_split: str = _flag(
        "auto", "validation split: auto = the dataset's validation(+test) splits, else the last --val-fraction"
    )
    text_column: str = _flag(None, "column holding the text (default: the only string column, or 'text')")
    data_name: str = _flag(None, "what the model card calls the training text, e.g. 'my letters' (default: the "
                                 "--dataset names)")
    val_fraction: float = _flag(0.1, "tail of the training text held out when the dataset has no validation split")
    tokenizer: str = _flag("char", "char, sp-bpe or sp-unigram (sentencepiece subwords)", choices=TOKENIZERS)
    vocab_size: int = _flag(512, "vocabulary size of a sentencepiece tokenizer")
    # model
    cell: str = _flag("lstm", "recurrent cell", choices=CELLS)
    # With --time-budget, layers, hidden, dropout and input_dropout that are not given are chosen for the budget
    # and the device (charrnn/train/recipe.py); the defaults here are what a run without a budget gets.
    layers: int = _flag(2, "number of stacked recurrent layers (with --time-budget: chosen unless a size is given)")
    hidden: int = _flag(512, "hidden size of each layer (ignored when --params is given; with --time-budget: "
                             "chosen unless a size is given)")
    embedding: int = _flag(64, "embedding size")
    dropout: float = _flag(0.1, "dropout between layers and before the output layer (with --time-budget and no size "
                                "given: chosen unless given)")
    input_dropout: float = _flag(0.0, "dropout on the character embeddings, the first layer's input (with "
                                      "--time-budget and no size given: chosen unless given)")
    weight_drop: float = _flag(0.0, "DropConnect rate on the recurrent weights W_hh while training (AWD-LSTM)")
    tie_weights: bool = _flag(False, "share embedding and output weights (needs --embedding == --hidden)")
    params: str = _flag(None, "parameter budget, e.g. 3M: picks the hidden size that gives it for this cell")
    # optimisation. Small steps (16 x 64 characters) learn most in a CPU's short budget, and the defaults below
    # are what did best in 10-minute runs; longer runs need more dropout (the probes' figures: docs/benchmarks.md,
    # "How the training defaults were chosen").
    batch_size: int = _flag(None, f"number of parallel text streams per step (default: {CPU_BATCH_SIZE}, or "
                                  f"{GPU_BATCH_SIZE} on a CUDA GPU; the run records it)")
    seq_len: int = _flag(64, "characters per stream per step (truncated BPTT length)")
    lr: float = _flag(3e-3, "peak learning rate (AdamW)")
    min_lr_ratio: float = _flag(0.05, "final learning rate as a fraction of --lr (cosine decay)")
    weight_decay: float = _flag(0.1, "AdamW weight decay")
    warmup_steps: int = _flag(50, "linear warmup steps")
    clip: float = _flag(1.0, "clip gradients to this global norm (0 = no clipping)")
    ema_decay: float = _flag(
        0.995, "evaluate and save an exponential moving average of the weights with this decay (0 = off)")
    max_steps: int = _flag(None, "stop after this many steps (default: 5000 unless --time-budget is given)")
    time_budget: float = _flag(None, "stop after this many minutes of training, then evaluate; without --layers, "
                                     "--hidden or --params, the model's size and dropout are chosen for the budget "
                                     "from a few timed steps (printed, and stored in recipe.json)")
    schedule_steps: int = _flag(None, "length of the cosine decay in steps (default: --max-steps; under --time-budget, "
                                      "set from the speed of the warmup steps and recorded, to repeat the run)")
    steps_this_run: int = _flag(None, "pause after this many steps in this invocation (resume later with --resume)")
    eval_interval: int = _flag(250, "evaluate every N steps (on --eval-tokens of the validation text)")
    eval_tokens: int = _flag(1_000_000, "validation tokens each evaluation scores: a fixed sample of windows spread "
                                        "evenly over the validation text, the same at every evaluation, so that a "
                                        "large corpus is evaluated quickly. best/ is the checkpoint with the lowest "
                                        "loss on this sample, and the final figures are measured on it too (0 = all "
                                        "of the validation text; charrnn evaluate scores all of it)")
    patience: int = _flag(0, "stop after N evaluations without improvement (0 = never)")
    log_interval: int = _flag(25, "write training metrics every N steps")
    eval_seconds: float = _flag(0.0, "also evaluate once this many seconds passed since the last evaluation, for a "
                                     "live curve whatever the speed (one process only; 0 = by --eval-interval only)")
    sample_chars: int = _flag(0, "write a sample of N characters from the evaluated weights into metrics.jsonl at "
                                 "each evaluation, to watch the text take shape (0 = none)")
    # run
    seed: int = _flag(1337, "random seed")
    device: str = _flag("auto", "auto, cpu, cuda or mps", choices=DEVICES)
    precision: str = _flag("auto", "auto (bf16 where supported), fp32, bf16 or fp16", choices=PRECISIONS)
    deterministic: bool = _flag(False, "deterministic kernels (torch's, cuDNN's, cuBLAS's), so that a GPU run repeats "
                                       "bit for bit, resumed or not (slower there; a CPU run already does, at a given "
                                       "--threads)")
    threads: int = _flag(None, "CPU threads for torch (default: torch's choice)")
    out: str = _flag("runs/latest", "run folder: best/ and last/ checkpoints, metrics.jsonl")
    save_dtype: str = _flag("float32", "dtype of stored weights", choices=("float32", "bfloat16", "float16"))
    resume: str = _flag(None, "run folder (or its last/ checkpoint) to continue exactly where it stopped, or the "
                              "Hub id of a run pushed with --training-state")
    revision: str = _flag(None, "branch, tag or commit of a Hub id given to --resume (default: main)")
    progress: bool = _flag(True, "show a progress bar")

    def validate(self) -> None:
        """Check every option before anything is loaded or allocated; a bad one raises CharRNNError."""
        check(self.dataset is not None or self.resume is not None, "give --dataset (or --resume a run)")
        check_cell(self.cell)
        for name, (words, accepts) in OPTION_RANGES.items():
            value = getattr(self, name)
            if value is None and TrainConfig.__dataclass_fields__[name].default is None:
                continue  # not given: the documented default behaviour
            flag = "--" + name.replace("_", "-")
            check(is_number(value), f"{flag} must be finite and {words}, got {value!r}")
            check(accepts(value), f"{flag} must be {words}, got {value!r}")
        if self.params is not None:
            parse_count(self.params)


MAX_TIME_BUDGET = 10_000_000  # minutes (19 years); larger ones overflow the progress bar's total
MAX_THREADS = 1024  # a bound against typos, not this machine's count: a run may resume on another machine
# Every numeric option of TrainConfig: what it accepts, in words for the message and as a test (is_number()
# refuses NaN, infinities and non-numbers first).
OPTION_RANGES = {
    **dict.fromkeys(("layers", "hidden", "embedding", "batch_size", "seq_len", "vocab_size", "eval_interval",
                     "log_interval", "lr", "max_steps", "steps_this_run", "schedule_steps"), ("positive", lambda v: v > 0)),
    **dict.fromkeys(("warmup_steps", "patience", "weight_decay", "clip", "eval_seconds", "sample_chars",
                     "eval_tokens"), (">= 0", lambda v: v >= 0)),
    **dict.fromkeys(("dropout", "input_dropout", "weight_drop", "ema_decay"), ("in [0, 1)", lambda v: 0 <= v < 1)),
    "val_fraction": ("in (0, 1)", lambda v: 0 < v < 1),
    "min_lr_ratio": ("in [0, 1]", lambda v: 0 <= v <= 1),
    "time_budget": (f"positive, at most {MAX_TIME_BUDGET:,} minutes", lambda v: 0 < v <= MAX_TIME_BUDGET),
    "threads": (f"between 1 and {MAX_THREADS}", lambda v: 1 <= v <= MAX_THREADS),
    "seed": ("in [0, 2**63)", lambda v: 0 <= v < 2**63),
}


def parse_count(text: str) -> int:
    """'3M' -> 3_000_000, '500k' -> 500_000, '1.5e6' -> 1_500_000."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kKmMgG]?)\s*", str(text))
    if not match:
        raise CharRNNError(f"cannot read {text!r} as a parameter count: write e.g. 3M, 500k or 1500000")
    value = float(match.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[match.group(2).lower()]
    check(math.isfinite(value) and value >= 1, f"a parameter count must be positive and finite, got {text!r}")
    return int(value)


def format_count(count: int) -> str:
    """A parameter count as people say it, the way parse_count reads it: 3318306 -> '3.3M', 849000 -> '849k'."""
    if count >= 999_500:
        return f"{count / 1e6:.1f}M"
    return f"{count / 1e3:.0f}k" if count >= 1_000 else str(count)


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls) -> None:
    """One --flag per dataclass field, with its default, its type (from the field's annotation) and help."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        meta = dict(f.metadata)
        help_text = meta.pop("help", "")
        flag = "--" + f.name.replace("_", "-")
        if hints[f.name] is bool:
            parser.add_argument(flag, default=f.default, action=argparse.BooleanOptionalAction, help=help_text)
            continue
        parser.add_argument(flag, default=f.default, type=hints[f.name], help=f"{help_text} (default: {f.default})",
                            **meta)


def to_argv(config, names) -> list[str]:
    """The flags that give `config`'s values of the fields `names` (add_dataclass_arguments reads them back):
    how the app builds the command line of a training job from a TrainConfig. Unset (None) fields are left out."""
    argv = []
    for name in names:
        value, flag = getattr(config, name), "--" + name.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, (list, tuple)):
            argv += [flag, *map(str, value)]
        elif value is not None:
            argv += [flag, repr(value) if isinstance(value, float) else str(value)]  # repr: a float read back exactly
    return argv


def default_of(cls, name: str):
    """The default of a dataclass field (the app's settings start from TrainConfig's)."""
    return cls.__dataclass_fields__[name].default


def count_params(cell: str, hidden_size: int, vocab_size: int, embedding_size: int, num_layers: int,
                 tie_weights: bool = False) -> int:
    """Parameters of a CharRNN with these sizes, without building it."""
    gates = CELL_TABLE[check_cell(cell)].weight_blocks * hidden_size
    recurrent = gates * (embedding_size + hidden_size) + 2 * gates  # first layer: W_ih, W_hh, b_ih, b_hh
    recurrent += (num_layers - 1) * (gates * 2 * hidden_size + 2 * gates)
    head = vocab_size + (0 if tie_weights else hidden_size * vocab_size)
    return vocab_size * embedding_size + recurrent + head


def hidden_size_for_params(target: int, cell: str, vocab_size: int, embedding_size: int, num_layers: int) -> int:
    """The hidden size whose parameter count is closest to `target`, so cells compare at equal size."""
    low, high = 1, 1
    while count_params(cell, high, vocab_size, embedding_size, num_layers) < target:
        high *= 2
    while high - low > 1:  # parameter count grows monotonically with hidden size
        mid = (low + high) // 2
        if count_params(cell, mid, vocab_size, embedding_size, num_layers) < target:
            low = mid
        else:
            high = mid
    return min((low, high), key=lambda h: abs(count_params(cell, h, vocab_size, embedding_size, num_layers) - target))


def parameter_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor in a CharRNN's state_dict, without building one: a checkpoint's weights are
    checked against them before anything is allocated (building even on the meta device runs every initializer,
    and torch's meta kernels import its compiler on first use)."""
    rows, hidden = CELL_TABLE[config.cell].weight_blocks * config.hidden_size, config.hidden_size
    shapes = {"embedding.weight": (config.vocab_size, config.embedding_size)}
    for layer in range(config.num_layers):
        shapes[f"rnn.weight_ih_l{layer}"] = (rows, config.embedding_size if layer == 0 else hidden)
        shapes[f"rnn.weight_hh_l{layer}"] = (rows, hidden)
        shapes[f"rnn.bias_ih_l{layer}"] = (rows,)
        shapes[f"rnn.bias_hh_l{layer}"] = (rows,)
    shapes.update({"head.weight": (config.vocab_size, hidden), "head.bias": (config.vocab_size,)})
    return shapes
