"""A folder a static web server can serve: the model's ONNX step, its vocabulary, the page, and the runtime.

    model.onnx    one step of the model (charrnn/export/onnx.py), checked against torch before the rest is written
    vocab.json    the tokenizer as the page reads it (charrnn/export/vocab.py)
    index.html    the page: page.html with the model's settings and tokenizer.js filled in
    ort.*         ONNX Runtime Web, when a copy is at hand (charrnn/export/runtime.py); else the page loads it
                  from a CDN
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from charrnn.cells import cell_info
from charrnn.checkpoint.saving import Checkpoint
from charrnn.errors import CharRNNError
from charrnn.export.onnx import check_step, export_step, reference_copy, state_names, step_session
from charrnn.export.runtime import Runtime
from charrnn.export.vocab import page_vocabulary
from charrnn.model import CharRNN
from charrnn.paths import PAGE_TEMPLATE, PAGE_TOKENIZER
from charrnn.sampling.generate import encode_prompt

MODEL_FILE, VOCAB_FILE, PAGE_FILE = "model.onnx", "vocab.json", "index.html"
CHECK_LENGTH = 500  # tokens of the model's own text that the export's check steps through


@dataclass(frozen=True)
class ExportedSite:
    folder: Path
    files: list[Path]
    difference: float  # the largest next-token probability difference from torch over the check
    check_tokens: int
    runtime: Runtime


def export_site(checkpoint: Checkpoint, out: str | Path, runtime: Runtime = Runtime(),
                check_length: int = CHECK_LENGTH, seed: int = 0) -> ExportedSite:
    """Write the page's folder for `checkpoint` into `out`, after checking the ONNX step against torch over a
    newline and `check_length` tokens the model writes from it (sampled with `seed`)."""
    out = Path(out)
    model, tokenizer = checkpoint.model, checkpoint.tokenizer
    vocabulary = page_vocabulary(tokenizer)  # refuses a tokenizer the page cannot encode before the slow part
    out.mkdir(parents=True, exist_ok=True)
    model_path = export_step(model, out / MODEL_FILE)
    start, _ = encode_prompt(tokenizer, "")
    ids = model_text(model, start, check_length, seed, vocabulary["banned_id"])
    try:
        difference = check_step(model, step_session(model_path), ids)
    except CharRNNError:
        model_path.unlink()  # a page must not run a model that is not the checkpoint's
        raise
    (out / VOCAB_FILE).write_text(json.dumps(vocabulary, ensure_ascii=False), encoding="utf-8")
    (out / PAGE_FILE).write_text(render_page(checkpoint, runtime), encoding="utf-8")
    files = [model_path, out / VOCAB_FILE, out / PAGE_FILE, *runtime.install(out)]
    return ExportedSite(out, files, difference, len(ids), runtime)


@torch.no_grad()
def model_text(model: CharRNN, start: np.ndarray, length: int, seed: int, banned: int | None) -> np.ndarray:
    """`start` and `length` tokens drawn from the model after it (temperature 1): the states a page meets."""
    model = reference_copy(model)
    generator = torch.Generator().manual_seed(seed)
    ids = [int(token) for token in start]
    logits, hidden, _ = model(torch.as_tensor(start, dtype=torch.long)[None])  # (1, T, V)
    for _ in range(length):
        weights = torch.softmax(logits[0, -1].double(), -1)
        if banned is not None:
            weights[banned] = 0
        ids.append(int(torch.multinomial(weights, 1, generator=generator)))
        logits, hidden, _ = model(torch.tensor([[ids[-1]]]), hidden)
    return np.array(ids, dtype=np.int64)


def page_settings(checkpoint: Checkpoint, runtime: Runtime) -> dict:
    """What the page's script needs that it cannot read from the files: the model's state shapes and files."""
    config = checkpoint.model.config
    return {"model_file": MODEL_FILE, "vocab_file": VOCAB_FILE, "state_names": list(state_names(config)),
            "layers": config.num_layers, "hidden_size": config.hidden_size, "wasm_folder": runtime.wasm_folder()}


def render_page(checkpoint: Checkpoint, runtime: Runtime) -> str:
    config = checkpoint.model.config
    unit = "characters" if checkpoint.tokenizer.kind == "char" else "subwords"
    layers = f"{config.num_layers} layer{'s' * (config.num_layers > 1)}"
    about = (f"{cell_info(config.cell).label}: {layers} of {config.hidden_size} units, "
             f"{checkpoint.model.num_params():,} parameters, {config.vocab_size} {unit}. It runs in this page with "
             "ONNX Runtime Web: nothing you type leaves it.")
    # "</" would end the script element early; JSON may write it as "<\/"
    settings = json.dumps(page_settings(checkpoint, runtime), ensure_ascii=False).replace("</", "<\\/")
    filled = {"title": html.escape(f"{checkpoint.name}: charrnn in the browser"), "about": html.escape(about),
              "settings": settings, "runtime_script": runtime.script_tag(),
              "tokenizer_js": PAGE_TOKENIZER.read_text(encoding="utf-8")}
    page = PAGE_TEMPLATE.read_text(encoding="utf-8")
    for name, value in filled.items():
        page = page.replace("{{" + name + "}}", value)
    return page
