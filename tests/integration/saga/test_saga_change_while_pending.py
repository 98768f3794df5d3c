"""An appointment whose booking at Cal.com is still in flight or in doubt (pending here) is changed by
someone else: the caller of a later call who moves or cancels it, the salon, an erasure. Found by
the crash run under load: a caller's move of such an appointment turned it into a confirmed one with
no Cal.com booking, and the reconciler then cancelled its real Cal.com booking as an orphan (the
salon's calendar lost it, ours kept it). A move of a pending appointment is refused with a spoken
reason and changes nothing; a cancel is taken, and the booking the saga then gets from Cal.com is
cancelled there instead of bringing the appointment back."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from rezeption.booking.ports import CalendarOutcomeUnknown, SlotClaimFailed
from rezeption.domain.errors import AppointmentNotActive, AppointmentPending

from .conftest import TUESDAY_10, World, herren
from .test_saga_move_in_doubt import run_jobs_after_the_deadline

pytestmark = pytest.mark.postgres

CREATE = {"method": "POST", "path": "/v2/bookings"}
LOST_AND_UNREADABLE = [  # Cal.com books it, the answer is lost, and the read-backs fail
    {"mode": "lost_response", **CREATE, "count": 1},
    {"mode": "server_error", "method": "GET", "path": "/v2/bookings*", "count": 2},
]


async def test_a_booking_in_doubt_is_not_moved_and_ends_consistent(world: World) -> None:
    world.emulator.faults(*LOST_AND_UNREADABLE)
    with pytest.raises(CalendarOutcomeUnknown):
        await world.bookings.book(herren(world, "book-1"))
    [pending] = await world.appointments()
    assert (pending.status, pending.external_uid) == ("pending", None)
    assert len(world.emulator.active()) == 1  # booked there: the answer was lost

    with pytest.raises(AppointmentPending) as refused:
        await world.bookings.reschedule(
            tenant_id=world.tenant_id, appointment_id=pending.id,
            start=TUESDAY_10 + timedelta(hours=2), idempotency_key="move-1",
        )  # fmt: skip
    assert refused.value.code == "appointment_pending" and "noch" in refused.value.message
    [after] = await world.appointments()
    assert (after.status, after.external_uid, after.block_starts_at, after.block_ends_at) == (
        "pending", None, pending.block_starts_at, pending.block_ends_at,
    )  # fmt: skip

    await run_jobs_after_the_deadline(world)  # the read-back job: never told yes, so undone there
    [settled] = await world.appointments()
    assert settled.status == "failed"
    assert world.emulator.active() == []


async def test_a_booking_cancelled_while_its_create_runs_is_cancelled_at_cal_com_too(world: World) -> None:
    world.emulator.faults({"mode": "latency", **CREATE, "count": 1, "params": {"seconds": 1.0}})
    booking = asyncio.create_task(world.bookings.book(herren(world, "book-1")))
    for _ in range(100):  # until its claim is written and the create is on its way
        if await world.appointments():
            break
        await asyncio.sleep(0.02)
    [pending] = await world.appointments()
    assert pending.status == "pending"
    cancelled = await world.bookings.cancel(
        tenant_id=world.tenant_id, appointment_id=pending.id, idempotency_key="cancel-1"
    )
    assert cancelled.appointment.status.value == "cancelled"

    with pytest.raises(AppointmentNotActive):
        await booking
    [row] = await world.appointments()
    assert row.status == "cancelled", "the saga's confirm must not bring a cancelled appointment back"
    assert world.emulator.active() == [], "what Cal.com booked meanwhile is cancelled there"
    assert ("compensated", "compensated") in await world.events(row.id)


async def test_an_appointment_cancelled_while_cal_com_moves_it_stays_cancelled_on_both_sides(
    world: World,
) -> None:
    """Two calls of one caller (or the salon and a caller): one moves the appointment to another
    stylist, the other cancels it while Cal.com makes the new booking. The move must not confirm
    the new time for a caller told "storniert"."""
    booked = await world.bookings.book(herren(world, "book-1"))
    world.emulator.faults({"mode": "latency", **CREATE, "count": 1, "params": {"seconds": 1.0}})
    to_ben = world.bookings.reschedule(
        tenant_id=world.tenant_id, appointment_id=booked.appointment.id,
        start=TUESDAY_10 + timedelta(hours=2), staff="Ben", idempotency_key="move-1",
    )  # fmt: skip
    move = asyncio.create_task(to_ben)
    for _ in range(100):  # until the move's claim is written and its create is on its way
        if len(await world.appointments()) == 2:
            break
        await asyncio.sleep(0.02)
    cancelled = await world.bookings.cancel(
        tenant_id=world.tenant_id, appointment_id=booked.appointment.id, idempotency_key="cancel-1"
    )
    assert cancelled.appointment.status.value == "cancelled"

    with pytest.raises(AppointmentNotActive):
        await move
    old, claim = await world.appointments()
    assert (old.status, claim.status) == ("cancelled", "failed"), "nothing confirmed at the new time"
    assert world.emulator.active() == [], "the booking the move made there is cancelled too"


async def test_the_store_never_confirms_a_row_that_is_no_longer_pending(world: World) -> None:
    """The guard under every confirm (the booking saga, the move saga, the reconciler): whatever a
    caller read, a cancelled row is not confirmed back."""
    world.emulator.faults(*LOST_AND_UNREADABLE)
    with pytest.raises(CalendarOutcomeUnknown):
        await world.bookings.book(herren(world, "book-1"))
    [pending] = await world.appointments()
    await world.bookings.cancel(tenant_id=world.tenant_id, appointment_id=pending.id)
    async with world.uow.writing() as tx:
        current = await tx.appointment(world.tenant_id, pending.id)
        assert current is not None and current.status.value == "cancelled"
        with pytest.raises(SlotClaimFailed):
            await tx.confirm_external(current, external_uid="uid-late", at=world.clock.now())
    [row] = await world.appointments()
    assert (row.status, row.external_uid) == ("cancelled", None)
