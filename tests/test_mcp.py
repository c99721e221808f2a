"""`python app.py` as an MCP server: the tools an agent lists, their schemas, and a call that writes text."""

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from charrnn.app.launch import mcp_server
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def mcp_url(tiny_library):
    """app.py on the tiny checkpoints, on a free port of 127.0.0.1, with its MCP server on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "CHARRNN_MCP": "1",
           "CHARRNN_CHECKPOINTS": str(tiny_library), "CHARRNN_MODELS": ""}
    process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "the page did not answer within 120 s"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                    break
            except OSError:
                time.sleep(0.25)
        yield f"http://127.0.0.1:{port}/gradio_api/mcp/"
    finally:
        process.terminate()
        process.wait(timeout=30)


def over_mcp(url: str, work):
    """Run `work(session)` in an MCP client session on the app's streamable HTTP endpoint."""
    async def run():
        async with streamable_http_client(url) as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await work(session)
    return asyncio.run(run())


def test_an_agent_sees_the_five_tools_each_described(mcp_url):
    tools = {tool.name: tool for tool in over_mcp(mcp_url, lambda session: session.list_tools()).tools}
    # not the Train tab, not private events
    assert set(tools) == {"models", "generate", "compare", "surprise", "suggest"}
    assert tools["suggest"].description.startswith("A model's likeliest continuations of a text")
    generate = tools["generate"]
    assert generate.description.startswith("Continue a prompt with a character-level language model")
    properties = generate.inputSchema["properties"]
    assert list(properties) == ["prompt", "model", "length", "temperature", "top_k", "top_p", "seed", "num_samples",
                                "beam_width"]
    assert {name: properties[name]["type"] for name in ("prompt", "length", "temperature", "beam_width")} == {
        "prompt": "string", "length": "integer", "temperature": "number", "beam_width": "integer"}
    assert all(properties[name]["description"] for name in properties)  # every argument explained
    assert "required" not in generate.inputSchema and tools["surprise"].inputSchema["required"] == ["text"]
    assert tools["compare"].inputSchema["properties"]["models"]["oneOf"][1] == {"type": "array",
                                                                               "items": {"type": "string"}}


def test_an_agent_writes_text_searches_beams_and_gets_messages(mcp_url):
    async def calls(session):
        return [await session.call_tool("generate", {"prompt": "All:", "model": "gru", "length": 40, "seed": 3}),
                await session.call_tool("generate", {"prompt": "All:", "length": 30, "beam_width": 3,
                                                     "num_samples": 2}),
                await session.call_tool("surprise", {"text": "First Citizen:\nSpeak, speak.", "model": "lstm"}),
                await session.call_tool("generate", {"length": 0}),
                await session.call_tool("suggest", {"text": "First Citiz", "model": "lstm", "n": 3})]

    sampled, beams, surprise, refused, suggested = over_mcp(mcp_url, calls)
    assert not suggested.isError and "'words': [{'text': " in suggested.content[0].text
    text, status = sampled.content[0].text.rsplit("\n\n", 1)
    assert not sampled.isError and text.startswith("All:") and len(text) == len("All:") + 40 and "seed 3" in status
    assert beams.content[0].text.count("--- beam ") == 2 and "Beam search, width 3" in beams.content[0].text
    assert "bits per character" in surprise.content[0].text and "lstm" in surprise.content[0].text
    assert refused.isError and "the length must be between 1 and" in refused.content[0].text


def test_the_mcp_server_is_asked_for_by_charrnn_mcp_and_on_by_default_only_on_a_space(monkeypatch):
    for name in ("CHARRNN_MCP", "GRADIO_MCP_SERVER", "SPACE_ID", "SYSTEM"):
        monkeypatch.delenv(name, raising=False)
    assert mcp_server() is None  # off, as Gradio's default
    monkeypatch.setenv("GRADIO_MCP_SERVER", "True")
    assert mcp_server() is None  # Gradio reads it
    monkeypatch.delenv("GRADIO_MCP_SERVER")
    monkeypatch.setenv("SYSTEM", "spaces")
    monkeypatch.setenv("SPACE_ID", "someone/charrnn")
    assert mcp_server() is True
    for value, expected in (("1", True), ("true", True), ("0", False), ("off", False)):
        monkeypatch.setenv("CHARRNN_MCP", value)
        assert mcp_server() is expected
