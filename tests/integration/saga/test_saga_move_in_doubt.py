"""A move whose outcome at Cal.com is unknown: kept in doubt, never answered "not moved", settled by
the resolve job from what Cal.com shows (`Saga._park_move`, `Reconciler.resolve_move`)."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from rezeption.booking.bookings import BookingResult
from rezeption.booking.ports import MoveInDoubt
from rezeption.ops.worker import WorkerOptions, run_once
from rezeption.store.tables import AppointmentRow

from .conftest import TUESDAY_10, World, first_request_times_out, herren

pytestmark = pytest.mark.postgres

RESCHEDULE = {"method": "POST", "path": "/v2/bookings/*/reschedule", "count": 1}
LOST_AND_UNREADABLE = [  # Cal.com moves it, the answer is lost, and both read-backs fail
    {"mode": "lost_response", **RESCHEDULE},
    {"mode": "server_error", "method": "GET", "path": "/v2/bookings*", "count": 2},
]
PAST_THE_DEADLINE = timedelta(minutes=3)


async def booked(world: World, start=TUESDAY_10) -> BookingResult:  # type: ignore[no-untyped-def]
    return await world.bookings.book(herren(world, f"book-{start.isoformat()}", start))


async def move(world: World, appointment_id: int, start, key: str = "move-1") -> BookingResult:  # type: ignore[no-untyped-def]
    return await world.bookings.reschedule(
        tenant_id=world.tenant_id, appointment_id=appointment_id, start=start, idempotency_key=key
    )


async def rows(world: World) -> dict[int, AppointmentRow]:
    return {r.id: r for r in await world.appointments()}


def shape(table: dict[int, AppointmentRow]) -> set[tuple[Any, ...]]:
    return {(r.id, r.status, r.block_starts_at, r.block_ends_at, r.external_uid) for r in table.values()}


async def run_jobs_after_the_deadline(world: World) -> int:
    """A worker's pass once the pending deadline has passed (the emulator's clock moves along)."""
    world.clock.advance(PAST_THE_DEADLINE)
    world.emulator.admin.post(
        "/_emulator/clock", json={"advance_seconds": PAST_THE_DEADLINE.total_seconds()}
    ).raise_for_status()
    deps = SimpleNamespace(database=world.db, reconciler=world.reconciler, clock=world.clock)
    return await run_once(deps, WorkerOptions(worker_id="test"))  # type: ignore[arg-type]


def reschedule_times_out_and_never_arrives(world: World, catalog: Any) -> Any:
    """Our reschedule request times out on our side and Cal.com never gets it."""
    http: httpx.AsyncClient = world.calendars.calcom(catalog).client._transport._http
    return first_request_times_out(
        http, lambda method, path: method == "POST" and path.endswith("/reschedule")
    )


async def test_a_move_cal_com_made_but_whose_answer_was_lost_is_completed_not_denied(world: World) -> None:
    first = (await booked(world)).appointment
    new_start = TUESDAY_10 + timedelta(minutes=15)  # overlaps: the old row's block is widened
    world.emulator.faults(*LOST_AND_UNREADABLE)

    with pytest.raises(MoveInDoubt) as doubt:
        await move(world, first.id, new_start)

    assert "nicht sicher" in doubt.value.message and "zurück" in doubt.value.message
    row = (await rows(world))[first.id]
    assert row.status == "confirmed" and row.block_starts_at <= new_start  # both times held here
    (live,) = world.emulator.active()
    assert live["uid"] != first.external_uid, "Cal.com did move it"
    with pytest.raises(MoveInDoubt):  # a second move waits for the first to be settled
        await move(world, first.id, TUESDAY_10 + timedelta(hours=3), key="move-2")
    assert [j.payload["reason"] for j in await world.jobs("callback_request")] == ["calendar_unavailable"]

    assert await run_jobs_after_the_deadline(world) >= 1

    after = await rows(world)
    assert after[first.id].status == "cancelled"
    (moved,) = [r for r in after.values() if r.status == "confirmed"]
    assert (moved.starts_at, moved.external_uid, moved.rescheduled_from_id) == (
        new_start,
        live["uid"],
        first.id,
    )
    assert [j.status for j in await world.jobs("resolve_pending")] == ["done"]


async def test_a_move_that_timed_out_and_never_reached_cal_com_is_undone_when_read_back(
    world: World,
) -> None:
    first = (await booked(world)).appointment
    async with world.uow.reading() as tx:
        catalog = await world.bookings.catalogs.get(tx, world.tenant_id, TUESDAY_10.date())

    with reschedule_times_out_and_never_arrives(world, catalog), pytest.raises(MoveInDoubt):
        await move(world, first.id, TUESDAY_10 + timedelta(minutes=15))

    widened = (await rows(world))[first.id]
    assert widened.block_ends_at > first.block_ends_at, "the new time stays held while in doubt"
    await run_jobs_after_the_deadline(world)

    row = (await rows(world))[first.id]
    assert (row.status, row.starts_at, row.external_uid) == ("confirmed", first.starts_at, first.external_uid)
    assert (row.block_starts_at, row.block_ends_at) == (first.block_starts_at, first.block_ends_at)
    assert [b["uid"] for b in world.emulator.active()] == [first.external_uid]
    again = await move(world, first.id, TUESDAY_10 + timedelta(hours=3), key="move-2")  # free to move
    assert again.appointment.starts_at == TUESDAY_10 + timedelta(hours=3)


async def test_a_second_move_in_doubt_of_the_same_appointment_is_read_back_too(world: World) -> None:
    """Hostile case of the read-back job's dedupe key: the same appointment widened a second time
    (after its first move was undone) must get a job of its own, not the first move's spent one."""
    first = (await booked(world)).appointment
    async with world.uow.reading() as tx:
        catalog = await world.bookings.catalogs.get(tx, world.tenant_id, TUESDAY_10.date())

    for attempt, minutes in enumerate((15, 30)):
        with reschedule_times_out_and_never_arrives(world, catalog), pytest.raises(MoveInDoubt):
            await move(world, first.id, TUESDAY_10 + timedelta(minutes=minutes), key=f"move-{attempt}")
        assert (await rows(world))[first.id].block_ends_at > first.block_ends_at
        await run_jobs_after_the_deadline(world)
        row = (await rows(world))[first.id]
        given_back = (row.block_starts_at, row.block_ends_at) == (first.block_starts_at, first.block_ends_at)
        assert given_back, f"move {attempt} keeps the new time held"
    assert [b["uid"] for b in world.emulator.active()] == [first.external_uid]


async def test_a_retry_of_a_move_in_doubt_hears_the_same_and_changes_nothing(world: World) -> None:
    first = (await booked(world)).appointment
    later = TUESDAY_10 + timedelta(hours=4)  # no overlap: the new time is claimed by a pending row
    world.emulator.faults(*LOST_AND_UNREADABLE)
    with pytest.raises(MoveInDoubt):
        await move(world, first.id, later)
    before = await rows(world)
    (claim,) = [r for r in before.values() if r.status == "pending"]
    requests = len(world.emulator.requests("POST", "/v2/bookings"))

    with pytest.raises(MoveInDoubt):
        await move(world, first.id, later)

    assert shape(await rows(world)) == shape(before), "the retry changed nothing here"
    assert len(world.emulator.requests("POST", "/v2/bookings")) == requests, "nothing sent again"
    await run_jobs_after_the_deadline(world)
    after = await rows(world)
    assert (after[first.id].status, after[claim.id].status) == ("cancelled", "failed")
    (moved,) = [r for r in after.values() if r.status == "confirmed"]
    assert moved.starts_at == later and moved.external_uid in {b["uid"] for b in world.emulator.active()}
    retried = await move(world, first.id, later)  # the retry now answers with the completed move
    assert retried.replayed and retried.appointment.id == moved.id


async def test_an_appointment_cancelled_while_its_move_was_in_doubt_leaves_nothing_at_cal_com(
    world: World,
) -> None:
    """Cal.com moved it (answer lost), then the salon cancelled it here before the job ran: the
    booking Cal.com moved it to is nobody's appointment and is cancelled as an orphan."""
    first = (await booked(world)).appointment
    world.emulator.faults(*LOST_AND_UNREADABLE)
    with pytest.raises(MoveInDoubt):
        await move(world, first.id, TUESDAY_10 + timedelta(minutes=15))
    await world.bookings.cancel(
        tenant_id=world.tenant_id, appointment_id=first.id, source="admin", respect_notice=False
    )

    await run_jobs_after_the_deadline(world)
    report = await world.reconciler.reconcile_tenant(world.tenant_id)

    assert [r.status for r in (await rows(world)).values()] == ["cancelled"]
    assert world.emulator.active() == [], "the moved booking was left live at Cal.com"
    assert report.orphans_cancelled == 1 and report.errors == []
