"""`charrnn export`: the ONNX step gives torch's next-token probabilities over long prompts for every cell, the
page's tokenizer (run in node) encodes and decodes as the Python tokenizers do, and the folder holds what the page
loads. The page itself, in a real browser, is tests/test_export_browser.py."""

import json
import shutil
import subprocess

import numpy as np
import pytest
import torch

from charrnn.cells import CELLS
from charrnn.checkpoint.saving import Checkpoint, load_checkpoint, save_checkpoint
from charrnn.config import ModelConfig
from charrnn.errors import CharRNNError
from charrnn.export import runtime as page_runtime
from charrnn.export.onnx import (TOLERANCE, check_step, export_step, input_names, output_names,
                                 probability_difference, step_session)
from charrnn.export.site import PAGE_FILE, VOCAB_FILE, export_site
from charrnn.export.vocab import page_vocabulary
from charrnn.model import CharRNN
from charrnn.paths import PAGE_TEMPLATE, PAGE_TOKENIZER
from charrnn.sampling.generate import encode_prompt
from charrnn.tokenizer import CharTokenizer, SentencePieceTokenizer, train_tokenizer
from tests.conftest import ROOT, TINY_TEXT, tiny_train_args

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

PROMPT = TINY_TEXT[:900]  # hundreds of characters: the state is stepped through all of them
UNICODE = "Zürich ∑ 漢字 😀 \r\n\t tabs\tand  double  spaces\n"
NODE = shutil.which("node")


def tiny_model(cell: str, vocab_size: int, **shape) -> CharRNN:
    """A random model whose next-token distributions are far from uniform: its head is scaled so that the logits
    spread (standard deviation 3) over a random text. A tied head is the embedding, peaked already."""
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=vocab_size, cell=cell, **{"hidden_size": 24, "embedding_size": 12,
                                                              "num_layers": 2, **shape})
    model = CharRNN(config).eval()
    if not config.tie_weights:
        with torch.no_grad():
            model.head.weight.mul_(3 / model(torch.randint(vocab_size, (1, 200)))[0].std())
    return model


@pytest.mark.parametrize("name", ["rnn", "gru", "lstm"])
def test_the_onnx_step_of_each_shipped_model_gives_torchs_probabilities_over_a_long_prompt(name, tmp_path):
    checkpoint = load_checkpoint(ROOT / "checkpoints" / name)
    ids, _ = encode_prompt(checkpoint.tokenizer, PROMPT)
    assert len(ids) >= 800
    session = step_session(export_step(checkpoint.model, tmp_path / "model.onnx"))
    assert probability_difference(checkpoint.model, session, ids) <= TOLERANCE


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("shape", [{"num_layers": 3}, {"num_layers": 1, "embedding_size": 24, "tie_weights": True}],
                         ids=["three layers", "one layer with tied weights"])
def test_the_onnx_step_of_a_tiny_model_of_every_cell_gives_torchs_probabilities(cell, shape, tmp_path):
    model = tiny_model(cell, 30, **shape)
    ids = np.random.default_rng(0).integers(0, 30, 400)
    session = step_session(export_step(model, tmp_path / "model.onnx"))
    with torch.no_grad():
        probs = torch.softmax(model(torch.as_tensor(ids)[None])[0][0], -1)
    assert probs.max(-1).values.mean() > 3 / 30  # far from uniform: the comparison has something to compare
    assert probability_difference(model, session, ids) <= TOLERANCE


def test_the_step_takes_a_token_and_each_layers_state_and_returns_logits_and_the_new_state(tmp_path):
    model = tiny_model("lstm", 30, num_layers=3)
    session = step_session(export_step(model, tmp_path / "model.onnx"))
    shapes = {item.name: item.shape for item in session.get_inputs() + session.get_outputs()}
    assert [item.name for item in session.get_inputs()] == input_names(model.config) == ["ids", "h", "c"]
    assert [item.name for item in session.get_outputs()] == output_names(model.config) == ["logits", "h_out", "c_out"]
    assert shapes == {"ids": [1, 1], "h": [3, 1, 24], "c": [3, 1, 24], "logits": [1, 30], "h_out": [3, 1, 24],
                      "c_out": [3, 1, 24]}
    assert output_names(tiny_model("gru", 30).config) == ["logits", "h_out"]


def test_a_step_that_is_not_the_models_fails_the_check_with_a_clear_message(tmp_path):
    model = tiny_model("gru", 30)
    session = step_session(export_step(model, tmp_path / "model.onnx"))
    with torch.no_grad():
        model.head.bias[3] += 1.0
    with pytest.raises(CharRNNError, match="differ from torch's by up to"):
        check_step(model, session, np.arange(30))


@pytest.fixture(scope="module")
def sentencepiece_checkpoint(tmp_path_factory, text_file):
    """A tiny GRU over sentencepiece BPE subwords, trained by the real command."""
    from charrnn.cli.train import main

    out = tmp_path_factory.mktemp("sp") / "run"
    main(tiny_train_args(text_file, out, "--cell", "gru", "--tokenizer", "sp-bpe", "--vocab-size", "320"))
    return out / "best"


def test_a_sentencepiece_model_exports_with_its_vocabulary_and_passes_the_check(sentencepiece_checkpoint, tmp_path):
    checkpoint = load_checkpoint(sentencepiece_checkpoint)
    site = export_site(checkpoint, tmp_path / "site", check_length=300)
    assert site.difference <= TOLERANCE and site.check_tokens == 301
    vocabulary = json.loads((tmp_path / "site" / VOCAB_FILE).read_text(encoding="utf-8"))
    assert vocabulary["kind"] == "sp-bpe" and vocabulary["model_type"] == "bpe"
    assert len(vocabulary["pieces"]) == checkpoint.model.config.vocab_size
    ids = checkpoint.tokenizer.encode(PROMPT + UNICODE)
    session = step_session(site.folder / "model.onnx")
    assert probability_difference(checkpoint.model, session, ids) <= TOLERANCE


def test_the_export_command_writes_the_page_with_the_cdns_pinned_runtime(tiny_checkpoint, tmp_path, capsys):
    from charrnn.cli.export import main

    result = main(["--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "site"), "--runtime", "cdn"])
    assert result["files"] == ["model.onnx", VOCAB_FILE, PAGE_FILE] and result["runtime"] == "cdn"
    assert result["max_probability_difference"] <= TOLERANCE and result["check_tokens"] == 501
    page = (tmp_path / "site" / PAGE_FILE).read_text(encoding="utf-8")
    assert f'src="{page_runtime.CDN}{page_runtime.SCRIPT}" integrity="{page_runtime.SCRIPT_INTEGRITY}"' in page
    settings = json.loads(page.split('id="settings">')[1].split("</script>")[0])
    assert settings["state_names"] == ["h", "c"] and settings["wasm_folder"] == page_runtime.CDN
    assert "charrnnTokenizer" in page and "{{" not in page  # the tokenizer inlined, every slot filled
    assert "checked against torch over 501 tokens" in capsys.readouterr().out


def fake_runtime(folder, version="9.8.7"):
    (folder / "dist").mkdir(parents=True)
    for name in page_runtime.FILES:
        (folder / "dist" / name).write_text(f"// {name}")
    (folder / "package.json").write_text(json.dumps({"name": "onnxruntime-web", "version": version}))
    return folder


def test_a_runtime_at_hand_is_copied_beside_the_page_so_it_works_offline(tiny_checkpoint, tmp_path):
    runtime = page_runtime.choose_runtime(str(fake_runtime(tmp_path / "onnxruntime-web")))
    assert runtime.vendored and runtime.version == "9.8.7"
    site = export_site(load_checkpoint(tiny_checkpoint), tmp_path / "site", runtime, check_length=50)
    assert sorted(path.name for path in site.files[3:]) == sorted(page_runtime.FILES)
    page = (tmp_path / "site" / PAGE_FILE).read_text(encoding="utf-8")
    assert f'<script src="{page_runtime.SCRIPT}"></script>' in page and "cdn.jsdelivr" not in page


def test_auto_takes_node_modules_when_present_and_the_cdn_otherwise(tmp_path):
    assert not page_runtime.choose_runtime("auto", tmp_path).vendored
    fake_runtime(tmp_path / "node_modules" / "onnxruntime-web")
    assert page_runtime.choose_runtime("auto", tmp_path).source == tmp_path / "node_modules" / "onnxruntime-web" / "dist"


def test_a_runtime_folder_without_the_runtime_is_refused_with_what_to_do(tmp_path, capsys):
    from charrnn.cli.export import main

    with pytest.raises(SystemExit) as stopped:
        main(["--checkpoint", str(ROOT / "checkpoints" / "lstm"), "--runtime", str(tmp_path)])
    assert stopped.value.code == 2
    assert "npm install onnxruntime-web@" in capsys.readouterr().err


def test_a_sentencepiece_vocabulary_the_page_cannot_reproduce_is_refused_with_the_reason():
    import sentencepiece as spm
    import io

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(TINY_TEXT.split("\n")), model_writer=model,
                                   vocab_size=60, model_type="bpe", add_dummy_prefix=True, minloglevel=2)
    with pytest.raises(CharRNNError, match="a dummy prefix before the text.*no byte fallback"):
        page_vocabulary(SentencePieceTokenizer(model.getvalue(), "sp-bpe"))


def run_node_tokenizer(vocabulary: dict, texts: list[str], tmp_path) -> list:
    case = tmp_path / "case.json"
    case.write_text(json.dumps({"vocab": vocabulary, "texts": texts}), encoding="utf-8")
    script = (f"const make = require({json.dumps(str(PAGE_TOKENIZER))});"
              f"const c = JSON.parse(require('fs').readFileSync({json.dumps(str(case))}, 'utf8'));"
              "const t = make(c.vocab);"
              "console.log(JSON.stringify(c.texts.map(x => { const ids = t.encode(x); const d = t.decoder();"
              " return [ids, ids.map(i => d.push(i)).join(''), t.start()]; })));")
    done = subprocess.run([NODE, "-e", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(NODE is None, reason="needs node to run the page's tokenizer")
@pytest.mark.parametrize("kind", ["char", "sp-bpe", "sp-unigram"])
def test_the_pages_tokenizer_encodes_and_decodes_as_the_python_tokenizer(kind, tmp_path):
    corpus = TINY_TEXT + "Cafés, naïve résumé: 2024, 31 and 7.\n" * 3
    tokenizer = train_tokenizer(kind, corpus, vocab_size=360)
    rng = np.random.default_rng(0)
    texts = [PROMPT, UNICODE, "a", " ", "\n", "  lead and trail  ", "First Citizen:\n\tSpeak 12345, speak."]
    texts += [corpus[start:start + length] for start, length in zip(rng.integers(0, len(corpus) - 300, 60),
                                                                     rng.integers(1, 300, 60))]
    start, _ = encode_prompt(tokenizer, "")
    for text, (ids, decoded, start_ids) in zip(texts, run_node_tokenizer(page_vocabulary(tokenizer), texts, tmp_path)):
        expected, _ = encode_prompt(tokenizer, text)  # as `charrnn sample` reads a prompt
        assert ids == expected.tolist(), text
        assert decoded == tokenizer.decode(expected.tolist())
        assert start_ids == start.tolist()
    if isinstance(tokenizer, CharTokenizer):
        assert run_node_tokenizer(page_vocabulary(tokenizer), ["💥"], tmp_path)[0][0] == []  # unseen: skipped


def test_the_page_is_written_only_after_the_check_and_a_model_that_fails_it_is_removed(tmp_path, monkeypatch):
    from charrnn.export import site as site_module

    model = tiny_model("rnn_relu", 30)
    checkpoint = Checkpoint(model, CharTokenizer("abcdefghijklmnopqrstuvwxyz .\n"))
    save_checkpoint(tmp_path / "model", model, checkpoint.tokenizer)

    def failing_check(*args):
        raise CharRNNError("differ")

    monkeypatch.setattr(site_module, "check_step", failing_check)
    with pytest.raises(CharRNNError):
        export_site(load_checkpoint(tmp_path / "model"), tmp_path / "site", check_length=20)
    assert list((tmp_path / "site").iterdir()) == []


def test_the_page_and_its_tokenizer_are_package_data_so_an_installed_charrnn_exports_too():
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["charrnn"]
    for path in (PAGE_TEMPLATE, PAGE_TOKENIZER):
        assert path.is_file() and path.relative_to(ROOT / "charrnn").as_posix() in data


def test_without_the_onnx_packages_the_export_says_what_to_install(monkeypatch, tmp_path):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else find_spec(name, *a))
    with pytest.raises(CharRNNError, match=r"needs onnxscript: pip install 'charrnn\[export\]'"):
        export_step(tiny_model("gru", 30), tmp_path / "model.onnx")


def test_the_readme_names_the_runtime_release_the_page_pins():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"onnxruntime-web@{page_runtime.VERSION}" in readme and "## The model in the browser" in readme
