"""A process killed after Cal.com moved a booking and before our own confirm of the move (found by
bench/crash.py: a caller who heard "gebucht" and then lost the line while moving it held nothing).

Cal.com's reschedule makes a new booking (new uid, our token copied from the old one) and cancels
the old. The reconciler used to take the new booking for an orphan (our token, no confirmed row)
and cancel it, and the old one's cancellation as the salon's: our appointment was cancelled too —
the caller's appointment was gone on both sides. Now it completes the move here once the pending
deadline has passed (the booking lives at Cal.com at the new time, so that is the appointment), and
asks the salon to tell the caller; before the deadline it leaves both alone (the move may still be
running)."""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from rezeption.booking.catalog import find_service
from rezeption.domain.schedule import block_of
from rezeption.ops.worker import WorkerOptions, run_once
from rezeption.store.tables import OutboxJobRow

from .conftest import NOW, TUESDAY_10, World

pytestmark = pytest.mark.postgres

SCRIPT = Path(__file__).with_name("crash_between_move_and_confirm.py")


MOVES = pytest.mark.parametrize(
    "new_start",
    [TUESDAY_10 + timedelta(minutes=15), TUESDAY_10 + timedelta(hours=5)],
    ids=["overlapping: the old row's block widened", "apart: a pending claim row"],
)


async def killed_while_moving(world: World, url: str, new_start: datetime, *when: str) -> None:
    """Run SCRIPT (book, then move to `new_start`; `when` as it takes it) until its SIGKILL."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), url, str(world.tenant_id),
        TUESDAY_10.isoformat(), new_start.isoformat(), NOW.isoformat(), *when,
    )  # fmt: skip
    assert await asyncio.wait_for(process.wait(), timeout=60) == -signal.SIGKILL


@MOVES
async def test_a_kill_between_cal_com_moving_and_our_confirm_keeps_the_appointment_at_its_new_time(
    world: World, postgres_migrated: str, new_start: datetime
) -> None:
    await killed_while_moving(world, postgres_migrated, new_start)
    (moved_there,) = world.emulator.active()
    assert moved_there["start"] == new_start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    old_uid = moved_there["rescheduledFromUid"]
    rows = await world.appointments()
    assert [(r.status, r.external_uid) for r in rows if r.status == "confirmed"] == [("confirmed", old_uid)]

    early = await world.reconciler.reconcile_tenant(world.tenant_id)
    assert early.orphans_cancelled == 0 and early.cancelled_here == 0, "the move may still be running"
    assert world.emulator.active() == [moved_there]

    world.clock.advance(timedelta(minutes=3))  # "restarted" after the pending deadline
    report = await world.reconciler.reconcile_tenant(world.tenant_id)

    assert report.orphans_cancelled == 0 and report.moves_completed == 1, report
    assert world.emulator.active() == [moved_there], "the booking at its new time stays"
    live = [r for r in await world.appointments() if r.status in ("pending", "confirmed")]
    assert [(r.status, r.external_uid, r.call_id) for r in live] == [
        ("confirmed", moved_there["uid"], "call-move")
    ]
    assert live[0].starts_at == new_start
    assert live[0].rescheduled_from_id is not None
    callbacks = await world.jobs("callback_request")
    assert any(isinstance(j, OutboxJobRow) and j.payload["appointment_id"] == live[0].id for j in callbacks)
    again = await world.reconciler.reconcile_tenant(world.tenant_id)
    assert (again.orphans_cancelled, again.moves_completed, again.cancelled_here) == (0, 0, 0)


@MOVES
async def test_a_kill_after_claiming_a_move_and_before_its_request_gives_the_new_time_back(
    world: World, postgres_migrated: str, new_start: datetime
) -> None:
    """Found in review: a widened block had no deadline of its own (only a pending row has one), so
    a kill before the reschedule left Cal.com's booking unmoved and the stylist's new time held here
    for good. Whatever the claim's shape, the worker and the reconciler give it back after the
    deadline; the appointment stays at its old time on both sides."""
    await killed_while_moving(world, postgres_migrated, new_start, "before")
    (unmoved,) = world.emulator.active()
    assert unmoved["start"] == TUESDAY_10.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    catalog = await world.bookings.current_catalog(world.tenant_id, world.clock.now())
    own = block_of(find_service(catalog, "Herrenhaarschnitt"), TUESDAY_10)
    held = [r for r in await world.appointments() if r.status in ("pending", "confirmed")]
    assert max(r.block_ends_at for r in held) > own.end, "the new time is held"

    deps = SimpleNamespace(database=world.db, reconciler=world.reconciler, clock=world.clock)
    world.clock.advance(timedelta(minutes=3))  # "restarted" after the pending deadline
    await run_once(deps, WorkerOptions(worker_id="after-restart"))
    await world.reconciler.reconcile_tenant(world.tenant_id)

    rows = await world.appointments()
    live = [r for r in rows if r.status in ("pending", "confirmed")]
    assert [(r.external_uid, r.starts_at) for r in live] == [(unmoved["uid"], TUESDAY_10)]
    (kept,) = live
    assert (kept.block_starts_at, kept.block_ends_at) == (own.start, own.end), "the new time is free again"
    assert world.emulator.active() == [unmoved], "Cal.com keeps the booking where it was"
    given_back = [kind for kind, _ in await world.events(kept.id)] + [r.status for r in rows if r is not kept]
    assert given_back[-1] in ("reschedule_failed", "failed"), given_back
