"""charrnn: character-level RNN / GRU / LSTM language models, trained on Hugging Face text datasets."""

from charrnn.config import ModelConfig, TrainConfig
from charrnn.errors import CharRNNError
from charrnn.model import CharRNN

__version__ = "0.1.0"

__all__ = ["CharRNN", "CharRNNError", "ModelConfig", "TrainConfig"]
