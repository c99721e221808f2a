"""Models on the Hub, offline: Hub ids resolve from a Hugging Face cache laid out as huggingface_hub stores it,
`push` is checked at the HfApi boundary, and every bad input gets its one-line message."""

import hashlib
import http.server
import json
import threading
import time
from pathlib import Path

import pytest
import torch
from httpx2 import Request, Response
from huggingface_hub import ModelCard, constants
from huggingface_hub.errors import HfHubHTTPError

from charrnn.cli import push as push_cli
from charrnn.cli import sample as sample_cli
from charrnn.hub import push as hub_push
from charrnn.hub import resolve as hub
from charrnn.hub.card import build_card, hub_datasets
from charrnn.checkpoint.saving import CONFIG, TRAINING_STATE, WEIGHTS, load_checkpoint
from charrnn.errors import CharRNNError
from charrnn.cli.evaluate import main as evaluate_main
from charrnn.service import ModelLibrary
from charrnn.cli.train import main as train_main


def lay_out(cache: Path, repo_id: str, files: dict, revision: str = "main") -> Path:
    """Put `files` (path in repo -> local file or bytes) into `cache` as huggingface_hub does: content-addressed
    blobs, a snapshot folder per commit whose files link to them, and refs/<revision> naming the commit."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    contents = {name: value if isinstance(value, bytes) else Path(value).read_bytes() for name, value in files.items()}
    commit = hashlib.sha1(json.dumps(sorted((n, hashlib.sha256(c).hexdigest()) for n, c in contents.items()))
                          .encode()).hexdigest()
    for name, content in contents.items():
        blob = repo / "blobs" / hashlib.sha256(content).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(content)
        link = repo / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path("../" * (name.count("/") + 2)) / "blobs" / blob.name)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / revision).write_text(commit)
    return repo / "snapshots" / commit


@pytest.fixture
def hf_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache, offline, and no token unless a test sets one."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv(hub.MODELS_ENV, raising=False)
    return cache


def checkpoint_files(folder: Path, prefix: str = "") -> dict:
    names = [WEIGHTS, CONFIG] + ([TRAINING_STATE] if (folder / TRAINING_STATE).is_file() else [])
    return {prefix + name: folder / name for name in names}


def logits(checkpoint) -> torch.Tensor:
    ids = torch.from_numpy(checkpoint.tokenizer.encode("All:\nSpeak, speak.")).unsqueeze(0)
    with torch.no_grad():
        return checkpoint.model(ids)[0]


# ---------------------------------------------------------------------------------------------------------
# Loading by id


def test_a_hub_id_loads_from_the_cache_with_the_same_logits_as_the_local_folder(tiny_checkpoint, hf_cache):
    snapshot = lay_out(hf_cache, "someone/tiny", checkpoint_files(tiny_checkpoint))
    loaded = hub.load("someone/tiny")
    assert loaded.path == snapshot
    assert torch.equal(logits(loaded), logits(load_checkpoint(tiny_checkpoint)))
    assert loaded.tokenizer.to_dict() == load_checkpoint(tiny_checkpoint).tokenizer.to_dict()


def test_a_revision_picks_the_branch_or_commit(tiny_checkpoint, tiny_library, hf_cache):
    main = lay_out(hf_cache, "someone/tiny", checkpoint_files(tiny_checkpoint))
    gru = lay_out(hf_cache, "someone/tiny", checkpoint_files(tiny_library / "gru"), revision="gru-branch")
    assert hub.load("someone/tiny").model.config.cell == "lstm"
    assert hub.load("someone/tiny", revision="gru-branch").model.config.cell == "gru"
    assert hub.load("someone/tiny@gru-branch").path == gru
    assert hub.load("someone/tiny", revision=main.name).path == main  # a commit hash


def test_a_local_folder_is_used_as_it_is(tiny_checkpoint, hf_cache, monkeypatch):
    monkeypatch.chdir(tiny_checkpoint.parent.parent)
    relative = f"{tiny_checkpoint.parent.name}/best"  # looks like user/name, but it is a folder here
    assert hub.resolve(relative) == Path(relative)
    assert torch.equal(logits(hub.load(relative)), logits(load_checkpoint(tiny_checkpoint)))


def test_sample_and_evaluate_take_a_hub_id(tiny_checkpoint, hf_cache, capsys):
    lay_out(hf_cache, "someone/tiny", checkpoint_files(tiny_checkpoint))
    args = ["--prompt", "All:", "--length", "40", "--seed", "3"]
    sample_cli.main(["--checkpoint", str(tiny_checkpoint), *args])
    local = capsys.readouterr().out.splitlines()[:-1]  # the text, without the timing line
    sample_cli.main(["--checkpoint", "someone/tiny", "--revision", "main", *args])
    assert capsys.readouterr().out.splitlines()[:-1] == local
    by_id = evaluate_main(["--checkpoint", "someone/tiny", "--text", "All:\nSpeak, speak."])
    assert by_id["bpc"] == evaluate_main(["--checkpoint", str(tiny_checkpoint), "--text", "All:\nSpeak, speak."])["bpc"]


def test_the_app_lists_hub_ids_after_its_folders_and_loads_them(tiny_checkpoint, tiny_library, hf_cache):
    lay_out(hf_cache, "someone/tiny", checkpoint_files(tiny_checkpoint))
    library = ModelLibrary(tiny_library, hub_ids=["someone/tiny"])
    assert library.names()[-1] == "someone/tiny"
    assert library.load("someone/tiny").checkpoint.model.config.cell == "lstm"
    assert library.info("someone/tiny")["format"] == "charrnn"


def test_listed_models_come_from_charrnn_models_else_the_readme_front_matter(tmp_path, hf_cache, monkeypatch,
                                                                              capsys):
    readme = tmp_path / "README.md"
    readme.write_text("---\ntitle: x\nmodels:\n- someone/tiny\n- someone/other@v2\n---\n# x\n")
    assert hub.listed_models(readme) == ["someone/tiny", "someone/other@v2"]
    monkeypatch.setenv(hub.MODELS_ENV, " a/b, c/d@main ,")
    assert hub.listed_models(readme) == ["a/b", "c/d@main"]
    monkeypatch.setenv(hub.MODELS_ENV, "a/b,not an id")
    assert hub.listed_models(readme) == ["a/b"]
    assert "'not an id' in CHARRNN_MODELS is not a Hub id" in capsys.readouterr().err
    monkeypatch.delenv(hub.MODELS_ENV)
    readme.write_text("# no front matter\n")
    assert hub.listed_models(readme) == []


# ---------------------------------------------------------------------------------------------------------
# Bad inputs: one line each, within seconds


def test_a_model_missing_from_the_cache_offline_says_how_to_get_it(hf_cache):
    with pytest.raises(CharRNNError, match="not in your Hugging Face cache.*unset HF_HUB_OFFLINE") as error:
        hub.load("someone/missing")
    assert "\n" not in str(error.value)


def test_a_repo_that_is_not_a_charrnn_model_says_so(hf_cache):
    lay_out(hf_cache, "someone/gpt", {CONFIG: b'{"model_type": "gpt2"}', WEIGHTS: b"not used"})
    lay_out(hf_cache, "someone/readme-only", {"README.md": b"# hello"})
    for repo_id in ("someone/gpt", "someone/readme-only"):
        with pytest.raises(CharRNNError, match=f"'{repo_id}' on the Hub is not a charrnn model"):
            hub.load(repo_id)


def test_a_path_that_is_neither_a_folder_nor_an_id_gets_the_folder_message(hf_cache):
    with pytest.raises(CharRNNError, match="checkpoint folder runs/x/best does not exist"):
        hub.load("runs/x/best")


@pytest.fixture
def fake_hub(monkeypatch):
    """A local HTTP server in the Hub's place that knows no repo, and online mode."""
    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            code = "RevisionNotFound" if "/revision/nope" in self.path else "RepoNotFound"
            self.send_response(404)
            self.send_header("X-Error-Code", code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    yield
    server.shutdown()


def test_a_missing_repo_or_revision_online_says_what_to_check(hf_cache, fake_hub):
    with pytest.raises(CharRNNError, match="no model 'someone/missing' on the Hugging Face Hub.*hf auth login"):
        hub.load("someone/missing")
    with pytest.raises(CharRNNError, match="has no revision 'nope'"):
        hub.load("someone/missing", revision="nope")


def test_an_unreachable_hub_fails_within_seconds_but_a_cached_model_still_loads(tiny_checkpoint, hf_cache,
                                                                                monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    start = time.perf_counter()
    with pytest.raises(CharRNNError, match="cannot reach the Hugging Face Hub.*HF_HUB_OFFLINE=1"):
        hub.load("someone/tiny")
    assert time.perf_counter() - start < 5
    lay_out(hf_cache, "someone/tiny", checkpoint_files(tiny_checkpoint))
    assert hub.load("someone/tiny").model.config.cell == "lstm"


# ---------------------------------------------------------------------------------------------------------
# Pushing, at the HfApi boundary


class FakeHfApi:
    """Records what push asks of the Hub, and stores each commit into a Hugging Face cache as a download would."""

    calls: list = []
    cache: Path | None = None
    fail_commit_with: int | None = None

    def __init__(self, token=None, library_name=None, library_version=None):
        self.calls.append(("init", {"token": token, "library_name": library_name}))

    def create_repo(self, repo_id, private=None, exist_ok=False):
        self.calls.append(("create_repo", {"repo_id": repo_id, "private": private, "exist_ok": exist_ok}))
        return type("RepoUrl", (), {"repo_id": repo_id})()

    def create_branch(self, repo_id, branch, exist_ok=False):
        self.calls.append(("create_branch", {"repo_id": repo_id, "branch": branch, "exist_ok": exist_ok}))

    def create_commit(self, repo_id, operations, commit_message, revision=None):
        if self.fail_commit_with:
            request = Request("POST", f"https://huggingface.co/api/models/{repo_id}/commit/main")
            raise HfHubHTTPError(f"{self.fail_commit_with} Client Error", response=Response(self.fail_commit_with,
                                                                                             request=request))
        files = {op.path_in_repo: op.path_or_fileobj if isinstance(op.path_or_fileobj, bytes)
                 else Path(op.path_or_fileobj) for op in operations}
        self.calls.append(("create_commit", {"repo_id": repo_id, "files": files, "revision": revision,
                                             "message": commit_message}))
        lay_out(self.cache, repo_id, files, revision or "main")
        return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/0"})()


@pytest.fixture
def fake_api(hf_cache, monkeypatch):
    monkeypatch.setattr(FakeHfApi, "calls", [])
    monkeypatch.setattr(FakeHfApi, "cache", hf_cache)
    monkeypatch.setattr(hub_push, "HfApi", FakeHfApi)
    monkeypatch.setattr(hub_push, "check_reachable", lambda doing, hint, repo_id: None)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    return FakeHfApi


def test_push_uploads_weights_config_and_a_card_to_the_asked_repo_and_branch(tiny_checkpoint, fake_api, capsys):
    result = push_cli.main([str(tiny_checkpoint.parent), "someone/tiny", "--private", "--revision", "dev"])
    assert result["commit_url"].startswith("https://huggingface.co/someone/tiny/")
    calls = dict(fake_api.calls)
    assert calls["init"] == {"token": "hf_test_token", "library_name": "charrnn"}
    assert calls["create_repo"] == {"repo_id": "someone/tiny", "private": True, "exist_ok": True}
    assert calls["create_branch"] == {"repo_id": "someone/tiny", "branch": "dev", "exist_ok": True}
    commit = calls["create_commit"]
    assert commit["revision"] == "dev"
    assert sorted(commit["files"]) == ["README.md", CONFIG, WEIGHTS]
    assert commit["files"][WEIGHTS].read_bytes() == (tiny_checkpoint / WEIGHTS).read_bytes()  # best/, as stored
    # What was pushed loads by id, with the same logits.
    pushed = hub.load("someone/tiny", revision="dev")
    assert torch.equal(logits(pushed), logits(load_checkpoint(tiny_checkpoint)))
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["revision"] == "dev"


def test_the_pushed_card_has_the_hub_metadata_and_a_readers_page(tiny_checkpoint, fake_api, tmp_path):
    hub_push.push_to_hub(tiny_checkpoint, "someone/tiny", datasets=["karpathy/tiny_shakespeare"], license="apache-2.0")
    readme = tmp_path / "README.md"
    readme.write_bytes(dict(fake_api.calls)["create_commit"]["files"]["README.md"])
    card = ModelCard.load(readme)
    metrics = load_checkpoint(tiny_checkpoint).metrics
    assert card.data.library_name == "charrnn" and card.data.pipeline_tag == "text-generation"
    assert {"char-rnn", "lstm"} <= set(card.data.tags)
    assert card.data.license == "apache-2.0" and card.data.datasets == ["karpathy/tiny_shakespeare"]
    (result,) = card.data.eval_results
    assert (result.metric_type, result.task_type, result.dataset_type) == ("bpc", "text-generation",
                                                                          "karpathy/tiny_shakespeare")
    assert result.metric_value == pytest.approx(metrics["val_bpc"], abs=1e-4)
    assert result.dataset_split == metrics["data"]["val_split"]
    for words in ("2-layer LSTM", load_checkpoint(tiny_checkpoint).meta["command"], 'charrnn.load("someone/tiny")',
                  "charrnn sample --checkpoint someone/tiny", "## A sample", "| step | minutes |"):
        assert words in card.text


def test_a_card_says_when_its_figure_comes_from_a_sample_of_the_validation_text(tiny_checkpoint):
    checkpoint = load_checkpoint(tiny_checkpoint)
    metrics = checkpoint.meta["metrics"]
    assert "a sample" not in build_card(checkpoint, "someone/tiny").text  # all of it was scored
    metrics.update(val_tokens_scored=100, val_chars=100)  # as a run with --eval-tokens 100 records it
    assert (f"100 predicted characters (a sample: 100 of its {metrics['val_tokens']:,} tokens"
            in build_card(checkpoint, "someone/tiny").text)


def test_push_with_training_state_lets_train_resume_the_run_by_id(tiny_checkpoint, fake_api, tmp_path, monkeypatch):
    run = tiny_checkpoint.parent
    hub_push.push_to_hub(run, "someone/tiny-run", training_state=True)
    files = dict(fake_api.calls)["create_commit"]["files"]
    assert {f"last/{name}" for name in (WEIGHTS, CONFIG, TRAINING_STATE)} <= set(files)
    monkeypatch.chdir(tmp_path)
    summary = train_main(["--resume", "someone/tiny-run", "--max-steps", "35", "--no-progress"])
    assert summary["steps"] == 35  # continued from step 30
    assert load_checkpoint(tmp_path / "runs" / "tiny-run" / "last").metrics["steps"] == 35


def test_resuming_an_id_pushed_without_training_state_says_how_to_push_it(tiny_checkpoint, fake_api, capsys):
    hub_push.push_to_hub(tiny_checkpoint, "someone/tiny")
    with pytest.raises(SystemExit):
        train_main(["--resume", "someone/tiny"])
    assert "holds no training state to resume from" in capsys.readouterr().err


def test_push_without_a_token_says_how_to_log_in(tiny_checkpoint, fake_api, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(CharRNNError, match="hf auth login.*HF_TOKEN"):
        hub_push.push_to_hub(tiny_checkpoint, "someone/tiny")


def test_push_refused_by_the_hub_says_the_token_needs_write_access(tiny_checkpoint, fake_api, monkeypatch):
    monkeypatch.setattr(FakeHfApi, "fail_commit_with", 403)
    with pytest.raises(CharRNNError, match="refused to write to 'someone/tiny' \\(403\\).*write access"):
        hub_push.push_to_hub(tiny_checkpoint, "someone/tiny")


def test_push_of_a_missing_folder_or_missing_training_state_says_what_to_give(tiny_checkpoint, fake_api, tmp_path):
    with pytest.raises(CharRNNError, match="does not exist: give a run folder"):
        hub_push.push_to_hub(tmp_path / "nope", "someone/tiny")
    with pytest.raises(CharRNNError, match="--training-state needs a run folder"):
        hub_push.push_to_hub(tiny_checkpoint, "someone/tiny", training_state=True)  # best/ has no training state
    with pytest.raises(CharRNNError, match="is not a Hub id"):
        hub_push.push_to_hub(tiny_checkpoint, "no-namespace")


def test_card_datasets_come_from_hub_ids_presets_and_local_copies_of_presets():
    training = {"dataset": ["../shared/data/tiny_shakespeare", "wikitext2", "someone/poems", "my_novel.txt"]}
    assert hub_datasets(training) == ["karpathy/tiny_shakespeare", "Salesforce/wikitext", "someone/poems"]
