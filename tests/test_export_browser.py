"""The exported page in a real headless Chromium: served by a plain static server, it loads the model with
ONNX Runtime Web and writes text as the person types; a seed gives the same text, and at temperature 0 the page
writes torch's own greedy text.

The runtime is the npm package onnxruntime-web, packed by npm into a temporary folder and copied beside the page
by the export (as `--runtime` does): the page then needs no network. Without npm (or its registry), or without
Chromium, the tests are skipped. A screenshot goes to tests/artifacts/export.png.
"""

import functools
import http.server
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest
import torch

from charrnn.checkpoint.saving import load_checkpoint
from charrnn.export.runtime import FILES, VERSION, choose_runtime
from charrnn.export.site import export_site
from charrnn.sampling.generate import encode_prompt
from tests.conftest import ROOT, tiny_train_args
from tests.test_browser import ARTIFACTS, CHROMIUM, browser  # noqa: F401 - a fixture

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)"),
]

# Fills the controls as a person would (each sends its input event) and waits until the page has written with them.
WRITTEN_JS = """(want) => {
    const written = document.body.dataset.written;
    if (!written) return false;
    const got = JSON.parse(written);
    return ['prompt', 'temperature', 'seed', 'length'].every((key) => got[key] === want[key]);
}"""


@pytest.fixture(scope="module")
def onnxruntime_web(tmp_path_factory) -> Path:
    """onnxruntime-web's files, from npm (its own cache answers a second time without the network)."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("needs npm to fetch onnxruntime-web for the page")
    folder = tmp_path_factory.mktemp("onnxruntime-web")
    try:
        packed = subprocess.run([npm, "pack", f"onnxruntime-web@{VERSION}", "--silent"], cwd=folder,
                                capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        pytest.skip("npm pack onnxruntime-web took too long")
    if packed.returncode != 0:
        pytest.skip(f"npm could not fetch onnxruntime-web@{VERSION}: {packed.stderr.strip()[-300:]}")
    wanted = {f"package/dist/{name}" for name in FILES} | {"package/package.json"}
    with tarfile.open(folder / packed.stdout.strip().splitlines()[-1]) as archive:
        archive.extractall(folder, members=[m for m in archive.getmembers() if m.name in wanted], filter="data")
    return folder / "package"


@pytest.fixture(scope="module")
def serve():
    servers = []

    def start(folder: Path) -> str:
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/index.html"

    yield start
    for server in servers:
        server.shutdown()


def open_page(browser, url):
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]", timeout=60_000)
    return page, errors


def write(page, prompt, temperature=0.8, seed=0, length=300, typing=False) -> dict:
    page.evaluate("""([temperature, seed, length]) => {
        for (const [id, value] of [['temperature', temperature], ['seed', seed], ['length', length]]) {
            const input = document.getElementById(id);
            input.value = String(value);
            input.dispatchEvent(new Event('input'));
        }
    }""", [temperature, seed, length])
    if typing:
        page.fill("#prompt", "")
        page.type("#prompt", prompt, delay=20)
    else:
        page.fill("#prompt", prompt)
    want = {"prompt": prompt, "temperature": temperature, "seed": seed, "length": length}
    page.wait_for_function(WRITTEN_JS, arg=want, timeout=60_000)
    return page.evaluate("JSON.parse(document.body.dataset.written)")


@torch.no_grad()
def greedy_text(checkpoint, prompt: str, length: int) -> str:
    """torch's own most-likely continuation, never the unknown character (as `charrnn sample` bans it)."""
    model, tokenizer = checkpoint.model, checkpoint.tokenizer
    ids, _ = encode_prompt(tokenizer, prompt)
    logits, hidden, _ = model(torch.as_tensor(ids)[None])
    out = []
    for _ in range(length):
        scores = logits[0, -1].clone()
        scores[0] = -torch.inf
        out.append(int(scores.argmax()))
        logits, hidden, _ = model(torch.tensor([[out[-1]]]), hidden)
    return tokenizer.decode(out)


@pytest.fixture(scope="module")
def lstm_page(tmp_path_factory, onnxruntime_web, browser, serve):
    checkpoint = load_checkpoint(ROOT / "checkpoints" / "lstm")
    site = export_site(checkpoint, tmp_path_factory.mktemp("site") / "lstm", choose_runtime(str(onnxruntime_web)),
                       check_length=100)
    page, errors = open_page(browser, serve(site.folder))
    yield checkpoint, page, errors
    page.close()


def test_the_exported_page_writes_text_as_the_person_types(lstm_page):
    _, page, errors = lstm_page
    written = write(page, "ROMEO:\nWhat light", typing=True)
    assert written["prompt_tokens"] == len("ROMEO:\nWhat light")
    generated = page.text_content("#output .generated")
    assert generated == written["text"] and len(generated) == 300  # one character a token
    assert sum(ch.isalpha() for ch in generated) > 150  # words, not noise
    assert page.text_content("#status").startswith("Done: 300 tokens after a 17-token prompt")
    assert errors == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "export.png"))


def test_a_seed_gives_the_same_text_and_another_seed_another(lstm_page):
    _, page, _ = lstm_page
    first = write(page, "JULIET:\n", seed=7)["text"]
    other = write(page, "JULIET:\n", seed=8)["text"]
    again = write(page, "JULIET:\n", seed=7)["text"]
    assert first == again and first != other


def test_at_temperature_zero_the_page_writes_torchs_greedy_text(lstm_page):
    checkpoint, page, _ = lstm_page
    prompt = "KING RICHARD III:\nNow is the winter of our discontent\n"
    assert write(page, prompt, temperature=0, length=200)["text"] == greedy_text(checkpoint, prompt, 200)


def test_a_sentencepiece_models_page_reads_the_prompt_as_sentencepiece_does(tmp_path_factory, text_file,
                                                                             onnxruntime_web, browser, serve):
    from charrnn.cli.train import main

    out = tmp_path_factory.mktemp("sp") / "run"
    main(tiny_train_args(text_file, out, "--cell", "rnn_tanh", "--tokenizer", "sp-unigram", "--vocab-size", "320"))
    checkpoint = load_checkpoint(out / "best")
    site = export_site(checkpoint, tmp_path_factory.mktemp("site") / "sp", choose_runtime(str(onnxruntime_web)),
                       check_length=100)
    page, errors = open_page(browser, serve(site.folder))
    prompt = "First Citizen:\nCafé? 漢字 😀 speak,  speak."
    written = write(page, prompt, length=60)
    assert written["prompt_tokens"] == len(checkpoint.tokenizer.encode(prompt))
    assert written["text"] and page.text_content("#output .generated") == written["text"]
    assert errors == []
    page.close()
