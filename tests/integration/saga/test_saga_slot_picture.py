"""The slot picture under Cal.com's real limits (issue 12): one request per event type covers the
weeks callers ask for; a slow, failing or over-budget Cal.com is answered from the last known
picture; our own bookings update it without a fetch; reads never block writes.

Before (issue 12): a cold call cost 8 requests and callers asking 3-20 days ahead cost one slot
read per day and event type; a Cal.com slower than the read timeout opened the shared breaker and
bookings were refused with the reads; a read over the rate limit was a 429 and the key was blocked.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta

import pytest
from tests.metrics import Growth

from rezeption.booking.bookings import BookingRequest
from rezeption.booking.ports import CalendarUnavailable
from rezeption.booking.prefetch import prefetch
from rezeption.calendars.calcom import CalcomCalendar
from rezeption.calendars.calcom.breaker import BreakerState, CircuitBreaker
from rezeption.calendars.calcom.budget import BudgetConfig, MemoryRequestBudget
from rezeption.domain.model import Catalog

from .conftest import TUESDAY_10, World

pytestmark = pytest.mark.postgres
SLOTS = {"method": "GET", "path": "/v2/slots"}
SERVICES = ("Herrenhaarschnitt", "Damenhaarschnitt", "Färben", "Bartpflege", "Kinderhaarschnitt")


async def provider(world: World) -> CalcomCalendar:
    return world.calendars.calcom(await _catalog(world))


async def warm(world: World) -> int:
    return await prefetch(
        uow=world.uow, calendars=world.calendars, clock=world.clock, tenant_id=world.tenant_id
    )


def anna(world: World, key: str, start: datetime = TUESDAY_10) -> BookingRequest:
    return BookingRequest(
        tenant_id=world.tenant_id, service="Herrenhaarschnitt", start=start, staff="Anna", idempotency_key=key
    )


def slot_reads(world: World) -> int:
    return len(world.emulator.requests("GET", "/v2/slots"))


async def test_one_request_per_event_type_covers_the_next_three_weeks_for_every_caller(world: World) -> None:
    calendar = await provider(world)
    event_types = {
        t
        for v in calendar.settings.event_types.values()
        for t in (v.values() if isinstance(v, dict) else [v])
    }
    assert await warm(world) == len(event_types)
    assert slot_reads(world) == len(event_types)

    answers = 0
    for offset in range(1, 22):
        for service in SERVICES:
            start = TUESDAY_10 + timedelta(days=offset - 1, hours=offset % 5)
            await world.bookings.availability(tenant_id=world.tenant_id, service=service, start=start)
            answers += 1
    assert answers == 105
    assert slot_reads(world) == len(event_types), "a warm picture costs no read, whatever the day"
    assert await warm(world) == 0, "and nothing is due again before the refresh interval"


async def test_our_own_booking_leaves_the_picture_at_once_without_a_new_read(world: World) -> None:
    await warm(world)
    before = slot_reads(world)
    await world.bookings.book(anna(world, "k"))
    await asyncio.sleep(0.05)  # the picture is updated after the reply
    again = await world.bookings.availability(
        tenant_id=world.tenant_id, service="Herrenhaarschnitt", start=TUESDAY_10, staff="Anna"
    )
    assert not again.free
    assert slot_reads(world) == before


async def test_cancelling_a_booking_by_uid_makes_only_its_day_stale(world: World) -> None:
    """A compensation or an orphan cancelled by uid made every day stale: the next callers re-read
    every event type from Cal.com (most slot reads of a load through it). Now only its own day."""
    calendar = await provider(world)
    await warm(world)
    booked = (await world.bookings.book(anna(world, "k"))).appointment
    assert booked.external_uid
    await calendar.cancel_uid(await _catalog(world), booked.external_uid, start=booked.starts_at)
    await asyncio.sleep(0.05)  # the picture is updated after the cancel
    before = slot_reads(world)

    await world.bookings.availability(
        tenant_id=world.tenant_id, service="Herrenhaarschnitt", start=TUESDAY_10 + timedelta(days=1)
    )
    assert slot_reads(world) == before, "another day stays fresh"
    await world.bookings.availability(
        tenant_id=world.tenant_id, service="Herrenhaarschnitt", start=TUESDAY_10, staff="Anna"
    )
    assert slot_reads(world) > before, "its own day is read again"


async def test_a_stale_day_with_cal_com_slow_is_answered_from_the_last_known_picture(world: World) -> None:
    calendar = await provider(world)
    calendar.settings = dataclasses.replace(calendar.settings, voice_wait=0.2)
    await warm(world)
    calendar.forget_slots(await _catalog(world), TUESDAY_10)  # a webhook said the day changed
    await asyncio.sleep(0.05)
    world.emulator.faults({"mode": "latency", **SLOTS, "params": {"seconds": 1.5}})
    grew = Growth()

    answer = await world.bookings.availability(
        tenant_id=world.tenant_id, service="Herrenhaarschnitt", start=TUESDAY_10, staff="Anna"
    )

    assert answer.free, "the last known picture says free; Cal.com checks it again when booking"
    assert calendar.stale_answers >= 1
    assert grew.of("rezeption_slot_cache_lookups_total", result="stale") == calendar.stale_answers


async def test_with_nothing_known_and_cal_com_silent_the_caller_hears_we_could_not_check(
    world: World,
) -> None:
    calendar = await provider(world)
    calendar.settings = dataclasses.replace(calendar.settings, voice_wait_unknown=0.2)
    world.emulator.faults({"mode": "latency", **SLOTS, "params": {"seconds": 1.5}})

    with pytest.raises(CalendarUnavailable) as unchecked:
        await world.bookings.availability(
            tenant_id=world.tenant_id, service="Herrenhaarschnitt", start=TUESDAY_10, staff="Anna"
        )
    assert calendar.stale_answers == 0
    assert unchecked.value.code == "availability_unchecked"
    assert "eintragen" not in unchecked.value.message, "nobody asked to book anything yet"
    assert "nicht in unseren Terminkalender schauen" in unchecked.value.message


async def test_reads_over_the_budget_use_the_picture_and_a_booking_still_goes_through(world: World) -> None:
    calendar = await provider(world)
    await warm(world)
    budget = MemoryRequestBudget(BudgetConfig(per_minute=3, write_reserve=2, read_reserve=1))
    calendar.client._transport.budget = budget
    assert await budget.take("read") and not await budget.take("read"), "reads are spent"
    calendar.forget_slots(await _catalog(world))  # everything stale: a read would be due
    await asyncio.sleep(0.05)
    before = slot_reads(world)

    answer = await world.bookings.availability(
        tenant_id=world.tenant_id, service="Herrenhaarschnitt", start=TUESDAY_10, staff="Anna"
    )
    result = await world.bookings.book(anna(world, "b"))

    assert answer.free and calendar.stale_answers >= 1
    assert slot_reads(world) == before, "no read was sent over the budget"
    assert result.appointment.status.value == "confirmed", "the write had its reserve"


async def test_failing_slot_reads_open_the_read_breaker_only_and_bookings_still_work(
    make_world: object,
) -> None:
    world = make_world(  # type: ignore[operator]
        read_breaker=CircuitBreaker(failure_threshold=2, cooldown=timedelta(seconds=60))
    )
    calendar = await provider(world)
    world.emulator.faults({"mode": "server_error", **SLOTS, "params": {"kind": "json", "status": 500}})
    for _ in range(2):
        with pytest.raises(CalendarUnavailable):
            await world.bookings.availability(
                tenant_id=world.tenant_id, service="Herrenhaarschnitt", start=TUESDAY_10 + timedelta(days=30)
            )
    assert calendar.client.read_breaker.state is BreakerState.OPEN
    assert calendar.client.breaker.state is BreakerState.CLOSED

    result = await world.bookings.book(anna(world, "c"))
    assert result.appointment.status.value == "confirmed"


async def _catalog(world: World) -> Catalog:
    async with world.uow.reading() as tx:
        return await tx.load_catalog(world.tenant_id)


async def test_while_cal_com_refuses_our_key_nobody_hears_free_and_a_working_request_clears_it(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    await warm(world)
    world.emulator.faults({"mode": "auth_expired", "method": "POST", "path": "/v2/bookings", "count": 1})
    with pytest.raises(CalendarUnavailable):
        await world.bookings.book(anna(world, "expired"))
    assert any(r.levelname == "ERROR" and "key refused" in r.getMessage() for r in caplog.records)

    with pytest.raises(CalendarUnavailable) as unchecked:
        await world.bookings.availability(
            tenant_id=world.tenant_id, service="Herrenhaarschnitt", start=TUESDAY_10 + timedelta(hours=1)
        )
    assert unchecked.value.code == "availability_unchecked", "not 'noch frei' when booking would fail"

    booked = await world.bookings.book(  # the key works again (renewed): the next booking goes through
        anna(world, "renewed", TUESDAY_10 + timedelta(hours=2))
    )
    assert booked.appointment.status.value == "confirmed"
    answer = await world.bookings.availability(
        tenant_id=world.tenant_id, service="Herrenhaarschnitt", start=TUESDAY_10 + timedelta(hours=1)
    )
    assert answer.free
