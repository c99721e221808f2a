"""A checkpoint folder on disk, without loading it: its file names, finding folders under a root, and reading
its config.json. No torch here: the web app lists and describes its models before it imports torch."""

from __future__ import annotations

import json
import math
from pathlib import Path

from safetensors import SafetensorError, safe_open

from charrnn.config import ModelConfig, count_params, parameter_shapes
from charrnn.errors import CharRNNError
from charrnn.tokenizer import Tokenizer, tokenizer_from_dict

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TRAINING_STATE = "training_state.pt"  # optimizer and RNG state for --resume (torch.load(weights_only=True))
FORMAT = "charrnn"


def read_config(path) -> dict:
    """config.json of a checkpoint folder, checked to be a charrnn config (a CharRNNError says what is wrong)."""
    path = Path(path)
    try:
        config = json.loads((path / CONFIG).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CharRNNError(f"{path / CONFIG} is corrupt ({err}); retrain or restore the checkpoint") from None
    except OSError as err:
        raise CharRNNError(f"cannot read {path / CONFIG} ({err.strerror or err})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CharRNNError(f"{path / CONFIG} is not a charrnn checkpoint config")
    if not isinstance(config.get("model"), dict) or not isinstance(config.get("tokenizer"), dict):
        raise CharRNNError(f"{path / CONFIG} lacks a valid model or tokenizer entry")
    return config


MAX_PARAMS = 2_000_000_000  # a sanity bound: a config asking for more is corrupt, not a model to allocate


def _model_config(path: Path, config: dict) -> ModelConfig:
    try:
        model_config = ModelConfig(**config["model"])
    except (TypeError, ValueError) as err:
        raise CharRNNError(f"{path / CONFIG} has an invalid model entry ({err})") from None
    except CharRNNError as err:
        raise CharRNNError(f"{path / CONFIG} has an invalid model entry: {err}") from None
    c = model_config
    params = count_params(c.cell, c.hidden_size, c.vocab_size, c.embedding_size, c.num_layers, c.tie_weights)
    if params > MAX_PARAMS:
        raise CharRNNError(f"{path / CONFIG} describes a model of {params:,} parameters (more than {MAX_PARAMS:,}): "
                           "the config is corrupt; retrain or restore the checkpoint")
    return model_config


def check_folder(path, count_weights: bool = True) -> tuple[dict, ModelConfig, Tokenizer]:
    """Everything about a checkpoint folder that can be checked without torch and without reading its weights:
    the files, the config, the tokenizer against the vocabulary, and (count_weights) the weight file's header:
    readable, and holding as many numbers as the config's model has (load_checkpoint compares each shape
    instead). Returns (config, model config, tokenizer)."""
    path = Path(path)
    missing = [name for name in (WEIGHTS, CONFIG) if not (path / name).is_file()]
    if missing:
        raise CharRNNError(f"checkpoint {path} is missing {' and '.join(missing)}: a checkpoint folder holds "
                           f"{WEIGHTS} and {CONFIG}")
    config = read_config(path)
    model_config = _model_config(path, config)
    try:
        tokenizer = tokenizer_from_dict(config["tokenizer"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CharRNNError(f"{path / CONFIG} has an invalid tokenizer entry ({err})") from None
    if tokenizer.vocab_size != model_config.vocab_size:
        raise CharRNNError(f"{path / CONFIG}: the tokenizer has {tokenizer.vocab_size} tokens but the model "
                           f"{model_config.vocab_size}; the checkpoint is corrupt")
    if count_weights:
        _check_weight_count(path, model_config)
    return config, model_config, tokenizer


def _check_weight_count(path: Path, c: ModelConfig) -> None:
    expected = count_params(c.cell, c.hidden_size, c.vocab_size, c.embedding_size, c.num_layers, c.tie_weights)
    stored = _stored_numbers(path / WEIGHTS)  # a tied head is not stored, nor counted
    if stored != expected:
        raise CharRNNError(f"{path / WEIGHTS} does not match {CONFIG}: it holds {stored:,} numbers, the config's "
                           f"model has {expected:,}; the two files come from different models")


def _stored_numbers(weights: Path) -> int:
    """How many numbers the safetensors file holds, from its header (nothing else is read)."""
    return sum(math.prod(shape) for shape in stored_shapes(weights).values())


def stored_shapes(weights: Path) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor in the safetensors file, from its header (nothing else is read)."""
    try:
        with safe_open(str(weights), framework="numpy") as f:
            return {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise CharRNNError(f"{weights} is corrupt or not a safetensors file ({err})") from None


def find_checkpoints(root) -> list[Path]:
    """Every checkpoint folder under `root` (folders holding config.json and model.safetensors)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.parent for p in root.rglob(CONFIG)
                  if (p.parent / WEIGHTS).is_file() and not _is_leftover(p.parent.relative_to(root)))


def _is_leftover(relative: Path) -> bool:
    """A save's unfinished temporary folder (`name.tmp-*`) or the checkpoint it replaced (`name.old`)."""
    return any(".tmp-" in part or part.endswith(".old") for part in relative.parts)


def existing_folder(path) -> Path:
    """The checkpoint folder to load: `path`, or `path.old` after a crash between the two renames of a save."""
    path = Path(path)
    if not path.is_dir():
        old = path.with_name(path.name + ".old")
        if not old.is_dir():
            raise CharRNNError(f"checkpoint folder {path} does not exist")
        return old
    return path


def check_weight_shapes(path: Path, stored: dict[str, tuple[int, ...]], model_config: ModelConfig) -> None:
    """Compare the shapes stored in the weight file with the config's, before anything is allocated."""
    expected = parameter_shapes(model_config)
    if model_config.tie_weights:
        expected.pop("head.weight")
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    if missing or unexpected:
        raise CharRNNError(f"{path / WEIGHTS} does not match its config: missing {missing}, unexpected {unexpected}")
    wrong = [f"{name} {stored[name]} (config: {expected[name]})" for name in expected if stored[name] != expected[name]]
    if wrong:
        raise CharRNNError(f"{path / WEIGHTS} does not match {CONFIG}: {'; '.join(wrong[:3])}; "
                           "the two files come from different models")


def check_finite(path: Path, broken: list[str]) -> None:
    """`broken`: the tensors holding NaN or infinite values."""
    if broken:
        raise CharRNNError(f"{path / WEIGHTS} holds NaN or infinite values in {', '.join(broken[:3])}: the "
                           "training run diverged or the file is damaged; use an earlier checkpoint")
