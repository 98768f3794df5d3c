"""The statements of a booking on SQLite and PostgreSQL: its read (`held_and_busy`) and its claim
with the customer (`claim_as_customer`).

On PostgreSQL a booking on our own calendar runs without a transaction: the customer, the claim and
its two events are one statement. These tests hold it to what the transaction gave: a caller who
loses the slot leaves no customer behind, a booking is all there or not there, a known caller is
found and not created again. The fused read answers what its two reads answer alone.

The clock stands on Monday 3 November 2025, 08:00 Berlin.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from tests.conftest import berlin

from rezeption.booking.bookings import BookingRequest, Bookings
from rezeption.booking.ports import Asker, Held, NewAppointment, NewEvent, SlotClaimFailed
from rezeption.domain.errors import SlotTaken
from rezeption.domain.model import AppointmentStatus, Catalog, Interval
from rezeption.store.db import Database
from rezeption.store.tables import AppointmentEventRow, AppointmentRow, CustomerNameKeyRow, CustomerRow
from rezeption.store.uow import SqlUnitOfWork

TUESDAY_10 = berlin(2025, 11, 4, 10, 0)
NOW = berlin(2025, 11, 3, 8, 0)
STEPS = (NewEvent("reserved", idempotency_key="k"), NewEvent("confirmed", recovery_point="done"))


async def count(database: Database, table: type, **where: object) -> int:
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(getattr(table, column) == value)
    async with database.read() as session:
        return int(await session.scalar(query) or 0)


async def catalog_of(uow: SqlUnitOfWork, salon_id: int) -> Catalog:
    async with uow.reading() as tx:
        return await tx.load_catalog(salon_id)


def new_appointment(
    catalog: Catalog, staff: str, start: datetime, key: str, call: str | None = None
) -> NewAppointment:
    service = next(s for s in catalog.services if s.name == "Herrenhaarschnitt")
    member = next(m for m in catalog.staff if m.name == staff)
    return NewAppointment(
        tenant_id=catalog.tenant.id,
        service_id=service.id,
        staff_id=member.id,
        customer_id=None,
        starts_at=start,
        ends_at=start + service.duration,
        block_starts_at=start,
        block_ends_at=start + service.duration,
        status=AppointmentStatus.CONFIRMED,
        source="phone",
        provider="local",
        call_id=call or f"call-{key}",
        idempotency_key=key,
        spoken_name=None,
    )


async def test_a_caller_who_loses_the_slot_leaves_no_customer(database: Database, salon_id: int) -> None:
    uow = SqlUnitOfWork(database)
    catalog = await catalog_of(uow, salon_id)
    async with uow.claiming() as tx:
        await tx.claim_as_customer(
            new_appointment(catalog, "Anna", TUESDAY_10, "first"),
            name="Peter Schuster",
            phone_e164="+4915123456789",
            at=NOW,
            events=STEPS,
        )
        await tx.commit()
    # the second caller's check saw the slot free a moment earlier: the claim is where it loses
    async with uow.claiming() as tx:
        with pytest.raises(SlotClaimFailed):
            await tx.claim_as_customer(
                new_appointment(catalog, "Anna", TUESDAY_10 + timedelta(minutes=15), "second"),
                name="Maria Neumann",
                phone_e164="+4915199988877",
                at=NOW,
                events=STEPS,
            )
    assert await count(database, CustomerRow) == 1
    assert await count(database, CustomerRow, phone_e164="+4915199988877") == 0
    assert await count(database, AppointmentRow) == 1
    assert await count(database, AppointmentEventRow) == 2


async def test_a_known_caller_is_found_and_a_new_one_created_with_its_name_keys(
    database: Database, salon_id: int
) -> None:
    uow = SqlUnitOfWork(database)
    catalog = await catalog_of(uow, salon_id)
    claimed = []
    callers = [
        ("Peter Schuster", TUESDAY_10),
        ("peter  SCHUSTER", TUESDAY_10 + timedelta(hours=1)),
        ("Petra Schuster", TUESDAY_10 + timedelta(hours=2)),
    ]
    for n, (name, start) in enumerate(callers):
        async with uow.claiming() as tx:
            claimed.append(
                await tx.claim_as_customer(
                    new_appointment(catalog, "Anna", start, f"k{n}"),
                    name=name,
                    phone_e164="+4915123456789",
                    at=NOW,
                    events=STEPS,
                )
            )
            await tx.commit()
    peter, again, petra = (a.customer_id for a in claimed)
    assert peter is not None and again == peter  # same number, same name (as spoken): the same customer
    assert petra not in (None, peter)  # same number, another name: another customer (a family phone)
    assert await count(database, CustomerRow) == 2
    assert await count(database, CustomerNameKeyRow, customer_id=peter) > 0
    assert await count(database, CustomerNameKeyRow, customer_id=petra) > 0


async def test_a_booking_is_all_there_or_not_there_when_the_use_case_fails_after_the_claim(
    database: Database, salon_id: int
) -> None:
    uow = SqlUnitOfWork(database)
    catalog = await catalog_of(uow, salon_id)
    with pytest.raises(RuntimeError):
        async with uow.claiming() as tx:
            await tx.claim_as_customer(
                new_appointment(catalog, "Anna", TUESDAY_10, "k"),
                name="Peter Schuster",
                phone_e164="+4915123456789",
                at=NOW,
                events=STEPS,
            )
            raise RuntimeError("the process fails before it commits")
    present = (
        await count(database, AppointmentRow),
        await count(database, CustomerRow),
        await count(database, AppointmentEventRow),
    )
    # PostgreSQL: the one statement was the commit; SQLite: its transaction is rolled back
    assert present == ((0, 0, 0) if database.is_sqlite else (1, 1, 2))


async def test_callers_racing_for_one_stylist_make_one_booking_and_one_customer(
    bookings: Bookings, database: Database, salon_id: int
) -> None:
    requests = [
        BookingRequest(
            tenant_id=salon_id,
            service="Herrenhaarschnitt",
            start=TUESDAY_10,
            staff="anna",
            customer_name=f"Kunde Nummer {n}",
            phone_e164=f"+49151000000{n:02d}",
            call_id=f"call-{n}",
            idempotency_key=f"race-{n}",
        )
        for n in range(8)
    ]
    results = await asyncio.gather(*(bookings.book(r) for r in requests), return_exceptions=True)
    booked = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, SlotTaken)]
    assert len(booked) == 1 and len(refused) == 7, results
    assert await count(database, AppointmentRow) == 1
    assert await count(database, CustomerRow) == 1  # the seven who lost left nothing behind
    assert await count(database, CustomerRow, id=booked[0].appointment.customer_id) == 1


async def test_the_fused_read_answers_what_the_two_reads_answer(database: Database, salon_id: int) -> None:
    uow = SqlUnitOfWork(database)
    catalog = await catalog_of(uow, salon_id)
    booked = [  # (stylist, start, key, name, number, call)
        ("Anna", TUESDAY_10, "a", "Peter Schuster", "+4915123456789", "call-1"),
        ("Ben", TUESDAY_10 + timedelta(minutes=15), "b", "Peter Schuster", "+4915100000001", "call-2"),
        ("Anna", TUESDAY_10 + timedelta(hours=4), "c", "Peter Schuster", "+4915123456789", "call-1"),
        ("Clara", TUESDAY_10, "d", "Maria Neumann", "+4915100000002", "call-3"),
    ]
    async with uow.claiming() as tx:
        for staff, start, key, name, number, call in booked:
            await tx.claim_as_customer(
                new_appointment(catalog, staff, start, key, call), name=name, phone_e164=number, at=NOW
            )
        await tx.commit()
    async with uow.writing() as tx:  # Clara's is cancelled: her time is free again
        clara = await tx.appointment_by_key("d")
        assert clara is not None
        await tx.set_status(clara, AppointmentStatus.CANCELLED, at=NOW)
        await tx.commit()
    staff_ids = [m.id for m in catalog.staff]
    window = Interval(TUESDAY_10, TUESDAY_10 + timedelta(minutes=35))
    asked = Asker("+4915123456789", "peter schuster", "call-1", NOW, "b")
    async with uow.reading() as tx:
        held, busy = await tx.held_and_busy(salon_id, asked, staff_ids=staff_ids, window=window)
        alone = await tx.held_by_caller(salon_id, asked), await tx.busy(salon_id, staff_ids, window)
    assert (held, dict(busy)) == (alone[0], dict(alone[1]))
    by_name = {m.name: m.id for m in catalog.staff}
    assert held == Held(by_caller=3, in_call=2, key_used=True)  # three by name, two in call-1
    assert dict(busy) == {
        by_name["Anna"]: [Interval(TUESDAY_10, TUESDAY_10 + timedelta(minutes=30))],
        by_name["Ben"]: [Interval(TUESDAY_10 + timedelta(minutes=15), TUESDAY_10 + timedelta(minutes=45))],
    }
    async with uow.reading() as tx:  # nobody busy, nothing held
        nobody = await tx.held_and_busy(
            salon_id,
            Asker(None, None, None, NOW),
            staff_ids=staff_ids,
            window=Interval(TUESDAY_10 + timedelta(days=1), TUESDAY_10 + timedelta(days=1, hours=1)),
        )
    assert nobody == (Held(0, 0), {})
