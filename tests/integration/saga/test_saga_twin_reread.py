"""A Cal.com webhook re-reads a booking that carries one of our appointments' tokens while no row
names it. Two sagas on one appointment (a retry that resumed one) can leave two bookings at Cal.com:
the saga keeps the live one (`Saga._keep_one`), and when the one the row stands on is gone there,
it moves the row onto the other. A BOOKING_CREATED for that other one can come first. Before, the
re-read cancelled it as an orphan, the row then moved onto a cancelled booking, and the next
re-read cancelled the caller's appointment here: "gebucht" heard, a callback owed. Now the re-read
itself moves the row onto its live twin when the row's own booking is gone there; a twin beside a
live booking stays an orphan and is cancelled."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from rezeption.domain.model import AppointmentStatus
from rezeption.store.tables import AppointmentRow, StaffRow

from .conftest import World, herren

pytestmark = pytest.mark.postgres


async def _booked_then_twin(world: World, *, gone: bool, later: timedelta = timedelta(0)) -> tuple[str, str]:
    """An appointment confirmed under its booking at Cal.com (cancelled there when `gone`), and a
    second booking with its token (at `later` after it) that no row names: (first uid, twin uid)."""
    booked = await world.bookings.book(herren(world, "book-twin"))
    appointment = booked.appointment
    assert appointment.status is AppointmentStatus.CONFIRMED and appointment.external_uid
    catalog, calendar = await world.reconciler._context(world.tenant_id)
    assert calendar is not None
    if gone:  # as a resend's twin-cancel leaves it: the row's own booking cancelled there
        await calendar.cancel_uid(catalog, appointment.external_uid)
    shifted = replace(
        appointment, starts_at=appointment.starts_at + later, ends_at=appointment.ends_at + later
    )
    twin = await calendar.create(catalog, shifted)  # the other saga's create, with the same token
    assert twin.uid and twin.uid != appointment.external_uid
    return appointment.external_uid, twin.uid or ""


async def test_a_twin_whose_sibling_is_gone_there_becomes_the_appointments_booking(world: World) -> None:
    first, twin = await _booked_then_twin(world, gone=True)
    assert await world.reconciler.reread(world.tenant_id, twin, trigger="BOOKING_CREATED") == "followed"
    [row] = await world.appointments()
    assert (row.status, row.external_uid) == ("confirmed", twin)
    assert [b["uid"] for b in world.emulator.active()] == [twin], "the caller's booking stays at Cal.com"
    # the first booking's own cancellation, delivered later, names no appointment any more
    await world.reconciler.reread(world.tenant_id, first, trigger="BOOKING_CANCELLED")
    [after] = await world.appointments()
    assert (after.status, after.external_uid) == ("confirmed", twin)
    assert await world.jobs("callback_request") == []


async def test_a_twin_beside_a_live_booking_is_cancelled_as_an_orphan(world: World) -> None:
    """The nearest different case: the row's own booking is live there, so the other one is extra.
    (The emulator refuses a second booking of one host at one time, as Cal.com does: the twin is
    made two hours later and the row is set to its time, so only the first booking's state at Cal.com
    tells the two cases apart.)"""
    first, twin = await _booked_then_twin(world, gone=False, later=timedelta(hours=2))
    [before] = await world.appointments()
    async with world.uow.writing() as tx:  # the row at the twin's time, still on its first booking
        await tx.session.execute(
            update(AppointmentRow).values(
                starts_at=before.starts_at + timedelta(hours=2),
                ends_at=before.ends_at + timedelta(hours=2),
                block_starts_at=before.block_starts_at + timedelta(hours=2),
                block_ends_at=before.block_ends_at + timedelta(hours=2),
            )
        )
        await tx.commit()
    await world.reconciler.reread(world.tenant_id, twin, trigger="BOOKING_CREATED")
    [row] = await world.appointments()
    assert (row.status, row.external_uid) == ("confirmed", first)
    assert [b["uid"] for b in world.emulator.active()] == [first], "the twin is cancelled there"


async def test_a_twin_of_another_stylist_is_not_taken_over(world: World) -> None:
    """A booking with the row's token at its time but another host (a team's round robin whose
    host was never set to ours) is not the row's: moving the row onto it would block one stylist
    here while Cal.com holds another. It stays an orphan."""
    first, twin = await _booked_then_twin(world, gone=True)
    async with world.uow.writing() as tx:  # the row on another stylist than Cal.com's host
        other = await tx.session.scalar(select(StaffRow.id).where(StaffRow.name != "Anna").limit(1))
        await tx.session.execute(update(AppointmentRow).values(staff_id=other))
        await tx.commit()
    await world.reconciler.reread(world.tenant_id, twin, trigger="BOOKING_CREATED")
    [row] = await world.appointments()
    assert row.external_uid == first
    assert world.emulator.active() == []


async def test_the_cancellation_of_a_booking_with_a_live_twin_moves_the_appointment_onto_it(
    world: World,
) -> None:
    """The other order: the saga cancelled the booking the row stood on (its twin-cancel) and keeps
    the other, and that cancellation's webhook is re-read before the saga's rebind. Before, the
    appointment was cancelled here with a callback owed, and the live twin became an orphan."""
    first, twin = await _booked_then_twin(world, gone=True)
    await world.reconciler.reread(world.tenant_id, first, trigger="BOOKING_CANCELLED")
    [row] = await world.appointments()
    assert (row.status, row.external_uid) == ("confirmed", twin)
    assert await world.jobs("callback_request") == []
    await world.reconciler.reread(world.tenant_id, twin, trigger="BOOKING_CREATED")
    assert [b["uid"] for b in world.emulator.active()] == [twin]


async def test_a_booking_cancelled_there_without_a_twin_is_cancelled_here(world: World) -> None:
    """The nearest different case: the salon cancelled it at Cal.com, and no other booking carries
    it on. It is cancelled here, and someone must tell the caller."""
    booked = await world.bookings.book(herren(world, "book-alone"))
    first = booked.appointment.external_uid or ""
    catalog, calendar = await world.reconciler._context(world.tenant_id)
    assert calendar is not None
    await calendar.cancel_uid(catalog, first)
    await world.reconciler.reread(world.tenant_id, first, trigger="BOOKING_CANCELLED")
    [row] = await world.appointments()
    assert row.status == "cancelled"
    assert len(await world.jobs("callback_request")) == 1
