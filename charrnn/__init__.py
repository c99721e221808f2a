"""charrnn: character-level RNN / GRU / LSTM language models, trained on Hugging Face text datasets.

    checkpoint = charrnn.load("user/name")  # a Hub id or a local checkpoint folder: the model with its tokenizer
    print(charrnn.generate(checkpoint.model, checkpoint.tokenizer, "ROMEO:", length=300))
"""

import importlib

__version__ = "0.1.0"

from charrnn.config import ModelConfig, TrainConfig  # noqa: E402 (the version comes first: charrnn.hub.resolve reads it)
from charrnn.errors import CharRNNError  # noqa: E402

# Names that need torch are imported on first use, so that `import charrnn.<light module>` (the web app building
# its page) does not pay for importing torch.
_LAZY = {"CharRNN": "charrnn.model", "generate": "charrnn.sampling.generate", "load": "charrnn.hub.resolve",
         "push_to_hub": "charrnn.hub.push"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'charrnn' has no attribute {name!r}")


__all__ = ["CharRNN", "CharRNNError", "ModelConfig", "TrainConfig", "generate", "load", "push_to_hub"]
