"""Writes a retry recovers (and traces) commit without waiting for the disk on PostgreSQL
(`direct.relaxed_commit`); the booking itself never does.

A function call's first step (the call and the key's claim) and its stored reply commit with
`synchronous_commit = off`, set by the statement itself for its own transaction. What that may
lose, in a crash of PostgreSQL, is a reply written after a durable booking: the hostile case is
that loss, and the retry must replay the booking, not make a second one."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text, update
from tests.integration.retell_adapter.conftest import AGENT, SALON_NUMBER, RetellClient, recorded_statements

from rezeption.bootstrap import build
from rezeption.domain.clock import FixedClock
from rezeption.settings import Settings
from rezeption.store import direct
from rezeption.store.db import Database
from rezeption.store.idempotency import FINISH_RELAXED
from rezeption.store.tables import AppointmentRow, IdempotencyRecordRow

pytestmark = pytest.mark.postgres
STRANGER = "+4917699999999"
BOOK = {"name": "Peter Schuster", "dienstleistung": "Bartpflege", "datum": "Donnerstag", "uhrzeit": "13 Uhr"}


@pytest.fixture
def database_url(postgres_migrated: str) -> str:
    return postgres_migrated


async def test_a_relaxed_statement_relaxes_its_own_transaction_and_nothing_after_it(
    database: Database,
) -> None:
    async with database.transaction() as conn:
        before = (await conn.execute(text("SHOW synchronous_commit"))).scalar_one()
        await conn.execute(FINISH_RELAXED, {"k": "nobody", "reply": {}})  # SQLAlchemy's own path
        inside = (await conn.execute(text("SHOW synchronous_commit"))).scalar_one()
    async with database.statement(writes=True) as conn:
        await direct.rows(conn, FINISH_RELAXED, {"k": "nobody", "reply": {}})
        after = (await conn.execute(text("SHOW synchronous_commit"))).scalar_one()
    assert (before, inside, after) == ("on", "off", "on")


async def test_the_direct_path_refuses_a_relaxed_statement_inside_a_transaction(database: Database) -> None:
    """It would relax the whole transaction (found in review: nothing but care kept them apart)."""
    with pytest.raises(ValueError, match="autocommit"):
        async with database.transaction() as conn:
            await direct.rows(conn, FINISH_RELAXED, {"k": "nobody", "reply": {}})


async def test_only_the_call_claim_and_the_reply_are_relaxed_never_the_booking(
    retell: RetellClient, app: FastAPI
) -> None:
    with recorded_statements(app) as statements:
        booked = await retell.function("book_appointment", BOOK, call_id="call_relaxed")
        for _ in range(100):  # the trace is written in the background, after the reply
            if any("INSERT INTO function_call_traces" in s for s in statements):
                break
            await asyncio.sleep(0.05)
    assert booked["ok"] is True, booked
    relaxed = [s for s in statements if "relaxed_commit" in s]
    durable = [s for s in statements if "relaxed_commit" not in s]
    assert len(relaxed) == 3, relaxed
    assert any("INSERT INTO idempotency_records" in s for s in relaxed)
    assert any("UPDATE idempotency_records" in s for s in relaxed)
    assert any("INSERT INTO function_call_traces" in s for s in relaxed)
    assert [s for s in durable if "INSERT INTO appointments" in s], statements
    assert not [s for s in relaxed if "appointments" in s or "customers" in s]


async def test_a_read_waits_for_no_disk_flush(retell: RetellClient, app: FastAPI) -> None:
    """A read writes two things on its way: its signature's first sight (with the call's read)
    and what the caller said (the call's memory). Neither is a booking; both commit relaxed."""
    await retell.function("check_availability", {"dienstleistung": "Bartpflege"}, call_id="call_read")
    asked = {"dienstleistung": "Bartpflege", "datum": "Donnerstag", "uhrzeit": "13 Uhr"}
    with recorded_statements(app) as statements:
        answer = await retell.function("check_availability", asked, call_id="call_read")
    assert "datum" in answer, answer
    writes = [s for s in statements if "seen_requests" in s or "UPDATE calls" in s]
    assert any("INSERT INTO seen_requests" in s for s in writes), statements
    assert any("UPDATE calls" in s for s in writes), statements
    assert all("relaxed_commit" in s for s in writes), writes


async def test_a_reply_lost_after_a_durable_booking_is_replayed_not_booked_twice(
    retell: RetellClient, database: Database, clock: FixedClock
) -> None:
    first = await retell.function("book_appointment", BOOK, call_id="call_lost_reply")
    assert first["ok"] is True, first
    await _reply_stored(database, "book_appointment")  # stored a moment after it was sent
    # What a crash of PostgreSQL may leave: the booking (durable) without its reply (relaxed),
    # the key still running, its owner's lease run out
    async with database.transaction() as conn:
        lost = await conn.execute(
            update(IdempotencyRecordRow).values(
                state="running", reply=None, locked_until=clock.now() - timedelta(seconds=1)
            )
        )
    assert lost.rowcount == 1
    again = await retell.function("book_appointment", BOOK, call_id="call_lost_reply")
    # the same appointment, told as already booked (the use case replays it by the same key)
    assert again["ok"] is True and again.get("schon_gebucht") is True, again
    assert {k: v for k, v in again.items() if k not in ("message", "schon_gebucht")} == {
        k: v for k, v in first.items() if k != "message"
    }
    async with database.read() as session:
        booked = await session.scalar(select(func.count()).select_from(AppointmentRow))
    assert booked == 1


async def _reply_stored(database: Database, scope: str) -> None:
    """Wait (bounded) for the reply of `scope`'s key: it is stored in a batch after it is sent."""
    for _ in range(100):
        async with database.read() as session:
            state = await session.scalar(
                select(IdempotencyRecordRow.state).where(IdempotencyRecordRow.scope == scope)
            )
        if state == "done":
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the reply of {scope} was not stored within 2 s")


async def _lose_reply(database: Database, clock: FixedClock, scope: str) -> None:
    """What a crash may leave after a durable change (its reply stored first, as it would have
    been): the key of `scope` running, its reply gone, its owner's lease run out."""
    await _reply_stored(database, scope)
    async with database.transaction() as conn:
        lost = await conn.execute(
            update(IdempotencyRecordRow)
            .where(IdempotencyRecordRow.scope == scope)
            .values(state="running", reply=None, locked_until=clock.now() - timedelta(seconds=1))
        )
    assert lost.rowcount == 1


async def test_a_cancel_whose_reply_was_lost_is_replayed_not_refused_as_already_cancelled(
    retell: RetellClient, database: Database, clock: FixedClock
) -> None:
    """Found in review: the retry met "Dieser Termin ist bereits storniert" from the lookup before the
    use case could replay the cancel by its key, and that refusal became the key's reply."""
    booked = await retell.function("book_appointment", BOOK, call_id="call_cancel_lost")
    cancel = {"name": BOOK["name"], "referenz": booked["referenz"]}
    first = await retell.function("cancel_appointment", cancel, call_id="call_cancel_lost")
    assert first["ok"] is True and first["storniert"] is True, first
    await _lose_reply(database, clock, "cancel_appointment")
    # the hostile side: a stranger sending the very same request from another number hears no
    # replay of someone else's cancel
    stranger = await retell.post(
        "/retell/functions/cancel_appointment",
        {
            "name": "cancel_appointment",
            "call": {"call_id": "call_cancel_lost", "agent_id": AGENT, "from_number": STRANGER,
                     "to_number": SALON_NUMBER},
            "args": cancel,
        },
    )  # fmt: skip
    assert stranger.status_code == 403 and stranger.json()["reason"] == "call_mismatch", stranger.text
    assert "storniert" not in stranger.json() and BOOK["name"] not in stranger.text
    again = await retell.function("cancel_appointment", cancel, call_id="call_cancel_lost")
    assert again["ok"] is True and again["storniert"] is True, again


async def test_a_move_whose_reply_was_lost_is_replayed_with_its_new_time(
    retell: RetellClient, database: Database, clock: FixedClock
) -> None:
    booked = await retell.function("book_appointment", BOOK, call_id="call_move_lost")
    move = {
        "name": BOOK["name"],
        "referenz": booked["referenz"],
        "neues_datum": "Donnerstag",
        "neue_uhrzeit": "15 Uhr",
    }
    first = await retell.function("reschedule_appointment", move, call_id="call_move_lost")
    assert first["ok"] is True and first["verlegt"] is True, first
    await _lose_reply(database, clock, "reschedule_appointment")
    again = await retell.function("reschedule_appointment", move, call_id="call_move_lost")
    assert again["ok"] is True and again["verlegt"] is True, again
    assert (again["datum"], again["uhrzeit"]) == (first["datum"], first["uhrzeit"])
    async with database.read() as session:
        active = await session.scalar(
            select(func.count()).select_from(AppointmentRow).where(AppointmentRow.status == "confirmed")
        )
    assert active == 1


async def test_a_different_cancel_of_a_cancelled_appointment_is_still_refused(retell: RetellClient) -> None:
    """The hostile side of the replay: only the change this key made is replayed; another request
    (another key) for an appointment already cancelled hears that it is."""
    booked = await retell.function("book_appointment", BOOK, call_id="call_cancel_twice")
    first = await retell.function(
        "cancel_appointment",
        {"name": BOOK["name"], "referenz": booked["referenz"]},
        call_id="call_cancel_twice",
    )
    assert first["ok"] is True, first
    other = await retell.function(
        "cancel_appointment", {"name": "Peter", "referenz": booked["referenz"]}, call_id="call_cancel_twice"
    )
    assert other["ok"] is False and other["reason"] == "appointment_not_active", other
    moved = await retell.function(
        "reschedule_appointment",
        {
            "name": BOOK["name"],
            "referenz": booked["referenz"],
            "neues_datum": "Donnerstag",
            "neue_uhrzeit": "16 Uhr",
        },
        call_id="call_cancel_twice",
    )
    assert moved["ok"] is False and moved["reason"] == "appointment_not_active", moved


async def test_a_booking_retried_after_it_was_cancelled_is_told_cancelled_not_promised_a_call(
    retell: RetellClient, database: Database, clock: FixedClock, database_url: str
) -> None:
    """The booking's reply was lost, the salon cancelled the appointment since, and the agent
    retries the booking with its key: the use case replays the appointment by the key. The caller
    hears that it is cancelled, and is offered a new one; before, they heard "Ihr Termin ist
    vorgemerkt, aber noch nicht bestätigt. Wir melden uns bei Ihnen", and nobody would. (A cancel
    by the caller in the same call makes the same words a new booking: `test_change_of_mind`.)"""
    booked = await retell.function("book_appointment", BOOK, call_id="call_cancelled_since")
    assert booked["ok"] is True, booked
    await _lose_reply(database, clock, "book_appointment")
    async with database.read() as session:
        row = (await session.scalars(select(AppointmentRow))).one()
    salon = build(Settings(database_url=database_url, environment="test"), clock=clock)
    try:
        await salon.bookings.cancel(tenant_id=row.tenant_id, appointment_id=row.id, source="admin")
    finally:
        await salon.close()

    again = await retell.function("book_appointment", BOOK, call_id="call_cancelled_since")
    assert again["ok"] is False and again["reason"] == "appointment_not_active", again
    assert "storniert" in again["message"] and "melden" not in again["message"], again
    async with database.read() as session:
        statuses = (await session.scalars(select(AppointmentRow.status))).all()
    assert statuses == ["cancelled"], "nothing booked again behind the caller's back"
