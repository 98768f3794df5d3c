"""A process killed mid-saga, Cal.com webhooks, and the slot cache with prefetch."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from tests.conftest import redis_url

from rezeption.booking.prefetch import prefetch
from rezeption.calendars.calcom.webhook import build_calcom_webhook_router, signature_for
from rezeption.calendars.slot_cache import RedisSlotCache, slot_cache_from_url

from .conftest import NOW, TUESDAY_10, World

pytestmark = pytest.mark.postgres

SCRIPT = Path(__file__).with_name("crash_between_create_and_confirm.py")


async def test_a_process_killed_between_cal_com_create_and_local_confirm_leaves_no_orphan(
    world: World, postgres_migrated: str
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        postgres_migrated,
        str(world.tenant_id),
        TUESDAY_10.isoformat(),
        NOW.isoformat(),
    )
    assert await asyncio.wait_for(process.wait(), timeout=60) == -signal.SIGKILL

    (row,) = await world.appointments()
    assert row.status == "pending", "the claim survived the crash"
    (remote,) = world.emulator.active()
    assert remote["metadata"]["rezeption_token"].startswith(f"rz-{row.id}-")
    early = await world.reconciler.reconcile_tenant(world.tenant_id)
    assert early.orphans_cancelled == 0, "inside its deadline the saga may still be running"

    world.clock.advance(timedelta(minutes=3))  # "restarted" after the pending deadline
    report = await world.reconciler.reconcile_tenant(world.tenant_id)

    assert report.pending_failed == 1 and report.orphans_cancelled == 1
    assert world.emulator.active() == []
    (row,) = await world.appointments()
    assert row.status == "failed"
    assert (await world.reconciler.reconcile_tenant(world.tenant_id)).orphans_cancelled == 0


def _app(world: World) -> FastAPI:
    app = FastAPI()
    app.include_router(build_calcom_webhook_router())

    class Services:
        uow, bookings, clock, calendars = world.uow, world.bookings, world.clock, world.calendars

    app.state.services = Services()
    return app


async def test_a_signed_webhook_triggers_a_re_read_and_a_forged_one_is_refused(world: World) -> None:
    walk_in = world.emulator.walk_in(102, TUESDAY_10 + timedelta(hours=2))
    body = json.dumps(
        {
            "triggerEvent": "BOOKING_CREATED",
            "createdAt": "2025-11-03T07:00:00Z",
            "payload": {"uid": walk_in["uid"]},
        }
    ).encode()
    transport = httpx.ASGITransport(app=_app(world))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        forged = await http.post(
            "/calcom/webhooks/friseur1-calcom",
            content=body,
            headers={"X-Cal-Signature-256": signature_for("wrong", body)},
        )
        good = await http.post(
            "/calcom/webhooks/friseur1-calcom",
            content=body,
            headers={"X-Cal-Signature-256": signature_for("whsec_friseur1_demo", body)},
        )
        duplicate = await http.post(
            "/calcom/webhooks/friseur1-calcom",
            content=body,
            headers={"X-Cal-Signature-256": signature_for("whsec_friseur1_demo", body)},
        )

    assert forged.status_code == 401
    assert good.status_code == duplicate.status_code == 200
    assert len(await world.jobs("calcom_reread")) == 1, "the duplicate delivery is deduplicated"
    assert await world.appointments() == [], "a webhook never writes by itself"

    from rezeption.ops.worker import WorkerOptions, run_once

    class Deps:
        database, reconciler, clock = world.db, world.reconciler, world.clock

    await run_once(Deps(), WorkerOptions(worker_id="w"))
    (row,) = await world.appointments()
    assert (row.source, row.status, row.external_uid) == ("calendar", "confirmed", walk_in["uid"])


async def test_availability_answers_from_the_cache_after_prefetch_and_our_booking_invalidates_it(
    world: World,
) -> None:
    fetched = await prefetch(
        uow=world.uow, calendars=world.calendars, clock=world.clock, tenant_id=world.tenant_id, days=2
    )
    assert fetched > 0
    slots_before = len(world.emulator.requests("GET", "/v2/slots"))

    answer = await world.bookings.availability(
        tenant_id=world.tenant_id, service="Herrenhaarschnitt", start=TUESDAY_10, staff="Anna"
    )

    assert answer.free
    assert len(world.emulator.requests("GET", "/v2/slots")) == slots_before, "served from the cache"
    from rezeption.booking.bookings import BookingRequest

    await world.bookings.book(
        BookingRequest(
            tenant_id=world.tenant_id,
            service="Herrenhaarschnitt",
            start=TUESDAY_10,
            staff="Anna",
            idempotency_key="k",
        )
    )
    await asyncio.sleep(0)  # the cache drop runs after the reply
    again = await world.bookings.availability(
        tenant_id=world.tenant_id, service="Herrenhaarschnitt", start=TUESDAY_10, staff="Anna"
    )
    assert not again.free


async def test_a_walk_in_at_cal_com_is_seen_once_its_webhook_drops_the_cache(world: World) -> None:
    await world.bookings.availability(
        tenant_id=world.tenant_id, service="Herrenhaarschnitt", start=TUESDAY_10, staff="Anna"
    )
    world.emulator.walk_in(101, TUESDAY_10)
    async with world.uow.reading() as tx:
        catalog = await tx.load_catalog(world.tenant_id)
    stale = await world.bookings.availability(
        tenant_id=world.tenant_id, service="Herrenhaarschnitt", start=TUESDAY_10, staff="Anna"
    )
    assert stale.free, "cached until told otherwise"

    world.calendars.for_tenant(catalog).forget_slots(catalog)  # what the webhook does
    await asyncio.sleep(0.01)
    fresh = await world.bookings.availability(
        tenant_id=world.tenant_id, service="Herrenhaarschnitt", start=TUESDAY_10, staff="Anna"
    )
    assert not fresh.free


@pytest.mark.redis
async def test_the_redis_slot_picture_is_shared_marks_stale_and_keeps_the_last_known() -> None:
    cache = slot_cache_from_url(redis_url(15))
    assert isinstance(cache, RedisSlotCache)
    other = slot_cache_from_url(redis_url(15))
    assert isinstance(other, RedisSlotCache)
    scope = f"test-salon-{time.time_ns()}"
    try:
        day = TUESDAY_10.date()
        spans = [
            (TUESDAY_10, TUESDAY_10 + timedelta(minutes=30)),
            (TUESDAY_10 + timedelta(hours=1), TUESDAY_10 + timedelta(hours=2)),
        ]
        began = time.time()
        await cache.put_days(
            scope, 101, {day: spans, day + timedelta(days=1): []}, fetched_at=began, whole_range=True
        )
        seen = await other.get(scope, day, 101)  # another replica sees it
        assert seen is not None and seen.spans == spans and seen.fresh(60)
        assert await other.range_fetched_at(scope, 101) == pytest.approx(began)

        reach = (TUESDAY_10, TUESDAY_10 + timedelta(minutes=45))
        await other.hold(scope, day, {101: reach, 999: reach}, "anna-10")
        after_booking = await cache.get(scope, day, 101)
        assert after_booking is not None and after_booking.spans == spans[1:] and after_booking.fresh(60)

        await other.invalidate(scope, [day])
        stale = await cache.get(scope, day, 101)
        assert stale is not None and not stale.fresh(60), "a webhook makes the day stale"
        assert stale.spans == spans[1:], "but it stays as the last known picture"
        next_day = await cache.get(scope, day + timedelta(days=1), 101)
        assert next_day is not None and next_day.fresh(60), "other days stay fresh"

        await cache.put_days(scope, 101, {day: spans}, fetched_at=began)  # a fetch begun before it
        assert not (await cache.get(scope, day, 101)).fresh(60)  # type: ignore[union-attr]
        await cache.invalidate(scope)
        assert await other.range_fetched_at(scope, 101) == 0.0
        assert not (await other.get(scope, day + timedelta(days=1), 101)).fresh(60)  # type: ignore[union-attr]
        assert await cache.get(scope, day, 102) is None
    finally:
        await cache.aclose()
        await other.aclose()


@pytest.mark.redis
async def test_one_replica_at_a_time_refreshes_a_range_in_the_background() -> None:
    """Two replicas of a burst of call_inbounds each found the range due and both fetched it (two
    servers read Cal.com's slots nearly twice as often as one): the first claim wins, the claim
    lapses so a failed refresh is tried again, and other ranges are not held by it."""
    cache = slot_cache_from_url(redis_url(15))
    other = slot_cache_from_url(redis_url(15))
    assert isinstance(cache, RedisSlotCache) and isinstance(other, RedisSlotCache)
    scope = f"test-salon-{time.time_ns()}"
    try:
        assert await cache.claim_refresh(scope, 101, 0.3)
        assert not await other.claim_refresh(scope, 101, 0.3), "the other replica leaves it"
        assert not await cache.claim_refresh(scope, 101, 0.3), "and so does this one"
        assert await other.claim_refresh(scope, 102, 0.3), "another event type is free"
        await asyncio.sleep(0.4)
        assert await other.claim_refresh(scope, 101, 0.3), "a lapsed claim: tried again"
    finally:
        await cache.aclose()
        await other.aclose()
