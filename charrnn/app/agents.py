"""The page's tools for agents over MCP (the Model Context Protocol), when the app serves it (launch.py).

Gradio serves public endpoints as MCP tools named after their functions: a tool's description and each
argument's come from the docstring (its first paragraph, one `Args:` line per parameter, `Returns:`), and the
argument types and defaults, for endpoints made by gr.api, from the type hints and defaults. The page's own
events do not make good tools: Gradio 6.31 hands an agent an event with several outputs as the Python repr of a
tuple, and fails on one with a gr.State output (Generate's). So the tools are functions of their own, each
answering in plain text, and every other public endpoint stays in the API for scripts but off the tool list
(only_tools); private events are never tools. The tools are registered before the tabs, so that they, not the
page's handlers of the same names, get the plain tool names.
"""

# No `from __future__ import annotations`: gr.api reads the return annotation as it is, and a string is no type.

import gradio as gr

from charrnn import service
from charrnn.app.generate_tab import format_texts
from charrnn.app.handlers import user_errors
from charrnn.service import inside
from charrnn.service.library import LibraryView
from charrnn.service.inputs import LIMITS

NOT_A_TOOL = "api only"  # see only_tools


def _table(frame) -> str:
    return frame.to_string(index=False)


def agent_tools(library: service.ModelLibrary, names: list[str]) -> list[str]:
    """Register the tools on the Blocks being built; returns their endpoint names. An agent has no session: it
    sees the public models only (a visitor's trained models answer as absent)."""
    library = LibraryView(library, None)
    default = names[0] if names else None

    @user_errors
    def models() -> str:
        """The models this app serves: for each, its cell, size, training data and validation bits per character.

        Returns:
            One Markdown card per model, headed by its name in bold: the name the other tools take as `model`.
        """
        return "\n\n".join(service.model_card(library, name) for name in names)

    @user_errors
    def generate(prompt: str = "ROMEO:\n", model: str | None = None, length: int = 300, temperature: float = 0.8,
                 top_k: int = 0, top_p: float = 1.0, seed: int = -1, num_samples: int = 1,
                 beam_width: int = 0) -> str:
        """Continue a prompt with a character-level language model (an RNN, GRU or LSTM trained on Shakespeare).

        Args:
            prompt: the text to continue; the answer starts with it (empty: start from a newline).
            model: the model that writes (see the models tool); empty for the first one listed.
            length: how many characters to write.
            temperature: 0 always takes the likeliest character; below 1 safer text, above 1 wilder.
            top_k: sample only among the k likeliest characters (0 = all).
            top_p: sample only among the likeliest characters whose probabilities add up to p (1 = all).
            seed: the same seed and settings write the same text; -1 picks a new seed.
            num_samples: how many independent texts to write (with beam search: how many of the best beams).
            beam_width: above 1, search for the likeliest text with this many beams instead of sampling.

        Returns:
            The text, prompt included (several texts are headed by '--- sample N ---' or '--- beam N ---' lines).
            After a blank line, a status line: the seed used (or the beams' log-probabilities), notes on the prompt.
        """
        *_, (texts, status) = service.generate_stream(library, model or default, prompt, length, temperature,
                                                      top_k, top_p, seed, num_samples, beam_width)
        return f"{format_texts(texts, beam_width)}\n\n{status}"

    @user_errors
    def compare(prompt: str = "KING RICHARD II:\n", models: list[str] | None = None, length: int = 300,
                temperature: float = 0.7, seed: int = 7) -> str:
        """Up to three models continue the same prompt with the same seed and temperature, to compare them.

        Args:
            prompt: the text each model continues; each text starts with it.
            models: one to three model names (see the models tool); empty for the plain RNN, the GRU and the LSTM.
            length: how many characters each model writes.
            temperature: 0 always takes the likeliest character; below 1 safer text, above 1 wilder.
            seed: the same seed writes the same texts; -1 picks a new one.

        Returns:
            Each model's text, prompt included, headed by a '--- model name ---' line.
            A table of the models: cell, parameters, validation bits per character, training, sampling speed.
            A table of each text's bits per character (prompt excluded) under every model: lower = more plausible.
        """
        chosen = models or [n if n in names else default for n in service.COMPARE_DEFAULT]
        *_, (texts, speeds) = service.compare_stream(library, chosen, prompt, length, temperature, seed)
        written = "\n\n".join(f"--- {name} ---\n{text}" for name, text in zip(chosen, texts))
        return (f"{written}\n\nThe models:\n{_table(service.comparison_table(library, chosen, speeds))}\n\n"
                f"Bits per character of each text under each model:\n"
                f"{_table(service.cross_scores(library, chosen, prompt or '', texts))}")

    @user_errors
    def surprise(text: str, model: str | None = None) -> str:
        """How surprising a text is to a model: its bits per character (the lower, the more plausible).

        Args:
            text: the text the model reads.
            model: the model that reads it (see the models tool); empty for the first one listed.

        Returns:
            A table of the model's bits per character and total bits on the text, and characters it never saw.
        """
        _, table = inside.surprise(library, text, [model or default])
        return _table(table)

    tools = [(models, None), (generate, "sampling"), (compare, "sampling"), (surprise, None)]
    for fn, concurrency_id in tools:
        gr.api(fn, api_name=f"agent_{fn.__name__}", concurrency_id=concurrency_id,
               concurrency_limit=LIMITS.streams if concurrency_id else "default")
    return [f"agent_{fn.__name__}" for fn, _ in tools]


def only_tools(demo: gr.Blocks, tools: list[str]) -> None:
    """Keep every public endpoint of `demo` but `tools` off its MCP tool list (they stay in its API).

    Gradio lists an endpoint as a tool unless its function is marked as another kind of MCP object (gr.mcp.resource
    and gr.mcp.prompt set `_mcp_type`); it lists an unknown kind as nothing. tests/test_mcp.py checks the list, so
    a Gradio that reads the mark differently fails there.
    """
    for block_fn in demo.fns.values():
        if block_fn.fn is not None and block_fn.api_visibility == "public" and block_fn.api_name not in tools:
            # a bound method (gr.LoginButton's sign-in check) keeps its attributes on its function
            getattr(block_fn.fn, "__func__", block_fn.fn)._mcp_type = NOT_A_TOOL
