"""Claims at once racing across processes on PostgreSQL (SQLite has one writer and claims
nothing at once): each server process keeps its own stylist turns, so two processes' turns meet.
A claim at once passes over a stylist who is busy or being claimed for that time right now and
takes its next choice, in the same statement.

The clock stands on Monday 3 November 2025, 08:00 Berlin.
"""

from __future__ import annotations

import asyncio
import zlib
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, text
from tests.integration.test_booking_statements import NOW, STEPS, TUESDAY_10, catalog_of, new_appointment

from rezeption.booking.bookings import BookingRequest, BookingResult, Bookings
from rezeption.booking.ports import Asker
from rezeption.calendars.directory import CalendarDirectory
from rezeption.domain.clock import FixedClock
from rezeption.domain.errors import SlotTaken
from rezeption.domain.model import Interval
from rezeption.store.db import Database
from rezeption.store.repositories import SqlBookingTx
from rezeption.store.tables import AppointmentRow
from rezeption.store.uow import SqlUnitOfWork

pytestmark = pytest.mark.postgres


@pytest.fixture
def database_url(postgres_migrated: str) -> str:
    return postgres_migrated


@pytest.fixture
def claims_one_by_one(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many claims were made one by one (`claim_as_customer`) from now on: [count]."""
    made = [0]
    claim_as_customer = SqlBookingTx.claim_as_customer

    async def counted(self: SqlBookingTx, *args: object, **kwargs: object) -> object:
        made[0] += 1
        return await claim_as_customer(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(SqlBookingTx, "claim_as_customer", counted)
    return made


def booking_at(
    bookings: Bookings, salon_id: int, start: datetime, key: str, phone: str
) -> asyncio.Task[object]:
    """A new caller's booking of a men's haircut with anyone at `start`, running."""
    request = BookingRequest(
        tenant_id=salon_id, service="Herrenhaarschnitt", start=start, customer_name="Neukunde",
        phone_e164=phone, call_id=f"call-{key}", idempotency_key=key,
    )  # fmt: skip
    return asyncio.create_task(bookings.book(request))


async def until_it_waits_for_a_lock(booking: asyncio.Task[BookingResult], database: Database) -> None:
    """Until `booking` waits for another transaction's lock, or is done (bounded)."""
    for _ in range(400):
        if booking.done() or await waiting_for_a_lock(database):
            return
        await asyncio.sleep(0.05)


async def test_racing_claims_at_once_for_one_stylist_take_the_next_choice_without_waiting(
    database: Database, salon_id: int
) -> None:
    """Two processes' turns point at one stylist for one time. The claim that comes second must
    not wait for the first one's commit to be refused: it takes its next choice while the first
    is still open (here held open in a transaction; a claim at once commits on its own)."""
    uow = SqlUnitOfWork(database)
    catalog = await catalog_of(uow, salon_id)
    friday_11 = TUESDAY_10 + timedelta(days=3, hours=1)
    ids = {m.name: m.id for m in catalog.staff}
    window = Interval(friday_11, friday_11 + timedelta(minutes=35))

    async def claim(tx: object, key: str) -> object:
        asker = Asker(None, f"Kunde {key}", f"call-{key}", NOW, key)
        claimed, _, _ = await tx.claim_or_read(  # type: ignore[attr-defined]
            new_appointment(catalog, "Anna", friday_11, key), name=f"Kunde {key}", phone_e164=None,
            at=NOW, events=STEPS, asker=asker, limits=(9, 9), staff_ids=list(ids.values()),
            window=window, or_else=[ids["Ben"]],
        )  # fmt: skip
        return claimed

    async def second() -> object:
        async with uow.claiming() as tx:
            return await claim(tx, "second")

    async with uow.writing() as first_tx:
        first = await claim(first_tx, "first")
        assert first is not None and first.staff_id == ids["Anna"]  # type: ignore[attr-defined]
        # a hang guard, not a time limit: without the lock the second waits for this commit
        got = await asyncio.wait_for(second(), timeout=20)
        await first_tx.commit()

    assert got is not None and got.staff_id == ids["Ben"]  # type: ignore[attr-defined]
    async with database.read() as session:
        staff = sorted((await session.scalars(select(AppointmentRow.staff_id))).all())
    assert staff == sorted([ids["Anna"], ids["Ben"]])


async def test_two_processes_booking_one_time_each_land_in_their_first_statement(
    database: Database, salon_id: int, clock: FixedClock, claims_one_by_one: list[int]
) -> None:
    """Two server processes (two `Bookings`, each with its own turns) take turns booking one time
    for "anyone". Where the second one's turn points at the stylist the first one just booked,
    its claim at once still lands, on the free stylist; before, it was refused, and the booking
    was read again and claimed a second time (a fifth of the claims of the two-process benchmark)."""
    uow = SqlUnitOfWork(database)
    first, second = (Bookings(uow=uow, calendars=CalendarDirectory(uow), clock=clock) for _ in range(2))
    catalog = await catalog_of(uow, salon_id)
    ring = [m.id for m in catalog.staff if m.name in ("Anna", "Ben")]  # who cuts men's hair, in order
    turns_on_taken = 0
    for week in range(6):  # the Fridays up to mid-December (the 26th is a holiday)
        friday_10 = TUESDAY_10 + timedelta(days=3 + 7 * week)
        got = []
        for n, bookings in enumerate((first, second)):
            key = f"week-{week}-{n}"
            result = await bookings.book(
                BookingRequest(
                    tenant_id=salon_id, service="Herrenhaarschnitt", start=friday_10,
                    customer_name=f"Kunde {week} {n}", phone_e164=f"+4915100{week:02d}{n:04d}",
                    call_id=f"call-{key}", idempotency_key=key,
                )
            )  # fmt: skip
            got.append(result.appointment.staff_id)
        turns_on_taken += ring[zlib.crc32(f"week-{week}-1".encode()) % len(ring)] == got[0]
        assert sorted(got) == sorted(ring)
    assert turns_on_taken >= 2, "the second process's turn met the first one's booking"
    assert claims_one_by_one[0] == 0


async def test_the_only_free_stylist_being_claimed_by_a_claim_that_fails_is_still_booked(
    database: Database, salon_id: int, bookings: Bookings
) -> None:
    """Locks pass over claims being made; but such a claim may yet fail (here it is rolled back).
    A caller whose only free stylist is being claimed must wait for that outcome and get the
    booking, not hear "taken" for a time that stays free."""
    uow = SqlUnitOfWork(database)
    catalog = await catalog_of(uow, salon_id)
    ids = {m.name: m.id for m in catalog.staff}
    friday_11 = TUESDAY_10 + timedelta(days=3, hours=1)
    await bookings.book(
        BookingRequest(
            tenant_id=salon_id, service="Herrenhaarschnitt", start=friday_11, staff="Ben",
            customer_name="Stammkunde", call_id="call-ben", idempotency_key="ben",
        )
    )  # fmt: skip
    async with uow.writing() as other:
        asker = Asker(None, "Anderer", "call-other", NOW, "other")
        being_made, _, _ = await other.claim_or_read(
            new_appointment(catalog, "Anna", friday_11, "other"), name="Anderer", phone_e164=None,
            at=NOW, events=STEPS, asker=asker, limits=(9, 9), staff_ids=list(ids.values()),
            window=Interval(friday_11, friday_11 + timedelta(minutes=35)),
        )  # fmt: skip
        assert being_made is not None and being_made.staff_id == ids["Anna"]
        booking = booking_at(bookings, salon_id, friday_11, "new", "+4915199000001")
        await until_it_waits_for_a_lock(booking, database)
        assert not booking.done(), "answered before the other claim's outcome was known"
    # the other claim fails: leaving the transaction uncommitted rolls it back
    result = await booking
    assert result.appointment.staff_id == ids["Anna"]


WAITING_FOR_A_LOCK = text(
    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
)


async def waiting_for_a_lock(database: Database) -> bool:
    async with database.read() as session:
        return bool(await session.scalar(WAITING_FOR_A_LOCK))


async def test_a_claim_at_once_refused_by_a_claim_that_committed_meanwhile_lands_in_the_next_round(
    database: Database, salon_id: int, bookings: Bookings, claims_one_by_one: list[int]
) -> None:
    """The race the lock cannot see: an overlapping claim (Anna at 10:15, made the waiting way,
    without the lock) is being made while the claim at once for Anna at 10:00 is tried. It waits,
    the other commits, and it is refused. The booking claims at once again with a fresh read and
    gets Ben, instead of claiming stylist by stylist."""
    uow = SqlUnitOfWork(database)
    catalog = await catalog_of(uow, salon_id)
    ids = {m.name: m.id for m in catalog.staff}
    ring = [ids["Anna"], ids["Ben"]]  # who cuts men's hair, in order
    friday_10 = TUESDAY_10 + timedelta(days=3)
    key = next(f"new-{n}" for n in range(50) if ring[zlib.crc32(f"new-{n}".encode()) % 2] == ids["Anna"])
    async with uow.writing() as other:
        await other.claim_as_customer(
            new_appointment(catalog, "Anna", friday_10 + timedelta(minutes=15), "other"),
            name="Anderer", phone_e164=None, at=NOW,
        )  # fmt: skip
        before = claims_one_by_one[0]  # the other claim's
        booking = booking_at(bookings, salon_id, friday_10, key, "+4915199000002")
        await until_it_waits_for_a_lock(booking, database)
        assert not booking.done(), "the claim at once did not try Anna, whose turn it was"
        await other.commit()
    result = await booking
    assert result.appointment.staff_id == ids["Ben"]
    assert claims_one_by_one[0] == before, "claimed stylist by stylist instead of at once again"


async def test_a_caller_who_asks_for_a_taken_stylist_is_refused_not_given_another(
    database: Database, salon_id: int, bookings: Bookings
) -> None:
    """The claim at once may take a later choice than the first; a caller who names a stylist is
    offered that stylist only. Anna is taken at ten, Ben is free: "Anna, please" is refused with
    Anna's alternatives, and Ben's ten o'clock stays free."""
    uow = SqlUnitOfWork(database)
    catalog = await catalog_of(uow, salon_id)
    ids = {m.name: m.id for m in catalog.staff}
    friday_10 = TUESDAY_10 + timedelta(days=3)

    def named(staff: str, key: str) -> BookingRequest:
        return BookingRequest(
            tenant_id=salon_id, service="Herrenhaarschnitt", start=friday_10, staff=staff,
            customer_name=f"Kunde {key}", phone_e164=f"+49151990000{len(key):02d}", call_id=f"call-{key}",
            idempotency_key=key,
        )  # fmt: skip

    await bookings.book(named("Anna", "first"))
    with pytest.raises(SlotTaken):
        await bookings.book(named("Anna", "second"))
    async with database.read() as session:
        staff = (await session.scalars(select(AppointmentRow.staff_id))).all()
    assert list(staff) == [ids["Anna"]]
    assert (await bookings.book(named("Ben", "third"))).appointment.staff_id == ids["Ben"]
