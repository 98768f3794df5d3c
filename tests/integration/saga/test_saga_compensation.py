"""Compensation and the outbox: a failed local confirm is undone at Cal.com, now or by the worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from tests.metrics import Growth, sample

from rezeption.booking.ports import CalendarUnavailable
from rezeption.booking.saga import INLINE_GRACE
from rezeption.domain.errors import SlotTaken
from rezeption.ops.worker import WorkerOptions, run_once
from rezeption.store import outbox
from rezeption.store.repositories import SqlBookingTx

from .conftest import TUESDAY_10, World, herren

pytestmark = pytest.mark.postgres

CANCEL = {"method": "POST", "path": "/v2/bookings/*/cancel"}


class BrokenConfirm:
    """The store, except that confirming an external booking fails (the database went away)."""

    def __init__(self, uow: Any) -> None:
        self.inner = uow

    def reading(self) -> Any:
        return self.inner.reading()

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[SqlBookingTx]:
        async with self.inner.writing() as tx:

            async def refuse(*args: object, **kwargs: object) -> object:
                raise ConnectionResetError("database connection lost")

            tx.confirm_external = refuse  # type: ignore[method-assign]
            yield tx


@pytest.fixture
def broken(world: World) -> World:
    from rezeption.booking.bookings import Bookings

    world.bookings = Bookings(uow=BrokenConfirm(world.uow), calendars=world.calendars, clock=world.clock)
    return world


class Deps:
    def __init__(self, world: World) -> None:
        self.database, self.reconciler, self.clock = world.db, world.reconciler, world.clock


async def test_a_failed_local_confirm_is_compensated_at_cal_com_at_once(broken: World) -> None:
    grew = Growth()
    with pytest.raises(CalendarUnavailable):
        await broken.bookings.book(herren(broken, "k1"))

    assert grew.of("rezeption_saga_steps_total", step="create", outcome="ok") == 1
    assert grew.of("rezeption_saga_steps_total", step="confirm", outcome="failed") == 1
    assert grew.of("rezeption_saga_compensations_total", outcome="ok") == 1
    failed = {"provider": "calcom", "result": "failed", "reason": "calendar_unavailable"}
    assert grew.of("rezeption_bookings_total", **failed) == 1

    (row,) = await broken.appointments()
    assert row.status == "failed"
    assert broken.emulator.active() == []
    assert [b["status"] for b in broken.emulator.bookings()] == ["cancelled"]
    assert ("compensated", "compensated") in await broken.events(row.id)
    assert await broken.jobs("calendar_cancel") == []


async def test_a_failed_compensation_becomes_a_job_the_worker_retries_until_done(broken: World) -> None:
    broken.emulator.faults(  # each cancel is sent once more after a 5xx: inline twice, the worker twice
        {"mode": "server_error", **CANCEL, "count": 4, "params": {"kind": "html", "status": 502}}
    )

    grew = Growth()
    with pytest.raises(CalendarUnavailable):
        await broken.bookings.book(herren(broken, "k1"))

    assert grew.of("rezeption_saga_compensations_total", outcome="queued") == 1
    assert len(broken.emulator.active()) == 1, "Cal.com still holds it until the job runs"
    (job,) = await broken.jobs("calendar_cancel")
    assert job.status == "pending"
    deps = Deps(broken)

    assert await run_once(deps, WorkerOptions(worker_id="w1")) == 1  # fails again: 502
    (job,) = await broken.jobs("calendar_cancel")
    assert job.status == "pending" and job.attempts == 1 and job.last_error
    assert await run_once(deps, WorkerOptions(worker_id="w1")) == 0, "backing off"

    broken.clock.advance(timedelta(minutes=5))
    for _ in range(5):
        await run_once(deps, WorkerOptions(worker_id="w1"))
        broken.clock.advance(timedelta(minutes=5))

    (job,) = await broken.jobs("calendar_cancel")
    assert job.status == "done"
    assert broken.emulator.active() == []
    assert grew.of("rezeption_outbox_job_runs_total", kind="calendar_cancel", outcome="retry") >= 1
    assert grew.of("rezeption_outbox_job_runs_total", kind="calendar_cancel", outcome="ok") == 1
    assert grew.of("rezeption_saga_compensations_total", outcome="ok") == 1, "the worker finished it"


async def test_a_job_that_keeps_failing_goes_dead_and_stays_visible(world: World) -> None:
    async with world.uow.writing() as tx:
        await tx.enqueue_job("calendar_cancel", {"uid": "nope"}, at=world.clock.now(), tenant_id=None)
        await tx.commit()
    deps = Deps(world)
    for _ in range(3):
        await run_once(deps, WorkerOptions(worker_id="w", max_attempts=3))
        world.clock.advance(timedelta(hours=1))

    (dead,) = await outbox.jobs(world.db, status="dead")
    assert dead.attempts == 3 and "no tenant" in (dead.last_error or "")
    assert sample("rezeption_outbox_job_runs_total", kind="calendar_cancel", outcome="dead") >= 1


async def test_two_workers_never_claim_the_same_job(world: World) -> None:
    async with world.uow.writing() as tx:
        for n in range(20):
            await tx.enqueue_job(
                "resolve_pending", {"appointment_id": n}, at=world.clock.now(), dedupe_key=f"j{n}"
            )
        await tx.commit()

    claims = await asyncio.gather(
        *(
            outbox.claim(world.db, worker=f"w{i}", now=world.clock.now(), kinds=["resolve_pending"], limit=4)
            for i in range(6)
        )
    )

    ids = [job.id for jobs in claims for job in jobs]
    assert len(ids) == len(set(ids)) == 20


async def test_cancel_is_final_here_at_once_and_at_cal_com_now_or_by_the_worker(world: World) -> None:
    booked = await world.bookings.book(herren(world, "k1"))
    world.emulator.faults(  # the cancel and the one resend after its 5xx
        {"mode": "server_error", **CANCEL, "count": 2, "params": {"kind": "json", "status": 500}}
    )

    cancelled = await world.bookings.cancel(tenant_id=world.tenant_id, appointment_id=booked.appointment.id)

    assert cancelled.appointment.status.value == "cancelled"
    (job,) = await world.jobs("calendar_cancel")
    assert job.status == "pending"
    assert len(world.emulator.active()) == 1
    assert await run_once(Deps(world), WorkerOptions(worker_id="w")) == 0, "not while the inline one may run"
    world.clock.advance(INLINE_GRACE)
    await run_once(Deps(world), WorkerOptions(worker_id="w"))
    assert world.emulator.active() == []
    (job,) = await world.jobs("calendar_cancel")
    assert job.status == "done"


async def test_cancel_with_cal_com_up_cancels_there_without_leaving_a_job(world: World) -> None:
    booked = await world.bookings.book(herren(world, "k1"))

    await world.bookings.cancel(tenant_id=world.tenant_id, appointment_id=booked.appointment.id)

    assert world.emulator.active() == []
    assert [j.status for j in await world.jobs("calendar_cancel")] == ["done"]


async def test_an_unknown_outcome_keeps_the_claim_until_the_reconciler_reads_cal_com_back(
    world: World,
) -> None:
    # The create commits but its answer is lost, and reading back fails too.
    world.emulator.faults(
        {"mode": "lost_response", "method": "POST", "path": "/v2/bookings", "count": 1},
        {
            "mode": "server_error",
            "method": "GET",
            "path": "/v2/bookings",
            "count": 2,
            "params": {"kind": "html", "status": 503},
        },
    )

    with pytest.raises(CalendarUnavailable) as unknown:
        await world.bookings.book(herren(world, "k1"))

    assert "zurückrufen" in unknown.value.message
    (row,) = await world.appointments()
    assert row.status == "pending", "the slot stays claimed while the outcome is unknown"
    assert len(world.emulator.active()) == 1
    assert [j.kind for j in await world.jobs()] == ["resolve_pending", "callback_request"]

    world.clock.advance(timedelta(minutes=3))
    await run_once(Deps(world), WorkerOptions(worker_id="w"))

    (row,) = await world.appointments()
    assert row.status == "failed"
    assert world.emulator.active() == [], "the booking the caller never heard about is cancelled"


async def test_reschedule_moves_at_both_sides_and_the_old_time_is_free_again(world: World) -> None:
    booked = await world.bookings.book(herren(world, "k1"))
    new_start = TUESDAY_10 + timedelta(minutes=15)  # overlaps the old block: the same stylist moves

    moved = await world.bookings.reschedule(
        tenant_id=world.tenant_id, appointment_id=booked.appointment.id, start=new_start, idempotency_key="k2"
    )

    assert moved.appointment.starts_at == new_start and moved.appointment.status.value == "confirmed"
    (remote,) = world.emulator.active()
    assert remote["uid"] == moved.appointment.external_uid != booked.appointment.external_uid
    rows = {r.id: r for r in await world.appointments()}
    assert rows[booked.appointment.id].status == "cancelled"


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ({"mode": "slot_stolen"}, SlotTaken),
        ({"mode": "server_error", "params": {"kind": "html", "status": 502}}, CalendarUnavailable),
    ],
    ids=["stolen", "down"],
)
async def test_a_failed_reschedule_leaves_the_old_appointment_intact_at_both_sides(
    world: World, fault: dict[str, Any], error: type[Exception]
) -> None:
    booked = await world.bookings.book(herren(world, "k1"))
    world.emulator.faults({**fault, "method": "POST", "path": "/v2/bookings/*/reschedule", "count": 1})

    with pytest.raises(error):
        await world.bookings.reschedule(
            tenant_id=world.tenant_id,
            appointment_id=booked.appointment.id,
            start=TUESDAY_10 + timedelta(minutes=15),
        )

    rows = [r for r in await world.appointments() if r.status == "confirmed"]
    assert [(r.id, r.starts_at, r.block_ends_at) for r in rows] == [
        (booked.appointment.id, booked.appointment.starts_at, booked.appointment.block_ends_at)
    ]
    ours = [b for b in world.emulator.active() if b["metadata"].get("rezeption_token")]
    assert [b["uid"] for b in ours] == [booked.appointment.external_uid]


async def test_reconcile_imports_walk_ins_follows_cancellations_and_cancels_orphans(
    make_world: Callable[..., World],
) -> None:
    world = make_world()
    booked = await world.bookings.book(herren(world, "k1"))
    world.emulator.walk_in(102, TUESDAY_10 + timedelta(hours=3))  # Ben, made by staff in Cal.com
    world.emulator.admin.post(
        f"/v2/bookings/{booked.appointment.external_uid}/cancel",
        headers={"cal-api-version": "2024-08-13", "Authorization": "Bearer cal_test_rezeption"},
        json={},
    ).raise_for_status()

    report = await world.reconciler.reconcile_tenant(world.tenant_id)

    assert (report.imported, report.cancelled_here, report.orphans_cancelled) == (1, 1, 0)
    rows = await world.appointments()
    assert {(r.source, r.status) for r in rows} == {("phone", "cancelled"), ("calendar", "confirmed")}
    (callback,) = await world.jobs("callback_request")  # the caller was told yes: the salon calls them
    assert callback.payload["appointment_id"] == booked.appointment.id
    assert callback.payload["reason"] == "calendar_cancelled"
    again = await world.reconciler.reconcile_tenant(world.tenant_id)
    assert (again.imported, again.cancelled_here, again.orphans_cancelled) == (0, 0, 0)
    assert len(await world.jobs("callback_request")) == 1


async def test_reconcile_goes_on_past_a_failed_step_and_names_each_cause(
    make_world: Callable[..., World],
) -> None:
    world = make_world()
    first = await world.bookings.book(herren(world, "k1"))
    second = await world.bookings.book(herren(world, "k2", start=TUESDAY_10 + timedelta(hours=2)))
    for booked in (first, second):
        world.emulator.admin.post(
            f"/v2/bookings/{booked.appointment.external_uid}/cancel",
            headers={"cal-api-version": "2024-08-13", "Authorization": "Bearer cal_test_rezeption"},
            json={},
        ).raise_for_status()
    follow = world.reconciler._follow
    calls = []

    async def first_one_fails(catalog, calendar, booking, report):  # type: ignore[no-untyped-def]
        calls.append(booking.uid)
        if len(calls) == 1:
            raise RuntimeError("row locked by another worker")
        await follow(catalog, calendar, booking, report)

    world.reconciler._follow = first_one_fails  # type: ignore[method-assign]
    report = await world.reconciler.reconcile_tenant(world.tenant_id)

    assert len(calls) == 2, "the second booking was still looked at"
    assert report.cancelled_here == 1
    (error,) = report.errors
    assert error == f"calendar booking {calls[0]}: RuntimeError: row locked by another worker"
