"""A server killed (SIGKILL) in the middle of a booking, and Retell's retry against the restarted one.

The booking is held mid-write on purpose: the test keeps an uncommitted appointment on the same
stylist and time, so PostgreSQL makes the server's insert wait on the no-overlap constraint. The
server is killed while it waits, the test lets go, a new server starts, and the same request comes
again, as Retell retries it. The retry must get the real outcome (booked, once) before Retell stops
waiting (8 s, the client's timeout here): the dead process's idempotency lease may not make it wait.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import holidays
import httpx
import pytest
from retell.lib.webhook_auth import symmetric
from sqlalchemy.engine import make_url
from tests.conftest import DEMO_SALON, create_postgres_database, drop_postgres_database
from tests.e2e.test_server_and_cli import REZEPTION, free_port

from rezeption.store import migrate

pytestmark = pytest.mark.postgres
BERLIN = ZoneInfo("Europe/Berlin")
API_KEY = "key_e2e_crash_0123456789abcdef"
RETELL_WAITS = 8.0


def thursday_next_week() -> date:
    day = datetime.now(BERLIN).date() + timedelta(days=7)
    while day.weekday() != 3 or day in holidays.country_holidays("DE", subdiv="BE", years=day.year):
        day += timedelta(days=1)
    return day


@pytest.fixture
def database() -> Iterator[str]:
    url = create_postgres_database()
    try:
        migrate.upgrade(url)
        env = {**os.environ, "REZEPTION_DATABASE_URL": url}
        subprocess.run([*REZEPTION, "tenants", "load", str(DEMO_SALON)], env=env, check=True, timeout=60)
        yield url
    finally:
        drop_postgres_database(url)


def start_server(url: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "REZEPTION_DATABASE_URL": url,
        "REZEPTION_RETELL_API_KEY": API_KEY,
        "REZEPTION_ENVIRONMENT": "development",
    }
    proc = subprocess.Popen(
        [*REZEPTION, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("server did not become ready")


def signed(body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body, ensure_ascii=False).encode()
    stamp = int(time.time() * 1000)
    signature = str(symmetric["sign"](raw.decode(), API_KEY, stamp))
    return raw, {"X-Retell-Signature": signature, "Content-Type": "application/json"}


async def hold_the_slot(url: str, day: date) -> asyncpg.Connection:
    """An uncommitted pending appointment on Ben's Thursday 13:00 (Bartpflege is his alone)."""
    conn = await asyncpg.connect(
        make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    start = datetime.combine(day, datetime.min.time(), tzinfo=BERLIN).replace(hour=13)
    await conn.execute("BEGIN")
    await conn.execute(
        """
        INSERT INTO appointments (tenant_id, service_id, staff_id, starts_at, ends_at, block_starts_at,
            block_ends_at, status, source, provider, version, created_at, updated_at)
        SELECT s.tenant_id, s.id, st.id, $1, $2, $1, $2, 'pending', 'admin', 'local', 1, now(), now()
        FROM services s JOIN staff st ON st.tenant_id = s.tenant_id AND st.key = 'ben'
        WHERE s.key = 'bartpflege'
        """,
        start,
        start + timedelta(minutes=20),
    )
    return conn


async def test_a_retry_after_a_sigkill_gets_the_real_outcome_before_retell_gives_up(database: str) -> None:
    day = thursday_next_week()
    body = {
        "name": "book_appointment",
        "call": {
            "call_id": "call_crash",
            "agent_id": "agent_friseur1",
            "from_number": "+4915123456789",
            "to_number": "+493012345670",
        },
        "args": {
            "name": "Peter Schuster",
            "dienstleistung": "Bartpflege",
            "datum": day.isoformat(),
            "uhrzeit": "13 Uhr",
        },
    }
    port = free_port()
    base = f"http://127.0.0.1:{port}/retell/functions/book_appointment"
    first = start_server(database, port)
    blocker = await hold_the_slot(database, day)
    try:
        async with httpx.AsyncClient(timeout=RETELL_WAITS) as http:
            raw, headers = signed(body)
            in_flight = asyncio.create_task(http.post(base, content=raw, headers=headers))
            await asyncio.sleep(1.5)  # the server holds the key and waits on the uncommitted row
            assert not in_flight.done()
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
            with pytest.raises(httpx.HTTPError):
                await in_flight
    finally:
        await blocker.execute("ROLLBACK")
        await blocker.close()
    second = start_server(database, port)
    try:
        async with httpx.AsyncClient(timeout=RETELL_WAITS) as http:
            raw, headers = signed(body)  # Retell signs its retry anew; the body is the same
            retried = await http.post(base, content=raw, headers=headers)
        answer = retried.json()
        assert retried.status_code == 200 and answer["ok"] is True and answer["gebucht"] is True, answer
        conn = await asyncpg.connect(make_url(database).set(drivername="postgresql").render_as_string())
        try:
            rows = await conn.fetch("SELECT status FROM appointments")
        finally:
            await conn.close()
        assert [r["status"] for r in rows] == ["confirmed"]
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(timeout=10)
        except subprocess.TimeoutExpired:
            second.kill()
