"""A caller who changes their mind within one call: the same words asked again after a change are
a new request, never the replay of a reply the change made untrue; a retry is still a replay.

The clock stands on Monday 3 November 2025, 08:00 in Berlin; Friseur 1 opens on Tuesday.
"""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI
from sqlalchemy import delete, func, select
from tests.integration.retell_adapter.conftest import RetellClient, recorded_statements

from rezeption.store.db import Database
from rezeption.store.tables import AppointmentRow, CallRow, IdempotencyRecordRow

WEDNESDAY_NINE = {
    "name": "Maria Meier",
    "dienstleistung": "Damenhaarschnitt",
    "datum": "Mittwoch",
    "uhrzeit": "9 Uhr",
}


async def statuses_at(database: Database) -> list[tuple[str, str]]:
    """(status, local start) of every appointment, in order of start and status."""
    async with database.read() as session:
        rows = (await session.scalars(select(AppointmentRow))).all()
    return sorted((row.status, row.starts_at.isoformat()) for row in rows)


async def reference_of_the_one(retell: RetellClient) -> str:
    found = await retell.function("find_appointments", {})
    assert found["ok"] is True and len(found["termine"]) == 1, found
    return str(found["termine"][0]["referenz"])


async def test_booking_a_time_again_after_cancelling_it_books_it_again(
    retell: RetellClient, database: Database
) -> None:
    first = await retell.function("book_appointment", WEDNESDAY_NINE)
    assert first["gebucht"] is True
    cancelled = await retell.function("cancel_appointment", {"referenz": await reference_of_the_one(retell)})
    assert cancelled["storniert"] is True
    again = await retell.function("book_appointment", WEDNESDAY_NINE)
    assert again["ok"] is True and again["gebucht"] is True, again
    assert again["referenz"] != first["referenz"]
    assert await statuses_at(database) == [
        ("cancelled", "2025-11-05T08:00:00+00:00"),
        ("confirmed", "2025-11-05T08:00:00+00:00"),
    ]
    # Retell's retry of that last request is still a replay: the same reply, nothing booked twice
    assert await retell.function("book_appointment", WEDNESDAY_NINE) == again
    assert len(await statuses_at(database)) == 2


async def test_the_old_time_is_booked_again_after_the_appointment_moved_away(
    retell: RetellClient, database: Database
) -> None:
    await retell.function("book_appointment", WEDNESDAY_NINE)
    moved = await retell.function(
        "reschedule_appointment",
        {"referenz": await reference_of_the_one(retell), "neues_datum": "Mittwoch", "neue_uhrzeit": "11 Uhr"},
    )
    assert moved["verlegt"] is True, moved
    again = await retell.function("book_appointment", WEDNESDAY_NINE)
    assert again["gebucht"] is True and again["uhrzeit"] == "09:00", again
    assert [s for s in await statuses_at(database) if s[0] == "confirmed"] == [
        ("confirmed", "2025-11-05T08:00:00+00:00"),
        ("confirmed", "2025-11-05T10:00:00+00:00"),
    ]


async def test_a_cancel_retried_after_the_rebooking_is_not_run_again(
    retell: RetellClient, database: Database
) -> None:
    """Book, cancel, book the same again, cancel again: each step does what it says, and each
    step's retry right after it replays its reply without doing it twice."""
    replies = []
    for _ in range(2):
        booked = await retell.function("book_appointment", WEDNESDAY_NINE)
        assert booked["gebucht"] is True, booked
        assert await retell.function("book_appointment", WEDNESDAY_NINE) == booked
        cancel = {"referenz": await reference_of_the_one(retell)}
        cancelled = await retell.function("cancel_appointment", cancel)
        assert cancelled["storniert"] is True, cancelled
        assert await retell.function("cancel_appointment", cancel) == cancelled
        replies.append(booked)
    assert replies[0]["referenz"] != replies[1]["referenz"]
    assert await statuses_at(database) == [("cancelled", "2025-11-05T08:00:00+00:00")] * 2


async def test_a_read_back_without_a_change_leaves_the_booking_replayed(
    retell: RetellClient, database: Database
) -> None:
    """Asking to cancel, then not confirming, changes nothing: the booking said again in the same
    words is the same request, answered as before, not a second appointment."""
    first = await retell.function("book_appointment", WEDNESDAY_NINE)
    asked = await retell.function("cancel_appointment", {})
    assert asked["reason"] == "confirm_cancel", asked
    assert await retell.function("book_appointment", WEDNESDAY_NINE) == first
    assert await statuses_at(database) == [("confirmed", "2025-11-05T08:00:00+00:00")]


async def test_a_booking_whose_reply_never_came_is_the_callers_after_a_change_not_booked_twice(
    retell: RetellClient, database: Database
) -> None:
    """The booking committed but ran out of time ("Fragen Sie mich bitte gleich noch einmal"):
    its key was given back and nothing was learned. The caller then consents to be recognized (a
    change, so the same words get a new key) and the agent asks for the booking again: the
    appointment already there is answered as theirs, not booked a second time with another
    stylist or refused as taken."""
    first = await retell.function("book_appointment", WEDNESDAY_NINE)
    assert first["gebucht"] is True
    async with database.write() as session, session.begin():  # what running out of time leaves
        await session.execute(delete(IdempotencyRecordRow))
        call = (await session.scalars(select(CallRow))).one()
        call.memory = {k: v for k, v in call.memory.items() if k != "booked"}
    assert (await retell.function("record_consent", {"name": "Maria Meier"}))["gespeichert"] is True
    again = await retell.function("book_appointment", WEDNESDAY_NINE)
    assert again["ok"] is True and again["gebucht"] is True, again
    assert again["uhrzeit"] == "09:00" and again["mitarbeiter"] == first["mitarbeiter"], again
    assert await statuses_at(database) == [("confirmed", "2025-11-05T08:00:00+00:00")]


async def test_a_write_after_a_change_claims_only_its_own_generations_key(
    retell: RetellClient, app: FastAPI
) -> None:
    """The call's first step claimed the base key, which a request after a change never uses:
    it was given back at once (a DELETE) before the generation's key was claimed."""
    first = await retell.function("book_appointment", WEDNESDAY_NINE)
    assert first["gebucht"] is True, first
    with recorded_statements(app) as statements:
        second = await retell.function("book_appointment", {**WEDNESDAY_NINE, "uhrzeit": "11 Uhr"})
    assert second["gebucht"] is True, second
    released = [s for s in statements if "DELETE FROM idempotency_records" in s]
    assert not released, statements


async def replies_stored(database: Database) -> None:
    """Wait (bounded) until no reply is still running: its batch stored it."""
    for _ in range(100):
        async with database.read() as session:
            running = await session.scalar(
                select(func.count())
                .select_from(IdempotencyRecordRow)
                .where(IdempotencyRecordRow.state == "running")
            )
        if not running:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("a reply was not stored within 2 s")


def crash_before_the_batch(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on no batch is stored: what our process killed within a batch's 50 ms leaves behind
    (the queued replies, and the memory queued with them). SQLite stores each reply at once."""

    async def never_stored(batch: object) -> None:
        return None

    monkeypatch.setattr(app.state.retell_runner.idempotency.batches, "_store_or_drop", never_stored)


async def test_a_cancel_whose_batch_was_lost_still_lets_the_same_booking_book_again(
    retell: RetellClient, database: Database, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await retell.function("book_appointment", WEDNESDAY_NINE)
    assert first["gebucht"] is True, first
    await replies_stored(database)
    referenz = await reference_of_the_one(retell)
    crash_before_the_batch(app, monkeypatch)
    cancelled = await retell.function("cancel_appointment", {"referenz": referenz})
    assert cancelled["storniert"] is True, cancelled
    again = await retell.function("book_appointment", WEDNESDAY_NINE)
    assert again.get("gebucht") is True and again["referenz"] != first["referenz"], again
    assert await statuses_at(database) == [
        ("cancelled", "2025-11-05T08:00:00+00:00"),
        ("confirmed", "2025-11-05T08:00:00+00:00"),
    ]


async def test_a_move_back_whose_batch_was_lost_is_not_contradicted_by_a_replay(
    retell: RetellClient, database: Database, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Move to 11, move back to 9 (its batch lost), then the first move's words again: whatever
    the caller hears must be what the book says, never the old "verlegt auf 11 Uhr" replayed over
    an appointment at 9."""
    await retell.function("book_appointment", WEDNESDAY_NINE)
    to_eleven = {
        "referenz": await reference_of_the_one(retell),
        "neues_datum": "Mittwoch",
        "neue_uhrzeit": "11 Uhr",
    }
    moved = await retell.function("reschedule_appointment", to_eleven)
    assert moved["verlegt"] is True, moved
    await replies_stored(database)
    back = {
        "referenz": await reference_of_the_one(retell),
        "neues_datum": "Mittwoch",
        "neue_uhrzeit": "9 Uhr",
    }
    crash_before_the_batch(app, monkeypatch)
    moved_back = await retell.function("reschedule_appointment", back)
    assert moved_back["verlegt"] is True and moved_back["uhrzeit"] == "09:00", moved_back
    again = await retell.function("reschedule_appointment", to_eleven)
    heard_eleven = again.get("verlegt") is True and again.get("uhrzeit") == "11:00"
    confirmed = [at for status, at in await statuses_at(database) if status == "confirmed"]
    assert confirmed == ["2025-11-05T10:00:00+00:00" if heard_eleven else "2025-11-05T08:00:00+00:00"], (
        again,
        confirmed,
    )
