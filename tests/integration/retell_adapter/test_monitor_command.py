"""`rezeption monitor --once` as a terminal runs it, after real calls to a running server: the last
hour's bookings and success, each function's latency, caller-ID outcomes, the outbox, the latest
failures with their reasons, and the servers' own counters from /metrics."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta

from sqlalchemy import func, select
from tests.integration.retell_adapter.conftest import CALLER, SALON_NUMBER, RetellClient

from rezeption.domain.clock import FixedClock
from rezeption.store.db import Database
from rezeption.store.tables import FunctionCallTraceRow


async def test_the_monitor_shows_the_last_hour_of_real_calls(
    retell: RetellClient, server: str, database: Database, database_url: str, clock: FixedClock
) -> None:
    inbound = {"event": "call_inbound", "call_inbound": {"call_id": "call_mon", "from_number": CALLER,
                                                          "to_number": SALON_NUMBER}}  # fmt: skip
    assert (await retell.post("/retell/inbound", inbound)).status_code == 200
    for name, start in (("Peter Schuster", "13 Uhr"), ("Eva Engel", "14 Uhr")):
        booked = await retell.function(
            "book_appointment",
            {"name": name, "dienstleistung": "Bartpflege", "datum": "Donnerstag", "uhrzeit": start},
            call_id="call_mon",
        )
        assert booked["gebucht"] is True
    broken = await retell.function("book_appointment", {"dienstleistung": 17}, call_id="call_mon")
    assert broken["reason"] == "invalid_arguments"
    for _ in range(100):  # traces are written just after the replies
        async with database.read() as session:
            if await session.scalar(select(func.count()).select_from(FunctionCallTraceRow)) >= 4:
                break
        await asyncio.sleep(0.05)
    env = {
        **os.environ,
        "REZEPTION_DATABASE_URL": database_url,
        "REZEPTION_CLOCK_START": (clock.now() + timedelta(minutes=1)).isoformat(),
        "COLUMNS": "160",
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "rezeption.cli", "monitor", "--once", "--metrics-url", f"{server}/metrics"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, done.stderr
    assert "Buchungserfolg: 66.7%" in out, out  # 2 booked, 1 failed by a bad request
    assert "2 gebucht, 1 fehlgeschlagen" in out and "3 Versuche" in out
    assert "book_appointment" in out and "invalid_arguments" in out
    assert "unbekannt" in out, "the caller-ID outcome of call_inbound"
    assert "Rückrufwünsche" in out and "pending Termine" in out
    assert "rezeption_past_year_dates" in out, "the counters the server keeps"
    assert "Peter" not in out and CALLER[3:] not in out
