"""Anyone with the URL can send anything: every endpoint answers every kind of bad value with a message.

Values go through the raw queue protocol (as a browser or a script sends them), not gradio_client, which
would refuse most of them before sending.
"""

import math
from pathlib import Path

import httpx
import pytest

from tools.stress.client import ANSWERED, MESSAGE, call, endpoints

HOSTILE = [None, ["lstm"], {"a": 1}, True, math.nan, -math.inf, 1e308, "\ud800", "x" * 10_001, "../../../etc",
           "lstm\x00"]


@pytest.fixture(scope="module")
def points(app_url):
    return {e.name: e for e in endpoints(app_url.rstrip("/"))}


def defaults(endpoint):
    """The page's default values, with short generations so that the many calls stay quick."""
    values = [component["props"].get("value") for component in endpoint.inputs]
    for i, component in enumerate(endpoint.inputs):
        if str(component["props"].get("label", "")).startswith("Length"):
            values[i] = 5
    return values


AGENT_TOOLS = ["agent_models", "agent_generate", "agent_compare", "agent_surprise"]


def test_every_public_endpoint_is_fuzzed_here(points):
    page = {"generate", "compare", "surprise", "neurons", "gradient_flow", "gates", "memory"}
    assert page | set(AGENT_TOOLS) <= set(points)


@pytest.mark.parametrize("name", ["generate", "compare", "surprise", "neurons", "gates", "gradient_flow", "memory",
                                  "preview_text", *AGENT_TOOLS])
def test_each_input_of_each_endpoint_takes_hostile_values_with_a_message(app_url, points, name, capfd):
    endpoint, base = points[name], app_url.rstrip("/")
    outcomes = []
    with httpx.Client() as client:
        for i in range(len(endpoint.inputs)):
            for value in HOSTILE:
                if name == "memory" and value is True:
                    continue  # a real retraining: tested on its own
                data = defaults(endpoint)
                data[i] = value
                outcome = call(client, base, endpoint.fn_index, data, timeout=60)
                outcomes.append((i, value, outcome))
    unexpected = [(i, repr(v)[:30], o.kind, o.message) for i, v, o in outcomes if o.kind not in (ANSWERED, MESSAGE)]
    assert unexpected == []
    assert "Traceback" not in capfd.readouterr().err  # a user's bad value is not a server error


def test_a_client_calls_many_times_in_one_session(app_url, points):
    """As the load test's clients do (and a browser tab or a gradio_client Client): one session hash for all
    their calls, each answered in full."""
    generate, base = points["generate"], app_url.rstrip("/")
    with httpx.Client() as client:
        outcomes = [call(client, base, generate.fn_index, defaults(generate), timeout=60, session="one-visitor")
                    for _ in range(3)]
    assert [o.kind for o in outcomes] == [ANSWERED] * 3
    assert all(isinstance(o.outputs[0], str) and len(o.outputs[0]) >= 5 for o in outcomes)


def test_messages_say_what_was_wrong(app_url, points):
    generate, base = points["generate"], app_url.rstrip("/")
    cases = {1: (["lstm"], "the model must be the name of a model"),
             2: (math.nan, "the temperature must be a finite number"),
             0: ("a\ud800b", "lone surrogate"),
             6: ("x", "the seed must be a number")}
    with httpx.Client() as client:
        for index, (value, expected) in cases.items():
            data = defaults(generate)
            data[index] = value
            outcome = call(client, base, generate.fn_index, data)
            assert outcome.kind == MESSAGE and expected in outcome.message, (index, outcome)
        long_prompt = defaults(generate)
        long_prompt[0] = "x" * 10_001
        outcome = call(client, base, generate.fn_index, long_prompt)
        assert "10,001 characters long; at most 10,000" in outcome.message
        too_few = call(client, base, generate.fn_index, defaults(generate)[:-1])
        assert too_few.kind == MESSAGE and "takes 10 input values, got 9" in too_few.message


def test_what_a_visitor_typed_comes_back_as_text_and_no_server_path_comes_back(app_url, points):
    """The page's error toast shows a message as HTML, and messages can hold what a visitor typed: markup in it
    comes back escaped. A dataset name no file can have gets a message, not an internal error; a damaged upload
    is named as the visitor named it, not by where the server keeps it."""
    preview, base = points["preview_text"], app_url.rstrip("/")
    dataset, files = 2, 1  # the inputs of /preview_text
    with httpx.Client() as client:
        data = defaults(preview)
        data[dataset] = '<img src=x onerror="alert(1)">'
        outcome = call(client, base, preview.fn_index, data)
        assert outcome.kind == MESSAGE and "&lt;img src=x onerror=\"alert(1)\"&gt;" in outcome.message
        assert "<img" not in outcome.message
        data[dataset] = "x" * 300
        outcome = call(client, base, preview.fn_index, data)
        assert outcome.kind == MESSAGE and "preset or Hub id (user/name, at most 96 characters)" in outcome.message
        uploaded = client.post(f"{base}/gradio_api/upload",
                               files=[("files", ("notes.parquet", b"PAR1 not parquet at all"))]).json()[0]
        data = defaults(preview)
        data[files] = [{"path": uploaded, "orig_name": "notes.parquet", "meta": {"_type": "gradio.FileData"}}]
        outcome = call(client, base, preview.fn_index, data)
        assert outcome.kind == MESSAGE and outcome.message.startswith("notes.parquet could not be read as parquet")
        assert str(Path(uploaded).parent) not in outcome.message


def test_memory_retrains_only_on_true(app_url, points):
    memory, base = points["memory"], app_url.rstrip("/")
    with httpx.Client() as client:
        for value in ("false", "true", 1, "yes"):
            outcome = call(client, base, memory.fn_index, [value, None], timeout=20)
            assert outcome.kind == MESSAGE and "must be true or false" in outcome.message
        outcome = call(client, base, memory.fn_index, [False, None], timeout=20)
        assert outcome.kind == ANSWERED and outcome.seconds < 10  # the shipped models, not a retraining


def test_a_long_text_is_not_kept_in_the_session_after_the_call(tiny_library):
    import asyncio

    from gradio.state_holder import SessionState

    from charrnn.app.handlers import KEPT_INPUT_CHARS
    from charrnn.app.page import build_app
    from charrnn.service import ModelLibrary

    demo = build_app(ModelLibrary(tiny_library))
    generate = next(fn for fn in demo.fns.values() if fn.api_name == "generate")
    prompt = generate.inputs[0]
    values = [block.value for block in generate.inputs]

    def kept_after(text: str):
        state = SessionState(demo)
        asyncio.run(demo.preprocess_data(generate, [text, *values[1:]], state))
        return state.config_values[prompt._id]["props"]["value"]

    assert kept_after("JULIET:\n") == "JULIET:\n"  # Gradio keeps a session's inputs; short ones stay
    assert kept_after("x" * (KEPT_INPUT_CHARS + 1)) == prompt.value  # a long one is dropped: the page's own value
