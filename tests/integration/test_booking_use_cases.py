"""Booking, cancelling and rescheduling at Friseur 1, on SQLite and PostgreSQL.

The clock stands on Monday 3 November 2025, 08:00 Berlin; the salon is open Tuesday to Saturday.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from tests.conftest import DEMO_SALON, berlin

from rezeption.booking.bookings import BookingRequest, Bookings
from rezeption.domain.clock import FixedClock
from rezeption.domain.errors import (
    AppointmentInPast,
    AppointmentNotActive,
    AppointmentNotFound,
    BookingError,
    IdempotencyConflict,
    InvalidRequest,
    NotBookable,
    SlotTaken,
    StaffDoesNotOfferService,
    TooLateToChange,
    UnknownService,
    UnknownStaff,
)
from rezeption.domain.model import AppointmentStatus
from rezeption.store.db import Database
from rezeption.store.salon_file import read_salon
from rezeption.store.salon_import import import_salon
from rezeption.store.tables import AppointmentEventRow, AppointmentRow, CustomerRow

TUESDAY_10 = berlin(2025, 11, 4, 10, 0)


def request(salon_id: int, **changes: object) -> BookingRequest:
    base: dict[str, object] = {
        "tenant_id": salon_id,
        "service": "Herrenhaarschnitt",
        "start": TUESDAY_10,
        "customer_name": "Peter Schuster",
        "phone_e164": "+4915123456789",
        "call_id": "call_1",
        "idempotency_key": "k1",
    }
    base.update(changes)
    return BookingRequest(**base)  # type: ignore[arg-type]


async def rows(database: Database, table: type) -> int:
    async with database.read() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def events(database: Database, appointment_id: int) -> list[str]:
    async with database.read() as session:
        found = await session.scalars(
            select(AppointmentEventRow.kind)
            .where(AppointmentEventRow.appointment_id == appointment_id)
            .order_by(AppointmentEventRow.id)
        )
        return list(found)


async def test_a_booking_is_confirmed_with_the_first_free_stylist_and_logged(
    bookings: Bookings, database: Database, salon_id: int
) -> None:
    result = await bookings.book(request(salon_id))
    appointment = result.appointment
    assert appointment.status is AppointmentStatus.CONFIRMED
    assert result.staff.name == "Anna"
    assert appointment.starts_at == TUESDAY_10
    assert appointment.ends_at - appointment.starts_at == timedelta(minutes=30)
    assert appointment.block_ends_at - appointment.ends_at == timedelta(minutes=5)
    assert appointment.starts_at.utcoffset() == timedelta(0)
    assert await events(database, appointment.id) == ["reserved", "confirmed"]


async def test_the_same_key_replays_the_booking_and_never_books_twice(
    bookings: Bookings, database: Database, salon_id: int
) -> None:
    first = await bookings.book(request(salon_id))
    again = await bookings.book(request(salon_id))
    assert again.replayed and again.appointment.id == first.appointment.id
    assert await rows(database, AppointmentRow) == 1
    assert await rows(database, CustomerRow) == 1


async def test_the_same_key_for_another_request_is_a_conflict(bookings: Bookings, salon_id: int) -> None:
    await bookings.book(request(salon_id))
    with pytest.raises(IdempotencyConflict):
        await bookings.book(request(salon_id, start=TUESDAY_10 + timedelta(hours=1)))


async def test_concurrent_duplicates_with_one_key_make_one_booking(
    bookings: Bookings, database: Database, salon_id: int
) -> None:
    import asyncio

    results = await asyncio.gather(
        *(bookings.book(request(salon_id)) for _ in range(8)), return_exceptions=True
    )
    booked = [r for r in results if not isinstance(r, BaseException)]
    assert {r.appointment.id for r in booked} == {booked[0].appointment.id}
    assert len(booked) == 8, [r for r in results if isinstance(r, BaseException)]
    assert await rows(database, AppointmentRow) == 1


async def test_a_taken_slot_offers_the_nearest_free_starts_the_same_day(
    bookings: Bookings, salon_id: int
) -> None:
    await bookings.book(request(salon_id, staff="anna", idempotency_key="a"))
    with pytest.raises(SlotTaken) as refused:
        await bookings.book(request(salon_id, staff="anna", idempotency_key="b"))
    alternatives = refused.value.details["alternatives"]
    assert len(alternatives) == 3
    local = sorted(a.start.astimezone(TUESDAY_10.tzinfo).strftime("%H:%M") for a in alternatives)
    assert local == ["09:00", "09:15", "10:45"]  # 09:30 would run into 10:00; 10:00-10:35 is taken
    assert refused.value.message == "Zu dieser Uhrzeit ist leider schon alles vergeben."


async def test_availability_answers_free_or_taken_with_alternatives(
    bookings: Bookings, salon_id: int
) -> None:
    free = await bookings.availability(
        tenant_id=salon_id, service="bartpflege", start=berlin(2025, 11, 4, 12, 0)
    )
    assert free.free and free.alternatives == ()
    closed = await bookings.availability(
        tenant_id=salon_id, service="bartpflege", start=berlin(2025, 11, 4, 10, 0)
    )
    assert not closed.free and closed.reason == "nobody_then"  # Ben starts at 12 on Tuesdays: not "taken"
    assert closed.alternatives[0].start == berlin(2025, 11, 4, 12, 0)


async def test_alternatives_move_to_the_next_open_days_when_the_day_is_full(
    bookings: Bookings, salon_id: int
) -> None:
    # Saturday 8 Nov: the salon closes at 14:00; Strähnchen (120 min + 15) fits only early with Clara.
    answer = await bookings.availability(
        tenant_id=salon_id, service="straehnchen", start=berlin(2025, 11, 8, 13, 0)
    )
    assert answer.reason == "outside_hours"
    days = [a.start.astimezone(TUESDAY_10.tzinfo).date().isoformat() for a in answer.alternatives]
    assert days[0] == "2025-11-08"
    assert "2025-11-09" not in days and "2025-11-10" not in days  # Sunday, Monday closed
    assert len(answer.alternatives) == 3


@pytest.mark.parametrize(
    ("changes", "error", "code"),
    [
        ({"service": "Dauerwelle"}, UnknownService, "unknown_service"),
        ({"staff": "Zoe"}, UnknownStaff, "unknown_staff"),
        ({"service": "Färben", "staff": "Ben"}, StaffDoesNotOfferService, "staff_does_not_offer_service"),
        ({"start": berlin(2025, 11, 1, 10, 0)}, NotBookable, "in_past"),
        ({"start": berlin(2025, 11, 3, 8, 30)}, NotBookable, "too_short_notice"),
        ({"start": berlin(2026, 6, 2, 10, 0)}, NotBookable, "beyond_horizon"),
        ({"start": berlin(2025, 11, 9, 10, 0)}, NotBookable, "closed"),
        ({"start": berlin(2025, 11, 4, 19, 0)}, NotBookable, "outside_hours"),
        ({"start": berlin(2025, 12, 25, 10, 0)}, NotBookable, "holiday"),
        (
            {"service": "kinderhaarschnitt", "staff": "Clara"},  # Clara does not work on Tuesdays
            NotBookable,
            "staff_not_working",
        ),
        ({"start": TUESDAY_10.replace(tzinfo=None)}, InvalidRequest, "naive_time"),
    ],
)
async def test_bad_requests_are_refused_with_a_reason_and_nothing_is_written(
    bookings: Bookings,
    database: Database,
    salon_id: int,
    changes: dict[str, object],
    error: type[BookingError],
    code: str,
) -> None:
    with pytest.raises(error) as refused:
        await bookings.book(request(salon_id, **changes))
    assert refused.value.code == code
    assert refused.value.message and "_" not in refused.value.message
    assert await rows(database, AppointmentRow) == 0
    assert await rows(database, CustomerRow) == 0


async def test_an_absent_stylist_cannot_be_booked(
    bookings: Bookings, database: Database, salon_id: int
) -> None:
    from rezeption.store.tables import StaffAbsenceRow, StaffRow

    async with database.write() as session, session.begin():
        anna = await session.scalar(select(StaffRow).where(StaffRow.key == "anna"))
        assert anna is not None
        session.add(
            StaffAbsenceRow(
                tenant_id=salon_id,
                staff_id=anna.id,
                starts_at=berlin(2025, 11, 4, 0, 0),
                ends_at=berlin(2025, 11, 5, 0, 0),
                reason="Urlaub",
            )
        )
    with pytest.raises(NotBookable) as refused:
        await bookings.book(request(salon_id, staff="Anna"))
    assert refused.value.code == "staff_absent"
    anyone = await bookings.book(request(salon_id, start=berlin(2025, 11, 4, 13, 0), idempotency_key="x"))
    assert anyone.staff.name == "Ben"


async def test_cancel_releases_the_slot_and_replays_for_the_same_key(
    bookings: Bookings, database: Database, salon_id: int
) -> None:
    booked = await bookings.book(request(salon_id, staff="anna"))
    cancelled = await bookings.cancel(
        tenant_id=salon_id, appointment_id=booked.appointment.id, idempotency_key="c1"
    )
    assert cancelled.appointment.status is AppointmentStatus.CANCELLED
    replay = await bookings.cancel(
        tenant_id=salon_id, appointment_id=booked.appointment.id, idempotency_key="c1"
    )
    assert replay.replayed
    with pytest.raises(AppointmentNotActive):
        await bookings.cancel(tenant_id=salon_id, appointment_id=booked.appointment.id, idempotency_key="c2")
    again = await bookings.book(request(salon_id, staff="anna", idempotency_key="k2"))
    assert again.appointment.starts_at == TUESDAY_10
    assert await events(database, booked.appointment.id) == ["reserved", "confirmed", "cancelled"]


async def test_cancel_refuses_unknown_past_foreign_and_too_late(
    bookings: Bookings, database: Database, clock: FixedClock, salon_id: int
) -> None:
    other = read_salon(DEMO_SALON).model_copy(
        update={"slug": "anderer", "phone_numbers": [], "retell_agent_ids": []}
    )
    other_id = (await import_salon(database, other, now=clock.now())).tenant_id
    booked = await bookings.book(request(salon_id))
    with pytest.raises(AppointmentNotFound):
        await bookings.cancel(tenant_id=salon_id, appointment_id=999_999)
    with pytest.raises(AppointmentNotFound):
        await bookings.cancel(tenant_id=other_id, appointment_id=booked.appointment.id)
    clock.set(TUESDAY_10 - timedelta(hours=1))
    with pytest.raises(TooLateToChange) as late:
        await bookings.cancel(tenant_id=salon_id, appointment_id=booked.appointment.id)
    assert "direkt im Salon" in late.value.message
    clock.set(TUESDAY_10 + timedelta(hours=1))
    with pytest.raises(AppointmentInPast):
        await bookings.cancel(tenant_id=salon_id, appointment_id=booked.appointment.id)


async def test_reschedule_books_the_new_time_and_releases_the_old(
    bookings: Bookings, database: Database, salon_id: int
) -> None:
    booked = await bookings.book(request(salon_id, staff="anna"))
    moved = await bookings.reschedule(
        tenant_id=salon_id,
        appointment_id=booked.appointment.id,
        start=TUESDAY_10 + timedelta(minutes=15),
        idempotency_key="r1",
    )
    assert moved.appointment.starts_at == TUESDAY_10 + timedelta(
        minutes=15
    )  # overlaps its own old block: fine
    assert moved.staff.name == "Anna"
    assert moved.previous is not None and moved.previous.status is AppointmentStatus.CANCELLED
    assert moved.appointment.rescheduled_from_id == booked.appointment.id
    replay = await bookings.reschedule(
        tenant_id=salon_id,
        appointment_id=booked.appointment.id,
        start=TUESDAY_10 + timedelta(minutes=15),
        idempotency_key="r1",
    )
    assert replay.replayed and replay.appointment.id == moved.appointment.id
    assert await events(database, booked.appointment.id) == ["reserved", "confirmed", "rescheduled"]


async def test_a_failed_reschedule_leaves_the_old_appointment_intact(
    bookings: Bookings, database: Database, salon_id: int
) -> None:
    mine = await bookings.book(request(salon_id, staff="anna"))
    await bookings.book(
        request(salon_id, staff="anna", start=berlin(2025, 11, 4, 11, 0), idempotency_key="other")
    )
    with pytest.raises(SlotTaken):
        await bookings.reschedule(
            tenant_id=salon_id,
            appointment_id=mine.appointment.id,
            start=berlin(2025, 11, 4, 11, 0),
            staff="anna",
        )
    with pytest.raises(NotBookable):
        await bookings.reschedule(
            tenant_id=salon_id, appointment_id=mine.appointment.id, start=berlin(2025, 11, 9, 11, 0)
        )
    async with database.read() as session:
        status = await session.scalar(
            select(AppointmentRow.status).where(AppointmentRow.id == mine.appointment.id)
        )
    assert status == "confirmed"
    assert await rows(database, AppointmentRow) == 2
