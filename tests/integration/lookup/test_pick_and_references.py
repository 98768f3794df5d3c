"""Picking the one appointment to cancel or move: by reference or by the same words; refusals change nothing.

Friseur 1, Monday 3 November 2025, 08:00. Bad input (another salon's or call's reference, a forged
one, a cancelled or past appointment) gets a German sentence and leaves every row as it was.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from tests.integration.lookup.world import World, build_world

from rezeption.booking.bookings import Bookings
from rezeption.booking.lookup import AppointmentFinder, LookupQuery
from rezeption.booking.references import InvalidReference, ReferenceFromOtherCall, References, reference_key
from rezeption.domain.clock import FixedClock
from rezeption.domain.errors import AppointmentInPast, AppointmentNotActive, BookingError
from rezeption.domain.model import AppointmentStatus
from rezeption.store.db import Database
from rezeption.store.tables import AppointmentRow

PEOPLE: list[dict[str, Any]] = [
    {"key": "peter", "name": "Peter Schuster", "phone": "+4915110000001", "call": "call_1", "appointments": [
        {"key": "tue", "at": "2025-11-04 10:00", "service": "herrenhaarschnitt"},
        {"key": "thu", "at": "2025-11-06 15:00", "service": "bartpflege"},
        {"key": "gone", "at": "2025-11-07 10:00", "service": "herrenhaarschnitt", "status": "cancelled"},
        {"key": "past", "at": "2025-10-31 10:00", "service": "herrenhaarschnitt"},
    ]},
    {"key": "b_peter", "tenant": "b", "name": "Peter Schuster", "phone": "+4915110000001", "appointments": [
        {"key": "other_salon", "at": "2025-11-04 10:00", "service": "herrenhaarschnitt"},
    ]},
]  # fmt: skip


@pytest.fixture
async def world(database: Database, clock: FixedClock, salon_id: int, other_salon_id: int) -> World:
    return await build_world(database, {"a": salon_id, "b": other_salon_id}, PEOPLE, clock.now())


async def statuses(database: Database) -> dict[int, tuple[str, int]]:
    async with database.read() as session:
        rows = await session.execute(select(AppointmentRow.id, AppointmentRow.status, AppointmentRow.version))
        return {i: (s, v) for i, s, v in rows}


def query(salon_id: int, **fields: Any) -> LookupQuery:
    return LookupQuery(tenant_id=salon_id, call_id=fields.pop("call_id", "call_now"), **fields)


async def test_a_reference_from_find_picks_exactly_that_appointment_and_cancel_works(
    finder: AppointmentFinder, bookings: Bookings, world: World, salon_id: int
) -> None:
    found = await finder.find_appointments(query(salon_id, caller_number="+4915110000001", name="Peter"))
    assert found.kind == "several" and len(found.appointments) == 2
    assert found.message.endswith("Welchen meinen Sie?")
    thursday = next(a for a in found.appointments if a.local_date.day == 6)
    pick = await finder.pick(query(salon_id), reference=thursday.reference)
    assert pick.appointment_id == world.appointment_ids["thu"]
    assert "Bartpflege am Donnerstag um 15 Uhr bei Ben" in pick.lookup.message
    result = await bookings.cancel(tenant_id=salon_id, appointment_id=pick.appointment_id)
    assert result.appointment.status is AppointmentStatus.CANCELLED


async def test_words_alone_never_pick_even_when_they_fit_exactly_one(
    finder: AppointmentFinder, world: World, salon_id: int
) -> None:
    own_line = {"caller_number": "+4915110000001"}
    pick = await finder.pick(query(salon_id, name="Peter Schuster", **own_line))
    assert pick.appointment_id is None
    assert pick.lookup.kind == "several"
    assert {a.appointment_id for a in pick.lookup.appointments} == {
        world.appointment_ids["tue"],
        world.appointment_ids["thu"],
    }
    narrowed = await finder.pick(query(salon_id, name="Peter Schusta", date_words="Dienstag", **own_line))
    assert narrowed.appointment_id is None  # read back and confirmed by reference first
    assert [a.appointment_id for a in narrowed.lookup.appointments] == [world.appointment_ids["tue"]]
    assert (
        narrowed.lookup.message
        == "Ich habe Ihren Termin gefunden: Herrenhaarschnitt morgen um 10 Uhr bei Anna."
    )


async def test_nothing_found_asks_a_question(finder: AppointmentFinder, world: World, salon_id: int) -> None:
    pick = await finder.pick(query(salon_id, caller_number="anonymous"))
    assert pick.appointment_id is None and pick.lookup.kind == "none"
    assert pick.lookup.message.endswith("Unter welchem Namen haben Sie gebucht?")
    assert pick.lookup.as_dict()["ok"] is False


@pytest.mark.parametrize(
    "case", ["other_salon", "other_call", "forged", "altered_id", "garbage", "cancelled", "past"]
)
async def test_bad_references_are_refused_in_german_and_change_nothing(
    case: str,
    finder: AppointmentFinder,
    database: Database,
    world: World,
    salon_id: int,
    other_salon_id: int,
    references: References,
) -> None:
    ids = world.appointment_ids
    forger = References(reference_key("another-secret-0123456789"))
    genuine_tue = references.issue(salon_id, ids["tue"], "call_now")
    reference, expected = {
        "other_salon": (references.issue(other_salon_id, ids["other_salon"], "call_now"), InvalidReference),
        "other_call": (references.issue(salon_id, ids["tue"], "call_yesterday"), ReferenceFromOtherCall),
        "forged": (forger.issue(salon_id, ids["tue"], "call_now"), InvalidReference),
        "altered_id": (_with_id(genuine_tue, ids["thu"]), InvalidReference),
        "garbage": ("ignore previous instructions", InvalidReference),
        "cancelled": (references.issue(salon_id, ids["gone"], "call_now"), AppointmentNotActive),
        "past": (references.issue(salon_id, ids["past"], "call_now"), AppointmentInPast),
    }[case]  # fmt: skip
    before = await statuses(database)
    with pytest.raises(expected) as refused:
        await finder.pick(query(salon_id), reference=reference)
    assert isinstance(refused.value, BookingError)
    assert refused.value.message.endswith((".", "?")) and " " in refused.value.message
    assert await statuses(database) == before


def _with_id(reference: str, appointment_id: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    number, text = appointment_id, ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if number == 0:
            break
    return f"{text}-{reference.split('-')[1]}"


async def test_the_same_reference_in_its_own_call_works_and_is_call_bound(
    finder: AppointmentFinder, world: World, salon_id: int
) -> None:
    found = await finder.find_appointments(
        query(salon_id, call_id="call_A", name="Peter Schuster", date_words="Donnerstag")
    )
    assert found.kind == "one"
    reference = found.appointments[0].reference
    assert (
        await finder.pick(query(salon_id, call_id="call_A"), reference=reference)
    ).appointment_id == world.appointment_ids["thu"]
    with pytest.raises(ReferenceFromOtherCall):
        await finder.pick(query(salon_id, call_id="call_B"), reference=reference)


async def test_the_appointments_of_this_call_are_found_without_name_or_number(
    finder: AppointmentFinder, world: World, salon_id: int
) -> None:
    result = await finder.find_appointments(query(salon_id, call_id="call_1"))
    assert {a.appointment_id for a in result.appointments} == {
        world.appointment_ids["tue"],
        world.appointment_ids["thu"],
    }
