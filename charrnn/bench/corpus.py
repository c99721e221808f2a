"""Corpus benchmark: encode a generated multi-GB text file through load_corpus and print the figures.

The measurement behind `charrnn bench corpus` (charrnn/cli/bench_corpus.py), which describes what it does.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from charrnn.errors import check

WORDS = ("the and to of a I you my in that is not with me it for be his your this but he have as thou so him "
         "will what by thy all her do no shall if are we or our on lord good now sir from at they well would "
         "king which love then more there how let when here o hath one than like say man upon make may yet go "
         "come did such know must should see these us an can heart night death speak time life mine tell give "
         "day eyes hand father world sweet fair blood soul hear nothing great honour heaven house grace son "
         "friends noble gentle brother mother queen duke lady war peace fear truth name head tongue").split()
SPEAKERS = ("FIRST CITIZEN", "MENENIUS", "CORIOLANUS", "KING RICHARD", "QUEEN ELIZABETH", "ROMEO", "JULIET",
            "GLOUCESTER", "LADY ANNE", "BUCKINGHAM")
NON_ASCII = ("caf\u00e9", "na\u00efve", "\u2019tis", "\u2014", "\u201cnay\u201d", "r\u00f4le")


def english_block(rng: np.random.Generator, words: int, ascii_only: bool) -> bytes:
    """Speeches of about 4 bytes per word: Zipf-like word frequencies, a line break every ~9 words."""
    vocabulary = WORDS + [",", ".", "?", "!"]
    weights = 1 / np.arange(1, len(vocabulary) + 1)
    picks = np.asarray(vocabulary, dtype=object)[rng.choice(len(vocabulary), words, p=weights / weights.sum())]
    picks[rng.random(words) < 1 / 9] += "\n"
    speeches = np.flatnonzero(rng.random(words) < 1 / 80)
    picks[speeches] = [f"\n\n{SPEAKERS[i]}:\n" for i in rng.integers(len(SPEAKERS), size=len(speeches))]
    if not ascii_only:
        rare = np.flatnonzero(rng.random(words) < 1 / 20_000)
        picks[rare] = [NON_ASCII[i] for i in rng.integers(len(NON_ASCII), size=len(rare))]
    return " ".join(picks).encode("utf-8")


def write_corpus(path: Path, size: int, ascii_only: bool, seed: int = 0) -> int:
    """`size` bytes of text (to the last whole line), from 16 blocks of ~3 MB written in a random order."""
    rng = np.random.default_rng(seed)
    blocks = [english_block(rng, 700_000, ascii_only) for _ in range(16)]
    written = 0
    with open(path, "wb") as f:
        while written < size:
            block = blocks[rng.integers(len(blocks))]
            if written + len(block) > size:
                block = block[:block.rfind(b"\n", 0, size - written) + 1]
            f.write(block)
            written += len(block)
            if not block:
                break
    return written


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(step: str, corpus: str, out: str, launched: float) -> None:
    """In a fresh process, started at time.time() `launched`: one step of the benchmark, printed as JSON."""
    start = time.perf_counter()
    from charrnn.config import TrainConfig
    from charrnn.data import load_corpus, resolve_source
    from charrnn.train import Trainer, train_step

    imported = time.perf_counter()
    figures = {"import_s": round(imported - start, 2), "rss_after_import_mb": round(max_rss_mb())}
    if step == "train":
        trainer = Trainer(TrainConfig(dataset=[corpus], out=out, progress=False))
        x, y, _ = trainer.batcher.batch(0)
        train_step(trainer.model, trainer.optimizer, x, y, None, trainer.amp_dtype, trainer.cfg.clip)
        tokens = len(trainer.corpus.train) + len(trainer.corpus.val)
    else:
        loaded = load_corpus(resolve_source(corpus), progress=step == "encode")
        tokens = len(loaded.train) + len(loaded.val)
    figures.update(seconds=round(time.perf_counter() - imported, 3), tokens=tokens, peak_rss_mb=round(max_rss_mb()),
                   since_launch_s=round(time.time() - launched, 2))
    print(json.dumps(figures), flush=True)


def run_step(step: str, corpus: Path, workdir: Path) -> dict:
    env = {**os.environ, "CHARRNN_DATA_DIR": str(workdir / "data"), "HF_HUB_OFFLINE": "1"}
    code = (f"from charrnn.bench.corpus import measure; "
            f"measure({step!r}, {str(corpus)!r}, {str(workdir / 'run')!r}, {time.time()!r})")
    done = subprocess.run([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    check(done.returncode == 0, f"the {step} step failed (exit status {done.returncode}); its messages are above")
    return json.loads(done.stdout.splitlines()[-1])
