"""A minimal client of a running Gradio app's queue protocol (what the browser speaks), for the stress command.

gradio_client refuses malformed values before sending them; this sends anything, to any event handler (by
fn_index), and reports what came back.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field

import httpx

ANSWERED, MESSAGE, UNEXPECTED, HANG = "answered", "clean message", "unexpected exception", "hang"


@dataclass
class Endpoint:
    fn_index: int
    name: str
    inputs: list[dict]  # each {"type": component type, "props": component props}


@dataclass
class Outcome:
    kind: str
    seconds: float
    message: str | None = None
    bytes_received: int = 0
    outputs: list = field(default_factory=list)  # the final output values, with streamed edits applied


def endpoints(base: str) -> list[Endpoint]:
    """Every event handler that runs Python on the server (public, undocumented or private alike)."""
    config = httpx.get(f"{base}/config", timeout=30).json()
    components = {c["id"]: c for c in config["components"]}
    found = []
    for index, dep in enumerate(config["dependencies"]):
        if not dep.get("backend_fn"):
            continue
        fn_index = dep.get("id", index)
        inputs = [{"type": components[i]["type"], "props": components[i].get("props", {})} for i in dep["inputs"]]
        found.append(Endpoint(fn_index, dep.get("api_name") or f"fn_{fn_index}", inputs))
    return found


def _apply_edits(value, edits):
    """Apply Gradio's streamed diff edits ([op, path, value]) to one output value."""
    for op, path, new in edits:
        if not path:
            value = value + new if op == "append" else new
            continue
        target = value
        for key in path[:-1]:
            target = target[key]
        if op == "append":
            target[path[-1]] += new
        elif op in ("replace", "add"):
            if op == "add" and isinstance(target, list):
                target.insert(path[-1], new)
            else:
                target[path[-1]] = new
        elif op == "delete":
            del target[path[-1]]
    return value


def call(client: httpx.Client, base: str, fn_index: int, data: list, timeout: float = 30.0,
         session: str | None = None) -> Outcome:
    """Send one event and follow it to the end; a call still running after `timeout` seconds is a hang.

    `session`: the session hash to call in (a browser tab or a gradio_client Client keeps one for all its
    calls); by default a new session, as a caller that sends a new hash each time does."""
    session = session or uuid.uuid4().hex
    start = time.perf_counter()
    body = json.dumps({"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None,
                       "trigger_id": None}, allow_nan=True)
    try:
        joined = client.post(f"{base}/gradio_api/queue/join", content=body,
                             headers={"content-type": "application/json"}, timeout=timeout)
    except httpx.TimeoutException:
        return Outcome(HANG, time.perf_counter() - start)
    if joined.status_code >= 500:
        return Outcome(UNEXPECTED, time.perf_counter() - start, f"HTTP {joined.status_code}")
    if joined.status_code != 200:  # refused before running: the body says why
        return Outcome(MESSAGE, time.perf_counter() - start, joined.text[:200])
    event_id = joined.json().get("event_id")
    received, outputs = 0, []
    try:
        with client.stream("GET", f"{base}/gradio_api/queue/data", params={"session_hash": session},
                           timeout=httpx.Timeout(timeout, connect=10)) as stream:
            for line in stream.iter_lines():
                received += len(line) + 1
                if time.perf_counter() - start > timeout:
                    raise httpx.ReadTimeout("call ran past its timeout")
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                kind = message.get("msg")
                output = message.get("output") or {}
                if kind == "process_generating" and "data" in output:
                    outputs = (output["data"] if not outputs else
                               [_apply_edits(old, edits) if isinstance(edits, list) else edits
                                for old, edits in zip(outputs, output["data"])])
                elif kind == "process_completed":
                    seconds = time.perf_counter() - start
                    if message.get("success"):
                        if output.get("data") is not None and not outputs:
                            outputs = output["data"]
                        return Outcome(ANSWERED, seconds, None, received, outputs)
                    error = output.get("error")
                    kind = MESSAGE if isinstance(error, str) and error.strip() else UNEXPECTED
                    return Outcome(kind, seconds, error, received, outputs)
                elif kind == "close_stream":
                    break
    except (httpx.TimeoutException, httpx.RemoteProtocolError):
        if event_id:
            try:
                client.post(f"{base}/gradio_api/cancel", json={"event_id": event_id, "session_hash": session,
                                                               "fn_index": fn_index}, timeout=10)
            except httpx.HTTPError:
                pass
        return Outcome(HANG, time.perf_counter() - start, None, received)
    return Outcome(UNEXPECTED, time.perf_counter() - start, "the stream ended without a result", received)
