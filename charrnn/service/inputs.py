"""Values from the outside world (the page, the API, anyone with the URL), checked at the edge.

The app's events hand their raw JSON values to the service (`preprocess=False`), so every kind of bad value
(None, a list, a string for a number, NaN, a lone surrogate, a 10 MB text) arrives here and gets a message
that says what was wrong. The caps keep a public host healthy; each can be set from the environment.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from charrnn.errors import CharRNNError


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise CharRNNError(f"{name}={raw!r} is not a whole number") from None
    if value <= 0:
        raise CharRNNError(f"{name} must be positive, got {value}")
    return value


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the host. From the environment (CHARRNN_MAX_*), with safe defaults."""

    prompt_chars: int = 10_000  # prompts of Generate and Compare
    sample_chars: int = 5_000  # characters generated per sample
    samples: int = 4  # samples per Generate request
    beam_width: int = 16  # beams of a Generate request: each is a row of every step, in the web server's process
    inside_chars: int = 5_000  # text the Inside views read: keeps each view under a couple of seconds
    upload_mb: int = 20  # any upload to the server (Gradio's max_file_size)
    retrain_seconds: int = 60  # the memory test's live retraining
    # Browser sessions whose page state the server keeps (Gradio's state_session_capacity, default 10,000):
    # each holds a copy of every component's value (megabytes for this page), so the default would let visitors fill memory.
    sessions: int = 200
    # Generate and Compare calls that run at once (the rest queue): they share one batched step per model
    # (charrnn.sampling.engine), so more at once costs little more per step; the cap bounds the batch.
    streams: int = 32

    @classmethod
    def from_env(cls) -> "Limits":
        return cls(prompt_chars=env_int("CHARRNN_MAX_PROMPT", cls.prompt_chars),
                   sample_chars=env_int("CHARRNN_MAX_LENGTH", cls.sample_chars),
                   samples=env_int("CHARRNN_MAX_SAMPLES", cls.samples),
                   beam_width=env_int("CHARRNN_MAX_BEAM", cls.beam_width),
                   inside_chars=env_int("CHARRNN_MAX_INSIDE_TEXT", cls.inside_chars),
                   upload_mb=env_int("CHARRNN_MAX_UPLOAD_MB", cls.upload_mb),
                   retrain_seconds=env_int("CHARRNN_MAX_RETRAIN_SECONDS", cls.retrain_seconds),
                   sessions=env_int("CHARRNN_MAX_SESSIONS", cls.sessions),
                   streams=env_int("CHARRNN_MAX_STREAMS", cls.streams))


LIMITS = Limits.from_env()


def _describe(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def text(value, what: str, max_chars: int, allow_empty: bool = True) -> str:
    """A string of at most max_chars characters that can be written as UTF-8 (None counts as empty)."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise CharRNNError(f"{what} must be text, got {type(value).__name__} {_describe(value)}")
    if len(value) > max_chars:
        raise CharRNNError(f"{what} is {len(value):,} characters long; at most {max_chars:,} are accepted here")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise CharRNNError(f"{what} holds an invalid character at position {err.start} (a lone surrogate "
                           f"{value[err.start]!r}); send valid Unicode text") from None
    if not allow_empty and not value.strip():
        raise CharRNNError(f"{what} is empty")
    return value


def _finite_number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise CharRNNError(f"{what} must be a number, got {_describe(value)}") from None
        else:
            raise CharRNNError(f"{what} must be a number, got {type(value).__name__} {_describe(value)}")
    if not math.isfinite(value):
        raise CharRNNError(f"{what} must be a finite number, got {value}")
    return value


def number(value, what: str, low: float, high: float) -> float:
    """A finite number in [low, high] (a numeric string is read as a number)."""
    value = float(_finite_number(value, what))
    if not low <= value <= high:
        raise CharRNNError(f"{what} must be between {low:g} and {high:g}, got {value:g}")
    return value


def integer(value, what: str, low: int, high: int, default: int | None = None) -> int:
    """A whole number in [low, high]; None gives `default` where there is one."""
    if value is None and default is not None:
        return default
    value = _finite_number(value, what)
    if value != int(value):
        raise CharRNNError(f"{what} must be a whole number, got {value:g}")
    value = int(value)
    if not low <= value <= high:
        raise CharRNNError(f"{what} must be between {low:,} and {high:,}, got {value:,}")
    return value


def seed(value) -> int | None:
    """A seed: a whole number >= 0, or -1 / empty for a new random seed each time (None is returned)."""
    value = integer(value, "the seed", -1, 2 ** 63 - 1, default=-1)
    return None if value < 0 else value


def choice(value, what: str, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        raise CharRNNError(f"{what} must be one of {', '.join(map(str, choices))}; got {_describe(value)}")
    return value


def model_name(value, what: str = "the model") -> str:
    """A model name as text; whether such a model exists is the library's to say."""
    if not isinstance(value, str) or not value.strip():
        raise CharRNNError(f"{what} must be the name of a model, got {_describe(value)}")
    return text(value, what, 200)


def flag(value, what: str) -> bool:
    """True only for a real boolean true: the string 'false' is not a yes."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise CharRNNError(f"{what} must be true or false, got {_describe(value)}")
    return value
