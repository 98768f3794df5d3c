"""A function call's first step: the call found or opened, and a write's key claimed, in one round
trip on PostgreSQL (`IdempotencyStore.claim_in_call`); on SQLite in separate statements.

The hostile cases first: an envelope that names someone else's call claims nothing it keeps, and
many first requests of one new call at once all find the one call."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select
from tests.integration.lookup.world import import_second_salon
from tests.integration.retell_adapter.conftest import CALLER, RetellClient

from rezeption.domain.clock import FixedClock
from rezeption.store.db import Database
from rezeption.store.tables import AppointmentRow, CallRow, IdempotencyRecordRow

STRANGER = "+4917699999999"
OTHER_AGENT, OTHER_NUMBER = "agent_friseur2", "+493012345679"  # the second salon's
BOOK = {"name": "Peter Schuster", "dienstleistung": "Bartpflege", "datum": "Donnerstag", "uhrzeit": "13 Uhr"}


async def count(database: Database, table: type) -> int:
    async with database.read() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def test_a_write_in_the_name_of_another_caller_leaves_no_key_and_no_booking(
    retell: RetellClient, database: Database
) -> None:
    opened = await retell.function("list_services", {}, call_id="call_peter")
    assert opened["ok"] is True
    envelope = {
        "name": "book_appointment",
        "call": {**(await _call_of(database, "call_peter")), "from_number": STRANGER},
        "args": BOOK,
    }
    refused = await retell.post("/retell/functions/book_appointment", envelope)
    assert refused.status_code == 403 and refused.json()["reason"] == "call_mismatch"
    assert await count(database, IdempotencyRecordRow) == 0  # the key it claimed is given back
    assert await count(database, AppointmentRow) == 0
    booked = await retell.function("book_appointment", BOOK, call_id="call_peter")
    assert booked["ok"] is True, booked  # the real caller's same request is not "busy"


async def test_a_write_naming_a_call_of_another_salon_claims_nothing_and_books_nothing(
    retell: RetellClient, database: Database, clock: FixedClock
) -> None:
    await import_second_salon(database, clock.now())
    opened = await retell.function("list_services", {}, call_id="call_peter")
    assert opened["ok"] is True
    envelope = {
        "name": "book_appointment",
        "call": {
            "call_id": "call_peter",
            "agent_id": OTHER_AGENT,
            "from_number": CALLER,
            "to_number": OTHER_NUMBER,
        },
        "args": BOOK,
    }
    refused = await retell.post("/retell/functions/book_appointment", envelope)
    assert refused.status_code == 403 and refused.json()["reason"] == "call_mismatch"
    assert await count(database, IdempotencyRecordRow) == 0
    assert await count(database, AppointmentRow) == 0
    booked = await retell.function("book_appointment", BOOK, call_id="call_peter")
    assert booked["ok"] is True, booked


async def test_a_first_write_opens_the_call_books_once_and_its_retry_replays(
    retell: RetellClient, database: Database
) -> None:
    first = await retell.function("book_appointment", BOOK, call_id="call_new")
    again = await retell.function("book_appointment", BOOK, call_id="call_new")
    assert first["ok"] is True, first
    assert again == first
    assert await count(database, AppointmentRow) == 1
    assert await count(database, IdempotencyRecordRow) == 1
    async with database.read() as session:
        call = (await session.scalars(select(CallRow).where(CallRow.retell_call_id == "call_new"))).one()
    assert call.tenant_id is not None and call.from_number == CALLER


async def test_first_requests_of_one_new_call_at_once_all_find_the_one_call(
    retell: RetellClient, database: Database
) -> None:
    requests: list[tuple[str, dict[str, Any]]] = [
        ("list_services", {}),
        ("get_opening_hours", {}),
        ("check_availability", {"dienstleistung": "Bartpflege", "datum": "Donnerstag", "uhrzeit": "13 Uhr"}),
        ("book_appointment", BOOK),
        ("book_appointment", {**BOOK, "uhrzeit": "15 Uhr"}),
        ("book_appointment", {**BOOK, "name": "Petra Schuster", "uhrzeit": "14 Uhr"}),
    ]
    replies = await asyncio.gather(
        *(retell.function(name, args, call_id="call_at_once") for name, args in requests)
    )
    assert all(r.get("reason") not in {"unknown_call", "call_mismatch", "unavailable"} for r in replies), (
        replies
    )
    assert [r["ok"] for r in replies[3:]] == [True, True, True], [r.get("reason") for r in replies[3:]]
    assert await count(database, CallRow) == 1
    assert await count(database, AppointmentRow) == 3


async def _call_of(database: Database, call_id: str) -> dict[str, Any]:
    async with database.read() as session:
        call = (await session.scalars(select(CallRow).where(CallRow.retell_call_id == call_id))).one()
    return {
        "call_id": call.retell_call_id,
        "agent_id": call.agent_id,
        "from_number": call.from_number,
        "to_number": call.to_number,
    }
