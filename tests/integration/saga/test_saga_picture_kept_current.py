"""The slot picture kept current from what we learn instead of re-reading Cal.com (issue 18, item 5).

Before (issue 18): with the emulator under its fault profile, a load cost 2.27 Cal.com requests per
phone call (54 creates, 49 slot reads, 24 reads, 6 cancels, 3 reschedules) and check_availability
p95 was 1,140 ms: every cancel or move made its days stale and the next callers waited for slot
reads; a webhook made every day stale; the reconciler listed each event type separately, in every
worker; a 5xx on a create or cancel was read back before anything else.

Here, against the real emulator over HTTP (and real Redis where two processes share the picture):
our own creates, cancels and moves and Cal.com's booking webhooks hold and release times in the
picture without a slot read; what we cannot know (a slot Cal.com refused us, an unknown outcome)
makes just that day stale; a 5xx is answered by sending the write once more; the echo of our own
booking costs no read; one reconcile pass lists every event type at once, and of two workers only
one lists.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from tests.conftest import redis_url

from rezeption.booking.bookings import BookingRequest, Bookings
from rezeption.booking.ports import CalendarOutcomeUnknown, CalendarRefused, booking_token
from rezeption.booking.prefetch import prefetch
from rezeption.booking.reconcile import Reconciler
from rezeption.calendars.calcom import CalcomCalendar
from rezeption.calendars.calcom.breaker import CircuitBreaker
from rezeption.calendars.calcom.webhook import build_calcom_webhook_router, signature_for
from rezeption.calendars.directory import CalendarDirectory
from rezeption.calendars.slot_cache import MemorySlotCache, RedisSlotCache, SlotCache
from rezeption.domain.model import Appointment, AppointmentStatus, Catalog
from rezeption.ops.slot_refresher import refresh_once
from rezeption.ops.worker import WorkerOptions, run_once, run_worker

from .conftest import FAST_CLIENT, NOW, TUESDAY_10, World

pytestmark = pytest.mark.postgres
REDIS = redis_url(15)
SECRET = "whsec_friseur1_demo"
CREATE = {"method": "POST", "path": "/v2/bookings"}
HOSTS = {101: 11, 111: 11, 102: 12, 113: 13}  # event type -> its stylist's Cal.com user (the salon file)


def pending(world: World, catalog: Catalog, appointment_id: int, start: datetime = TUESDAY_10) -> Appointment:
    """Anna's Herrenhaarschnitt at `start` as a claimed (pending) appointment, for the provider alone."""
    service = next(s for s in catalog.services if s.key == "herrenhaarschnitt")
    staff = next(m for m in catalog.staff if m.key == "anna")
    return Appointment(
        id=appointment_id, tenant_id=world.tenant_id, service_id=service.id, staff_id=staff.id,
        customer_id=None, starts_at=start, ends_at=start + timedelta(minutes=30), block_starts_at=start,
        block_ends_at=start + timedelta(minutes=35), status=AppointmentStatus.PENDING, source="phone",
        provider="calcom", external_uid=None, call_id=None, idempotency_key=None, spoken_name=None,
        version=1, created_at=NOW,
    )  # fmt: skip


async def _catalog(world: World) -> Catalog:
    async with world.uow.reading() as tx:
        return await tx.load_catalog(world.tenant_id)


async def provider(world: World) -> CalcomCalendar:
    return world.calendars.calcom(await _catalog(world))


async def warm(world: World) -> None:
    await prefetch(uow=world.uow, calendars=world.calendars, clock=world.clock, tenant_id=world.tenant_id)


def anna(world: World, key: str, start: datetime = TUESDAY_10) -> BookingRequest:
    return BookingRequest(
        tenant_id=world.tenant_id, service="Herrenhaarschnitt", start=start, staff="Anna", idempotency_key=key
    )


async def free(bookings: Bookings, world: World, start: datetime, service: str = "Herrenhaarschnitt") -> bool:
    answer = await bookings.availability(
        tenant_id=world.tenant_id, service=service, start=start, staff="Anna"
    )
    return answer.free


def slot_reads(world: World) -> int:
    return len(world.emulator.requests("GET", "/v2/slots"))


def lists(world: World) -> int:
    return len([e for e in world.emulator.requests("GET", "/v2/bookings") if e["path"] == "/v2/bookings"])


def reads_by_uid(world: World) -> int:
    return len(world.emulator.requests("GET", "/v2/bookings/"))


def delivery(trigger: str, booking: dict[str, Any], **extra: Any) -> bytes:
    """A Cal.com webhook body for `booking` (as the emulator's state shows it)."""
    payload = {
        "uid": booking["uid"],
        "eventTypeId": booking["eventTypeId"],
        "startTime": booking["start"],
        "endTime": booking["end"],
        "organizer": {"id": HOSTS[booking["eventTypeId"]]},
        "status": "CANCELLED" if trigger == "BOOKING_CANCELLED" else "ACCEPTED",
        **extra,
    }
    return json.dumps(
        {"triggerEvent": trigger, "createdAt": "2025-11-03T07:05:00Z", "payload": payload}
    ).encode()


@asynccontextmanager
async def webhooks(world: World) -> AsyncIterator[Callable[[bytes], Awaitable[httpx.Response]]]:
    """Post signed deliveries to the salon's webhook route (our app's router, in process)."""
    app = FastAPI()
    app.include_router(build_calcom_webhook_router())

    class Services:
        uow, bookings, clock, calendars = world.uow, world.bookings, world.clock, world.calendars

    app.state.services = Services()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:

        async def post(body: bytes) -> httpx.Response:
            headers = {"X-Cal-Signature-256": signature_for(SECRET, body)}
            return await http.post("/calcom/webhooks/friseur1-calcom", content=body, headers=headers)

        yield post


def cancel_at_cal_com(world: World, uid: str) -> None:
    """The salon cancels a booking in Cal.com itself."""
    response = httpx.post(
        f"{world.emulator.url}/v2/bookings/{uid}/cancel",
        json={"cancellationReason": "salon"},
        headers={"Authorization": "Bearer cal_test_rezeption", "cal-api-version": "2024-08-13"},
    )
    assert response.status_code == 200, response.text


async def worker_once(world: World) -> None:
    class Deps:
        database, reconciler, clock = world.db, world.reconciler, world.clock

    await run_once(Deps(), WorkerOptions(worker_id="w"))


# --- what Cal.com tells us, and what we cannot know (the hostile cases) -------------------------


async def test_a_booking_made_directly_in_cal_com_leaves_the_picture_when_its_webhook_arrives(
    world: World,
) -> None:
    calendar = await provider(world)
    await warm(world)
    walk_in = world.emulator.walk_in(101, TUESDAY_10)  # the salon books Anna at 10:00 in Cal.com
    before = slot_reads(world)
    assert await free(world.bookings, world, TUESDAY_10), "not known yet: nothing said so"

    async with webhooks(world) as post:
        assert (await post(delivery("BOOKING_CREATED", walk_in))).status_code == 200
        await calendar.settled()
        assert not await free(world.bookings, world, TUESDAY_10)
        assert not await free(world.bookings, world, TUESDAY_10 - timedelta(minutes=30), "Damenhaarschnitt")
        assert await free(world.bookings, world, TUESDAY_10 + timedelta(hours=1)), "the rest of the day"
        assert slot_reads(world) == before, "the delivery said it: no slot read"

        cancel_at_cal_com(world, walk_in["uid"])
        cancelled = {**walk_in, "status": "cancelled"}
        assert (await post(delivery("BOOKING_CANCELLED", cancelled))).status_code == 200
        await calendar.settled()
        assert await free(world.bookings, world, TUESDAY_10), "given back"
        assert slot_reads(world) == before

    await worker_once(world)  # the re-reads: the cancelled one agrees with us (never ours), one read
    assert reads_by_uid(world) == 1
    assert await world.appointments() == [], "a cancelled walk-in is not imported"


async def test_a_slot_stolen_at_cal_com_makes_that_day_stale_and_the_next_check_reads_it(
    world: World,
) -> None:
    calendar = await provider(world)
    catalog = await _catalog(world)
    await warm(world)
    before = slot_reads(world)
    world.emulator.faults({"mode": "slot_stolen", **CREATE, "count": 1})

    with pytest.raises(CalendarRefused):
        await calendar.create(catalog, pending(world, catalog, 4242))
    await calendar.settled()
    assert not await free(world.bookings, world, TUESDAY_10)

    assert slot_reads(world) > before, "someone else booked there: that day was read again"
    read = slot_reads(world)
    assert await free(world.bookings, world, TUESDAY_10 + timedelta(days=1)), "another day"
    assert slot_reads(world) == read, "other days stay fresh"


async def test_a_create_whose_outcome_stays_unknown_holds_its_time_and_makes_its_day_stale(
    world: World,
) -> None:
    calendar = await provider(world)
    await warm(world)
    await book_in_doubt(world)
    await calendar.settled()
    before = slot_reads(world)

    assert not await free(world.bookings, world, TUESDAY_10)
    assert slot_reads(world) > before, "we could not know: that day is read again"


def committed_before_the_5xx(world: World, appointment: Appointment, status: str) -> dict[str, Any]:
    """What the first create did at Cal.com before its answer became a 500."""
    committed: dict[str, Any] = world.emulator.admin.post(
        "/_emulator/bookings",
        json={"eventTypeId": 101, "start": TUESDAY_10.isoformat(), "status": status,
              "metadata": {"rezeption_token": booking_token(appointment)}},
    ).json()  # fmt: skip
    return committed


async def book_in_doubt(world: World) -> None:
    """Anna at ten, booked at Cal.com but its answer lost, and the read-back failing too: the
    claim stays pending, in doubt."""
    world.emulator.faults(
        {"mode": "lost_response", **CREATE, "count": 1},
        {"mode": "server_error", "method": "GET", "path": "/v2/bookings"},  # the read-back fails too
    )
    with pytest.raises(CalendarOutcomeUnknown):
        await world.bookings.book(anna(world, "lost"))
    world.emulator.clear_faults()


def live_with(world: World, appointment: Appointment) -> list[str]:
    token = booking_token(appointment)
    return [b["uid"] for b in world.emulator.active() if b["metadata"].get("rezeption_token") == token]


async def seen_accepting(world: World) -> tuple[CalcomCalendar, Catalog]:
    """The provider after one accepted booking of Anna's event type (101) in the afternoon."""
    calendar = await provider(world)
    catalog = await _catalog(world)
    await calendar.create(catalog, pending(world, catalog, 4000, TUESDAY_10 + timedelta(hours=5)))
    return calendar, catalog


def bookings_log(world: World) -> list[tuple[str, int]]:
    """Cal.com's /v2/bookings requests after the first (the accepted booking of `seen_accepting`)."""
    log = world.emulator.admin.get("/_emulator/requests").json()
    return [(e["method"], e["status"]) for e in log if e["path"] == "/v2/bookings"][1:]


async def test_a_create_that_committed_before_its_5xx_is_found_by_its_token_when_the_resend_hears_busy(
    world: World,
) -> None:
    """A 5xx on a create (one host, bookings seen accepted) is answered by the create once more,
    unread: Cal.com refuses a second accepted booking of one host and time, and that busy answer
    is read back by our token. Nothing is booked twice."""
    calendar, catalog = await seen_accepting(world)
    appointment = pending(world, catalog, 4242)
    committed = committed_before_the_5xx(world, appointment, "accepted")
    world.emulator.faults({"mode": "server_error", **CREATE, "count": 1, "params": {"status": 500}})

    booking = await calendar.create(catalog, appointment)

    assert booking.uid == committed["uid"]
    assert bookings_log(world) == [("POST", 500), ("POST", 400), ("GET", 200)], "busy, read back"
    assert live_with(world, appointment) == [committed["uid"]]


async def test_a_resend_stopped_before_cal_com_answers_it_reads_the_first_create_back(
    make_world: Callable[..., World],
) -> None:
    """The 5xx opened the write breaker (a half-open probe, an incident): the resend is refused
    here, unsent. The first create may have booked: it must be read back or kept in doubt, never
    told "failed" while Cal.com holds the booking."""
    world = make_world(
        breaker=CircuitBreaker(failure_threshold=1, cooldown=timedelta(seconds=30), clock=lambda: NOW)
    )
    calendar, catalog = await seen_accepting(world)
    appointment = pending(world, catalog, 4246)
    committed = committed_before_the_5xx(world, appointment, "accepted")
    world.emulator.faults({"mode": "server_error", **CREATE, "count": 1, "params": {"status": 500}})

    try:
        booking = await calendar.create(catalog, appointment)
    except CalendarOutcomeUnknown:  # the read-back was refused by the open breaker too: in doubt
        assert bookings_log(world) == [("POST", 500)]
    else:
        assert booking.uid == committed["uid"]
        assert bookings_log(world) == [("POST", 500), ("GET", 200)]
    assert live_with(world, appointment) == [committed["uid"]]


async def test_a_resent_create_that_comes_back_awaiting_confirmation_leaves_no_twin(world: World) -> None:
    """Cal.com does not guard bookings awaiting the host's confirmation against a second one of the
    same time (#10789, #29958). The salon switched the event type to "requires confirmation" after
    it was seen accepting: the create that answered 500 may have been booked too, and the resend
    books again. The resend's pending answer has every other booking with our token cancelled."""
    calendar, catalog = await seen_accepting(world)
    appointment = pending(world, catalog, 4243)
    committed_before_the_5xx(world, appointment, "pending")
    world.emulator.faults(
        {"mode": "server_error", **CREATE, "count": 1, "params": {"status": 500}},
        {"mode": "pending", **CREATE},
    )

    booking = await calendar.create(catalog, appointment)

    assert booking.status == "pending"
    assert live_with(world, appointment) == [booking.uid], "exactly one booking carries our token"


@pytest.mark.parametrize("history", ["none", "pending"])
async def test_an_event_type_not_seen_accepting_has_a_5xx_read_back_before_the_resend(
    world: World, history: str
) -> None:
    """After a start nothing is known of an event type, and one whose last booking awaits the
    host's confirmation has no guard against a twin: the 5xx is read back first, as before."""
    calendar = await provider(world)
    catalog = await _catalog(world)
    world.emulator.faults({"mode": "pending", **CREATE})
    if history == "pending":
        await calendar.create(catalog, pending(world, catalog, 4244, TUESDAY_10 + timedelta(hours=5)))
    world.emulator.faults(
        {"mode": "server_error", **CREATE, "count": 1, "params": {"status": 500}},
        {"mode": "pending", **CREATE},
    )
    later = pending(world, catalog, 4245, TUESDAY_10 + timedelta(hours=2))

    booking = await calendar.create(catalog, later)

    log = [e for e in world.emulator.admin.get("/_emulator/requests").json() if e["path"] == "/v2/bookings"]
    asked = [(e["method"], e["status"]) for e in log][1 if history == "pending" else 0 :]
    assert asked == [("POST", 500), ("GET", 200), ("POST", 201)], "read back before the resend"
    assert live_with(world, later) == [booking.uid]


@pytest.mark.redis
async def test_two_server_processes_sharing_the_picture_see_each_others_bookings_and_cancels(
    world: World,
) -> None:
    async with shared_pictures(world, 2) as (one, other):
        await prefetch(uow=world.uow, calendars=one.calendars, clock=world.clock, tenant_id=world.tenant_id)
        before = slot_reads(world)
        assert await free(other, world, TUESDAY_10)

        booked = (await one.book(anna(world, "one"))).appointment
        await one.calendars.calcom(await _catalog(world)).settled()
        assert not await free(other, world, TUESDAY_10), "the other process's picture says taken"

        await one.cancel(tenant_id=world.tenant_id, appointment_id=booked.id)
        await one.calendars.calcom(await _catalog(world)).settled()
        assert await free(other, world, TUESDAY_10), "and free again"
        assert slot_reads(world) == before, "neither of them read slots for it"


# --- our own writes -------------------------------------------------------------------------


async def test_a_cancel_gives_the_time_back_to_the_picture_without_a_slot_read(world: World) -> None:
    calendar = await provider(world)
    await warm(world)
    booked = (await world.bookings.book(anna(world, "k"))).appointment
    await calendar.settled()
    assert not await free(world.bookings, world, TUESDAY_10)
    before = slot_reads(world)

    await world.bookings.cancel(tenant_id=world.tenant_id, appointment_id=booked.id)
    await calendar.settled()

    assert await free(world.bookings, world, TUESDAY_10)
    assert await free(world.bookings, world, TUESDAY_10 + timedelta(minutes=30))
    assert slot_reads(world) == before, "its day stays fresh"


async def test_a_move_gives_the_old_time_back_and_takes_the_new_one_without_a_slot_read(world: World) -> None:
    calendar = await provider(world)
    await warm(world)
    booked = (await world.bookings.book(anna(world, "k"))).appointment
    later = TUESDAY_10 + timedelta(days=1, hours=2)
    await calendar.settled()
    before = slot_reads(world)

    moved = await world.bookings.reschedule(
        tenant_id=world.tenant_id, appointment_id=booked.id, start=later, idempotency_key="m"
    )
    await calendar.settled()

    assert moved.appointment.starts_at == later
    assert len(world.emulator.requests("POST", "/v2/bookings/")) == 1, "one reschedule at Cal.com"
    assert await free(world.bookings, world, TUESDAY_10)
    assert not await free(world.bookings, world, later)
    assert slot_reads(world) == before


async def test_a_5xx_on_create_is_sent_once_more_without_a_read_back(world: World) -> None:
    await warm(world)
    await world.bookings.book(anna(world, "first", TUESDAY_10 + timedelta(hours=5)))  # seen accepting
    world.emulator.faults({"mode": "server_error", **CREATE, "count": 1, "params": {"kind": "html"}})

    result = await world.bookings.book(anna(world, "k"))

    assert result.appointment.status is AppointmentStatus.CONFIRMED
    assert [e["status"] for e in world.emulator.requests("POST", "/v2/bookings")] == [201, 502, 201]
    assert lists(world) == 0, "Cal.com's own guard answers for the first create"
    assert len(world.emulator.active()) == 2


async def test_a_5xx_on_cancel_is_sent_once_more_without_a_read_back(world: World) -> None:
    booked = (await world.bookings.book(anna(world, "k"))).appointment
    world.emulator.faults({"mode": "server_error", "method": "POST", "path": "/v2/bookings/*", "count": 1})

    await world.bookings.cancel(tenant_id=world.tenant_id, appointment_id=booked.id)

    cancels = [e for e in world.emulator.requests("POST", "/v2/bookings/") if e["path"].endswith("/cancel")]
    assert [e["status"] for e in cancels] == [500, 200]
    assert reads_by_uid(world) == 0
    assert world.emulator.active() == [], "cancelled at Cal.com at once, not later by the worker"


async def test_a_worker_polling_while_the_inline_cancel_is_in_flight_sends_no_second_cancel(
    world: World,
) -> None:
    """The outbox job beside an inline cancel was due at once: a worker polling during Cal.com's
    second of latency sent the same cancel again, heard "already cancelled" and read it back."""
    booked = (await world.bookings.book(anna(world, "k"))).appointment
    world.emulator.faults(
        {"mode": "latency", "method": "POST", "path": "/v2/bookings/*", "params": {"seconds": 0.6}}
    )

    cancelling = asyncio.create_task(
        world.bookings.cancel(tenant_id=world.tenant_id, appointment_id=booked.id)
    )
    await asyncio.sleep(0.3)  # the cancel is at Cal.com now
    await worker_once(world)
    await cancelling
    await worker_once(world)

    cancels = [e for e in world.emulator.requests("POST", "/v2/bookings/") if e["path"].endswith("/cancel")]
    assert len(cancels) == 1 and reads_by_uid(world) == 0
    assert [j.status for j in await world.jobs("calendar_cancel")] == ["done"]
    assert world.emulator.active() == []


async def test_the_webhook_echo_of_our_own_booking_costs_no_read(world: World) -> None:
    calendar = await provider(world)
    await warm(world)
    booked = (await world.bookings.book(anna(world, "k"))).appointment
    (remote,) = world.emulator.active()
    before = slot_reads(world)

    async with webhooks(world) as post:
        assert (await post(delivery("BOOKING_CREATED", remote))).status_code == 200
    await calendar.settled()
    await worker_once(world)

    assert remote["uid"] == booked.external_uid
    assert reads_by_uid(world) == 0 and lists(world) == 0, "our database already tells that story"
    assert [j.status for j in await world.jobs("calcom_reread")] == ["done"]
    assert not await free(world.bookings, world, TUESDAY_10)
    assert slot_reads(world) == before


async def test_an_old_picture_is_refreshed_in_the_background_before_a_caller_would_read_it(
    world: World,
) -> None:
    """The refresher re-reads a range once it is `slot_refresh_seconds` old; a caller answers from
    it for `STALE_GRACE` longer, so the refresh is not paid for by someone waiting on the line."""
    calendar = await provider(world)
    catalog = await _catalog(world)
    day = TUESDAY_10.date()
    spans = [(TUESDAY_10, TUESDAY_10 + timedelta(minutes=30))]
    aged = time.time() - calendar.settings.slot_refresh_seconds - 30
    await calendar.cache.put_days(calendar.scope, 101, {day: spans}, fetched_at=aged)

    assert (await calendar.day_spans(catalog, day, 101)) == spans
    assert slot_reads(world) == 0, "older than the refresh interval, still current for a caller"
    assert await calendar.prefetch(catalog) >= 1, "but due for the background refresh"


# --- the reconciler -------------------------------------------------------------------------


async def test_one_reconcile_pass_lists_every_event_type_in_one_request(world: World) -> None:
    world.emulator.walk_in(101, TUESDAY_10)  # Anna
    world.emulator.walk_in(113, TUESDAY_10 + timedelta(days=1))  # Clara
    calendar = await provider(world)
    await warm(world)

    report = await world.reconciler.reconcile_tenant(world.tenant_id)
    await calendar.settled()

    assert report.imported == 2 and not report.errors
    assert lists(world) == 1, "one request for all twelve event types"
    assert not await free(world.bookings, world, TUESDAY_10), "an imported booking holds its time"


@pytest.mark.redis
async def test_two_reconcilers_at_once_only_one_lists(world: World) -> None:
    world.emulator.walk_in(101, TUESDAY_10)
    async with shared_pictures(world, 2) as (one, other):
        workers = [Reconciler(uow=world.uow, calendars=b.calendars, clock=world.clock) for b in (one, other)]

        reports = await asyncio.gather(*(w.reconcile_all(claim_for=60) for w in workers))

        assert lists(world) == 1
        assert sorted(r.skipped for r in reports) == [0, 1]
        assert sum(r.imported for r in reports) == 1
        again = await workers[1].reconcile_all()  # `rezeption reconcile`, the load checker: no claim
        assert lists(world) == 2 and again.skipped == 0


async def test_the_scheduled_pass_reads_an_overdue_claim_back_each_minute_but_lists_cal_com_less_often(
    world: World,
) -> None:
    """A worker's pass once a minute listed every booking at Cal.com: 1,440 requests a salon a day,
    with nobody calling. The listing is the safety net behind webhooks and jobs; an overdue claim is
    read back by its token at the next pass, without a listing."""
    await warm(world)
    first = await world.reconciler.reconcile_tenant(world.tenant_id, claim_for=0.05, list_for=600)
    assert lists(world) == 1 and not first.errors
    await book_in_doubt(world)
    read_so_far = lists(world)
    world.clock.advance(timedelta(minutes=3))  # past the claim's deadline
    await asyncio.sleep(0.1)  # the minute's claim has lapsed, the listing's has not

    second = await world.reconciler.reconcile_tenant(world.tenant_id, claim_for=0.05, list_for=600)

    assert second.pending_failed == 1 and second.orphans_cancelled == 1 and not second.errors
    assert lists(world) == read_so_far + 1, "one read by the claim's token, no listing"
    assert world.emulator.active() == []
    manual = await world.reconciler.reconcile_tenant(world.tenant_id)  # `rezeption reconcile`
    assert lists(world) == read_so_far + 2 and not manual.errors, "unclaimed, it lists"


async def test_a_listing_that_failed_is_tried_again_at_the_next_pass_not_ten_minutes_later(
    world: World,
) -> None:
    """The listing is the safety net behind webhooks and jobs: one Cal.com could not answer must
    not leave the salon without it for the whole listing interval."""
    await warm(world)
    world.emulator.faults({"mode": "server_error", "method": "GET", "path": "/v2/bookings"})
    failed = await world.reconciler.reconcile_tenant(world.tenant_id, claim_for=0.05, list_for=600)
    assert failed.errors and "listing" in failed.errors[0]
    world.emulator.clear_faults()
    tried = lists(world)
    await asyncio.sleep(0.1)  # the pass's claim lapses

    again = await world.reconciler.reconcile_tenant(world.tenant_id, claim_for=0.05, list_for=600)
    await asyncio.sleep(0.1)
    after = await world.reconciler.reconcile_tenant(world.tenant_id, claim_for=0.05, list_for=600)

    assert not again.errors and not after.errors
    assert lists(world) == tried + 1, "listed again once, then not until the interval is over"


@pytest.mark.parametrize(("list_every", "listed"), [(600.0, 1), (0.05, "several")])
async def test_a_running_worker_lists_cal_com_once_per_its_listing_interval(
    world: World, list_every: float, listed: int | str
) -> None:
    await warm(world)
    stop = asyncio.Event()
    deps = SimpleNamespace(database=world.db, reconciler=world.reconciler, clock=world.clock)
    options = WorkerOptions(worker_id="t", poll_seconds=0.02, reconcile_every=0.05, list_every=list_every)
    running = asyncio.create_task(run_worker(deps, stop=stop, options=options))  # type: ignore[arg-type]
    await asyncio.sleep(0.6)  # about a dozen passes
    stop.set()
    await running

    assert lists(world) == listed if listed == 1 else lists(world) > 2


async def test_the_background_refresh_reads_nothing_for_a_salon_nobody_is_calling(world: World) -> None:
    """Twelve event types re-read every ten minutes were 1,728 Cal.com requests a day, at night
    too. The refresher now keeps a picture warm only while the salon is being called; the next
    call's own prefetch (call_inbound) brings a quiet salon's picture up to date."""
    calendar = await provider(world)
    calendar.settings = replace(calendar.settings, refresh_while_called_seconds=6.5)
    services = SimpleNamespace(
        database=world.db, uow=world.uow, calendars=world.calendars, clock=world.clock,
        bookings=world.bookings,
    )  # fmt: skip

    await refresh_once(services)  # type: ignore[arg-type]
    assert slot_reads(world) == 0, "nobody called: nothing read"

    await warm(world)  # call_inbound's prefetch
    assert slot_reads(world) == 12
    claim = calendar.settings.read_timeout + 2.0  # the real read timeout: nothing shortened
    await asyncio.sleep(claim + 0.1)  # its claims on the ranges lapse (a read's timeout and 2 s)
    await calendar.cache.invalidate(calendar.scope)  # the ranges are due again
    await refresh_once(services)  # type: ignore[arg-type]
    assert slot_reads(world) == 24, "while the salon is being called, the refresher keeps it warm"

    await asyncio.sleep(6.6 - claim)  # quiet since
    await calendar.cache.invalidate(calendar.scope)
    await refresh_once(services)  # type: ignore[arg-type]
    assert slot_reads(world) == 24


# --- the picture's store --------------------------------------------------------------------


@pytest.mark.parametrize("store", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def test_a_mark_is_seen_by_every_process_sharing_the_store_until_it_lapses(store: str) -> None:
    def make() -> SlotCache:
        return MemorySlotCache() if store == "memory" else RedisSlotCache(Redis.from_url(REDIS))

    cache = make()
    other = cache if store == "memory" else make()
    scope = f"test-salon-{time.time_ns()}"
    assert not await other.marked(scope, "called")
    await cache.mark(scope, "called", 0.3)
    assert await other.marked(scope, "called")
    assert not await other.marked(scope, "something else")
    assert not await other.marked(f"{scope}-b", "called"), "another salon's mark"
    await asyncio.sleep(0.2)
    await cache.mark(scope, "called", 0.3)  # set again: from now
    await asyncio.sleep(0.2)
    assert await other.marked(scope, "called")
    await asyncio.sleep(0.2)
    assert not await other.marked(scope, "called"), "lapsed"


@pytest.mark.parametrize("store", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def test_a_hold_outlives_refreshes_and_its_release_gives_back_what_it_took(store: str) -> None:
    cache: SlotCache = MemorySlotCache() if store == "memory" else RedisSlotCache(Redis.from_url(REDIS))
    scope, day = f"test-salon-{time.time_ns()}", TUESDAY_10.date()
    ten, half, eleven = (
        (TUESDAY_10 + timedelta(minutes=m), TUESDAY_10 + timedelta(minutes=m + 30)) for m in (0, 30, 60)
    )

    async def spans() -> list[tuple[datetime, datetime]]:
        picture = await cache.get(scope, day, 101)
        assert picture is not None and picture.fresh(60)
        return picture.spans

    try:
        began = time.time()
        await cache.put_days(scope, 101, {day: [ten, half, eleven]}, fetched_at=began - 10)
        # our 10:00 booking, 30 min + 5 min after: a start s is blocked when [s, s + 35) meets it
        await cache.hold(
            scope, day, {101: (TUESDAY_10 - timedelta(minutes=5), half[0] + timedelta(minutes=5))}, "anna-10"
        )
        assert await spans() == [eleven]

        await cache.put_days(scope, 101, {day: [ten, half, eleven]}, fetched_at=began - 5)
        assert await spans() == [eleven], "a fetch begun before the booking does not bring it back"
        await cache.put_days(scope, 101, {day: [half, eleven]}, fetched_at=time.time())
        assert await spans() == [eleven], "Cal.com shows it taken: the hold keeps its reach out"

        await cache.hold(scope, day, {101: (half[0], eleven[0])}, "anna-1030-walk-in")
        await cache.release(scope, day, [101], "anna-10")
        assert await spans() == [ten, eleven], "10:30 is still held by the other booking"
        await cache.release(scope, day, [101], "anna-1030-walk-in")
        assert await spans() == [ten, half, eleven]
        await cache.release(scope, day, [101], "anna-10")
        assert await spans() == [ten, half, eleven], "a second release changes nothing"
    finally:
        if isinstance(cache, RedisSlotCache):
            await cache.aclose()


@pytest.mark.redis
async def test_a_refresh_of_every_event_type_at_once_lands_whole_in_the_shared_picture() -> None:
    """The warm-up writes five weeks of all twelve event types side by side. Kept as one Redis hash
    per day, their transactions aborted each other until some gave up (WatchError, seen in the
    benchmark's server log): those event types were missing and the next callers read them."""
    caches = [RedisSlotCache(Redis.from_url(REDIS)) for _ in range(3)]  # three server processes
    scope = f"test-salon-{time.time_ns()}"
    slot = (TUESDAY_10, TUESDAY_10 + timedelta(minutes=30))
    days = {TUESDAY_10.date() + timedelta(days=n): [slot] for n in range(35)}
    types = range(101, 113)
    try:
        await asyncio.gather(
            *(caches[n % 3].put_days(scope, t, days, fetched_at=time.time()) for n, t in enumerate(types))
        )
        missing = [(t, d) for t in types for d in days if await caches[0].get(scope, d, t) is None]
        assert missing == []
    finally:
        for cache in caches:
            await cache.aclose()


# --- two processes sharing Redis ---------------------------------------------------------------


@asynccontextmanager
async def shared_pictures(world: World, count: int) -> AsyncIterator[list[Bookings]]:
    """`count` server processes' booking use cases, each with its own Cal.com client and its own
    connection to one Redis picture (the salon's keys emptied before and after)."""
    scope = str(world.tenant_id)
    admin = Redis.from_url(REDIS)

    async def clean() -> None:
        for pattern in (
            f"rezeption:slots2:{scope}:*",
            f"rezeption:slots-marks:{scope}",
            f"rezeption:claim:{scope}:*",
            f"rezeption:mark:{scope}:*",  # "listed" and "called" outlive a run by minutes
        ):
            async for key in admin.scan_iter(match=pattern):
                await admin.delete(key)

    await clean()
    caches = [RedisSlotCache(Redis.from_url(REDIS)) for _ in range(count)]
    directories = [
        CalendarDirectory(world.uow, clock=world.clock, slot_cache=c, client_options=dict(FAST_CLIENT))
        for c in caches
    ]
    try:
        yield [Bookings(uow=world.uow, calendars=d, clock=world.clock) for d in directories]
    finally:
        for directory, cache in zip(directories, caches, strict=True):
            await directory.aclose()
            await cache.aclose()
        await clean()
        await admin.aclose()
