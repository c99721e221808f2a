"""The compiled sampling kernels on a first run: whether numba has them cached for this machine, and compiling them
in a process of their own, so that no one waits for the compiler.

A fresh install has no compiled kernels, and compiling them takes far longer than the sampling a first command
asks for. So a command that finds them missing samples with torch and a Python draw (torch_stepper.py; the same
probabilities, not the same bits, so a seed's text may differ in rare characters from a later run's) and starts
`python -m charrnn.sampling.warm`, which compiles every kernel the sampler uses into numba's cache for the runs
after it. One such process at a time (a lock file).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from charrnn.paths import IMPORT_ROOT

LOCK = Path(tempfile.gettempdir()) / "charrnn-compiling-kernels.lock"


def kernels_cached() -> bool:
    """Whether numba's cache holds the step and the draw for the kernels' current source (jit_cache.py): loading
    them takes a moment, compiling them much longer. False wherever that cannot be told."""
    from charrnn.sampling import kernels

    try:
        return all(function._cache._cache_file._load_index() for function in (kernels.stack_step,
                                                                               kernels.sample_tokens))
    except (AttributeError, OSError, ValueError, EOFError):  # another numba's internals, a damaged index
        return False


def cache_files_present() -> bool:
    """Whether numba has cached a batched step anywhere it looks, told from the files alone (without importing
    numba or torch: the web app asks this before it builds its page). A stale cache still counts: then the
    sampler compiles on its first call, as it always did."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        folders = [Path(os.environ["NUMBA_CACHE_DIR"])]
    else:
        user_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "numba"
        folders = [Path(__file__).resolve().parent / "__pycache__", user_cache]
    return any(next(folder.rglob("kernels.stack_step-*.nbi"), None) for folder in folders if folder.is_dir())


def compiling() -> bool:
    """Whether a compiling process (compile_in_background) is running now."""
    with open(LOCK, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(lock, fcntl.LOCK_UN)
        return False


def kernels_ready() -> bool:
    """Whether the compiled kernels can be used now without waiting for the compiler: cached, and no compiling
    process still writing them."""
    return not compiling() and kernels_cached()


def wait_for_compiling(timeout: float) -> None:
    """Wait, at most `timeout` seconds, for a compiling process (compile_in_background) to finish."""
    deadline = time.monotonic() + timeout
    while compiling() and time.monotonic() < deadline:
        time.sleep(0.2)


def compile_in_background() -> None:
    """Start compiling the kernels in a process of its own, at a lower priority; this one does not wait."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(IMPORT_ROOT),
                                                                             os.environ.get("PYTHONPATH")]))}
    subprocess.Popen([sys.executable, "-m", "charrnn.sampling.warm"], cwd=IMPORT_ROOT, env=environment,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)


def compile_kernels() -> None:
    """Run every kernel the sampler uses once on a tiny model: numba compiles and caches each variant."""
    import numpy as np

    from charrnn.config import ModelConfig
    from charrnn.model import CharRNN
    from charrnn.sampling.generate import SamplingSettings, draw_tokens, next_token_probabilities
    from charrnn.sampling.stepper import Stepper

    model = CharRNN(ModelConfig(vocab_size=8, cell="lstm", hidden_size=16, embedding_size=8, num_layers=2))
    for precision in ("auto", "float32"):  # what sampling picks here, and what beam search uses
        stepper = Stepper(model, precision)
        logits, _ = stepper.step(np.zeros(2, np.int64), np.zeros((stepper.state_size, 2, 16), np.float32))
    draw_tokens(logits, SamplingSettings(), np.random.default_rng(0))
    next_token_probabilities(logits, SamplingSettings())


if __name__ == "__main__":
    with open(LOCK, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # another process is compiling them
            sys.exit(0)
        os.nice(10)  # the machine's other work comes first
        compile_kernels()
