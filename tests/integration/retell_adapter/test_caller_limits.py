"""A caller or a bot cannot hoard the salon's slots: a number, or a name, holds at most the salon's
`max_active_per_caller` future appointments through the phone (4 in the demo salon); the next one
is refused with a sentence the agent can speak. The hostile cases: the same number giving other
names, other numbers giving the same name. The salon's own bookings are not limited, and a
cancellation frees a place."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from tests.integration.retell_adapter.conftest import RetellClient

from rezeption.booking.bookings import BookingRequest, Bookings

SLOTS = [("Donnerstag", "13 Uhr"), ("Donnerstag", "14 Uhr"), ("Freitag", "13 Uhr"), ("Freitag", "14 Uhr")]
FIFTH = ("Donnerstag", "15 Uhr")


def book(name: str, when: tuple[str, str]) -> dict[str, Any]:
    return {"name": name, "dienstleistung": "Bartpflege", "datum": when[0], "uhrzeit": when[1]}


async def test_one_number_holds_at_most_four_future_appointments_whatever_names_it_gives(
    retell: RetellClient,
) -> None:
    names = ["Peter Schuster", "Paul Schuster", "Petra Schuster", "Hans Meier"]
    for name, at in zip(names, SLOTS, strict=True):
        assert (await retell.function("book_appointment", book(name, at), call_id="call_hoard"))[
            "gebucht"
        ] is True
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
    for at in SLOTS:
        assert (await retell.function("book_appointment", book("Peter Schuster", at)))["gebucht"] is True
    refused = await retell.function("book_appointment", book("Peter Schuster", FIFTH))
    assert refused["reason"] == "too_many_appointments"
    start = datetime(2025, 11, 6, 15, tzinfo=ZoneInfo("Europe/Berlin"))
    result = await bookings.book(
        BookingRequest(tenant_id=salon_id, service="Bartpflege", start=start, customer_name="Peter Schuster",
                       phone_e164="+4915123456789", source="admin")
    )  # fmt: skip
    assert result.appointment.status.value == "confirmed"
