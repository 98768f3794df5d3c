"""A write's reply and facts are stored in a batch after the reply is sent (PostgreSQL): a duplicate
sent at once still gets the reply byte for byte, and the caller's next function call in the same
call reads the booking's facts and keeps its own newer ones (the runner settles the batch first)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from tests.integration.retell_adapter.conftest import RetellClient

from rezeption.store.db import Database
from rezeption.store.tables import AppointmentRow, CallRow, IdempotencyRecordRow

pytestmark = pytest.mark.postgres
BOOK = {"name": "Peter Schuster", "dienstleistung": "Bartpflege", "datum": "Donnerstag", "uhrzeit": "13 Uhr"}
ASK = {"dienstleistung": "Herrenschnitt", "datum": "Freitag", "uhrzeit": "10 Uhr"}


@pytest.fixture
def database_url(postgres_migrated: str) -> str:
    return postgres_migrated


def _batches_wait_a_minute(app: FastAPI) -> None:
    """Only what a request does (or the server's stop) stores a batch in these tests."""
    app.state.services.calls.replies.batches.interval = 60.0


async def _memory(database: Database, call_id: str) -> dict[str, Any]:
    async with database.read() as session:
        memory = await session.scalar(select(CallRow.memory).where(CallRow.retell_call_id == call_id))
    return dict(memory or {})


async def test_the_next_function_call_keeps_its_newer_facts_over_the_booking_s_batch(
    retell: RetellClient, database: Database, app: FastAPI
) -> None:
    _batches_wait_a_minute(app)
    booked = await retell.function("book_appointment", BOOK, call_id="call_next")
    assert booked["ok"] is True, booked
    booked_service = (await _memory(database, "call_next")).get("service")
    assert booked_service is None  # the booking's facts wait for their batch
    asked = await retell.function("check_availability", ASK, call_id="call_next")
    assert "ok" in asked, asked
    memory = await _memory(database, "call_next")
    async with database.read() as session:
        states = (await session.scalars(select(IdempotencyRecordRow.state))).all()
    assert states == ["done"]  # settled by the next function call of the call
    assert memory["name"] == "Peter Schuster"  # the booking's fact, stored
    # the newer facts, not the booking's Bartpflege on Thursday at 13:00
    assert (memory["service"], memory["time"]) == ("herrenhaarschnitt", "10:00"), memory


async def test_a_duplicate_sent_at_once_gets_the_batched_reply_byte_for_byte(
    retell: RetellClient, database: Database, app: FastAPI
) -> None:
    _batches_wait_a_minute(app)
    first, again = await asyncio.gather(
        retell.function("book_appointment", BOOK, call_id="call_twice"),
        retell.function("book_appointment", BOOK, call_id="call_twice"),
    )
    third = await retell.function("book_appointment", BOOK, call_id="call_twice")
    assert first["ok"] is True, first
    assert first == again == third
    async with database.read() as session:
        booked = await session.scalar(select(func.count()).select_from(AppointmentRow))
    assert booked == 1
