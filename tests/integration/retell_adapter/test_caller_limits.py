"""A caller or a bot cannot hoard the salon's slots: a number, or a name, holds at most the salon's
`max_active_per_caller` future appointments through the phone (4 in the demo salon), and one call
books at most `max_bookings_per_call` (3); the next one is refused with a sentence the agent can
speak. The hostile cases: the same number giving other names, other numbers giving the same name,
and (issue 18, security) a withheld number giving a new name and a new callback number each time,
which before the per-call limit booked without end in one call. The salon's own bookings are not
limited, a move is not another booking, and a cancellation frees a place."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from tests.conftest import DEMO_SALON
from tests.integration.retell_adapter.conftest import RetellClient

from rezeption.booking.bookings import BookingRequest, Bookings
from rezeption.domain.clock import FixedClock
from rezeption.domain.errors import TooManyInOneCall
from rezeption.store.db import Database
from rezeption.store.salon_file import SalonFileError, parse_salon
from rezeption.store.salon_import import import_salon
from rezeption.store.tables import AppointmentRow

SLOTS = [("Donnerstag", "13 Uhr"), ("Donnerstag", "14 Uhr"), ("Freitag", "13 Uhr"), ("Freitag", "14 Uhr")]
FIFTH = ("Donnerstag", "15 Uhr")
WITHHELD = {"from_number": None}  # Retell sends no number when the caller withholds it
STRANGERS = ["Anna Eins", "Bruno Zwei", "Carla Drei", "Dora Vier"]


def book(name: str, when: tuple[str, str]) -> dict[str, Any]:
    return {"name": name, "dienstleistung": "Bartpflege", "datum": when[0], "uhrzeit": when[1]}


async def test_one_number_holds_at_most_four_future_appointments_whatever_names_it_gives(
    retell: RetellClient,
) -> None:
    names = ["Peter Schuster", "Paul Schuster", "Petra Schuster", "Hans Meier"]
    for n, (name, at) in enumerate(zip(names, SLOTS, strict=True)):  # a call each: one call books 3
        booked = await retell.function("book_appointment", book(name, at), call_id=f"call_hoard_{n}a")
        assert booked["gebucht"] is True, booked
    fifth = await retell.function("book_appointment", book("Erika Muster", FIFTH), call_id="call_hoard_2")
    assert fifth["ok"] is False and fifth["reason"] == "too_many_appointments"
    assert "schon 4 Termine" in fifth["message"] and "persönlich" in fifth["message"]

    listed = await retell.function("find_appointments", {"name": "Peter Schuster"}, call_id="call_hoard_3")
    referenz = listed["termine"][0]["referenz"] if listed.get("termine") else listed.get("referenz")
    cancelled = await retell.function("cancel_appointment", {"referenz": referenz, "bestaetigt": True},
                                      call_id="call_hoard_3")  # fmt: skip
    assert cancelled["ok"] is True, cancelled
    again = await retell.function("book_appointment", book("Erika Muster", FIFTH), call_id="call_hoard_4")
    assert again["gebucht"] is True, "a cancellation frees a place"


async def test_one_name_from_many_numbers_holds_at_most_four(retell: RetellClient) -> None:
    for n, at in enumerate(SLOTS):
        answer = await retell.function(
            "book_appointment",
            book("Max Hamster", at),
            call_id=f"call_bot_{n}",
            from_number=f"+49151000000{n}",
        )
        assert answer["gebucht"] is True, answer
    refused = await retell.function(
        "book_appointment", book("max  HAMSTER", FIFTH), call_id="call_bot_9", from_number="+491510000009"
    )
    assert refused["reason"] == "too_many_appointments", refused


async def test_the_salons_own_bookings_are_not_limited(
    retell: RetellClient, bookings: Bookings, salon_id: int
) -> None:
    for n, at in enumerate(SLOTS):
        booked = await retell.function("book_appointment", book("Peter Schuster", at), call_id=f"call_{n}")
        assert booked["gebucht"] is True, booked
    refused = await retell.function("book_appointment", book("Peter Schuster", FIFTH))
    assert refused["reason"] == "too_many_appointments"
    start = datetime(2025, 11, 6, 15, tzinfo=ZoneInfo("Europe/Berlin"))
    result = await bookings.book(
        BookingRequest(tenant_id=salon_id, service="Bartpflege", start=start, customer_name="Peter Schuster",
                       phone_e164="+4915123456789", source="admin")
    )  # fmt: skip
    assert result.appointment.status.value == "confirmed"


async def active_in_call(database: Database, call_id: str) -> int:
    async with database.read() as session:
        query = select(func.count()).where(
            AppointmentRow.call_id == call_id, AppointmentRow.status.in_(["pending", "confirmed"])
        )
        return int(await session.scalar(query) or 0)


async def test_a_withheld_number_with_a_new_name_and_number_each_time_books_at_most_three_in_one_call(
    retell: RetellClient, database: Database
) -> None:
    answers = []
    for n, (name, at) in enumerate(zip(STRANGERS, SLOTS, strict=True)):
        args = {**book(name, at), "telefon": f"0151 2000000{n}"}  # a new callback number each time too
        answers.append(await retell.function("book_appointment", args, call_id="call_anon", **WITHHELD))
    assert [a.get("gebucht") for a in answers[:3]] == [True, True, True], answers
    fourth = answers[3]
    assert fourth["ok"] is False and fourth["reason"] == "too_many_in_call", fourth
    assert "In diesem Gespräch" in fourth["message"] and "persönlich" in fourth["message"]
    assert "referenz" not in fourth
    assert await active_in_call(database, "call_anon") == 3

    again = await retell.function("book_appointment", book("Emil Fuenf", FIFTH), call_id="call_anon",
                                  **WITHHELD)  # fmt: skip
    assert again["reason"] == "too_many_in_call", "another name and time in the same call: still no"
    retry = await retell.function(
        "book_appointment", {**book(STRANGERS[2], SLOTS[2]), "telefon": "0151 20000002"}, call_id="call_anon",
        **WITHHELD,
    )  # fmt: skip
    assert retry["gebucht"] is True and retry["referenz"] == answers[2]["referenz"], "a retry is the reply"
    assert await active_in_call(database, "call_anon") == 3


async def test_a_move_in_the_call_is_no_new_booking_and_a_cancellation_frees_a_place(
    retell: RetellClient, database: Database
) -> None:
    for name, at in zip(STRANGERS[:3], SLOTS[:3], strict=True):
        assert (await retell.function("book_appointment", book(name, at), call_id="call_busy"))["gebucht"]
    move = {"name": STRANGERS[0], "neues_datum": "Samstag", "neue_uhrzeit": "10 Uhr"}
    read_back = await retell.function("reschedule_appointment", move, call_id="call_busy")
    moved = await retell.function(
        "reschedule_appointment", {**move, "referenz": read_back["referenz"]}, call_id="call_busy"
    )
    assert moved["verlegt"] is True, moved
    assert await active_in_call(database, "call_busy") == 3
    refused = await retell.function("book_appointment", book(STRANGERS[3], SLOTS[3]), call_id="call_busy")
    assert refused["reason"] == "too_many_in_call", refused

    ask = {"name": STRANGERS[1]}
    read_back = await retell.function("cancel_appointment", ask, call_id="call_busy")
    cancelled = await retell.function(
        "cancel_appointment", {**ask, "referenz": read_back["referenz"]}, call_id="call_busy"
    )
    assert cancelled["storniert"] is True, cancelled
    fourth = await retell.function("book_appointment", book(STRANGERS[3], SLOTS[3]), call_id="call_busy")
    assert fourth["gebucht"] is True, fourth
    assert await active_in_call(database, "call_busy") == 3


@pytest.fixture
async def one_per_call(database: Database, clock: FixedClock, salon_id: int) -> int:
    """The demo salon with `max_bookings_per_call: 1` in its file."""
    text = DEMO_SALON.read_text(encoding="utf-8")
    text = text.replace("max_bookings_per_call: 3", "max_bookings_per_call: 1")
    return (await import_salon(database, parse_salon(text), now=clock.now())).tenant_id


async def test_the_per_call_limit_is_the_salons_setting_and_the_salon_itself_is_not_limited(
    bookings: Bookings, one_per_call: int
) -> None:
    start = datetime(2025, 11, 6, 13, tzinfo=ZoneInfo("Europe/Berlin"))

    def request(minutes: int, source: str = "phone") -> BookingRequest:
        return BookingRequest(
            tenant_id=one_per_call, service="Bartpflege", start=start.replace(minute=minutes),
            customer_name=f"Gast {minutes}", call_id="call_one", source=source,
        )  # fmt: skip

    assert (await bookings.book(request(0))).appointment.status.value == "confirmed"
    with pytest.raises(TooManyInOneCall) as refused:
        await bookings.book(request(30))
    assert "In diesem Gespräch habe ich schon einen Termin eingetragen" in refused.value.message
    assert (await bookings.book(request(30, source="admin"))).appointment.status.value == "confirmed"


def test_a_salon_file_cannot_switch_the_per_call_limit_off() -> None:
    text = DEMO_SALON.read_text(encoding="utf-8")
    for bad in ("0", "-1", "1000"):
        with pytest.raises(SalonFileError, match="max_bookings_per_call"):
            parse_salon(text.replace("max_bookings_per_call: 3", f"max_bookings_per_call: {bad}"))
