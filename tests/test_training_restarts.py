"""What a Space does to the Train tab's jobs: the app killed while a job trains and started again, and visitors
who come back with the key their browser kept (the hostile probes 4 and 5 of issue 24)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from charrnn.errors import CharRNNError
from charrnn.service import ModelLibrary
from charrnn.service.sessions import SessionKeys
from charrnn.service.training import TrainingManager, TrainLimits
from charrnn.service.training.runner import PID_FILE, recorded_trainer
from tests.conftest import ROOT

# The app as a Space runs it: a manager that starts a job (a trainer in a session of its own) and queues
# another, then waits to be killed.
APP = """
import sys, time
from pathlib import Path
from charrnn.service import ModelLibrary
from charrnn.service.training import JobSettings, TrainingManager, TrainLimits
from tests.conftest import TINY_TEXT

root = Path(sys.argv[1])
manager = TrainingManager(ModelLibrary(root / "checkpoints", hub_ids=[]), root / "user-models",
                          TrainLimits(max_minutes=5), threads=1, eval_seconds=1)
settings = JobSettings(name="long", size="custom", params="10k", minutes=3, batch_size=4, seq_len=16)
running = manager.submit("alice-session-key", manager.gather(pasted=TINY_TEXT * 4), settings)
queued = manager.submit("bob-session-key-0", manager.gather(pasted=TINY_TEXT * 4), settings)
while not (running.folder / "trainer.pid").is_file():
    time.sleep(0.1)
print(running.folder, queued.folder, flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_restart_stops_the_trainer_left_running_requeues_the_queue_and_disk_agrees(tmp_path):
    app = subprocess.Popen([sys.executable, "-c", APP, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        running_folder, queued_folder = app.stdout.readline().split()
    finally:
        app.send_signal(signal.SIGKILL)  # the app dies; its trainer, in a session of its own, runs on
        app.wait()
    running_folder, queued_folder = map(type(tmp_path), (running_folder, queued_folder))
    trainer = recorded_trainer(running_folder / PID_FILE)
    assert trainer is not None and alive(trainer)

    manager = TrainingManager(ModelLibrary(tmp_path / "checkpoints", hub_ids=[]), tmp_path / "user-models",
                              TrainLimits(max_minutes=5, jobs=0), threads=1, eval_seconds=1)  # jobs=0: none start
    assert not alive(trainer)  # stopped before anything in its folder was touched
    states = {job.folder: job for job in manager.jobs.values()}
    stopped, waiting = states[running_folder], states[queued_folder]
    assert stopped.state in ("stopped", "failed") and waiting.state == "queued" and manager.queue == [waiting.id]
    for job in (stopped, waiting):  # what is on disk says the same
        assert json.loads((job.folder / "job.json").read_text())["state"] == job.state
    assert running_folder.is_dir() and queued_folder.is_dir()


def test_a_pid_file_whose_process_is_gone_or_reused_names_no_trainer(tmp_path):
    pid_file = tmp_path / PID_FILE
    pid_file.write_text(f"{os.getpid()} 12345")  # this process, but not started then: a reused pid
    assert recorded_trainer(pid_file) is None
    pid_file.write_text("not a pid")
    assert recorded_trainer(pid_file) is None


def test_signed_session_keys_survive_a_restart_and_cannot_be_forged(tmp_path):
    keys = SessionKeys.for_host(tmp_path)
    key = keys.new()
    assert SessionKeys.for_host(tmp_path).is_valid(key)  # the same secret after a restart
    assert (tmp_path / ".session-secret").stat().st_mode & 0o777 == 0o600
    token, _, signature = key.partition(".")
    forged = [f"{token}.{'0' * len(signature)}", f"{'f' * len(token)}.{signature}", "alice-session-key", None, 3]
    assert not any(keys.is_valid(k) for k in forged)
    assert not SessionKeys(b"another host's secret!").is_valid(key)
    manager = TrainingManager(ModelLibrary(tmp_path / "checkpoints", hub_ids=[]), tmp_path / "models",
                              sessions=keys)
    with pytest.raises(CharRNNError, match="session key is not valid"):
        manager.latest(forged[0])
    assert manager.latest(key) is None and manager.viewer(forged[0]) is None
    assert len(token) == 32  # 128 bits


def test_a_stale_trainer_is_stopped_within_its_grace_then_killed(tmp_path):
    from charrnn.service.training.runner import stop_recorded_trainer, write_pid_file

    # A process that ignores SIGTERM, as a trainer stuck in a long step would for a while.
    stubborn = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                                 "signal.SIG_IGN); print(1, flush=True); time.sleep(60)"], stdout=subprocess.PIPE)
    stubborn.stdout.readline()
    write_pid_file(tmp_path / PID_FILE, stubborn.pid)
    start = time.monotonic()
    assert stop_recorded_trainer(tmp_path / PID_FILE, grace_seconds=1)
    assert stubborn.wait(timeout=10) == -signal.SIGKILL and time.monotonic() - start < 10
    assert not (tmp_path / PID_FILE).exists()


def test_a_job_a_restart_cut_off_before_its_first_model_keeps_no_text(tmp_path):
    """As a job that ends without a model: nothing to resume, so its text goes (found by the stress's Train round:
    a Space's container restarted while a trainer started)."""
    from charrnn.service.training.jobs import Job, load_jobs
    from charrnn.service.training.settings import JobSettings

    folder = tmp_path / "owner" / "job"
    folder.mkdir(parents=True)
    (folder / "text.txt").write_text("the text of the job", encoding="utf-8")
    Job("job-id", "owner", JobSettings(), folder, state="running").save()
    (job,) = load_jobs(tmp_path, lambda folder: False)  # its trainer is gone
    assert job.state == "failed" and not (folder / "text.txt").exists()
    assert json.loads((folder / "job.json").read_text())["state"] == "failed"
