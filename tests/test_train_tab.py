"""The Train tab's endpoints, driven through gradio_client as a script would call them."""

import re
import time

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from tests.conftest import TINY_TEXT

KEY = "api-test-session-key"
CHOICES = ["tiny-api", "lstm", "custom", "10k", 1, 0.1, 3e-3, 4, 16, "char"]  # name ... tokenizer


@pytest.fixture(scope="module")
def train_app(tiny_library, tmp_path_factory):
    from charrnn.app.page import build_app
    from charrnn.service import ModelLibrary
    from charrnn.service.training import TrainingManager, TrainLimits

    library = ModelLibrary(tiny_library, hub_ids=[])
    manager = TrainingManager(library, tmp_path_factory.mktemp("user-models"), TrainLimits(max_minutes=5),
                              threads=1, eval_seconds=1)
    demo = build_app(library, manager)
    demo.queue(default_concurrency_limit=4)
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    yield Client(url, verbose=False), manager
    demo.close()


def test_the_tab_endpoints_are_named(train_app):
    client, _ = train_app
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/preview_text", "/train", "/stop_training", "/resume_training", "/training_progress",
            "/download_model", "/push_model"} <= set(endpoints)


def test_preview_of_an_uploaded_file(train_app, tmp_path):
    client, _ = train_app
    path = tmp_path / "play.txt"
    path.write_text(TINY_TEXT, encoding="utf-8")
    markdown, size, sizes = client.predict("", [handle_file(str(path))], "", "", "", 16, 64, "lstm",
                                           api_name="/preview_text")
    assert f"{len(TINY_TEXT):,} characters" in markdown and "play.txt" in markdown and size == "tiny"
    assert [row[0] for row in sizes["data"]] == ["tiny", "small", "medium"]
    for _, layers, params, speed in sizes["data"]:  # as people write them: 2 x 256, 850k, 12,300
        assert re.fullmatch(r"2 x \d+", layers) and re.fullmatch(r"\d+(\.\d)?[kM]", params)
        assert re.fullmatch(r"\d{1,3}(,\d{3})*", speed)


@pytest.mark.parametrize("pasted, minutes, name, match", [
    ("   ", 0.5, "x", "give some text"), ("short", 0.5, "x", "training needs at least"),
    (TINY_TEXT, 0, "x", "minutes"), (TINY_TEXT, 1000, "x", "minutes"), (TINY_TEXT, 0.5, "../x", "name")])
def test_bad_input_gets_a_message(train_app, pasted, minutes, name, match):
    client, _ = train_app
    choices = [name, *CHOICES[1:4], minutes, *CHOICES[5:]]
    with pytest.raises(AppError, match=match):
        client.predict(KEY + "-bad", pasted, None, "", "", "", *choices, api_name="/train")


def test_train_watch_stop_download_and_generate(train_app):
    client, manager = train_app
    status, *_ = client.predict(KEY, TINY_TEXT, None, "", "", "", *CHOICES, api_name="/train")
    assert "tiny-api" in status and ("running" in status or "queued" in status)
    deadline = time.monotonic() + 90
    while True:
        curve, sample, status, bar, *_ = client.predict(KEY, [], api_name="/training_progress")
        points = (curve or {}).get("data") or []
        if sample and len(points) > 2:
            break
        assert time.monotonic() < deadline, status
        time.sleep(1)
    assert "steps" in status and "<progress" in bar
    client.predict(KEY, api_name="/stop_training")
    job = manager.wait(KEY, manager.latest(KEY).id, timeout=30)
    assert job.state == "stopped", job.message
    zipped = client.predict(KEY, api_name="/download_model")
    assert str(zipped).endswith(".zip")
    text, _ = client.predict("All:", job.model_name, 0.8, 0, 1.0, 30, 1, 1, 0, KEY, api_name="/generate")
    assert text.startswith("All:") and len(text) == len("All:") + 30
    with pytest.raises(AppError, match="no model named"):  # a trained model is its owner's alone
        client.predict("All:", job.model_name, 0.8, 0, 1.0, 30, 1, 1, 0, KEY + "-other", api_name="/generate")
    with pytest.raises(AppError, match="no model named"):
        client.predict("All:", job.model_name, 0.8, 0, 1.0, 30, 1, 1, api_name="/generate")
    with pytest.raises(AppError, match="token"):
        client.predict(KEY, "someone/model", "", api_name="/push_model")


def test_sign_in_is_offered_only_where_the_host_has_it(tiny_library, tmp_path, monkeypatch):
    """Off a Space (and on one without OAuth or its packages) the tab asks for a token: a gr.LoginButton there
    stops the app from starting. With sign-in the button is on the page and the repository box is filled in."""
    import gradio as gr
    import gradio.routes

    from charrnn.app.page import build_app
    from charrnn.service import ModelLibrary
    from charrnn.service.training import TrainingManager, TrainLimits
    from charrnn.app import train_tab

    assert not train_tab.sign_in_available()  # here: not a Space
    monkeypatch.setenv("SYSTEM", "spaces")
    monkeypatch.setenv("SPACE_ID", "someone/charrnn")
    assert not train_tab.sign_in_available()  # a Space without hf_oauth
    monkeypatch.setenv("OAUTH_CLIENT_ID", "client-id")
    monkeypatch.setattr(train_tab.importlib.util, "find_spec", lambda name: object())
    assert train_tab.sign_in_available()
    assert train_tab.suggested_repo("bob", " my novel ") == "bob/my-novel"
    assert train_tab.suggested_repo("bob", "  ") is None

    monkeypatch.setattr(train_tab, "sign_in_available", lambda: True)
    monkeypatch.setattr(gradio.routes, "attach_oauth", lambda app: None)  # needs gradio[oauth], a Space's package
    manager = TrainingManager(ModelLibrary(tiny_library, hub_ids=[]), tmp_path / "user-models", TrainLimits())
    demo = build_app(manager.library, manager)
    assert demo.expects_oauth and any(isinstance(block, gr.LoginButton) for block in demo.blocks.values())
    (suggest,) = {f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "suggest_repo"}
    bob = gr.OAuthProfile({"name": "Bob", "preferred_username": "bob", "profile": "", "picture": ""})
    assert suggest("my model", "", "", bob) == ("bob/my-model", "bob/my-model")
    assert suggest("my model 2", "bob/my-model", "bob/my-model", bob) == ("bob/my-model-2", "bob/my-model-2")
    assert suggest("my model", "bob/kept", "bob/my-model", bob) == (gr.skip(), "bob/my-model")  # theirs stays
    assert suggest("my model", "", "", None) == (gr.skip(), "")  # not signed in: nothing suggested
