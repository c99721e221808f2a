"""The model card (README.md) of a model pushed to the Hub: metadata a Hub search understands, and a page a reader
wants: what the model is, how it was made, how good it is, what it writes, and how to use it."""

from __future__ import annotations

import re
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from charrnn.cells import cell_info
from charrnn.checkpoint.saving import Checkpoint
from charrnn.data import load_presets

CURVE_ROWS = 12  # evaluations shown in the card's validation-curve table


def hub_datasets(training: dict) -> list[str]:
    """Hub dataset ids of a run's --dataset: Hub ids as given, presets expanded, and a local folder named after a
    preset (a local copy of it, such as a tiny_shakespeare folder) counted as that preset's dataset."""
    presets = load_presets()
    found = []
    for name in training.get("dataset") or []:
        preset = name if name in presets else Path(name).name
        if preset in presets:
            found.append(presets[preset]["path"])
        elif re.fullmatch(r"[\w.-]+/[\w.-]+", name) and not Path(name).exists():
            found.append(name)
    return list(dict.fromkeys(found))


def _fence(text: str) -> str:
    """A fenced block that no run of backticks inside the text can close."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _curve_table(curve: list[dict]) -> str:
    if not curve:
        return "No validation curve was recorded."
    best = min(curve, key=lambda p: p["val_bpc"])
    shown = {id(p): p for p in [*curve[::max(1, -(-len(curve) // CURVE_ROWS))], best, curve[-1]]}
    rows = ["| step | minutes | validation bits/char |", "|---:|---:|---:|"]
    for p in sorted(shown.values(), key=lambda p: p["step"]):
        bpc = f"**{p['val_bpc']:.4f}** (best)" if p is best else f"{p['val_bpc']:.4f}"
        rows.append(f"| {p['step']:,} | {p['elapsed_s'] / 60:.1f} | {bpc} |")
    return "\n".join(rows)


def _how_it_was_made(meta: dict, trained_on: str) -> str:
    training, metrics = meta.get("training") or {}, meta.get("metrics") or {}
    rows = [("trained on", f"{trained_on} ({(metrics.get('data') or {}).get('split', 'train')} split)")]
    if meta.get("command"):
        rows.append(("command", f"`{meta['command']}`"))
    if metrics.get("hardware"):
        rows.append(("hardware", metrics["hardware"]))
    if metrics.get("train_seconds") is not None:
        rows.append(("training time", f"{metrics['train_seconds'] / 60:.1f} minutes"))
    if metrics.get("steps") is not None:
        total = metrics.get("total_steps")
        rows.append(("steps", f"{metrics['steps']:,}" + (f" (the best evaluation of {total:,})" if total else "")))
    if metrics.get("train_chars_per_s"):
        rows.append(("speed", f"{metrics['train_chars_per_s']:,} characters/s"))
    if training.get("batch_size"):
        rows.append(("batch", f"{training['batch_size']} streams x {training['seq_len']} characters (truncated BPTT)"))
    if training.get("lr"):
        rows.append(("optimizer", f"AdamW, learning rate {training['lr']}, weight decay {training['weight_decay']}, "
                                  f"clipping {training['clip']}, weight average {training.get('ema_decay', 0)}"))
    if metrics.get("precision"):
        rows.append(("precision", f"{metrics['precision']} training, weights stored as {meta.get('dtype', 'float32')}"))
    return "\n".join(["| | |", "|---|---|"] + [f"| {label} | {value} |" for label, value in rows])


def build_card(checkpoint: Checkpoint, repo_id: str, *, sample: str = "", sample_settings: str = "",
               revision: str | None = None, license: str = "mit", datasets: list[str] | None = None) -> ModelCard:
    """The card of `checkpoint` pushed as `repo_id`; `sample` is a text it wrote (made with `sample_settings`).

    `datasets` are the Hub dataset ids it was trained on (default: read from its training config).
    """
    meta, config, tokenizer = checkpoint.meta, checkpoint.model.config, checkpoint.tokenizer
    training, metrics = meta.get("training") or {}, meta.get("metrics") or {}
    datasets = list(datasets) if datasets is not None else hub_datasets(training)
    trained_on = (training.get("data_name") or ", ".join(datasets)
                  or " ".join(Path(d).name for d in training.get("dataset") or ["its own text"]))
    bpc = metrics.get("val_bpc", metrics.get("best_val_bpc"))  # the final figure, else the best evaluation's
    nats = metrics.get("val_nats", metrics.get("best_val_nats"))
    val_split = (metrics.get("data") or {}).get("val_split", "validation")
    name = repo_id.split("/")[-1]

    results = None
    if bpc is not None:
        results = [EvalResult(task_type="text-generation", task_name="Character-level language modeling",
                              dataset_type=datasets[0] if datasets else trained_on, dataset_name=trained_on,
                              dataset_split=val_split, metric_type="bpc", metric_name="validation bits per character",
                              metric_value=round(bpc, 4))]
    data = ModelCardData(library_name="charrnn", pipeline_tag="text-generation", license=license,
                         tags=["char-rnn", cell_info(config.cell).hub_tag, "pytorch"],
                         datasets=datasets or None, model_name=name, eval_results=results)

    tokens = (f"one token per character ({tokenizer.vocab_size} ids; unseen characters map to `<unk>`)"
              if tokenizer.kind == "char" else
              f"a sentencepiece {tokenizer.kind} tokenizer of {tokenizer.vocab_size} subwords")
    scored, val_tokens = metrics.get("val_tokens_scored"), metrics.get("val_tokens")
    sample = (f" (a sample: {scored:,} of its {val_tokens:,} tokens, in windows spread over it; `charrnn evaluate` "
              "scores all of it)" if scored and val_tokens and scored < val_tokens - 1 else "")
    quality = (f"**{bpc:.4f} bits per character** ({nats:.4f} nats/char) on the {val_split} split of {trained_on}"
               + (f", {metrics['val_chars']:,} predicted characters{sample}" if metrics.get("val_chars") else "") + "."
               if bpc is not None else "This checkpoint carries no validation figure.")
    what = (f"A character-level language model: a {config.num_layers}-layer {cell_info(config.cell).long_label} "
            f"with {config.hidden_size} units per layer, {config.embedding_size}-dimensional embeddings and "
            f"{checkpoint.model.num_params():,} parameters, reading and writing {tokens}. Made with charrnn, which "
            "trains RNN, GRU and LSTM models on a plain CPU and samples them at thousands of characters per second.")
    cli_revision = f" --revision {revision}" if revision else ""
    py_revision = f', revision="{revision}"' if revision else ""
    app_id = repo_id + (f"@{revision}" if revision else "")
    body = f"""
# {name}

{what}

## Use it

```bash
pip install charrnn   # or, in a clone of the charrnn repository: pip install .
charrnn sample --checkpoint {repo_id}{cli_revision} --prompt "ROMEO:" --length 500 --temperature 0.8
```

```python
import charrnn

checkpoint = charrnn.load("{repo_id}"{py_revision})  # the model with its tokenizer; downloaded once, then cached
print(charrnn.generate(checkpoint.model, checkpoint.tokenizer, "ROMEO:", length=500, temperature=0.8))
```

In the charrnn app: `CHARRNN_MODELS={app_id} python app.py`.

## How it was made

{_how_it_was_made(meta, trained_on)}

Dropout {config.dropout} between layers, {config.input_dropout} on the embeddings; weight drop {config.weight_drop}.

## Results

{quality}

Validation curve (the weights kept are those of the best evaluation):

{_curve_table(metrics.get("curve") or [])}

## A sample

{sample_settings or "What it wrote:"}

{_fence(sample)}

## Limitations

A small character-level model imitates the spelling, layout and style of its training text; it knows no facts
and keeps no thread for more than a few lines. It writes only characters it saw in training.
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")
