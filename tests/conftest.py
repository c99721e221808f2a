"""Shared fixtures: offline Hub, a private data/cache folder, tiny corpora and a tiny trained checkpoint."""

import os
import shutil
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never reach the Hub; Hub ids must fail fast
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")  # tiny models run faster on one thread, and so do parallel jobs

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
TINY_TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\n"
    "All:\nResolved. resolved.\n\n"
) * 12


@pytest.fixture(autouse=True, scope="session")
def private_data_dir(tmp_path_factory):
    """Encoded caches and downloads go to a temporary folder, not the project's data/."""
    path = tmp_path_factory.mktemp("charrnn-data")
    os.environ["CHARRNN_DATA_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def text_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("text") / "tiny.txt"
    path.write_text(TINY_TEXT, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def parquet_folder(tmp_path_factory) -> Path:
    """A dataset folder laid out like a Hub dataset: many rows, a train and a validation split."""
    import pandas as pd

    folder = tmp_path_factory.mktemp("parquet") / "tiny_dataset"
    (folder / "data").mkdir(parents=True)
    lines = [line for line in TINY_TEXT.split("\n") if line]
    pd.DataFrame({"id": range(len(lines)), "text": lines}).to_parquet(folder / "data" / "train-00000-of-00001.parquet")
    pd.DataFrame({"id": range(8), "text": lines[:8]}).to_parquet(folder / "data" / "validation-00000-of-00001.parquet")
    return folder


@pytest.fixture
def determinism_restored():
    """--deterministic switches torch's deterministic kernels on for the whole process: the tests after this one get
    the settings they had."""
    import torch

    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    yield
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2:]


def tiny_train_args(dataset, out, *extra):
    return ["--dataset", str(dataset), "--hidden", "32", "--embedding", "16", "--layers", "2", "--batch-size", "4",
            "--seq-len", "16", "--max-steps", "30", "--eval-interval", "10", "--log-interval", "5",
            "--no-progress", "--out", str(out), *map(str, extra)]


def without_batch_size(args: list[str]) -> list[str]:
    """Training arguments without --batch-size, so that the device's default applies."""
    at = args.index("--batch-size")
    return args[:at] + args[at + 2:]


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, text_file) -> Path:
    """A tiny LSTM trained for a few steps by the real training command."""
    from charrnn.cli.train import main

    out = tmp_path_factory.mktemp("run") / "tiny"
    main(tiny_train_args(text_file, out, "--dropout", "0.1"))
    return out / "best"


@pytest.fixture(scope="session")
def tiny_library(tmp_path_factory, text_file) -> Path:
    """A checkpoints/ folder with tiny rnn, gru and lstm models made by the training command."""
    from charrnn.cli.train import main

    root = tmp_path_factory.mktemp("checkpoints")
    runs = tmp_path_factory.mktemp("runs")
    for name, cell in (("rnn", "rnn_tanh"), ("gru", "gru"), ("lstm", "lstm")):
        main(tiny_train_args(text_file, runs / name, "--cell", cell, "--max-steps", "20"))
        (runs / name / "best").rename(root / name)
    shutil.copytree(root / "lstm", root / "doomed")  # for a test that deletes a checkpoint under a running app
    return root


@pytest.fixture(scope="session")
def app_url(tiny_library):
    """The real app, on the tiny checkpoints, launched on 127.0.0.1 for the length of the session, sampling in a
    child process as `python app.py` does."""
    from charrnn.app.page import build_app
    from charrnn.service import ModelLibrary
    from charrnn.sampling.process import SamplerProcess

    sampler = SamplerProcess()
    demo = build_app(ModelLibrary(tiny_library, sampler=sampler))
    demo.queue(default_concurrency_limit=4)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    yield url
    demo.close()
    sampler.close()


def sharp_random_model(vocab_size: int, cell: str = "lstm", seed: int = 0, scale: float = 3.0):
    """A tiny CharRNN with random weights scaled up, so that its predictions are far from uniform (no near-ties
    to rank): for tests that compare a search or a suggestion with the model's own probabilities."""
    import torch

    from charrnn.config import ModelConfig
    from charrnn.model import CharRNN

    torch.manual_seed(seed)
    model = CharRNN(ModelConfig(vocab_size=vocab_size, cell=cell, embedding_size=4, hidden_size=8, num_layers=2))
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(scale)
    return model.eval()
