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
import zlib
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from tests.conftest import berlin

from rezeption.booking.bookings import BookingRequest, Bookings
from rezeption.booking.catalog import candidate_staff
from rezeption.booking.ports import Asker, Held, NewAppointment, NewEvent, SlotClaimFailed
from rezeption.domain.errors import SlotTaken
from rezeption.domain.model import AppointmentStatus, Catalog, Interval
from rezeption.domain.schedule import check_start
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


async def test_the_claim_at_once_is_written_only_within_the_callers_limits_beside_the_read(
    database: Database, salon_id: int
) -> None:
    """`claim_or_read`: on PostgreSQL the booking's claim and its read are one statement. The claim
    must never pass a caller's limit, a taken stylist or a used key, and the read must tell what
    was there before the claim. On SQLite only the read is done."""
    uow = SqlUnitOfWork(database)
    catalog = await catalog_of(uow, salon_id)
    async with uow.claiming() as tx:
        for staff, start, key, number, call in [
            ("Anna", TUESDAY_10, "a", "+4915123456789", "call-1"),
            ("Ben", TUESDAY_10 + timedelta(hours=2), "b", "+4915100000001", "call-0"),
            ("Anna", TUESDAY_10 + timedelta(hours=4), "c", "+4915123456789", "call-1"),
        ]:
            await tx.claim_as_customer(
                new_appointment(catalog, staff, start, key, call),
                name="Peter Schuster", phone_e164=number, at=NOW,
            )  # fmt: skip
        await tx.commit()
    staff_ids = [m.id for m in catalog.staff]
    free_at = TUESDAY_10 + timedelta(days=1)
    before = (await count(database, AppointmentRow), await count(database, CustomerRow))

    async def claim(
        staff: str, start: datetime, key: str, limits: tuple[int, int], call: str = "call-1"
    ) -> tuple[object, Held, dict[int, list[Interval]]]:
        asker = Asker("+4915123456789", "Peter Schuster", call, NOW, key)
        new = new_appointment(catalog, staff, start, key, call)
        async with uow.claiming() as tx:
            at = Interval(start, start + timedelta(minutes=35))
            return await tx.claim_or_read(
                new, name="Peter Schuster", phone_e164="+4915123456789", at=NOW, events=STEPS,
                asker=asker, limits=limits, staff_ids=staff_ids, window=at,
            )  # fmt: skip

    by_number = await claim("Clara", free_at, "n", (2, 9))  # he holds 3 by his name, 2 by number
    in_call = await claim("Clara", free_at, "m", (4, 2))  # two in call-1 already
    taken = await claim("Anna", TUESDAY_10 + timedelta(minutes=15), "t", (9, 9), call="call-2")
    used_key = await claim("Clara", free_at, "a", (9, 9))

    for claimed, held, _ in (by_number, in_call, used_key):
        assert claimed is None
        assert held.by_caller == 3 and held.in_call == 2
    assert taken[0] is None and taken[1].in_call == 0
    anna = next(m.id for m in catalog.staff if m.name == "Anna")
    assert taken[2][anna] == [Interval(TUESDAY_10, TUESDAY_10 + timedelta(minutes=30))]
    assert used_key[1].key_used
    assert (await count(database, AppointmentRow), await count(database, CustomerRow)) == before

    claimed, held, busy = await claim("Clara", free_at, "ok", (4, 3))

    assert held == Held(by_caller=3, in_call=2, key_used=False), "what was there before the claim"
    assert busy == {}
    if database.is_sqlite:
        assert claimed is None, "SQLite: only the read"
        return
    assert claimed is not None and claimed.starts_at == free_at  # type: ignore[attr-defined]
    assert await count(database, AppointmentEventRow, appointment_id=claimed.id) == 2  # type: ignore[attr-defined]
    assert await count(database, CustomerRow) == before[1], "Peter, found by number and name"


async def test_a_booking_for_anyone_whose_turn_names_a_taken_stylist_goes_to_the_free_one(
    bookings: Bookings, database: Database, salon_id: int
) -> None:
    """The claim at once is offered those who work then, starting with the stylist whose turn it
    is, without knowing who is busy. When that one is taken, the booking goes to the free one (on
    PostgreSQL in the same statement; on SQLite by the read), and nothing else is written."""
    uow = SqlUnitOfWork(database)
    catalog = await catalog_of(uow, salon_id)
    service = next(s for s in catalog.services if s.name == "Herrenhaarschnitt")
    ring = candidate_staff(catalog, service, None)
    friday_10 = TUESDAY_10 + timedelta(days=3)
    working = check_start(catalog, service, ring, {}, friday_10, NOW).free_staff_ids
    at_work = [m for m in ring if m.id in working]  # on Fridays at ten
    assert len(at_work) >= 2
    free_one, taken = at_work[-1], at_work[:-1]
    turns_on_taken = 0
    for day in range(6):
        start = friday_10 + timedelta(days=day * 7)
        for n, member in enumerate(taken):
            await bookings.book(
                BookingRequest(
                    tenant_id=salon_id, service=service.name, start=start, staff=member.name,
                    customer_name=f"Stammkunde {day} {n}", phone_e164=f"+4915100{day:02d}{n:04d}",
                    call_id=f"call-{day}-{n}", idempotency_key=f"taken-{day}-{n}",
                )
            )  # fmt: skip
        key = f"anyone-{day}"
        turns_on_taken += ring[zlib.crc32(key.encode()) % len(ring)] in taken  # its first turn
        before = (await count(database, AppointmentRow), await count(database, CustomerRow))

        result = await bookings.book(
            BookingRequest(
                tenant_id=salon_id, service=service.name, start=start, customer_name=f"Neukunde {day}",
                phone_e164=f"+4915199{day:06d}", call_id=f"call-anyone-{day}", idempotency_key=key,
            )
        )  # fmt: skip

        assert result.appointment.staff_id == free_one.id
        assert (await count(database, AppointmentRow), await count(database, CustomerRow)) == (
            before[0] + 1, before[1] + 1,
        )  # fmt: skip
        assert await count(database, AppointmentEventRow, appointment_id=result.appointment.id) == 2
    assert turns_on_taken >= 2, "the claim at once met a taken stylist"


async def test_a_claim_at_once_passes_over_busy_stylists_to_its_next_choice(
    database: Database, salon_id: int
) -> None:
    """Another process booked the stylist whose turn it was here: the claim at once goes to the
    next of its choices who is free then (in the same statement, not refused and made again), and
    never to one whose block overlaps (Ben at 10:15) or to one it was not offered."""
    uow = SqlUnitOfWork(database)
    catalog = await catalog_of(uow, salon_id)
    friday_10 = TUESDAY_10 + timedelta(days=3)
    async with uow.claiming() as tx:
        for staff, start, key in [
            ("Anna", friday_10, "anna"),
            ("Ben", friday_10 + timedelta(minutes=15), "ben"),
        ]:
            await tx.claim_as_customer(
                new_appointment(catalog, staff, start, key), name="Stammkunde", phone_e164=None, at=NOW
            )
        await tx.commit()
    ids = {m.name: m.id for m in catalog.staff}
    before = await count(database, AppointmentRow)

    async def claim(key: str, or_else: list[str]) -> object:
        asker = Asker("+4915123456789", f"Kunde {key}", f"call-{key}", NOW, key)
        async with uow.claiming() as tx:
            claimed, _, busy = await tx.claim_or_read(
                new_appointment(catalog, "Anna", friday_10, key), name=f"Kunde {key}",
                phone_e164="+4915123456789", at=NOW, events=STEPS, asker=asker, limits=(9, 9),
                staff_ids=list(ids.values()), window=Interval(friday_10, friday_10 + timedelta(minutes=35)),
                or_else=[ids[name] for name in or_else],
            )  # fmt: skip
            assert set(busy) == {ids["Anna"], ids["Ben"]}
            return claimed

    assert await claim("only-anna", []) is None
    assert await claim("all-busy", ["Ben"]) is None
    assert await count(database, AppointmentRow) == before
    claimed = await claim("next", ["Ben", "Clara"])

    if database.is_sqlite:
        assert claimed is None, "SQLite: only the read"
        return
    assert claimed is not None and claimed.staff_id == ids["Clara"]  # type: ignore[attr-defined]
    assert await count(database, AppointmentRow) == before + 1
    assert await count(database, AppointmentEventRow, appointment_id=claimed.id) == 2  # type: ignore[attr-defined]
