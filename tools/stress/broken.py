"""Broken checkpoint folders of every kind a user, a crash or a bad disk can leave under checkpoints/.

Used by the tests and by the stress command to show the app starts beside them and names what it skipped.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from charrnn.checkpoint.saving import CONFIG, WEIGHTS


def _config(folder: Path) -> dict:
    return json.loads((folder / CONFIG).read_text(encoding="utf-8"))


def _write_config(folder: Path, config) -> None:
    (folder / CONFIG).write_text(json.dumps(config), encoding="utf-8")


def _edit_model(key: str, value):
    def edit(folder: Path) -> None:
        config = _config(folder)
        config["model"][key] = value
        _write_config(folder, config)
    return edit


def _nan_weights(folder: Path) -> None:
    tensors = load_file(str(folder / WEIGHTS))
    name = next(iter(tensors))
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = float("nan")
    save_file(tensors, str(folder / WEIGHTS))


def _other_vocabulary(folder: Path) -> None:
    config = _config(folder)
    config["tokenizer"]["chars"] = config["tokenizer"]["chars"][:-5]  # 5 fewer characters than the weights
    _write_config(folder, config)


def _drop_weight(folder: Path) -> None:
    tensors = load_file(str(folder / WEIGHTS))
    tensors.pop(sorted(tensors)[-1])
    save_file(tensors, str(folder / WEIGHTS))


# name -> (what is wrong, how to break a copy of a good checkpoint folder)
BREAKAGES = {
    "config_not_utf8": ("config.json is not UTF-8", lambda f: (f / CONFIG).write_bytes(b"\xff\xfe{\x00")),
    "config_is_a_list": ("config.json is a JSON list", lambda f: _write_config(f, [1, 2, 3])),
    "config_truncated": ("config.json cut off mid-write", lambda f: (f / CONFIG).write_text('{"format": "charr')),
    "config_no_model": ("config.json without a model entry",
                        lambda f: _write_config(f, {k: v for k, v in _config(f).items() if k != "model"})),
    "huge_hidden_size": ("hidden_size of 100,000,000", _edit_model("hidden_size", 100_000_000)),
    "negative_layers": ("num_layers of -1", _edit_model("num_layers", -1)),
    "unknown_cell": ("cell 'transformer'", _edit_model("cell", "transformer")),
    "string_hidden_size": ("hidden_size given as a string", _edit_model("hidden_size", "512")),
    "vocabulary_mismatch": ("a vocabulary that does not match the weights", _other_vocabulary),
    "hidden_mismatch": ("a hidden size that does not match the weights",
                        lambda f: _edit_model("hidden_size", _config(f)["model"]["hidden_size"] + 1)(f)),
    "nan_weights": ("NaN in the weights", _nan_weights),
    "missing_tensor": ("a weight missing from the file", _drop_weight),
    "weights_not_safetensors": ("model.safetensors is random bytes",
                                lambda f: (f / WEIGHTS).write_bytes(torch.randint(0, 255, (4096,)).byte().numpy().tobytes())),
    "weights_empty": ("model.safetensors is empty", lambda f: (f / WEIGHTS).write_bytes(b"")),
    "weights_is_a_folder": ("model.safetensors is a folder",
                            lambda f: ((f / WEIGHTS).unlink(), (f / WEIGHTS).mkdir())),
}

# Leftovers of an interrupted save: complete-looking folders that must never be listed as models.
LEFTOVERS = ("lstm.tmp-abc123", "lstm.old")


def make_broken_checkpoints(good: Path, root: Path) -> dict[str, str]:
    """Copy the good checkpoint folder `good` under `root` once per breakage and break each copy; also lay out
    the leftovers of an interrupted save. Returns {folder name: what is wrong}."""
    root.mkdir(parents=True, exist_ok=True)
    made = {}
    for name, (what, breakage) in BREAKAGES.items():
        folder = root / name
        shutil.copytree(good, folder)
        breakage(folder)
        made[name] = what
    for name in LEFTOVERS:
        shutil.copytree(good, root / name)
    return made
