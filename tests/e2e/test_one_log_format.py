"""Every line the server writes is in one format: with REZEPTION_LOG_JSON=true, uvicorn's start-up and
access lines, the worker's and our own events are each one JSON object (before issue 13 uvicorn
and the standard library wrote plain lines beside structlog's)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from tests.conftest import DEMO_SALON
from tests.faults import free_port

from rezeption.retell.signature import sign

REZEPTION = [sys.executable, "-m", "rezeption.cli"]


def test_every_server_line_is_one_json_object(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REZEPTION_")}
    env.update(
        REZEPTION_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'r.db'}",
        REZEPTION_DEV_SECRETS_FILE=str(tmp_path / "secrets.json"),
        REZEPTION_RETELL_API_KEY="rk_7Qm2vXz9LpR4tW8yB3nF6hJ",
        REZEPTION_LOG_JSON="true",
    )
    for step in (["db", "upgrade"], ["tenants", "load", str(DEMO_SALON)]):
        assert subprocess.run([*REZEPTION, *step], env=env, capture_output=True, check=False).returncode == 0
    port = free_port()
    server = subprocess.Popen(
        [*REZEPTION, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        body = json.dumps(
            {"name": "check_availability", "call": {"call_id": "c1", "to_number": "+493012345670"},
             "args": {"dienstleistung": "Bart", "datum": "morgen", "uhrzeit": "12 Uhr"}}
        ).encode()  # fmt: skip
        signed = sign(body, env["REZEPTION_RETELL_API_KEY"], int(time.time() * 1000))
        answered = httpx.post(
            f"http://127.0.0.1:{port}/retell/functions/check_availability",
            content=body,
            headers={"X-Retell-Signature": signed, "Content-Type": "application/json"},
        )
        assert answered.status_code == 200
        httpx.get(f"http://127.0.0.1:{port}/nowhere")
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=20)
    lines = [line for line in (out + err).decode().splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # a plain line fails here
    assert all({"event", "level", "timestamp"} <= set(e) for e in events)
    names = {e.get("logger") for e in events}
    assert {"uvicorn.error", "uvicorn.access"} <= names
    assert any(e["event"] == "retell.function" for e in events)
    call_lines = [e for e in events if e.get("call_id") == "c1"]
    assert {e["event"] for e in call_lines} >= {"retell.function"}
    access = [e for e in events if "POST /retell/functions/check_availability" in e["event"]]
    assert len(access) == 1 and access[0] in call_lines, "the access line of the call's request too"
    assert all(e.get("salon") == "friseur1" for e in call_lines), call_lines
    assert any("rezeption serves on" in e["event"] for e in events)
