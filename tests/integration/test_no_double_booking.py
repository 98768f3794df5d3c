"""No double booking, enforced by the database on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from tests.conftest import berlin

from rezeption.booking.bookings import BookingRequest, Bookings
from rezeption.domain.errors import SlotTaken
from rezeption.store.db import Database
from rezeption.store.tables import AppointmentRow

TUESDAY_10 = berlin(2025, 11, 4, 10, 0)


async def count_active(database: Database) -> int:
    async with database.read() as session:
        total = await session.scalar(
            select(func.count())
            .select_from(AppointmentRow)
            .where(AppointmentRow.status.in_(["pending", "confirmed"]))
        )
    return int(total or 0)


async def test_twenty_callers_racing_for_one_stylists_slot_get_one_booking(
    bookings: Bookings, database: Database, salon_id: int
) -> None:
    async def attempt(i: int) -> str:
        try:
            await bookings.book(
                BookingRequest(
                    tenant_id=salon_id,
                    service="herrenhaarschnitt",
                    start=TUESDAY_10,
                    staff="anna",
                    customer_name=f"Kunde {i}",
                    idempotency_key=f"race-{i}",
                )
            )
            return "booked"
        except SlotTaken:
            return "taken"

    outcomes = await asyncio.gather(*(attempt(i) for i in range(20)))
    assert outcomes.count("booked") == 1
    assert outcomes.count("taken") == 19
    assert await count_active(database) == 1


async def test_twenty_callers_for_anyone_fill_each_qualified_stylist_once(
    bookings: Bookings, database: Database, salon_id: int
) -> None:
    # Kinderhaarschnitt on Wednesday 10:00: Anna and Clara work, Ben does not.
    async def attempt(i: int) -> int | None:
        try:
            result = await bookings.book(
                BookingRequest(
                    tenant_id=salon_id, service="kinderhaarschnitt", start=berlin(2025, 11, 5, 10, 0)
                )
            )
            return result.staff.id
        except SlotTaken:
            return None

    staff_ids = [s for s in await asyncio.gather(*(attempt(i) for i in range(20))) if s is not None]
    assert len(staff_ids) == 2
    assert len(set(staff_ids)) == 2
    assert await count_active(database) == 2


async def test_callers_racing_for_anyone_get_every_free_stylist_and_a_clean_refusal(
    bookings: Bookings, database: Database, salon_id: int
) -> None:
    # Kinderhaarschnitt on Thursday 12:00: Anna, Ben and Clara all work. Concurrent claims under the
    # exclusion constraint can deadlock in PostgreSQL; that must read as "taken", never as an error.
    async def attempt(i: int) -> int | None:
        try:
            result = await bookings.book(
                BookingRequest(
                    tenant_id=salon_id,
                    service="kinderhaarschnitt",
                    start=berlin(2025, 11, 6, 12, 0),
                    customer_name=f"Kind {i}",
                    idempotency_key=f"kids-{i}",
                )
            )
            return result.staff.id
        except SlotTaken:
            return None

    outcomes = await asyncio.gather(*(attempt(i) for i in range(12)))
    booked = [s for s in outcomes if s is not None]
    assert len(booked) == len(set(booked)) == 3
    assert await count_active(database) == 3


async def test_back_to_back_appointments_both_succeed(bookings: Bookings, salon_id: int) -> None:
    # Bartpflege (20 min, no buffers) with Ben on Thursday: 12:00-12:20 then 12:20-12:40.
    first = await bookings.book(
        BookingRequest(
            tenant_id=salon_id, service="bartpflege", start=berlin(2025, 11, 6, 12, 0), staff="ben"
        )
    )
    second = await bookings.book(
        BookingRequest(
            tenant_id=salon_id, service="bartpflege", start=berlin(2025, 11, 6, 12, 20), staff="ben"
        )
    )
    assert first.appointment.ends_at == second.appointment.starts_at
    assert second.staff.name == "Ben"


def row(
    salon_id: int, staff_id: int, start: datetime, minutes: int, status: str = "confirmed"
) -> dict[str, object]:
    now = datetime(2025, 11, 1, tzinfo=UTC)
    end = start + timedelta(minutes=minutes)
    return {
        "tenant_id": salon_id,
        "service_id": 1,
        "staff_id": staff_id,
        "starts_at": start,
        "ends_at": end,
        "block_starts_at": start,
        "block_ends_at": end,
        "status": status,
        "source": "test",
        "provider": "local",
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }


async def test_the_database_itself_refuses_an_overlapping_row(database: Database, salon_id: int) -> None:
    """Written straight to the table, past every check in our code: the schema must still refuse."""
    start = datetime(2025, 11, 4, 9, 0, tzinfo=UTC)
    async with database.write() as session, session.begin():
        await session.execute(insert(AppointmentRow).values(row(salon_id, 1, start, 60)))
    with pytest.raises(IntegrityError, match="appointments_no_overlap"):
        async with database.write() as session, session.begin():
            await session.execute(
                insert(AppointmentRow).values(row(salon_id, 1, start + timedelta(minutes=30), 60))
            )
    async with database.write() as session, session.begin():
        # touching is fine, another stylist is fine, a cancelled row claims nothing
        await session.execute(
            insert(AppointmentRow).values(row(salon_id, 1, start + timedelta(minutes=60), 30))
        )
        await session.execute(insert(AppointmentRow).values(row(salon_id, 2, start, 60)))
        await session.execute(insert(AppointmentRow).values(row(salon_id, 1, start, 60, status="cancelled")))
    assert await count_active(database) == 3


async def test_reviving_a_cancelled_row_into_a_taken_slot_is_refused(
    database: Database, salon_id: int
) -> None:
    start = datetime(2025, 11, 4, 9, 0, tzinfo=UTC)
    async with database.write() as session, session.begin():
        await session.execute(insert(AppointmentRow).values(row(salon_id, 1, start, 60, status="cancelled")))
        await session.execute(insert(AppointmentRow).values(row(salon_id, 1, start, 60)))
    with pytest.raises(IntegrityError, match="appointments_no_overlap"):
        async with database.write() as session, session.begin():
            cancelled = await session.scalar(
                select(AppointmentRow).where(AppointmentRow.status == "cancelled")
            )
            assert cancelled is not None
            cancelled.status = "pending"
            await session.flush()
