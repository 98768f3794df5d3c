"""The Cal.com demo is set up from the Cal.com demo salon itself (`calcom-emulator --salon`): every
event type the salon books exists with the service's length and buffers, under Cal.com's real rate
limit. Before issue 13 the README started the emulator with a config whose event types did not
match the salon, and the demo booking failed as "Kalender nicht erreichbar"."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT
from tests.faults import free_port

from rezeption.calendars.calcom.client import CalcomClient
from rezeption.calendars.calcom.models import CalcomEventType
from rezeption.store.salon_file import read_salon

CALCOM_SALON = ROOT / "salons" / "friseur1-calcom.yaml"


async def event_types(url: str, key: str) -> dict[int, CalcomEventType]:
    client = CalcomClient(url, key)
    try:
        return {e.id: e for e in await client.list_event_types()}
    finally:
        await client.aclose()


def test_the_emulator_mirrors_the_calcom_demo_salon(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REZEPTION_")}
    env["REZEPTION_DEV_SECRETS_FILE"] = str(tmp_path / "s.json")
    emulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rezeption.cli",
            "calcom-emulator",
            "--port",
            str(port),
            "--salon",
            str(CALCOM_SALON),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        salon = read_salon(CALCOM_SALON)
        offered = asyncio.run(event_types(f"http://127.0.0.1:{port}", salon.calendar.settings["api_key"]))
    finally:
        emulator.send_signal(signal.SIGTERM)
        emulator.wait(timeout=15)
    for service in salon.services:
        for type_id in salon.calendar.settings["event_types"][service.key].values():
            event_type = offered[type_id]
            assert event_type.length_minutes == service.duration, service.key
            assert (event_type.before_buffer, event_type.after_buffer) == (
                service.buffer_before,
                service.buffer_after,
            )
