"""The app's API, driven through gradio_client as a script would call it."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from charrnn import service
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def test_both_actions_are_named_endpoints(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/generate", "/compare"} <= set(endpoints)


def test_generate_needs_only_a_prompt_and_streams_growing_text(client):
    text, status = client.predict("All:", api_name="/generate")
    assert text.startswith("All:") and len(text) == len("All:") + 600  # the default length
    job = client.submit("All:", "lstm", 0.8, 0, 1.0, 300, 5, 1, api_name="/generate")
    lengths = [len(update[0]) for update in job]
    assert lengths == sorted(lengths) and lengths[-1] == len("All:") + 300


def test_the_same_seed_gives_the_same_text(client):
    first = client.predict("First", "gru", 1.0, 0, 1.0, 120, 11, 1, api_name="/generate")[0]
    again = client.predict("First", "gru", 1.0, 0, 1.0, 120, 11, 1, api_name="/generate")[0]
    other = client.predict("First", "gru", 1.0, 0, 1.0, 120, 12, 1, api_name="/generate")[0]
    assert first == again != other


def test_several_samples_come_back_labelled(client):
    text, _ = client.predict("All:", "lstm", 1.0, 0, 1.0, 50, 3, 3, api_name="/generate")
    assert text.count("--- sample") == 3


def test_greedy_and_no_filter_settings_are_accepted(client):
    text, _ = client.predict("All:", "rnn", 0, 0, 1.0, 40, 1, 1, api_name="/generate")
    assert len(text) == len("All:") + 40


def test_empty_prompt_and_unknown_characters_are_explained_not_fatal(client):
    text, status = client.predict("", "lstm", 0.8, 0, 1.0, 30, 1, 1, api_name="/generate")
    assert len(text) == 30 and "Empty prompt" in status
    text, status = client.predict("All 🎉 ж", "lstm", 0.8, 0, 1.0, 30, 1, 1, api_name="/generate")
    assert "never seen" in status and "🎉" in status and len(text) == len("All 🎉 ж") + 30


def test_bad_inputs_get_messages_not_server_errors(client):
    with pytest.raises(AppError, match="the length must be between 1 and 5,000, got 5,001"):
        client.predict("All:", "lstm", 0.8, 0, 1.0, service.MAX_LENGTH + 1, 1, 1, api_name="/generate")
    with pytest.raises(AppError, match="no model named 'gone'"):
        client.predict("All:", "gone", 0.8, 0, 1.0, 30, 1, 1, api_name="/generate")
    with pytest.raises(AppError, match="the temperature must be between 0 and 10, got -1"):
        client.predict("All:", "lstm", -1, 0, 1.0, 30, 1, 1, api_name="/generate")
    # the server is still healthy afterwards
    assert client.predict("All:", "lstm", 0.8, 0, 1.0, 10, 1, 1, api_name="/generate")[0].startswith("All:")


def test_a_checkpoint_deleted_while_the_app_runs_gets_a_message(client, tiny_library):
    shutil.rmtree(tiny_library / "doomed")
    with pytest.raises(AppError, match="no model named 'doomed'"):
        client.predict("All:", "doomed", 0.8, 0, 1.0, 30, 1, 1, api_name="/generate")


def test_compare_streams_three_models_with_table_plots_and_cross_scores(client):
    result = client.predict("All:", api_name="/compare")
    rnn, gru, lstm, table, by_time, by_step, scores = result
    assert all(text.startswith("All:") and len(text) == len("All:") + 400 for text in (rnn, gru, lstm))
    assert len({rnn, gru, lstm}) == 3
    assert [row[0] for row in table["data"]] == ["rnn", "gru", "lstm"]
    assert all(row[-1] > 0 for row in table["data"])  # sampling chars/s measured for every model
    assert by_time is not None and by_step is not None
    assert len(scores["data"]) == 3 and all(isinstance(v, float) for row in scores["data"] for v in row[1:])


TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 3


def test_inside_views_are_named_endpoints_needing_only_the_text(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/surprise", "/neurons", "/gradient_flow", "/gates", "/memory"} <= set(endpoints)


def test_surprise_heat_map_and_totals(client):
    html, table = client.predict(TEXT, api_name="/surprise")
    assert html.count("<span title=") >= len(TEXT) and "Expected:" in html
    html, table = client.predict(TEXT, "lstm", True, api_name="/surprise")
    assert [row[0] for row in table["data"]] == ["rnn", "gru", "lstm"]


def test_neurons_pick_an_interpretable_unit(client):
    html, table = client.predict(TEXT, api_name="/neurons")
    assert "unit" in html and table["data"] and table["headers"][:2] == ["feature", "layer"]


def test_gradient_flow_and_gates(client):
    plot, hist, clipping = client.predict(TEXT, 20, api_name="/gradient_flow")
    assert plot is not None and len(clipping["data"]) == 3
    means, series, html = client.predict(TEXT, api_name="/gates")
    assert {row[1] for row in means["data"]} == {"input", "forget", "output"} and "forget gate" in html


def test_gates_of_a_plain_rnn_get_a_message(client):
    with pytest.raises(AppError, match="no gates"):
        client.predict(TEXT, "rnn", api_name="/gates")


def test_the_memory_view_answers_from_the_shipped_models(client):
    assert client.predict(api_name="/memory") is not None


def test_warm_up_loads_every_model_and_skips_a_broken_one(tmp_path, tiny_library, capsys):
    shutil.copytree(tiny_library / "gru", tmp_path / "gru")
    shutil.copytree(tiny_library / "gru", tmp_path / "broken")
    (tmp_path / "broken" / "model.safetensors").write_bytes(b"not a safetensors file")
    library = service.ModelLibrary(tmp_path)
    service.warm_up(library)
    assert set(library._loaded) == {"gru"}
    assert "broken" in capsys.readouterr().err


def test_python_app_py_serves_the_page(tmp_path):
    """The README's start command: the page answers while the models warm up behind it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read().decode()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    assert response.status == 200 and "charrnn" in response.read().decode()
                    break
            except OSError:
                time.sleep(0.25)
        else:
            pytest.fail("the page did not answer within 120 s")
    finally:
        process.terminate()
        process.wait(timeout=30)
