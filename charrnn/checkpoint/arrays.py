"""A checkpoint's weights as float32 NumPy arrays, without torch.

The compiled sampling kernels (charrnn.sampling.stepper) step a model from NumPy arrays, so a short `charrnn
sample` needs no torch at all, and torch's import alone takes longer than the rest of such a run. The weights are
read with safetensors' own `deserialize` (its NumPy loader has no bfloat16, the dtype the shipped checkpoints are
stored in) and checked as load_checkpoint checks them: the config, the tokenizer, every shape, finite values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, deserialize

from charrnn.checkpoint.folder import WEIGHTS, check_finite, check_folder, check_weight_shapes, existing_folder
from charrnn.config import ModelConfig
from charrnn.errors import CharRNNError
from charrnn.tokenizer import Tokenizer


@dataclass
class CheckpointArrays:
    model_config: ModelConfig
    tokenizer: Tokenizer
    arrays: dict[str, np.ndarray]  # the state_dict's names; a tied head's weight is the embedding's
    path: Path


def _float32(dtype: str, shape: list[int], data: bytes) -> np.ndarray:
    if dtype == "F32":
        values = np.frombuffer(data, "<f4")
    elif dtype == "F16":
        values = np.frombuffer(data, "<f2").astype(np.float32)
    elif dtype == "BF16":  # the upper half of a float32's bits
        values = (np.frombuffer(data, "<u2").astype(np.uint32) << 16).view(np.float32)
    else:
        raise CharRNNError(f"weights stored as {dtype}: charrnn saves float32, float16 or bfloat16")
    return values.reshape(shape)


def load_arrays(path) -> CheckpointArrays:
    """The checkpoint folder's model config, tokenizer and weights (float32 arrays), checked."""
    path = existing_folder(path)
    _, model_config, tokenizer = check_folder(path, count_weights=False)
    try:
        tensors = dict(deserialize((path / WEIGHTS).read_bytes()))
    except (SafetensorError, OSError, ValueError) as err:
        raise CharRNNError(f"{path / WEIGHTS} is corrupt or not a safetensors file ({err})") from None
    check_weight_shapes(path, {name: tuple(info["shape"]) for name, info in tensors.items()}, model_config)
    arrays = {name: _float32(info["dtype"], info["shape"], info["data"]) for name, info in tensors.items()}
    check_finite(path, [name for name, values in arrays.items() if not np.isfinite(values).all()])
    if model_config.tie_weights:
        arrays["head.weight"] = arrays["embedding.weight"]
    return CheckpointArrays(model_config, tokenizer, arrays, path)
