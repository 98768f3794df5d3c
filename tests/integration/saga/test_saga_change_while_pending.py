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
from typing import Any

import pytest

from rezeption.booking.ports import CalendarOutcomeUnknown, CalendarUnavailable, SlotClaimFailed
from rezeption.booking.saga import Saga
from rezeption.domain.errors import AppointmentNotActive, AppointmentPending
from rezeption.domain.model import AppointmentStatus
from rezeption.store.repositories import SqlBookingTx

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
    booking, pending = await _while_the_create_runs(world)
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
    await _until_claimed(world, rows=2)  # the move's claim: its create is on its way
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


async def _until_claimed(world: World, rows: int = 1) -> None:
    """Wait (bounded, 2 s) until `rows` rows are claimed: the last one's create is then on its way."""
    for _ in range(100):
        if len(await world.appointments()) >= rows:
            return
        await asyncio.sleep(0.02)


async def _while_the_create_runs(world: World, *faults: dict[str, Any]) -> tuple[asyncio.Task[Any], Any]:
    """A booking whose Cal.com create takes a second (and meets `faults`), and its pending row."""
    world.emulator.faults({"mode": "latency", **CREATE, "count": 1, "params": {"seconds": 1.0}}, *faults)
    booking: asyncio.Task[Any] = asyncio.create_task(world.bookings.book(herren(world, "book-1")))
    await _until_claimed(world)
    [pending] = await world.appointments()
    assert pending.status == "pending"
    return booking, pending


async def test_a_booking_the_reconciler_failed_meanwhile_is_undone_there_and_the_callback_is_stored(
    world: World,
) -> None:
    """The reconciler gave up on the claim past its deadline while the create was still on its way
    (Cal.com answered late). What Cal.com booked is cancelled there, and the caller, who hears
    "Sollen wir Sie zurückrufen?", finds a callback request stored for them."""
    booking, pending = await _while_the_create_runs(world)
    async with world.uow.writing() as tx:  # what Reconciler._resolve does past the deadline
        current = await tx.appointment(world.tenant_id, pending.id)
        assert current is not None
        await tx.set_status(current, AppointmentStatus.FAILED, at=world.clock.now())
        await tx.commit()

    with pytest.raises(CalendarUnavailable) as heard:
        await booking
    assert "zurückrufen" in heard.value.message
    [row] = await world.appointments()
    assert row.status == "failed"
    assert world.emulator.active() == [], "what Cal.com booked late is cancelled there"
    [callback] = await world.jobs("callback_request")
    assert callback.payload["appointment_id"] == pending.id


async def _confirmed_meanwhile_under(world: World, pending_id: int, uid: str) -> None:
    """What a second saga on the same row (a retry that resumed it) does when its create lands first."""
    async with world.uow.writing() as tx:
        current = await tx.appointment(world.tenant_id, pending_id)
        assert current is not None
        await tx.confirm_external(current, external_uid=uid, at=world.clock.now())
        await tx.commit()


async def test_a_booking_confirmed_meanwhile_under_a_live_twin_keeps_it_and_undoes_the_second(
    world: World,
) -> None:
    """Two creates for one appointment: the other one was confirmed first and is live at Cal.com
    (accepted). The appointment stands on it, the second booking (a request its host would have to
    confirm) is cancelled there, and the caller hears what holds: booked, not "calendar
    unavailable" (before), and not "angefragt" (the status of the booking undone)."""
    booking, pending = await _while_the_create_runs(world, {"mode": "pending", **CREATE, "count": 1})
    twin = world.emulator.walk_in(101, TUESDAY_10 + timedelta(days=1))  # live there, accepted
    await _confirmed_meanwhile_under(world, pending.id, twin["uid"])

    booked = await booking
    assert booked.appointment.status is AppointmentStatus.CONFIRMED
    assert not booked.awaiting_salon, "the booking kept is accepted"
    [row] = await world.appointments()
    assert (row.status, row.external_uid) == ("confirmed", twin["uid"])
    assert [b["uid"] for b in world.emulator.active()] == [twin["uid"]], "the second is cancelled there"
    assert await world.jobs("callback_request") == []


async def test_a_booking_confirmed_meanwhile_under_a_twin_cancelled_there_moves_onto_the_second(
    world: World,
) -> None:
    """The other create's booking is cancelled at Cal.com (a resend's twin-cancel took it):
    cancelling the second too would leave a confirmed appointment with nothing there while the
    caller hears "gebucht". The appointment moves onto the second booking instead; were it a request
    its host must confirm, the caller hears "angefragt"."""
    booking, pending = await _while_the_create_runs(world, {"mode": "pending", **CREATE, "count": 1})
    twin = world.emulator.walk_in(101, TUESDAY_10 + timedelta(days=1))
    world.emulator.admin.post(
        f"/v2/bookings/{twin['uid']}/cancel", json={}, headers={"cal-api-version": "2024-08-13"}
    ).raise_for_status()
    await _confirmed_meanwhile_under(world, pending.id, twin["uid"])

    booked = await booking
    [remote] = world.emulator.active()
    [row] = await world.appointments()
    assert (row.status, row.external_uid) == ("confirmed", remote["uid"]) and remote["uid"] != twin["uid"]
    assert booked.awaiting_salon, "the booking kept waits for its host: 'angefragt'"


async def test_a_twin_the_calendar_cannot_read_back_leaves_the_appointment_on_the_booking_just_made(
    world: World,
) -> None:
    """Cal.com cannot say whether the other booking lives (its reads fail): the appointment moves
    onto the booking just made, known live. Keeping the unreadable one could end with none (the
    listing cancels a confirmed appointment whose booking is gone, and the second as an orphan)."""
    booking, pending = await _while_the_create_runs(world)
    await _confirmed_meanwhile_under(world, pending.id, "uid-unreadable")
    world.emulator.faults({"mode": "server_error", "method": "GET", "path": "/v2/bookings*", "count": 3})

    await booking
    [remote] = world.emulator.active()
    [row] = await world.appointments()
    assert (row.status, row.external_uid) == ("confirmed", remote["uid"])


async def test_an_appointment_cancelled_while_its_twin_is_settled_is_undone_and_told(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller's cancel commits while the saga settles the twin (between reading the other
    booking and moving the appointment onto this one): the move is refused by the row's version,
    this booking is cancelled there, and the caller hears "storniert", not "gebucht"."""
    booking, pending = await _while_the_create_runs(world)
    await _confirmed_meanwhile_under(world, pending.id, "uid-cancelled-there")
    rebind = SqlBookingTx.rebind_external

    async def cancel_first(self: SqlBookingTx, appointment: Any, **kwargs: Any) -> Any:
        await world.bookings.cancel(tenant_id=world.tenant_id, appointment_id=appointment.id)
        return await rebind(self, appointment, **kwargs)

    monkeypatch.setattr(SqlBookingTx, "rebind_external", cancel_first)
    with pytest.raises(AppointmentNotActive):
        await booking
    [row] = await world.appointments()
    assert row.status == "cancelled"
    assert world.emulator.active() == []


async def test_a_cancel_between_settles_read_and_its_confirm_is_heard_as_cancelled(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The narrowest race: another call's cancel commits after the saga read the pending row and
    before it confirms it. The confirm finds the row changed; the saga reads it again and treats it
    as cancelled meanwhile (Cal.com's booking cancelled there), not as "calendar unreachable"."""
    confirm = SqlBookingTx.confirm_external
    cancelled_in_between: list[int] = []

    async def cancel_first(self: SqlBookingTx, appointment: Any, **kwargs: Any) -> Any:
        if not cancelled_in_between:
            cancelled_in_between.append(appointment.id)
            await world.bookings.cancel(
                tenant_id=world.tenant_id, appointment_id=appointment.id, idempotency_key="cancel-1"
            )
        return await confirm(self, appointment, **kwargs)

    monkeypatch.setattr(SqlBookingTx, "confirm_external", cancel_first)
    with pytest.raises(AppointmentNotActive):
        await world.bookings.book(herren(world, "book-1"))
    assert cancelled_in_between
    [row] = await world.appointments()
    assert row.status == "cancelled"
    assert world.emulator.active() == [], "what Cal.com booked is cancelled there"
    assert await world.jobs("callback_request") == [], "nobody is called back about a cancelled time"


async def test_a_booking_in_doubt_the_caller_cancels_is_undone_there_at_the_deadline(world: World) -> None:
    """Cal.com booked it, the answer was lost and could not be read back: the claim waits, its
    read-back job and a callback request queued. The caller then cancels (a later call). At the
    deadline the read-back finds the booking live at Cal.com and cancels it there (before, it saw a
    row no longer pending and left the slot held at Cal.com until the next listing, up to ten
    minutes), and nobody calls back about an appointment the caller cancelled."""
    world.emulator.faults(*LOST_AND_UNREADABLE)
    with pytest.raises(CalendarOutcomeUnknown):
        await world.bookings.book(herren(world, "book-1"))
    [pending] = await world.appointments()
    assert len(world.emulator.active()) == 1 and len(await world.jobs("callback_request")) == 1
    await world.bookings.cancel(tenant_id=world.tenant_id, appointment_id=pending.id, idempotency_key="c-1")

    await run_jobs_after_the_deadline(world)
    [row] = await world.appointments()
    assert row.status == "cancelled"
    assert world.emulator.active() == [], "the booking that landed is cancelled at Cal.com"
    assert [j.status for j in await world.jobs("callback_request")] == ["done"]


async def test_a_booking_whose_saga_died_mid_create_and_was_cancelled_is_undone_there(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server died while the create was in flight (nothing parked, no job queued), and a later
    call cancelled the still pending appointment. The cancel itself queues the read-back, so the
    booking that landed at Cal.com is cancelled there once the deadline has passed."""

    async def died(*_: object) -> None:  # the process was killed before it could park the claim
        return None

    monkeypatch.setattr(Saga, "_park", died)
    world.emulator.faults(*LOST_AND_UNREADABLE)
    with pytest.raises(CalendarOutcomeUnknown):
        await world.bookings.book(herren(world, "book-1"))
    [pending] = await world.appointments()
    assert await world.jobs() == [] and len(world.emulator.active()) == 1
    await world.bookings.cancel(tenant_id=world.tenant_id, appointment_id=pending.id, idempotency_key="c-1")

    await run_jobs_after_the_deadline(world)
    assert [r.status for r in await world.appointments()] == ["cancelled"]
    assert world.emulator.active() == [], "the booking that landed is cancelled at Cal.com"


async def test_the_salons_own_cancel_leaves_the_callback_request_for_its_staff(world: World) -> None:
    """The caller heard "zurückrufen" for a booking in doubt; the salon's staff then cancel the
    appointment in the admin page. Their cancel does not close the request: the customer still does
    not know what happened, and the staff's list of open requests must still show it."""
    world.emulator.faults(*LOST_AND_UNREADABLE)
    with pytest.raises(CalendarOutcomeUnknown):
        await world.bookings.book(herren(world, "book-1"))
    [pending] = await world.appointments()
    await world.bookings.cancel(tenant_id=world.tenant_id, appointment_id=pending.id, source="admin")
    assert [j.status for j in await world.jobs("callback_request")] == ["pending"]


async def test_a_booking_cancelled_before_its_outcome_turned_out_unknown_asks_no_callback(
    world: World,
) -> None:
    """The caller's cancel (a later call) commits while the create is still on its way; then
    Cal.com's answer is lost and cannot be read back. The claim is parked for its read-back, but no
    request to call back about a cancelled appointment is stored."""
    booking, pending = await _while_the_create_runs(world, *LOST_AND_UNREADABLE)
    await world.bookings.cancel(tenant_id=world.tenant_id, appointment_id=pending.id, idempotency_key="c-1")
    with pytest.raises(CalendarOutcomeUnknown):
        await booking
    assert await world.jobs("callback_request") == []
    assert [j.kind for j in await world.jobs()] == ["resolve_pending"]
    await run_jobs_after_the_deadline(world)
    assert world.emulator.active() == []
