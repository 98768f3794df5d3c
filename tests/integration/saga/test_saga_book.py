"""Booking through Cal.com: what the caller hears and what both sides hold, per fault of calcom.md 10.3."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import timedelta

import pytest
from tests.metrics import Growth

from rezeption.booking.bookings import BookingRequest
from rezeption.booking.ports import CalendarUnavailable
from rezeption.calendars.directory import CalendarNotConfigured
from rezeption.domain.errors import SlotTaken
from rezeption.domain.flags import CALCOM_PROVIDER, Rule, as_trace, recording
from rezeption.store.flags import flag_book, set_rule

from .conftest import TUESDAY_10, World

pytestmark = pytest.mark.postgres

CREATE = {"method": "POST", "path": "/v2/bookings"}


def request(key: str = "call-1:book", start=TUESDAY_10, staff: str | None = "Anna") -> BookingRequest:  # type: ignore[no-untyped-def]
    return BookingRequest(
        tenant_id=0,
        service="Herrenhaarschnitt",
        start=start,
        staff=staff,
        customer_name="Eva Muster",
        phone_e164="+4915112345678",
        call_id="call-1",
        idempotency_key=key,
    )


async def book(world: World, key: str = "call-1:book", **kw: object):  # type: ignore[no-untyped-def]
    req = request(key, **kw)  # type: ignore[arg-type]
    return await world.bookings.book(BookingRequest(**{**req.__dict__, "tenant_id": world.tenant_id}))


async def test_a_booking_is_confirmed_here_only_after_cal_com_booked_exactly_that_time(world: World) -> None:
    result = await book(world)
    assert not result.awaiting_salon

    (row,) = await world.appointments()
    assert row.status == "confirmed" and row.provider == "calcom"
    (remote,) = world.emulator.active()
    assert row.external_uid == remote["uid"] == result.appointment.external_uid
    assert remote["metadata"]["rezeption_token"].startswith(f"rz-{row.id}-")
    assert remote["start"].startswith("2025-11-04T09:00:00")
    assert await world.events(row.id) == [("reserved", "calendar_requested"), ("confirmed", "done")]


async def test_a_slot_stolen_at_cal_com_is_refused_with_alternatives_and_nothing_of_ours_stays(
    world: World,
) -> None:
    world.emulator.faults({"mode": "slot_stolen", **CREATE, "count": 1})

    with pytest.raises(SlotTaken) as refused:
        await book(world)

    assert refused.value.details["alternatives"], "the caller is offered other times"
    (row,) = await world.appointments()
    assert row.status == "failed"
    assert [b["source"] for b in world.emulator.active()] == ["fault:slot_stolen"]
    assert ("failed", "done") in await world.events(row.id)


@pytest.mark.parametrize("mode", ["lost_response", "concurrent_duplicate"])
async def test_an_ambiguous_or_duplicate_create_is_read_back_and_booked_once(world: World, mode: str) -> None:
    world.emulator.faults({"mode": mode, **CREATE, "count": 1})

    result = await book(world)

    ours = [b for b in world.emulator.active() if b["metadata"].get("rezeption_token")]
    assert len(ours) == 1
    assert result.appointment.status.value == "confirmed"
    assert result.appointment.external_uid == ours[0]["uid"]
    assert len(world.emulator.requests("POST", "/v2/bookings")) == 1, "never resent"


@pytest.mark.parametrize(
    "fault",
    [
        {"mode": "server_error", "params": {"kind": "json", "status": 500}},
        {"mode": "server_error", "params": {"kind": "html", "status": 503}},
        {"mode": "reset"},
        {"mode": "rate_limited", "params": {"reset_seconds": 60}},
        {"mode": "auth_expired"},
    ],
    ids=["json-500", "html-503", "reset", "429", "auth-expired"],
)
async def test_cal_com_down_means_an_apology_a_callback_request_and_nothing_half_booked(
    world: World, fault: dict[str, object]
) -> None:
    world.emulator.faults({**fault, **CREATE, "count": 2})  # a 5xx or a drop is sent once more

    with pytest.raises(CalendarUnavailable) as down:
        await book(world)

    busy = fault["mode"] == "rate_limited"  # too busy right now, not down: said differently
    assert down.value.code == ("calendar_busy" if busy else "calendar_unavailable")
    assert ("viel los" in down.value.message) is busy
    assert "zurückrufen" in down.value.message
    (row,) = await world.appointments()
    assert row.status == "failed"
    assert world.emulator.active() == []
    (callback,) = await world.jobs("callback_request")
    assert callback.payload["appointment_id"] == row.id and callback.status == "pending"


@pytest.mark.parametrize(
    "fault",
    [{"mode": "server_error", "params": {"kind": "html", "status": 503}}, {"mode": "reset"}],
    ids=["html-503", "reset"],
)
async def test_a_create_that_booked_nothing_is_sent_once_more_and_booked_once(
    world: World, fault: dict[str, object]
) -> None:
    world.emulator.faults({**fault, **CREATE, "count": 1})

    result = await book(world)

    assert result.appointment.status.value == "confirmed"
    (remote,) = world.emulator.active()
    assert remote["uid"] == result.appointment.external_uid
    assert len(world.emulator.requests("POST", "/v2/bookings")) == 2


async def test_cal_com_unreachable_is_the_same_apology(make_world: Callable[..., World]) -> None:
    world = make_world()
    world.emulator.server.should_exit = True
    for _ in range(200):
        if not world.emulator.server.started:
            break
        await asyncio.sleep(0.02)

    with pytest.raises(CalendarUnavailable):
        await book(world)

    (row,) = await world.appointments()
    assert row.status == "failed"
    assert len(await world.jobs("callback_request")) == 1


async def test_a_timeout_whose_create_commits_late_is_an_orphan_the_reconciler_cancels(
    make_world: Callable[..., World],
) -> None:
    world = make_world()
    async with world.uow.writing() as tx:
        catalog = await tx.load_catalog(world.tenant_id)
    calendar = world.calendars.calcom(catalog)
    calendar.settings = dataclasses.replace(calendar.settings, write_timeout=0.3)
    world.emulator.faults({"mode": "latency", **CREATE, "count": 1, "params": {"seconds": 0.8}})
    grew = Growth()

    with pytest.raises(CalendarUnavailable):
        await book(world)

    for _ in range(100):  # the slow create commits at Cal.com after we gave up
        if world.emulator.active():
            break
        await asyncio.sleep(0.05)
    assert len(world.emulator.active()) == 1
    (row,) = await world.appointments()
    assert row.status == "failed"

    report = await world.reconciler.reconcile_tenant(world.tenant_id)

    assert report.orphans_cancelled == 1
    assert world.emulator.active() == []
    assert ("orphan_cancelled", "done") in await world.events(row.id), "operators see it on the appointment"
    assert grew.of("rezeption_reconcile_found_total", kind="orphan") == 1
    assert grew.of("rezeption_saga_steps_total", step="create", outcome="unavailable") == 1
    timeouts = {"provider": "calcom", "route": "/v2/bookings", "kind": "timeout"}
    assert grew.of("rezeption_calendar_errors_total", **timeouts) == 1
    assert grew.of("rezeption_calendar_request_seconds_count", provider="calcom", route="/v2/bookings") >= 2


async def test_a_booking_cal_com_holds_as_pending_is_held_here_and_told_as_a_request(world: World) -> None:
    world.emulator.faults({"mode": "pending", **CREATE, "count": 1})

    result = await book(world)

    assert result.appointment.status.value == "confirmed"  # the slot is ours; the host confirms it
    assert result.awaiting_salon, "the caller hears 'angefragt', never 'gebucht'"
    (remote,) = world.emulator.active()
    assert remote["status"] == "pending"
    async with world.uow.reading() as tx:
        last = await tx.last_event(result.appointment.id, "confirmed")
    assert last is not None and last[1]["calendar_status"] == "pending"


async def test_a_retry_with_the_same_key_replays_and_books_nothing_twice(world: World) -> None:
    first = await book(world)
    again = await book(world)

    assert again.replayed and again.appointment.id == first.appointment.id
    assert len(world.emulator.active()) == 1
    assert len(world.emulator.requests("POST", "/v2/bookings")) == 1


async def test_two_callers_racing_for_one_slot_get_one_booking_at_both_sides(world: World) -> None:
    results = await asyncio.gather(
        book(world, "call-a:book"), book(world, "call-b:book"), return_exceptions=True
    )

    booked = [r for r in results if not isinstance(r, BaseException)]
    assert len(booked) == 1
    assert all(isinstance(r, SlotTaken) for r in results if isinstance(r, BaseException))
    assert len(world.emulator.active()) == 1
    confirmed = [a for a in await world.appointments() if a.status == "confirmed"]
    assert len(confirmed) == 1


async def test_a_wrong_length_at_cal_com_is_cancelled_there_and_refused(world: World) -> None:
    # Misconfiguration: the service points at an event type of another length (Damenhaarschnitt, 60 min).
    async with world.uow.writing() as tx:
        catalog = await tx.load_catalog(world.tenant_id)
    calendar = world.calendars.calcom(catalog)
    types = dict(calendar.settings.event_types)
    types["herrenhaarschnitt"] = {"anna": 111, "ben": 102}
    calendar.settings = dataclasses.replace(calendar.settings, event_types=types)

    with pytest.raises(SlotTaken):
        await book(world, start=TUESDAY_10 + timedelta(hours=1))

    (row,) = await world.appointments()
    assert row.status == "failed"
    assert world.emulator.active() == []
    assert [b["status"] for b in world.emulator.bookings()] == ["cancelled"]
    assert ("compensated", "compensated") in await world.events(row.id)


async def test_with_the_calcom_flag_off_a_call_sends_nothing_to_cal_com_and_the_worker_still_can(
    world: World,
) -> None:
    async with world.uow.reading() as tx:
        catalog = await tx.load_catalog(world.tenant_id)
    flags = flag_book(world.db, ttl=0)
    world.calendars.flags = flags
    await set_rule(world.db, CALCOM_PROVIDER, Rule(False), scope=catalog.tenant.slug, at=world.clock.now())
    await flags.fresh()
    sent = len(world.emulator.requests("POST", "/v2/bookings"))

    with recording("call-flag-off") as decisions, pytest.raises(CalendarNotConfigured) as refused:
        await book(world)

    assert "Kalender ist gerade nicht erreichbar" in refused.value.message
    assert as_trace(decisions) == {CALCOM_PROVIDER: {"on": False, "why": "salon"}}
    assert len(world.emulator.requests("POST", "/v2/bookings")) == sent
    assert await world.appointments() == []
    assert world.calendars.for_tenant(catalog) is world.calendars.calcom(catalog), "outside a call: Cal.com"
