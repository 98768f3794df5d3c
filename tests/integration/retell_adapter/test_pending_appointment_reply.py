"""A caller who wants to move an appointment whose booking at the calendar is still being settled
(pending here) hears a sentence the agent can speak, and that refusal passes with time: asked again
once the appointment is settled, the same request is decided anew, not answered from the stored
"no" of the same call (as a refusal kept under the request's idempotency key would be)."""

from __future__ import annotations

from sqlalchemy import update
from tests.integration.retell_adapter.conftest import RetellClient

from rezeption.store.db import Database
from rezeption.store.tables import AppointmentRow


async def set_status(database: Database, status: str) -> None:
    async with database.write() as session:
        await session.execute(update(AppointmentRow).values(status=status))
        await session.commit()


async def test_a_pending_appointment_is_not_moved_and_the_refusal_is_not_replayed(
    retell: RetellClient, database: Database
) -> None:
    booked = await retell.function(
        "book_appointment",
        {"name": "Peter Schuster", "dienstleistung": "Bartpflege", "datum": "Donnerstag", "uhrzeit": "12:00"},
        call_id="call_book",
    )
    assert booked["gebucht"] is True, booked
    await set_status(database, "pending")  # as if its booking at Cal.com were still in doubt
    move = {"name": "Peter Schuster", "neues_datum": "Freitag", "neue_uhrzeit": "14 Uhr"}
    read_back = await retell.function("reschedule_appointment", move, call_id="call_move")
    ask = {**move, "referenz": read_back["referenz"]}

    refused = await retell.function("reschedule_appointment", ask, call_id="call_move")
    assert (refused["ok"], refused["reason"]) == (False, "appointment_pending"), refused
    assert "in ein paar Minuten noch einmal" in refused["message"]

    await set_status(database, "confirmed")  # settled meanwhile
    moved = await retell.function("reschedule_appointment", ask, call_id="call_move")
    assert moved.get("verlegt") is True, moved
