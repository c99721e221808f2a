"""The Train tab as a public Space meets it: decompression bombs, other visitors' models, throw-away sessions,
an app killed while it trains, and a reloaded page. Each probe says what it got and whether that is what the
tab promises (issue 24).

The round starts its own app (the limits it needs come from the environment: few models kept, a small character
limit) with its trained models, its temporary files and its data in one folder, and drives it as a script or a
page would, through gradio_client on 127.0.0.1:

1. bombs: a parquet file of tens of KB that unpacks to hundreds of millions of characters, and a csv over the
   character limit, each to /preview_text: the preview must say the text was cut, and the server must grow by
   less than the limit's own size plus BOMB_MARGIN_MB while it reads them;
2. other sessions: session A trains a tiny model; another session and a caller without a key must be refused it
   by every endpoint that takes a model name, and by /download_model; A itself is answered;
3. churn: throw-away sessions start and stop jobs; A's model must stay, no owner folder may be left empty and no
   job that made no model may keep its text;
4. kill and restart: the app is killed while A's trainer trains (in a session of its own, it runs on) and
   another session's starts (killed with the app, as in a restart of a Space's container), and started again on
   the same folder: A's trainer must be stopped, each job's state must be what its job.json says, a job that
   made no model must keep no text, and A's key must still work;
5. reload: A's key from a new client (a reloaded page) sees A's job and models.

At the end: no trainer left running in the folder, what is left of the download zips, and no model lost.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import time
import zipfile
from pathlib import Path

from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from charrnn.service.training.jobs import owner_dir
from charrnn.app.page import CACHE_SECONDS
from charrnn.service.training.downloads import KEEP_SECONDS, downloads_folder
from charrnn.service.training.runner import PID_FILE, process_start_time, recorded_trainer
from tools.stress.bombs import csv_bomb, parquet_bomb
from tools.stress.kills import corpus_text
from tools.stress.server import AppServer, MemoryWatch

MAX_CHARS = 5_000_000  # below the upload cap (20 MB), so a csv the host accepts can hold more than the limit
BOMB_MARGIN_MB = 300  # the bound on the growth while a bomb is read: the limit's own size plus this
KEEP, KEEP_EACH = 3, 2  # models the host keeps, in all and per session: small, so that churn would show
WAIT = 240.0  # seconds any one wait of the round may take (a job to start, to make its first model, to stop)
# The settings of every job of the round: the smallest model and run the tab accepts, on a few KB of text.
TINY_JOB = {"cell": "lstm", "size": "custom", "params": "10k", "minutes": 0.5, "dropout": 0.1, "lr": 3e-3,
            "batch": 4, "seq_len": 16, "tokenizer": "char"}


# -- helpers ------------------------------------------------------------------------------------------
def outcome(call, *args, **kwargs) -> tuple[bool, object]:
    """(answered, what came back) of `call(*args, **kwargs)`, a call to the app; a message from the app (not
    answered) as a string."""
    try:
        return True, call(*args, **kwargs)
    except AppError as err:
        return False, str(err)


def generate(client: Client, model: str, key) -> tuple[bool, object]:
    return outcome(client.predict, "All:", model, 0.8, 0, 1.0, 20, 1, 1, 0, key, api_name="/generate")


def brief(value) -> str:
    return str(value)[:120]


def status_of(client: Client, key) -> tuple[str, list[str]]:
    """The Train tab's status line for this session, and the models its pickers list (when they changed)."""
    _, _, status, _, _, *pickers = client.predict(key, api_name="/training_progress")
    choices = next((p["choices"] for p in pickers if isinstance(p, dict) and "choices" in p), [])
    return status, [c[1] if isinstance(c, (list, tuple)) else c for c in choices]


def job_state(status: str) -> str | None:
    found = re.search(r"\*\*.+?\*\*: (\w+)", status)
    return found.group(1) if found else None


def model_in(status: str) -> str | None:
    found = re.search(r"in the model pickers as `([^`]+)`", status)
    return found.group(1) if found else None


def train(client: Client, key, text: str, name: str, minutes: float | None = None):
    job = {**TINY_JOB, "minutes": minutes or TINY_JOB["minutes"]}
    return client.predict(key, text, None, "", "", "", name, *job.values(), api_name="/train")


def wait_for(client: Client, key, ready, what: str, stop_when=None) -> str:
    """Poll the session's status until `ready(status)`; `stop_when(status)`: press Stop once it holds. Raises
    TimeoutError naming `what` after WAIT seconds."""
    deadline, stopped = time.monotonic() + WAIT, False
    while time.monotonic() < deadline:
        status, _ = status_of(client, key)
        if ready(status):
            return status
        if stop_when and not stopped and stop_when(status):
            client.predict(key, api_name="/stop_training")
            stopped = True
        time.sleep(0.5)
    raise TimeoutError(f"{what} did not happen within {WAIT:.0f} s; the status said: {status}")


def alive(pid: int) -> bool:
    return process_start_time(pid) is not None  # a zombie counts as gone


def trainers_in(folder: Path) -> list[int]:
    """Processes running in a folder under `folder` (a trainer runs in its job's folder)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if Path(os.readlink(proc / "cwd")).is_relative_to(folder):
                    found.append(int(proc.name))
            except OSError:  # another user's, or ended
                pass
    return found


def jobs_on_disk(models: Path) -> list[Path]:
    return sorted(path.parent for path in models.glob("*/*/job.json"))


def kept_models(models: Path) -> set[str]:
    """Job folders holding a model, as owner/job."""
    return {f"{job.parent.name}/{job.name}" for job in jobs_on_disk(models) if (job / "best").is_dir()}


def leftovers(models: Path) -> dict:
    """Owner folders left empty, and texts kept by ended jobs that made no model (nothing to resume)."""
    texts = 0
    for job in jobs_on_disk(models):
        try:
            state = json.loads((job / "job.json").read_text(encoding="utf-8"))["state"]
        except (OSError, ValueError, KeyError):
            continue
        ended = state in ("stopped", "finished", "failed")
        texts += ended and not (job / "best").is_dir() and (job / "text.txt").exists()
    empty = sum(1 for owner in models.iterdir() if owner.is_dir() and not any(owner.iterdir()))
    return {"empty_owner_folders": empty, "texts_of_jobs_without_a_model": texts}


# -- the probes ---------------------------------------------------------------------------------------
def bombs(server: AppServer, client: Client, folder: Path, max_chars: int) -> dict:
    # One preview first: the first one measures the sizes' speed, which is no part of reading a file.
    client.predict(corpus_text(random.Random(0), 4_000), None, "", "", "", 16, 64, "lstm", api_name="/preview_text")
    bound = round(max_chars / 1e6 + BOMB_MARGIN_MB)  # ASCII text: a character a byte
    files = {"parquet": parquet_bomb(folder / "bomb.parquet"), "csv": csv_bomb(folder / "bomb.csv", 2 * max_chars)}
    result, ok = {}, True
    for kind, path in files.items():
        start = time.perf_counter()
        with MemoryWatch(server) as memory:
            answered, answer = outcome(client.predict, "", [handle_file(str(path))], "", "", "", 16, 64, "lstm",
                                       api_name="/preview_text")
        answer = answer[0] if answered else answer  # the preview's markdown
        kept = re.search(r"\*\*([\d,]+) characters\*\*", answer)
        cut = answered and "only the first" in answer
        result[kind] = {"file_kb": round(path.stat().st_size / 1e3, 1),
                        "answer": "a preview" if answered else brief(answer),
                        "characters_kept": int(kept.group(1).replace(",", "")) if kept else None,
                        "says_cut": cut, "growth_mb": memory.growth_mb, "bound_mb": bound,
                        "seconds": round(time.perf_counter() - start, 1)}
        ok &= cut and memory.growth_mb < bound
    return {"ok": ok, "detail": "both cut and within the bound" if ok else "see the figures of each file", **result}


def other_sessions(client: Client, key: str, other: str, model: str, downloads: Path) -> dict:
    """A's model asked for by A, by another session and with no key, at every endpoint that takes a model name,
    and A's zip at /download_model (which takes the key only)."""
    inputs = {"/generate": ("All:", model, 0.8, 0, 1.0, 20, 1, 1, 0),
              "/compare": ("All:", model, "lstm", "gru", 0.7, 20, 7),
              "/surprise": ("Speak, speak.", model, False),
              "/neurons": ("Speak, speak.", model, -1, -1, "hidden"),
              "/gates": ("Speak, speak.", model, 0, 0)}
    seen = {}
    for who, k in (("owner", key), ("other_session", other), ("no_key", None)):
        seen[who] = {name: outcome(client.predict, *values, k, api_name=name) for name, values in inputs.items()}
        seen[who]["/download_model"] = outcome(client.predict, k, api_name="/download_model")
    wrong = [f"{name} answered the {who.replace('_', ' ')}" for who in ("other_session", "no_key")
             for name, (answered, _) in seen[who].items() if answered]
    wrong += [f"{name} refused the owner: {brief(said)}" for name, (answered, said) in seen["owner"].items()
              if not answered]
    zips = list(downloads.rglob("*.zip"))
    if not (zips and zipfile.is_zipfile(zips[0])):
        wrong.append("the owner's download is no zip")
    other_status, other_models = status_of(client, other)
    if model in other_status or model in other_models:
        wrong.append("the other session's progress names the model")
    return {"ok": not wrong, "detail": "; ".join(wrong) or f"{model}: refused to the other session and to no key "
            "by all 6 endpoints, answered to its owner",
            **{who: {name: "answered" if answered else f"refused: {brief(said)}"
                     for name, (answered, said) in got.items()} for who, got in seen.items()}}


def churn(client: Client, key: str, model: str, sessions: int, text: str, models: Path) -> dict:
    """`sessions` throw-away sessions each start a job and stop it at once (running or still queued): jobs that
    make no model must not cost A its model, nor leave empty folders or texts behind."""
    before = kept_models(models)
    started, refused, keys = 0, [], []
    for i in range(sessions):
        throwaway = client.predict(api_name="/new_session")
        answered, said = outcome(train, client, throwaway, text, f"churn-{i}")
        if answered:
            started += 1
            keys.append(throwaway)
            client.predict(throwaway, api_name="/stop_training")
        else:
            refused.append(brief(said))
    for throwaway in keys:
        wait_for(client, throwaway, lambda s: job_state(s) not in ("queued", "running", "stopping"),
                 "a stopped job's end")
    lost = sorted(before - kept_models(models))
    kept, said = generate(client, model, key)
    left = leftovers(models)
    ok = kept and not lost and not any(left.values())
    return {"ok": ok, "detail": ("A's model kept, nothing left behind" if ok else
                                 f"A's model {'kept' if kept else 'gone: ' + brief(said)}; lost: {lost}; {left}"),
            "sessions": sessions, "jobs_started": started, "refused": len(refused), "refusals": refused[:3],
            "models_lost": lost, "models_on_the_host": len(kept_models(models)), **left}


def reload(url: str, key: str, model: str, downloads: Path) -> dict:
    page = Client(url, verbose=False, download_files=str(downloads))  # a new connection, as a reloaded page's
    status, pickers = status_of(page, key)
    used, said = generate(page, model, key)
    ok = model in status and model in pickers and used
    return {"ok": ok, "detail": "the job, the pickers and /generate all know A's model" if ok else
            f"status: {status!r}; pickers: {pickers}; /generate: {brief(said)}", "status": status.splitlines()[0]}


def trainer_of(models: Path, key: str, name: str) -> tuple[Path | None, int | None]:
    """The folder of the session's job called `name`, and the pid of its trainer while one runs."""
    folder = next(models.glob(f"{owner_dir(key)}/{name}-*/"), None)
    return folder, recorded_trainer(folder / PID_FILE) if folder else None


def kill_and_restart(server: AppServer, client: Client, sessions: dict[str, str], model: str, text: str,
                     models: Path, start_app) -> tuple[dict, AppServer]:
    """Kill the app while A's trainer trains and B's starts, B's trainer with it (as when a Space's container
    restarts; A's runs on), and start the app again on the same folder. Returns the figures and the new app (the
    caller stops it). `sessions`: A's and B's keys."""
    train(client, sessions["A"], text, "stress-a-killed", minutes=1)
    wait_for(client, sessions["A"], lambda s: re.search(r"[\d,]+ steps", s) is not None, "A's first steps")
    train(client, sessions["B"], text, "stress-b-killed", minutes=1)
    deadline = time.monotonic() + WAIT
    while trainer_of(models, sessions["B"], "stress-b-killed")[1] is None and time.monotonic() < deadline:
        time.sleep(0.05)
    at_kill = {who: trainer_of(models, key, f"stress-{who.lower()}-killed") for who, key in sessions.items()}
    had_model = {who: bool(folder and (folder / "best").is_dir()) for who, (folder, _) in at_kill.items()}
    server.kill()
    if at_kill["B"][1] is not None:
        os.kill(at_kill["B"][1], signal.SIGKILL)
        time.sleep(0.5)  # delivered
    survived = {who: pid is not None and alive(pid) for who, (_, pid) in at_kill.items()}
    server = start_app()
    after = Client(server.url, verbose=False, download_files=False)
    figures, wrong = {}, []
    for who, key in sessions.items():
        (folder, pid), running = at_kill[who], at_kill[who][1] is not None and alive(at_kill[who][1])
        status, _ = status_of(after, key)
        state, on_disk = job_state(status), json.loads((folder / "job.json").read_text(encoding="utf-8"))["state"]
        figures[who] = {"killed": "the app" if who == "A" else "the app and the trainer",
                        "model_at_the_kill": had_model[who], "trainer_survived_the_kill": survived[who],
                        "trainer_running_after_restart": running, "state": state, "state_in_job_json": on_disk,
                        "text_kept": (folder / "text.txt").exists(), "status": status.splitlines()[0]}
        wrong += [f"{who}: {what}" for what, bad in (
            ("no trainer was running at the kill", pid is None), ("the trainer still runs after the restart", running),
            (f"the job is {state}, not stopped or failed", state not in ("stopped", "failed")),
            (f"job.json says {on_disk}", state != on_disk),
            ("it made no model but keeps its text", figures[who]["text_kept"] and not (folder / "best").is_dir()),
            ("its job is not in its status after the restart", f"stress-{who.lower()}-killed" not in status)) if bad]
    key_works, said = generate(after, model, sessions["A"])
    if not key_works:
        wrong.append(f"A's key no longer reaches {model}: {brief(said)}")
    return ({"ok": not wrong, "detail": "; ".join(wrong) or "A's trainer stopped at the restart; each job's state "
             "as in its job.json, no text kept without a model; the keys still work", **figures,
             "a_key_reaches_its_model": key_works,
             "seconds_to_ready_again": round(server.started_seconds, 1)}, server)


# -- the round ----------------------------------------------------------------------------------------
def run(workdir: Path, churn_sessions: int = 10, max_chars: int = MAX_CHARS, seed: int = 0) -> dict:
    """The five probes against an app of their own, in `workdir` (kept: the caller removes it)."""
    # gradio_client reports each Client to the Hub unless told not to; the stress sends traffic to 127.0.0.1 only.
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    start = time.perf_counter()
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    models, temporary, downloads = workdir / "user-models", workdir / "tmp", workdir / "client-downloads"
    temporary.mkdir(exist_ok=True)
    env = {"CHARRNN_USER_MODELS": str(models), "CHARRNN_TRAIN_KEEP": str(KEEP),
           "CHARRNN_TRAIN_KEEP_EACH": str(KEEP_EACH), "CHARRNN_TRAIN_MAX_CHARS": str(max_chars),
           "CHARRNN_TRAIN_MAX_MINUTES": "2",
           "CHARRNN_TRAIN_JOBS": "2",  # so that the kill finds one trainer training and one starting
           # the app's temporary files (uploads, download zips) and data caches, to be looked at and removed
           "TMPDIR": str(temporary), "CHARRNN_DATA_DIR": str(workdir / "data"), "HF_HUB_OFFLINE": "1"}
    starts: list[tuple[AppServer, Path | None]] = []  # each app started, and its download folder

    def start_app() -> AppServer:
        server = AppServer(workdir / f"app-{len(starts) + 1}.log", env=env)
        starts.append((server, Path(temporary) / downloads_folder(models).name))  # the app's own, emptied at start
        return server

    text = corpus_text(rng, 4_000)
    figures: dict = {}
    lost: list[str] = []
    try:
        server = start_app()
        client = Client(server.url, verbose=False, download_files=str(downloads))
        figures["bombs"] = bombs(server, client, workdir, max_chars)
        key, other = client.predict(api_name="/new_session"), client.predict(api_name="/new_session")
        train(client, key, text, "stress-a")
        # Stopped after its first evaluation, so that it is a model sooner than its minutes allow.
        status = wait_for(client, key, model_in, "A's model", stop_when=lambda s: "validation" in s)
        model = model_in(status)
        figures["other_sessions"] = other_sessions(client, key, other, model, downloads)
        if churn_sessions:
            figures["churn"] = churn(client, key, model, churn_sessions, text, models)
        figures["reload"] = reload(server.url, key, model, downloads)
        before = kept_models(models)
        figures["kill_and_restart"], server = kill_and_restart(server, client, {"A": key, "B": other}, model, text,
                                                               models, start_app)
        lost = sorted(before - kept_models(models))
    except Exception as err:  # noqa: BLE001 - the probes left are not run; what was found so far is reported
        figures["stopped_by"] = f"{type(err).__name__}: {brief(err)}"
    finally:
        for app, _ in starts:
            app.stop()
    figures["at_the_end"] = at_the_end(starts, models, temporary, lost)
    probes = [f for f in figures.values() if isinstance(f, dict)]
    figures["ok"] = "stopped_by" not in figures and all(f["ok"] for f in probes)
    figures["seconds"] = round(time.perf_counter() - start, 1)
    return figures


def at_the_end(starts: list[tuple[AppServer, Path | None]], models: Path, temporary: Path, lost: list[str]) -> dict:
    """Once every app of the round has ended: trainers still running, model zips left (in each app's download
    folder, and the copies Gradio keeps in its cache), models lost at the restart, leftovers, tracebacks."""
    now = time.time()
    zips = {}
    for number, (server, folder) in enumerate(starts, 1):
        ended = "killed" if server.process.returncode == -signal.SIGKILL else "stopped"
        left = sorted(folder.glob("*/*.zip")) if folder else []
        zips[f"app {number} ({ended})"] = {"zips": [f"{p.name}, {now - p.stat().st_mtime:.0f} s old" for p in left],
                                           "stale": sum(now - p.stat().st_mtime > KEEP_SECONDS for p in left)}
    cached = [p for p in (temporary / "gradio").rglob("*") if p.is_file()]
    trainers = trainers_in(models)
    for pid in trainers:  # started by the round's apps: none outlives it
        os.kill(pid, signal.SIGKILL)
    figures = {"trainers_left_running": len(trainers), "download_folders": zips,
               "zips_in_gradios_cache": sum(p.suffix == ".zip" for p in cached),
               # Gradio deletes its copies older than the app's cache age (CHARRNN_CACHE_MINUTES) as often
               "zips_in_gradios_cache_past_its_age": sum(p.suffix == ".zip" and now - p.stat().st_mtime > CACHE_SECONDS
                                                         for p in cached),
               "uploads_in_gradios_cache_mb": round(sum(p.stat().st_size for p in cached if p.suffix != ".zip") / 1e6,
                                                    1),
               "models_lost_at_the_restart": lost, **leftovers(models),
               "server_tracebacks": sum(server.tracebacks() for server, _ in starts)}
    # The apps share one download folder, emptied at each start; a zip younger than its expiry is not stale.
    stale = [f"{app}: {z['stale']} zips past their expiry" for app, z in zips.items() if z["stale"]]
    wrong = [what for what, bad in (("trainers still run", figures["trainers_left_running"]),
                                    (f"lost {lost}", lost), ("stale downloads: " + "; ".join(stale), stale),
                                    ("model zips in Gradio's cache past its age",
                                     figures["zips_in_gradios_cache_past_its_age"]),
                                    ("empty owner folders", figures["empty_owner_folders"]),
                                    ("texts of jobs without a model", figures["texts_of_jobs_without_a_model"]),
                                    ("tracebacks in the server log", figures["server_tracebacks"])) if bad]
    return {"ok": not wrong, "detail": "; ".join(wrong) or "nothing left behind, nothing lost", **figures}
