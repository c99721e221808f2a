"""Compare's cross scores read each continuation after the prompt, as the writer did."""

import math

import torch

from charrnn.checkpoint.saving import load_checkpoint
from charrnn.evaluate import continuation_bpc
from charrnn.sampling.generate import encode_prompt
from charrnn.service import ModelLibrary, cross_scores


def step_by_step_bpc(model, tokenizer, context_ids, text):
    """Independent reference: feed one token at a time, carrying the hidden state, and add up -log2 p."""
    ids = list(context_ids) + list(tokenizer.encode(text))
    hidden, bits = None, 0.0
    with torch.no_grad():
        for t in range(len(ids) - 1):
            logits, hidden, _ = model(torch.tensor([[ids[t]]]), hidden)
            if t >= len(context_ids) - 1:
                bits -= torch.log_softmax(logits[0, -1].double(), -1)[ids[t + 1]].item() / math.log(2)
    return bits / len(text)


def test_continuation_is_scored_after_its_prompt(tiny_checkpoint):
    checkpoint = load_checkpoint(tiny_checkpoint)
    model, tokenizer = checkpoint.model, checkpoint.tokenizer
    context, _ = encode_prompt(tokenizer, "First Citizen:\n")
    text = "Before we proceed any further"
    expected = step_by_step_bpc(model, tokenizer, context, text)
    assert abs(continuation_bpc(model, tokenizer, context, text) - expected) < 1e-4
    alone, _ = encode_prompt(tokenizer, "")
    assert abs(continuation_bpc(model, tokenizer, alone, text) - expected) > 1e-3  # the prompt matters


def test_cross_scores_table_uses_the_prompt(tiny_library):
    library = ModelLibrary(tiny_library, hub_ids=[])
    prompt = "All:\n"
    texts = [prompt + "Speak, speak.", prompt + "Resolved.", prompt + "You are all"]
    table = cross_scores(library, ["rnn", "gru", "lstm"], prompt, texts)
    checkpoint = library.load("gru").checkpoint
    context, _ = encode_prompt(checkpoint.tokenizer, prompt)
    expected = step_by_step_bpc(checkpoint.model, checkpoint.tokenizer, context, "Resolved.")
    assert abs(table.loc[1, "bits per character under gru"] - expected) < 1e-3
