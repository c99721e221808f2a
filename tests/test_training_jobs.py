"""Training jobs (charrnn.service.training): text in, the real trainer as a child process, progress, the model out."""

import dataclasses
import json
import os
import re
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from gradio import OAuthToken

from charrnn.hub import push as hub_push

from charrnn.config import format_count, parse_count
from charrnn.errors import CharRNNError
from charrnn.service import ModelLibrary, model_card
from charrnn.service.training import (JobSettings, TrainingManager, TrainLimits, preview_markdown, read_upload,
                                      suggested_size)
from tests.conftest import TINY_TEXT

TINY = JobSettings(name="tiny test", size="custom", params="10k", minutes=1, batch_size=4, seq_len=16)
ALICE, BOB, CAROL = "alice-session-key", "bob-session-key-0", "carol-session-key"


@pytest.fixture
def manager(tmp_path):
    library = ModelLibrary(tmp_path / "checkpoints", hub_ids=[])
    return TrainingManager(library, tmp_path / "user-models", TrainLimits(), threads=1, eval_seconds=1)


def wait_for(condition, timeout=90, what="the condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def json_strings(value):
    """Every string in a parsed JSON document, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from json_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from json_strings(item)


class RecordingHfApi:
    """The Hub's side of a push: records the token and the files committed."""

    calls: dict = {}

    def __init__(self, token=None, library_name=None, library_version=None):
        self.calls["token"] = token

    def create_repo(self, repo_id, private=None, exist_ok=False):
        return SimpleNamespace(repo_id=repo_id)

    def create_commit(self, repo_id, operations, commit_message, revision=None):
        self.calls["files"] = {op.path_in_repo: op.path_or_fileobj for op in operations}
        return SimpleNamespace(commit_url=f"https://huggingface.co/{repo_id}/commit/0")


def test_a_job_from_pasted_text_and_a_file_trains_stops_resumes_finishes_and_is_pushed(manager, tmp_path,
                                                                                       monkeypatch):
    upload = tmp_path / "uploads" / "0f3a9c" / "upload.txt"  # where the server keeps it; the page sends its name
    upload.parent.mkdir(parents=True)
    upload.write_text(TINY_TEXT, encoding="utf-8")
    text = manager.gather(pasted=TINY_TEXT, files=[(upload, "letters.txt")], batch_size=4, seq_len=16)
    assert text.preview["characters"] == 2 * len(TINY_TEXT) + 1 and text.preview["suggested size"] == "tiny"
    assert text.name == f"pasted text ({len(TINY_TEXT):,} characters), letters.txt"
    job = manager.submit(ALICE, text, TINY)
    assert manager.progress(ALICE, job.id)["state"] == "running"

    def evaluated_twice():
        curve = manager.progress(ALICE, job.id)["curve"]
        return (curve["curve"] == "validation").sum() >= 2

    wait_for(evaluated_twice, what="two validation points")
    seen = manager.progress(ALICE, job.id)
    assert set(seen["curve"]["curve"]) == {"training", "validation"}
    assert seen["sample"] and seen["steps"] > 0 and seen["chars_per_s"] > 0 and 0 < seen["fraction"] < 1
    asked = time.monotonic()
    manager.stop(ALICE, job.id)
    wait_for(lambda: not job.active, timeout=30, what="the stop")
    stopped_in = time.monotonic() - asked
    assert job.state == "stopped", job.message
    assert stopped_in < 10  # the trainer saves and exits at once (the bound leaves room for a loaded host)
    steps = manager.progress(ALICE, job.id)["steps"]
    assert manager.model_names(ALICE) == [job.model_name] and manager.model_names(BOB) == []
    assert manager.library.load(job.model_name).checkpoint.model.num_params() > 0

    manager.resume(ALICE, job.id, 0.1)
    manager.wait(ALICE, job.id, timeout=90)
    assert job.state == "finished", job.message
    done = manager.progress(ALICE, job.id)
    assert done["steps"] > steps and done["fraction"] == 1.0 and done["model"] == job.model_name
    model = manager.library.load(job.model_name).checkpoint
    assert model.metrics["total_steps"] == done["steps"]
    assert manager.zip(ALICE, job.id).stat().st_size > 1000
    with pytest.raises(CharRNNError, match="no such training job"):
        manager.progress(BOB, job.id)

    # The app's card names the text as the person gave it, and shows no folder of the server.
    card = model_card(manager.library, job.model_name)
    assert f"trained on {text.name}" in card and "made by `python -m charrnn.train" in card
    assert str(tmp_path) not in card and "upload.txt" not in card
    # Nor does the config the checkpoints carry (pushed with them): the data source is the text's name.
    for checkpoint in ("best", "last"):
        config = (job.folder / checkpoint / "config.json").read_text(encoding="utf-8")
        assert str(tmp_path) not in config and str(job.folder.resolve()) not in config and "/tmp" not in config
        assert not [value for value in json_strings(json.loads(config)) if Path(value).is_absolute()]
        assert json.loads(config)["metrics"]["data"]["source"] == text.name

    # A push uses the visitor's token, typed or from signing in, never the host's login; the Hub card built for
    # it names the text and shows no folder of the server either.
    monkeypatch.setattr(hub_push, "HfApi", RecordingHfApi)
    monkeypatch.setattr(hub_push, "check_reachable", lambda doing, hint, repo_id: None)
    monkeypatch.setenv("HF_TOKEN", "hf_host_token")
    with pytest.raises(CharRNNError, match="sign in with Hugging Face.*paste a token"):
        manager.push(ALICE, job.id, "visitor/tiny", "")
    signed_in = OAuthToken(token="hf_visitor_token", scope="openid profile write-repos", expires_at=0)
    assert manager.push(ALICE, job.id, "visitor/tiny", "", oauth_token=signed_in).startswith(
        "https://huggingface.co/visitor/tiny/")
    assert RecordingHfApi.calls["token"] == "hf_visitor_token"
    hub_card = RecordingHfApi.calls["files"]["README.md"].decode()
    assert f"| trained on | {text.name} (train split) |" in hub_card, hub_card
    assert "| command | `python -m charrnn.train --resume ." in hub_card  # the last run: the resume
    assert str(tmp_path) not in hub_card and "upload.txt" not in hub_card
    manager.push(ALICE, job.id, "visitor/tiny", "hf_typed_token", oauth_token=signed_in)
    assert RecordingHfApi.calls["token"] == "hf_typed_token"  # a token typed in the tab comes first


def test_jobs_wait_in_a_queue_and_know_their_place(manager):
    text = manager.gather(pasted=TINY_TEXT, batch_size=4, seq_len=16)
    first = manager.submit(ALICE, text, TINY)
    second = manager.submit(BOB, text, TINY)
    third = manager.submit(CAROL, text, TINY)
    assert (first.state, second.state, third.state) == ("running", "queued", "queued")
    assert (manager.position(second), manager.position(third)) == (1, 2)
    with pytest.raises(CharRNNError, match="still training or queued"):
        manager.submit(ALICE, text, TINY)  # one job at a time per session
    manager.stop(BOB, second.id)
    assert second.state == "failed" and manager.position(third) == 1  # stopped before it had a model
    manager.stop(ALICE, first.id)
    wait_for(lambda: third.state == "running", timeout=30, what="the next job to start")
    manager.stop(CAROL, third.id)
    wait_for(lambda: not third.active, timeout=30, what="the stop")


def test_limits_come_from_the_environment(monkeypatch):
    for name, value in {"CHARRNN_TRAIN_JOBS": "2", "CHARRNN_TRAIN_MAX_MINUTES": "5", "CHARRNN_TRAIN_KEEP": "3",
                        "CHARRNN_TRAIN_MAX_CHARS": "1000", "CHARRNN_TRAIN_LOCAL_PATHS": "1",
                        "CHARRNN_SHARE_TRAINED": "1", "CHARRNN_TRAIN_HOST_TOKEN": "1"}.items():
        monkeypatch.setenv(name, value)
    limits = TrainLimits.from_env()
    assert (limits.jobs, limits.max_minutes, limits.kept_models, limits.max_chars) == (2, 5, 3, 1000)
    assert limits.local_paths and limits.share and limits.host_token
    defaults = TrainLimits()
    assert (defaults.jobs, defaults.max_minutes, defaults.upload_mb) == (1, 10, 20)
    assert not defaults.local_paths and not defaults.share and not defaults.host_token


@pytest.mark.parametrize("minutes", [0, 1000, -1, "ten", None])
def test_minutes_outside_the_cap_are_refused(manager, minutes):
    with pytest.raises(CharRNNError, match="minutes"):
        JobSettings(minutes=minutes).checked(manager.limits)


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", "", "   ", "x" * 41, "-dash"])
def test_bad_run_names_are_refused(manager, name):
    with pytest.raises(CharRNNError, match="name"):
        JobSettings(name=name).checked(manager.limits)


@pytest.mark.parametrize("pasted, match", [("", "give some text"), ("   \n\t ", "give some text"),
                                           ("too short", "training needs at least")])
def test_empty_or_short_text_is_explained(manager, pasted, match):
    with pytest.raises(CharRNNError, match=match):
        manager.gather(pasted=pasted)


def test_files_of_every_kind_are_read_and_bad_ones_explained(manager, tmp_path):
    lines = TINY_TEXT.splitlines()
    (tmp_path / "a.md").write_text(TINY_TEXT, encoding="utf-8")
    pd.DataFrame({"n": range(len(lines)), "text": lines}).to_csv(tmp_path / "b.csv", index=False)
    pd.DataFrame({"text": lines}).to_json(tmp_path / "c.jsonl", orient="records", lines=True)
    pd.DataFrame({"text": lines}).to_parquet(tmp_path / "d.parquet")
    text = manager.gather(files=[tmp_path / "a.md", (tmp_path / "b.csv", "b.csv"), tmp_path / "c.jsonl",
                                 tmp_path / "d.parquet"])
    assert text.sources == ["a.md", "b.csv", "c.jsonl", "d.parquet"] and "Speak, speak." in text.text
    (tmp_path / "e.bin.txt").write_bytes(b"\x00\x01\x02" * 100)
    (tmp_path / "f.pdf").write_bytes(b"%PDF-1.7\n...")
    (tmp_path / "g.txt").write_bytes(b"%PDF-1.7\n...")
    (tmp_path / "h.txt").write_bytes("caf\u00e9".encode("latin-1"))
    for name, match in [("e.bin.txt", "binary"), ("f.pdf", "only .txt"), ("g.txt", "PDF"), ("h.txt", "UTF-8")]:
        with pytest.raises(CharRNNError, match=match):
            manager.gather(files=[tmp_path / name])
    (tmp_path / "big.txt").write_text("x" * 1_500_000)
    with pytest.raises(CharRNNError, match="at most 1 MB"):
        read_upload(tmp_path / "big.txt", max_mb=1)


def test_uploads_must_come_from_the_upload_folder(manager, tmp_path):
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (tmp_path / "secret.txt").write_text(TINY_TEXT)
    with pytest.raises(CharRNNError, match="not an uploaded file"):
        manager.gather(files=[tmp_path / "secret.txt"], allowed_upload_dirs=[uploads])


def test_datasets_local_paths_and_text_length(manager, tmp_path, parquet_folder):
    with pytest.raises(CharRNNError, match="does not read its own folders"):
        manager.gather(dataset=str(parquet_folder))
    with pytest.raises(CharRNNError, match="could not be loaded"):
        manager.gather(dataset="nobody/no-such-dataset")
    whole = TrainingManager(manager.library, tmp_path / "m3", TrainLimits(local_paths=True)).gather(
        dataset=str(parquet_folder))
    assert "First Citizen" in whole.text and whole.sources == [str(parquet_folder)] and whole.preview["notes"] == []
    capped = TrainingManager(manager.library, tmp_path / "m2", TrainLimits(local_paths=True, max_chars=1_500))
    text = capped.gather(dataset=str(parquet_folder), batch_size=4, seq_len=16)  # longer than the cap: cut
    assert 750 <= len(text.text) <= 1_500 and whole.text.startswith(text.text)
    assert whole.text[len(text.text)] == "\n"  # cut at the end of a row
    assert text.sources == [f"{parquet_folder} (its first {len(text.text):,} characters)"]
    assert "at most 1,500 characters on this host" in preview_markdown(text.preview, text.sources)
    with pytest.raises(CharRNNError, match="at most 1,500"):  # pasted text and uploads are refused, not cut
        capped.gather(pasted=TINY_TEXT)
    with pytest.raises(CharRNNError, match="already hold the 1,500 characters"):
        capped.gather(pasted=TINY_TEXT[:1_499], dataset=str(parquet_folder))


def test_a_big_dataset_is_read_only_up_to_the_cap(manager, tmp_path, monkeypatch):
    from charrnn.data import reading

    big = tmp_path / "big.txt"
    big.write_text(TINY_TEXT * 400, encoding="utf-8")  # about 1M characters
    monkeypatch.setattr(reading, "CHUNK_SIZE", 1_000)
    read = []
    split_chunks = reading.split_chunks

    def counted(*args, **kwargs):
        for chunk in split_chunks(*args, **kwargs):
            read.append(len(chunk))
            yield chunk

    monkeypatch.setattr(reading, "split_chunks", counted)
    capped = TrainingManager(manager.library, tmp_path / "m", TrainLimits(local_paths=True, max_chars=20_000))
    text = capped.gather(dataset=str(big), batch_size=4, seq_len=16)
    assert sum(read) <= 21_000 < big.stat().st_size  # the cap and one chunk, not the whole file
    assert 10_000 <= len(text.text) <= 20_000 and TINY_TEXT.startswith(text.text[:len(TINY_TEXT)])


def test_preview_lists_unusual_characters_and_suggests_a_size():
    from charrnn.service.training import describe_text

    preview = describe_text(TINY_TEXT + "\x07\ue000")
    assert "\x07" in preview["unusual characters"] and "\ue000" in preview["unusual characters"]
    assert suggested_size(200_000)[0] == "tiny" and suggested_size(300_000)[0] == "small"
    assert suggested_size(1_000_000)[0] == "medium"


def test_the_size_table_reads_as_people_write_sizes(manager):
    table = manager.size_table("lstm", measure=False)
    assert list(table["size"]) == ["tiny", "small", "medium"] and list(table["training chars/s here"]) == [""] * 3
    assert all(re.fullmatch(r"\d+(\.\d)?[kM]", params) for params in table["parameters"]), table
    manager.speeds._speeds["lstm", "tiny"] = 12_345.6  # as measured
    assert manager.size_table("lstm", measure=False)["training chars/s here"][0] == "12,300"
    assert [format_count(n) for n in (3_318_306, 849_000, 999_600, 950)] == ["3.3M", "849k", "1.0M", "950"]
    assert all(parse_count(format_count(n)) == pytest.approx(n, rel=0.05) for n in (3_318_306, 849_000, 12_345))


def test_old_and_surplus_models_are_deleted(tmp_path):
    library = ModelLibrary(tmp_path / "checkpoints", hub_ids=[])
    manager = TrainingManager(library, tmp_path / "user-models", TrainLimits(kept_models=2, keep_hours=1))
    from charrnn.service.training import Job

    jobs = []
    for age_hours in (5, 0.5, 0.3, 0.1):
        folder = tmp_path / "user-models" / f"job{age_hours}"
        (folder / "best").mkdir(parents=True)
        job = Job(f"{age_hours}-id", ALICE, JobSettings(), folder, created=time.time() - age_hours * 3600,
                  state="finished")
        manager.jobs[job.id] = job
        jobs.append(job)
    manager.clean_up()
    assert [job.id for job in jobs if job.id in manager.jobs] == ["0.3-id", "0.1-id"]
    assert not jobs[0].folder.exists() and jobs[3].folder.exists()


def finished_job(manager, root, owner, name, age_hours, with_model=True, state="finished"):
    from charrnn.service.training import Job
    from charrnn.service.training.jobs import owner_dir

    folder = root / owner_dir(owner) / name
    (folder / "best" if with_model else folder).mkdir(parents=True)
    (folder / "text.txt").write_text("x")
    job = Job(name, owner_dir(owner), JobSettings(), folder, created=time.time() - age_hours * 3600, state=state)
    manager.jobs[job.id] = job
    return job


def test_jobs_that_made_nothing_never_evict_a_finished_model_and_each_owner_loses_their_own_first(tmp_path):
    root = tmp_path / "user-models"
    manager = TrainingManager(ModelLibrary(tmp_path / "checkpoints", hub_ids=[]), root,
                              TrainLimits(kept_models=3, kept_per_owner=2, keep_hours=24))
    alice = finished_job(manager, root, ALICE, "alice-model", 3)
    # Churn from throw-away sessions: many jobs started and stopped before they made anything.
    churn = [finished_job(manager, root, f"throwaway-key-{i}", f"nothing-{i}", 0.1, with_model=False,
                          state="failed") for i in range(8)]
    manager.clean_up()
    assert alice.id in manager.jobs and (alice.folder / "best").is_dir()
    assert all(job.id in manager.jobs for job in churn)  # their messages stay for a while...
    for job in churn:
        job.created -= 2 * 3600
    manager.clean_up()  # ...then they go, with their empty owner folders; Alice's model stays
    assert alice.id in manager.jobs and not any(job.id in manager.jobs for job in churn)
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == [alice.folder.parent.name]
    # Bob trains three models: his own oldest goes, not Alice's.
    bobs = [finished_job(manager, root, BOB, f"bob-{i}", 2 - i * 0.5) for i in range(3)]
    manager.clean_up()
    assert alice.id in manager.jobs and [job.id in manager.jobs for job in bobs] == [False, True, True]


def test_the_tabs_settings_are_train_configs_defaults_except_where_the_app_says_why():
    from charrnn.config import CPU_BATCH_SIZE, TrainConfig, default_of
    from charrnn.service.training.settings import APP_DEFAULTS

    settings = JobSettings()
    for name in ("cell", "dropout", "lr", "seq_len", "tokenizer"):
        expected = APP_DEFAULTS.get(name, default_of(TrainConfig, name))
        assert getattr(settings, name) == expected, name
    assert settings.batch_size == CPU_BATCH_SIZE
    with pytest.raises(CharRNNError, match="dropout"):
        JobSettings(dropout=-0.1).checked(TrainLimits())


def test_a_jobs_command_line_reads_back_as_the_train_config_it_was_made_from(tmp_path):
    from charrnn.cli.train import parse_args
    from charrnn.service.training.jobs import Job
    from charrnn.service.training.runner import trainer_command, trainer_config

    job = Job("a" * 32, ALICE, TINY.checked(TrainLimits()), tmp_path, budget_minutes=1.5, val_fraction=0.123456789,
              data_name="my letters")
    argv = trainer_command(job, "python", threads=2, min_eval_seconds=5)
    assert argv[:3] == ["python", "-m", "charrnn.train"]
    assert parse_args(argv[3:]) == trainer_config(job, threads=2, min_eval_seconds=5)


def test_a_job_of_size_auto_leaves_the_size_and_the_dropout_to_the_trainers_recipe(tmp_path):
    from charrnn.cli.train import parse_args
    from charrnn.service.training.jobs import Job
    from charrnn.service.training.runner import trainer_command
    from charrnn.train.recipe import RECIPE_FIELDS, recipe_fields
    from charrnn.train.resume import given_flags

    for size, recipe in (("auto", RECIPE_FIELDS), ("small", ())):
        settings = dataclasses.replace(TINY, size=size).checked(TrainLimits())
        argv = trainer_command(Job("a" * 32, ALICE, settings, tmp_path, budget_minutes=1.5), "python", threads=2,
                               min_eval_seconds=5)[3:]
        assert recipe_fields(parse_args(argv), given_flags(argv)) == recipe, size
        assert ("--params" in argv, "--dropout" in argv) == (not recipe, not recipe)


def test_a_model_downloaded_again_replaces_its_zip_which_goes_after_minutes_or_with_its_job(tmp_path):
    from charrnn.service.training import Job
    from charrnn.service.training.downloads import KEEP_SECONDS, Downloads
    from charrnn.service.training.jobs import owner_dir

    library = ModelLibrary(tmp_path / "checkpoints", hub_ids=[])
    manager = TrainingManager(library, tmp_path / "user-models", TrainLimits(kept_models=1))
    jobs = []
    for i in range(2):
        folder = tmp_path / "user-models" / f"job{i}"
        (folder / "best").mkdir(parents=True)
        (folder / "best" / "config.json").write_text("{}")
        job = Job(f"{i}-id", owner_dir(ALICE), JobSettings(name=f"novel {i}"), folder, created=time.time() + i,
                  state="finished")
        manager.jobs[job.id] = job
        jobs.append(job)
    zips = [manager.zip(ALICE, jobs[0].id) for _ in range(3)]
    assert zips == [zips[0]] * 3 and manager.downloads.archives() == [zips[0]]  # one zip, rebuilt each time
    assert zips[0].name == "novel-0-0-id.zip" and zipfile.ZipFile(zips[0]).namelist() == ["config.json"]
    second = manager.zip(ALICE, jobs[1].id)
    manager.clean_up()  # one model kept: the first job goes, and its zip with it
    assert manager.downloads.archives() == [second]
    long_ago = time.time() - KEEP_SECONDS - 1
    os.utime(second, (long_ago, long_ago))
    manager.downloads.expire()
    assert manager.downloads.archives() == [] and list(manager.downloads.folder.iterdir()) == []

    soon = Downloads(keep_seconds=0.2)  # nobody downloads again: a timer removes it
    soon.zip("job", "model", jobs[1].folder / "best")
    wait_for(lambda: soon.archives() == [], timeout=20, what="the zip to expire")
    folder = Downloads().folder
    assert not folder.exists()  # the folder goes with the app's Downloads


def test_the_apps_download_folder_is_emptied_when_it_starts_so_a_killed_apps_zips_do_not_stay(tmp_path):
    import tempfile

    from charrnn.service.training.downloads import downloads_folder

    left = downloads_folder(tmp_path / "user-models") / "some-job" / "model.zip"
    left.parent.mkdir(parents=True)
    left.write_bytes(b"zip of an app that was killed")
    manager = TrainingManager(ModelLibrary(tmp_path / "checkpoints", hub_ids=[]), tmp_path / "user-models")
    assert manager.downloads.folder == left.parent.parent and not left.exists()
    assert manager.downloads.folder.parent == Path(tempfile.gettempdir())  # where Gradio may serve it from
    assert downloads_folder(tmp_path / "other-models") != manager.downloads.folder
