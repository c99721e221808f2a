"""The app's API, driven through gradio_client as a script would call it."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from charrnn import service
from tests.conftest import ROOT


def color_domain(plot) -> list[str]:
    """The series a chart endpoint's Vega-Lite specification colours (and so draws and names in its legend)."""
    return json.loads(plot["plot"])["layer"][0]["encoding"]["color"]["scale"]["domain"]


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


def test_a_random_seed_is_named_in_the_status_and_makes_the_same_text_again(client):
    text, status = client.predict("All:", "gru", 1.0, 0, 1.0, 80, -1, 1, api_name="/generate")
    seed = int(re.search(r"seed (\d+)\.", status).group(1))
    assert client.predict("All:", "gru", 1.0, 0, 1.0, 80, seed, 1, api_name="/generate")[0] == text


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
    assert all(int(row[-1].replace(",", "")) > 0 for row in table["data"])  # chars/s measured for every model
    assert all(re.fullmatch(r"\d{1,3}(,\d{3})*", row[2]) for row in table["data"])  # parameters as on the card
    steps = table["headers"].index("steps trained"), table["headers"].index("best at step")
    assert all(int(row[steps[0]].replace(",", "")) >= int(row[steps[1]].replace(",", "")) for row in table["data"])
    for chart in (by_time, by_step):  # a Vega-Lite chart whose colour domain is the chosen models
        assert color_domain(chart) == ["rnn", "gru", "lstm"]
    assert len(scores["data"]) == 3 and all(isinstance(v, float) for row in scores["data"] for v in row[1:])


TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 3


def test_inside_views_are_named_endpoints_needing_only_the_text(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/surprise", "/neurons", "/gradient_flow", "/gates", "/memory"} <= set(endpoints)


def test_inside_endpoints_name_their_inputs(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    names = {api: [p["parameter_name"] for p in endpoints[api]["parameters"]]
             for api in ("/surprise", "/neurons", "/gradient_flow", "/gates", "/memory")}
    assert names == {"/surprise": ["text", "model", "all_cells", "session_key"],
                     "/neurons": ["text", "model", "layer", "unit", "state", "session_key"],
                     "/gradient_flow": ["text", "max_distance"],
                     "/gates": ["text", "model", "layer", "unit", "session_key"],
                     "/memory": ["retrain", "session_key"]}
    html, _ = client.predict(text=TEXT, model="gru", all_cells=False, api_name="/surprise")
    assert "gru:" in html


def test_a_users_mistake_is_a_message_without_a_traceback_in_the_server_log(client, capfd):
    capfd.readouterr()
    with pytest.raises(AppError, match="at least two characters"):
        client.predict("x", api_name="/surprise")
    assert "Traceback" not in capfd.readouterr().err


def test_surprise_heat_map_and_totals(client):
    html, table = client.predict(TEXT, api_name="/surprise")
    assert html.count("<span title=") >= len(TEXT) and "Expected:" in html
    html, table = client.predict(TEXT, "lstm", True, api_name="/surprise")
    assert [row[0] for row in table["data"]] == ["rnn", "gru", "lstm"]


def test_neurons_pick_an_interpretable_unit(client):
    html, table = client.predict(TEXT, api_name="/neurons")
    assert "unit" in html and table["data"] and table["headers"][:2] == ["feature", "layer"]


def test_neurons_unit_minus_one_keeps_the_chosen_layer_and_state(client):
    html, _ = client.predict(TEXT, "lstm", 0, -1, "cell", api_name="/neurons")
    assert "lstm, layer 0, cell unit" in html and "best tracks" in html
    html, _ = client.predict(TEXT, "lstm", -1, -1, "hidden", api_name="/neurons")
    assert "lstm, layer 1, hidden unit" in html  # -1 = the last of the tiny models' two layers


def test_gradient_flow_and_gates(client):
    plot, hist, clipping = client.predict(TEXT, 20, api_name="/gradient_flow")
    for chart in (plot, hist):
        assert color_domain(chart) == ["rnn", "gru", "lstm"]
    assert len(clipping["data"]) == 3
    means, html = client.predict(TEXT, api_name="/gates")
    assert {row[1] for row in means["data"]} == {"input", "forget", "output"} and "forget gate averages" in html
    assert "One step of the LSTM" in html and "f<sub>t</sub> = σ(" in html  # the equations beside the gates
    assert html.count("<i style=") == 3 * len(TEXT)  # a stripe per gate under each character
    _, html = client.predict(TEXT, "gru", api_name="/gates")
    assert "update gate averages" in html and html.count("<i style=") == 2 * len(TEXT)


def test_gates_offer_only_models_with_gates(client, app_url):
    config = httpx.get(app_url.rstrip("/") + "/config").json()
    pickers = [c["props"] for c in config["components"] if c["props"].get("label") == "Model (LSTM or GRU)"]
    assert pickers and all("rnn" not in str(p["choices"]) for p in pickers)
    with pytest.raises(AppError, match="rnn is a plain RNN: it has no gates"):  # a script can still ask
        client.predict(TEXT, "rnn", api_name="/gates")


def test_the_memory_view_names_the_cells_as_everywhere_else(client):
    status, chart = client.predict(api_name="/memory")
    assert status == "" and color_domain(chart) == ["rnn", "gru", "lstm"]
    spec = json.loads(chart["plot"])
    assert spec["layer"][0]["encoding"]["strokeDash"]  # the GRU and the LSTM coincide at 1.0: dashes keep both visible
    assert [layer["mark"]["type"] for layer in spec["layer"][1:]] == ["rule", "text"]  # chance, drawn and named
    assert spec["layer"][1]["data"]["values"][0]["accuracy"] == pytest.approx(1 / 3)


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


def test_charts_draw_a_model_that_is_not_one_of_the_shipped_three(tmp_path, tiny_library):
    shutil.copytree(tiny_library / "lstm", tmp_path / "mine")
    shutil.copytree(tiny_library / "gru", tmp_path / "gru")
    for chart in service.validation_charts(service.ModelLibrary(tmp_path), ["gru", "mine"]):
        scale = chart["layer"][0]["encoding"]["color"]["scale"]
        assert scale["domain"] == ["gru", "mine"] and len(set(scale["range"])) == 2
        assert {row["model"] for row in chart["data"]["values"]} == {"gru", "mine"}
