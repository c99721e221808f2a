"""Checkpoint folders: model.safetensors + config.json (model config, tokenizer, training config, metrics).

No pickle anywhere: weights are safetensors, everything else is JSON. A folder is written beside its final
place and renamed into it, so a crash mid-save leaves the previous checkpoint intact (as `<name>` or, between
the two renames, `<name>.old`); the next save of the same checkpoint tidies what the crash left.
"""

from __future__ import annotations

import glob
import json
import pickle  # only for the error type torch.load(weights_only=True) raises on a damaged file
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from charrnn.checkpoint.folder import (CONFIG, FORMAT, TRAINING_STATE, WEIGHTS, check_finite,  # noqa: F401 (re-exported)
                                       check_folder, check_weight_shapes, existing_folder, find_checkpoints,
                                       read_config, stored_shapes)
from charrnn.errors import CharRNNError
from charrnn.model import CharRNN
from charrnn.tokenizer import Tokenizer

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class Checkpoint:
    model: CharRNN
    tokenizer: Tokenizer
    meta: dict = field(default_factory=dict)  # training config, metrics, command, ...
    path: Path | None = None

    @property
    def metrics(self) -> dict:
        return self.meta.get("metrics", {})

    @property
    def name(self) -> str:
        return self.path.name if self.path else "model"


def save_checkpoint(path, model: CharRNN, tokenizer: Tokenizer, dtype: str = "float32",
                    training_state: dict | None = None, **meta) -> Path:
    """Write `path/` atomically. `meta` (training config, metrics, command, ...) goes into config.json."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, value in model.state_dict().items():
        if model.config.tie_weights and name == "head.weight":
            continue  # the same tensor as embedding.weight
        tensors[name] = value.detach().to("cpu", DTYPES[dtype]).contiguous()
    config = {"format": FORMAT, "version": 1, "model": asdict(model.config), "tokenizer": tokenizer.to_dict(),
              "dtype": dtype, "num_params": model.num_params(), **meta}
    tidy_checkpoint(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=path.name + ".tmp-"))
    tmp.chmod(0o755)  # mkdtemp makes it private; a checkpoint is meant to be shared
    try:
        save_file(tensors, str(tmp / WEIGHTS), metadata={"format": "pt"})
        (tmp / WEIGHTS).chmod(0o644)
        (tmp / CONFIG).write_text(json.dumps(config, indent=1, ensure_ascii=False), encoding="utf-8")
        if training_state is not None:
            torch.save(training_state, tmp / TRAINING_STATE)
        old = path.with_name(path.name + ".old")
        if path.exists():
            path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def tidy_checkpoint(path) -> None:
    """Undo what a crash (kill -9) during save_checkpoint(path) can leave beside `path`: remove
    half-written `<name>.tmp-*` folders, and put `<name>.old` back when `<name>` is missing (a crash between
    the two renames) or remove it when `<name>` is in place. Assumes one writer per checkpoint."""
    path = Path(path)
    for tmp in path.parent.glob(glob.escape(path.name) + ".tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    old = path.with_name(path.name + ".old")
    if old.is_dir():
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.rename(path)


def load_checkpoint(path, device: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint folder (weights in float32 on `device`, in eval mode).

    Everything that can be checked before allocating is: the config, the tokenizer against the vocabulary
    size, and the weight shapes in the file's header against the config; then the weights must be finite.
    """
    path = existing_folder(path)
    config, model_config, tokenizer = check_folder(path, count_weights=False)
    check_weight_shapes(path, stored_shapes(path / WEIGHTS), model_config)
    try:
        tensors = load_file(str(path / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as err:
        raise CharRNNError(f"{path / WEIGHTS} is corrupt or not a safetensors file ({err})") from None
    tensors = {name: t.float() for name, t in tensors.items()}
    check_finite(path, [name for name, t in tensors.items() if not torch.isfinite(t).all()])
    model = CharRNN(model_config)
    model.load_state_dict(tensors, strict=not model_config.tie_weights)
    model.to(device).eval()
    meta = {k: v for k, v in config.items() if k not in ("format", "version", "model", "tokenizer")}
    return Checkpoint(model, tokenizer, meta, path)


def load_training_state(path) -> dict:
    state_file = Path(path) / TRAINING_STATE
    if not state_file.is_file():
        raise CharRNNError(f"{path} has no {TRAINING_STATE}: resume from a run folder's last/ checkpoint")
    try:
        return torch.load(state_file, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as err:
        raise CharRNNError(f"{state_file} is corrupt ({err}); resume from a copy of the run, or start it "
                           "again without --resume") from None
