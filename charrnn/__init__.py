"""charrnn: character-level RNN / GRU / LSTM language models, trained on Hugging Face text datasets.

    checkpoint = charrnn.load("user/name")  # a Hub id or a local checkpoint folder: the model with its tokenizer
    print(charrnn.generate(checkpoint.model, checkpoint.tokenizer, "ROMEO:", length=300))
"""

__version__ = "0.1.0"

from charrnn.config import ModelConfig, TrainConfig  # noqa: E402 (the version comes first: charrnn.hub reads it)
from charrnn.errors import CharRNNError  # noqa: E402
from charrnn.hub import load, push_to_hub  # noqa: E402
from charrnn.model import CharRNN  # noqa: E402
from charrnn.sample import generate  # noqa: E402

__all__ = ["CharRNN", "CharRNNError", "ModelConfig", "TrainConfig", "generate", "load", "push_to_hub"]
