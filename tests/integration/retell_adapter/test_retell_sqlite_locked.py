"""SQLite locked by another process (an operator's sqlite3 shell, a second server): the caller hears
an apology before Retell stops waiting (8 s), never a 500, and nothing is half-written."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url
from tests.integration.retell_adapter.conftest import AGENT, CALLER, SALON_NUMBER, RetellClient

RETELL_WAITS = 8.0


@pytest.fixture
def database_url(sqlite_template: Path, tmp_path: Path) -> str:
    """SQLite only: another process holds its write lock."""
    path = tmp_path / "locked.db"
    path.write_bytes(sqlite_template.read_bytes())
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def other_process_lock(database_url: str) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(make_url(database_url).database or "", isolation_level=None, timeout=1)
    try:
        yield conn
    finally:
        conn.close()


async def test_a_write_against_a_locked_sqlite_gets_an_apology_in_time(
    retell: RetellClient, other_process_lock: sqlite3.Connection
) -> None:
    body = {
        "name": "book_appointment",
        "call": {"call_id": "call_lock", "agent_id": AGENT, "from_number": CALLER, "to_number": SALON_NUMBER},
        "args": {
            "name": "Peter Schuster",
            "dienstleistung": "Bartpflege",
            "datum": "Donnerstag",
            "uhrzeit": "13 Uhr",
        },
    }
    assert (
        await retell.post("/retell/functions/list_services", {**body, "name": "list_services", "args": {}})
    ).json()["ok"]
    other_process_lock.execute("BEGIN IMMEDIATE")
    try:
        raw = httpx.Request("POST", "http://x", json=body).content
        headers = {"X-Retell-Signature": retell.sign(raw), "Content-Type": "application/json"}
        response = await retell.http.post(
            "/retell/functions/book_appointment", content=raw, headers=headers, timeout=RETELL_WAITS
        )
    finally:
        other_process_lock.execute("ROLLBACK")
    answer = response.json()
    assert response.status_code == 200 and answer["ok"] is False, answer
    assert answer["reason"] in {"unavailable", "over_budget"}, answer
    retried = await retell.function("book_appointment", body["args"], call_id="call_lock")
    assert retried["ok"] is True, retried


async def test_a_read_against_a_locked_sqlite_still_answers(
    retell: RetellClient, other_process_lock: sqlite3.Connection
) -> None:
    """A read records its signature (a replay is refused) in a write: with the write lock held
    elsewhere, that record is given up after a moment and the read answers from what it can read
    (one that learns something for the call's memory needs the lock for that, and apologizes)."""
    await retell.function("list_services", {}, call_id="call_read_lock")  # the call is known
    other_process_lock.execute("BEGIN IMMEDIATE")
    try:
        answer = await retell.function("get_opening_hours", {}, call_id="call_read_lock")
    finally:
        other_process_lock.execute("ROLLBACK")
    assert answer["ok"] is True and "Dienstag" in answer["message"], answer
