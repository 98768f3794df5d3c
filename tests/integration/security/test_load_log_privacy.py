"""The logs of a whole (small) load run hold no caller's phone number and no caller's name unmasked.

`rezeption serve` runs in its own process, on SQLite and on PostgreSQL, with JSON logs (at debug
level, so every line the code can write is in) going to a file; `rezeption.ops.loadtest.LoadTest`
places 20 calls against it (inbound, call events, availability, bookings, moves and
cancellations). Every number and name the run sent, and every customer the database holds
afterwards, is then looked for in the file: the number as sent (+49151…), without the plus, with
the national 0 and as bare digits; the name as said, in any case, also as it reads in JSON escapes.
One hit fails the test and shows the line.

Before: at debug level aiosqlite logged every statement it ran with its parameters, so each
caller's number and name was in the log many times (`ops.logging` now holds it at INFO).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from tests.conftest import DEMO_SALON, ROOT
from tests.faults import free_port

from rezeption.ops.loadtest import LoadTest, Plan, Scenarios
from rezeption.store.db import Database
from rezeption.store.tables import CustomerRow

REZEPTION = [sys.executable, "-m", "rezeption.cli"]
KEY = "rk_7Qm2vXz9LpR4tW8yB3nF6hJ"
START = datetime.fromisoformat("2025-11-03T08:00:00+01:00")  # the server's clock: Monday 08:00
SCENARIOS = ROOT / "bench" / "loadtest_scenarios.yaml"


@dataclass
class Served:
    """Our server in a subprocess: its URL, its log file and database, and its clock in ms."""

    url: str
    log: Path
    began: float
    process: subprocess.Popen[bytes]

    def now_ms(self) -> int:
        """The server's clock (REZEPTION_CLOCK_START, then running on) as Retell would sign."""
        return int(START.timestamp() * 1000 + (time.monotonic() - self.began) * 1000)

    def stop(self) -> None:
        """SIGTERM, as an operator stops it; waits until it has written its last line."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture
def served(tmp_path: Path, database_url: str, database: Database) -> Iterator[Served]:
    """`rezeption serve` on the test's (emptied, migrated) database with the demo salon, JSON logs
    into a file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REZEPTION_")}
    env.update(
        REZEPTION_DATABASE_URL=database_url,
        REZEPTION_DEV_SECRETS_FILE=str(tmp_path / "secrets.json"),
        REZEPTION_RETELL_API_KEY=KEY,
        REZEPTION_LOG_JSON="true",
        REZEPTION_LOG_LEVEL="debug",
        REZEPTION_CLOCK_START=START.isoformat(),
    )
    for step in (["db", "upgrade"], ["tenants", "load", str(DEMO_SALON)]):
        done = subprocess.run([*REZEPTION, *step], env=env, capture_output=True, check=False, timeout=120)
        assert done.returncode == 0, done.stderr.decode()[-2000:]
    port, log = free_port(), tmp_path / "server.log"
    with log.open("wb") as out:
        began = time.monotonic()
        server = subprocess.Popen([*REZEPTION, "serve", "--port", str(port)], env=env, stdout=out, stderr=out)
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(300):  # at most ~30 s
                try:
                    if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert server.poll() is None, log.read_text(errors="replace")[-2000:]
                time.sleep(0.1)
            else:
                raise AssertionError("the server did not get ready")
            yield Served(url, log, began, server)
        finally:
            Served(url, log, began, server).stop()


@pytest.fixture
async def sent(served: Served) -> AsyncIterator[list[dict[str, Any]]]:
    """Every body the load run sent, in order (the phone's own posts, watched)."""
    bodies: list[dict[str, Any]] = []
    plan = Plan(calls=20, concurrency=4, think=0.02, deadline=180, seed=11)
    test = LoadTest(served.url, KEY, plan, Scenarios.load(SCENARIOS), now_ms=served.now_ms)
    for phone in test.phones:  # each line of the generator
        post = phone.post

        async def watched(path: str, body: dict[str, Any], post: Any = post) -> httpx.Response:
            bodies.append(body)
            return await post(path, body)

        phone.post = watched  # type: ignore[method-assign]
    result = await test.run()
    assert len(result.calls) == 20 and sum(c.booked for c in result.calls) >= 8, result.calls
    await asyncio.sleep(0)
    yield bodies


async def personal_data(bodies: list[dict[str, Any]], database: Database) -> tuple[set[str], set[str]]:
    """The callers' numbers and names: as the run sent them, and as the server stored them."""
    numbers: set[str] = set()
    names: set[str] = set()
    for body in bodies:
        call = body.get("call") or body.get("call_inbound") or {}
        numbers.add(str(call.get("from_number")))
        args = body.get("args") or {}
        if args.get("name"):
            names.add(str(args["name"]))
    async with database.read() as session:
        for name, phone in await session.execute(select(CustomerRow.name, CustomerRow.phone_e164)):
            names.add(str(name))
            numbers.add(str(phone))
    numbers.discard("None")
    return numbers, names


def forms(number: str) -> set[str]:
    """+4915100000007 as it might be written: as is, 4915100000007, 015100000007, 15100000007."""
    assert number.startswith("+49"), number
    national = number[3:]
    return {number, number[1:], f"0{national}", national}


async def test_a_load_runs_logs_hold_no_callers_number_or_name(
    served: Served, sent: list[dict[str, Any]], database: Database
) -> None:
    numbers, names = await personal_data(sent, database)
    assert len(numbers) >= 20 and len(names) >= 15, (numbers, names)
    served.stop()  # its last lines (the trace writer's last batch, shutdown) are in the file then
    lines = [line for line in served.log.read_text(encoding="utf-8").splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # every line is JSON (issue 13)
    functions = sum("args" in body for body in sent)
    assert sum(e.get("event") == "retell.function" for e in events) == functions, "each call was logged"
    readable = [json.dumps(e, ensure_ascii=False) for e in events]
    hits = []
    for raw, text in zip(lines, readable, strict=True):
        folded = f"{raw}\n{text}".casefold()
        hits += [(n, text) for number in numbers for n in forms(number) if n in folded]
        hits += [(name, text) for name in names if name.casefold() in folded]
    assert not hits, "\n".join(f"{what!r} in {line[:400]}" for what, line in hits[:10])
