"""``run_emulator`` serves the emulator as its own process, configured from a YAML file."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

SAMPLE_CONFIG = Path(__file__).resolve().parents[3] / "tests" / "data" / "calcom-emulator.yaml"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_run_emulator_serves_the_sample_config_until_terminated() -> None:
    port = _free_port()
    code = (
        "from rezeption.emulators.calcom import run_emulator; "
        f"run_emulator('127.0.0.1', {port}, {str(SAMPLE_CONFIG)!r})"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        response = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and process.poll() is None:
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{port}/v2/event-types",
                    headers={"Authorization": "Bearer cal_test_rezeption", "cal-api-version": "2024-06-14"},
                    timeout=1.0,
                )
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert response is not None, "emulator process did not answer within 15 s"
        assert response.status_code == 200
        assert [item["slug"] for item in response.json()["data"]] == ["haarschnitt", "faerben"]
    finally:
        process.terminate()
        process.wait(timeout=10)
