"""The booking saga for external calendars (Cal.com): reserve -> create there -> verify -> confirm here.

Owns the steps after the local claim, their recovery points and their compensations:

    reserved (pending row, recovery point `calendar_requested`, our token)      -- bookings._claim
      -> create at the calendar with the token (read back, never resent)
         refused            -> row failed, caller hears slot_taken + alternatives
         unavailable        -> row failed + callback request, caller hears calendar_unavailable
         outcome unknown    -> row stays pending (it may be booked there) + resolve job + callback
      -> verify start and length; a mismatch is cancelled there (compensate) and refused
      -> confirm here (recovery point `done`, uid stored)
         confirm fails      -> cancel there (compensate); if that fails: `calendar_cancel` job

Reschedule keeps the old appointment valid until the new time is confirmed at both sides: the same
stylist moves through Cal.com's reschedule (the old row's block is widened to claim the new time
when they overlap); another stylist gets a new booking first and the old one is cancelled after.
A move whose outcome is unknown keeps both times held and is settled by a job that reads the
calendar back (`Reconciler.resolve_move`); the caller hears that it is being checked.
Cancel is local first, with the calendar cancellation in the same transaction as an outbox job; the
cancel is then sent at once, and the job (due after `INLINE_GRACE`, marked done when the inline
cancel worked) is retried by the worker until done. A retry of any step resumes from the last
recovery point: creates carry the same token, so a repeat finds the first booking instead of making
a second one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

from rezeption.booking.ports import (
    BookingTx,
    CalendarOutcomeUnknown,
    CalendarRefused,
    CalendarUnavailable,
    Clock,
    ExternalBooking,
    ExternalCalendar,
    MoveInDoubt,
    NewAppointment,
    SlotClaimFailed,
    UnitOfWork,
    booking_token,
)
from rezeption.domain.errors import AppointmentNotActive, BookingError, SlotTaken
from rezeption.domain.model import Appointment, AppointmentStatus, Catalog, Interval, Slot
from rezeption.domain.schedule import block_of
from rezeption.ops.metrics import COMPENSATIONS, SAGA_STEPS

log = logging.getLogger(__name__)

_CONFIRM_READS = 3
"""How often the confirm reads a row that changed between its read and its update before giving up."""
PENDING_DEADLINE = timedelta(minutes=2)
"""How long a pending claim may wait for the calendar before the reconciler resolves it."""
INLINE_GRACE = timedelta(seconds=30)
"""How long an outbox cancellation queued beside the same cancel sent at once waits before a worker
may run it: by then the inline one (a write timeout, once more after a 5xx, a read-back) is done and
has marked the job done. Due at once, a polling worker often sent the same cancel while the inline
one was still in flight (a second cancel, "already cancelled", and a read-back: three requests)."""

JOB_CANCEL = "calendar_cancel"
JOB_RESOLVE = "resolve_pending"
JOB_CALLBACK = "callback_request"
JOB_REREAD = "calcom_reread"

Alternatives = Callable[[], Awaitable[tuple[Slot, ...]]]


@dataclass
class Saga:
    """One salon's saga context: store, external calendar, catalog and clock."""

    uow: UnitOfWork
    calendar: ExternalCalendar
    catalog: Catalog
    clock: Clock
    calendar_status: str | None = None
    """What the calendar said of the booking this saga confirmed ("pending": its host confirms)."""

    # --- book ----------------------------------------------------------------------------------

    async def book(self, appointment: Appointment, alternatives: Alternatives) -> Appointment:
        """Take a reserved (pending) appointment through the calendar to confirmed, or fail it cleanly."""
        try:
            booking = await self.calendar.create(self.catalog, appointment)
        except CalendarRefused as refused:
            SAGA_STEPS.labels("create", "refused").inc()
            await self._fail(appointment, "slot_taken", {"calendar": str(refused)})
            raise SlotTaken(alternatives=list(await _quietly(alternatives))) from refused
        except CalendarOutcomeUnknown as unknown:
            SAGA_STEPS.labels("create", "unknown").inc()
            await self._park(appointment, unknown)
            raise
        except CalendarUnavailable as down:
            SAGA_STEPS.labels("create", "unavailable").inc()
            await self._fail(appointment, "calendar_unavailable", {"calendar": down.details.get("detail")})
            raise
        SAGA_STEPS.labels("create", "ok").inc()
        return await self.settle(appointment, booking, alternatives)

    async def settle(
        self, appointment: Appointment, booking: ExternalBooking, alternatives: Alternatives
    ) -> Appointment:
        """Verify what the calendar booked and confirm it here, compensating when either fails."""
        if booking.start != appointment.starts_at or booking.end != appointment.ends_at:
            await self._compensate(appointment, booking, "mismatch")
            await self._fail(
                appointment,
                "slot_taken",
                {"mismatch": {"start": booking.start.isoformat(), "end": booking.end.isoformat()}},
            )
            raise SlotTaken(alternatives=list(await _quietly(alternatives)))
        settled = await self._confirm(appointment, booking)
        if settled.status is AppointmentStatus.CONFIRMED:
            self.calendar_status = booking.status  # "pending": its host confirms, not "gebucht"
            if settled.external_uid == booking.uid:
                return settled
            # Confirmed meanwhile under another create of the same token: a second saga on the
            # same row (a retry that resumed it, `Bookings._resume`) got there first.
            SAGA_STEPS.labels("confirm", "twin").inc()
            return await self._keep_one(settled, booking)
        # Changed while its create ran: cancelled (another call, the salon, an erasure) or failed
        # by the reconciler past its deadline. What the calendar booked this time is nobody's;
        # confirming it would bring the appointment back.
        status = settled.status
        SAGA_STEPS.labels("confirm", status.value).inc()
        log.warning("saga: appointment %s was %s while the calendar booked it", appointment.id, status.value)
        await self._compensate(appointment, booking, f"{status.value}_meanwhile")
        if status is AppointmentStatus.CANCELLED:
            raise AppointmentNotActive(status.value)
        await self._callback_promised(settled)
        raise CalendarUnavailable(f"{status.value} meanwhile", appointment_id=appointment.id)

    async def _keep_one(self, confirmed: Appointment, booking: ExternalBooking) -> Appointment:
        """Two bookings at the calendar for one appointment, confirmed here under the other one:
        keep that one if the calendar says it is live (and cancel this one); otherwise (gone there,
        as after a resend's twin-cancel, or the calendar cannot say) move the appointment onto this
        one, just made and known live. A live other one no row names then is an orphan the listing
        cancels: a booking twice for a while, never none. What the caller hears follows the
        booking kept (`calendar_status`: "pending" is "angefragt")."""
        try:
            standing = await self.calendar.get(self.catalog, confirmed.external_uid or "")
        except CalendarUnavailable:
            standing = None
        if standing is not None and standing.active:
            self.calendar_status = standing.status
            try:  # the appointment still holds its time: that day's slots are read again, not freed
                await self.calendar.cancel_uid(self.catalog, booking.uid or "", start=confirmed.starts_at)
                outcome = "compensated"
            except CalendarUnavailable:  # carries our token and no row names it: the listing's
                outcome = "left_to_listing"
            await self._event(
                confirmed, outcome, recovery_point=None, data={"uid": booking.uid, "why": "twin"}
            )
            return confirmed
        now = self.clock.now()
        try:
            async with self.uow.writing() as tx:
                moved = await tx.rebind_external(confirmed, external_uid=booking.uid or "", at=now)
                await tx.add_event(
                    moved,
                    "confirmed",
                    at=now,
                    recovery_point="done",
                    data={
                        "uid": booking.uid,
                        "replaces": confirmed.external_uid,
                        "calendar_status": booking.status,
                    },
                )
                await tx.commit()
        except SlotClaimFailed:  # changed again meanwhile (cancelled by the caller, the salon)
            return await self._twin_overtaken(confirmed, booking)
        return moved

    async def _twin_overtaken(self, confirmed: Appointment, booking: ExternalBooking) -> Appointment:
        """The appointment changed while its twin was settled: still confirmed, it stands as it is
        now (the listing keeps one booking); cancelled, this booking is undone and the caller told."""
        async with self.uow.reading() as tx:
            current = await tx.appointment(confirmed.tenant_id, confirmed.id) or confirmed
        if current.status is AppointmentStatus.CONFIRMED:
            return current
        await self._compensate(confirmed, booking, f"{current.status.value}_meanwhile")
        raise AppointmentNotActive(current.status.value)

    async def _confirm(self, appointment: Appointment, booking: ExternalBooking) -> Appointment:
        """Confirm the row with the calendar's uid if it is still pending, and return it as it is now.

        A change between the read and the confirm (a cancel committing in between) is read again
        rather than taken for a failed confirm. Any other failure is compensated, the claim failed
        with a callback request, and the caller hears that the calendar is unavailable."""
        now = self.clock.now()
        for _ in range(_CONFIRM_READS):
            try:
                async with self.uow.writing() as tx:
                    current = await tx.appointment(appointment.tenant_id, appointment.id) or appointment
                    if current.status is not AppointmentStatus.PENDING:
                        return current
                    confirmed = await tx.confirm_external(current, external_uid=booking.uid or "", at=now)
                    await tx.add_event(
                        confirmed,
                        "confirmed",
                        at=now,
                        recovery_point="done",
                        data={"uid": booking.uid, "calendar_status": booking.status},
                    )
                    await tx.commit()
                    SAGA_STEPS.labels("confirm", "ok").inc()
                    return confirmed
            except SlotClaimFailed:
                continue  # changed since it was read: read it again
            except Exception as error:
                await self._confirm_failed(appointment, booking, error)
        await self._confirm_failed(appointment, booking, SlotClaimFailed("changed on every read"))

    async def _confirm_failed(
        self, appointment: Appointment, booking: ExternalBooking, error: BaseException
    ) -> NoReturn:
        SAGA_STEPS.labels("confirm", "failed").inc()
        log.error("saga: local confirm failed for appointment %s: %s", appointment.id, type(error).__name__)
        await self._compensate(appointment, booking, "confirm_failed")
        await self._fail(appointment, "calendar_unavailable", {"confirm_failed": type(error).__name__})
        raise CalendarUnavailable("confirm failed", appointment_id=appointment.id) from error

    async def _callback_promised(self, appointment: Appointment) -> None:
        """The caller is about to hear "Sollen wir Sie zurückrufen?": make sure the request is stored
        (the reconciler fails an expired claim without one). Best effort, like `_fail`'s."""
        try:
            async with self.uow.writing() as tx:
                await request_callback(tx, appointment, self.clock.now(), "calendar_unavailable")
                await tx.commit()
        except Exception as error:
            log.error("saga: could not store a callback for %s: %s", appointment.id, type(error).__name__)

    async def _compensate(self, appointment: Appointment, booking: ExternalBooking, why: str) -> None:
        """Cancel the calendar's booking; if that fails, leave a job that retries until done. The
        appointment's time is free again in the cached slots (the create held it there)."""
        uid = booking.uid or ""
        try:
            await self.calendar.cancel_uid(
                self.catalog,
                uid,
                start=appointment.starts_at,
                end=appointment.ends_at,
                staff_id=appointment.staff_id,
            )
            outcome = "compensated"
            COMPENSATIONS.labels("ok").inc()
        except CalendarUnavailable as error:
            COMPENSATIONS.labels("queued").inc()
            log.error("saga: compensation failed for appointment %s, queued", appointment.id)
            outcome = "compensation_queued"
            await self._enqueue_cancel(appointment, uid, why, type(error).__name__)
        await self._event(appointment, outcome, recovery_point=outcome, data={"uid": uid, "why": why})

    async def _enqueue_cancel(self, appointment: Appointment, uid: str, why: str, error: str) -> None:
        now = self.clock.now()
        try:
            async with self.uow.writing() as tx:
                await queue_calendar_cancel(tx, appointment, uid, why, now, first_error=error)
                await tx.commit()
        except Exception as db_error:  # the reconciler finds the booking by our token later
            log.error(
                "saga: could not queue compensation for %s: %s", appointment.id, type(db_error).__name__
            )

    async def _fail(self, appointment: Appointment, reason: str, data: dict[str, Any]) -> None:
        """Release the claim: failed, with the reason (and a callback request when the calendar is down)."""
        now = self.clock.now()
        try:
            async with self.uow.writing() as tx:
                current = await tx.appointment(appointment.tenant_id, appointment.id)
                if current is None or current.status is not AppointmentStatus.PENDING:
                    return
                failed = await tx.set_status(current, AppointmentStatus.FAILED, at=now)
                await tx.add_event(
                    failed, "failed", at=now, recovery_point="done", data={"reason": reason, **data}
                )
                if reason == "calendar_unavailable":
                    await request_callback(tx, failed, now, reason)
                await tx.commit()
        except Exception as error:  # the pending row then expires and the reconciler resolves it
            log.error("saga: could not fail appointment %s: %s", appointment.id, type(error).__name__)

    async def _park(self, appointment: Appointment, unknown: CalendarOutcomeUnknown) -> None:
        """Outcome unknown: keep the claim, let a job read the calendar back after the deadline."""
        await self._read_back_later(
            appointment,
            "calendar_unknown",
            {"token": booking_token(appointment), "calendar": unknown.details.get("detail")},
            job={"appointment_id": appointment.id},
            dedupe_key=f"{JOB_RESOLVE}:{appointment.id}",
        )

    async def _read_back_later(
        self,
        appointment: Appointment,
        kind: str,
        data: dict[str, Any],
        *,
        job: dict[str, Any],
        dedupe_key: str,
    ) -> None:
        """Record that the calendar's outcome is unknown (recovery point `calendar_requested`),
        queue the `resolve_pending` job for after the deadline and a callback request, at once."""
        now = self.clock.now()
        async with self.uow.writing() as tx:
            current = await tx.appointment(appointment.tenant_id, appointment.id) or appointment
            await tx.add_event(current, kind, at=now, recovery_point="calendar_requested", data=data)
            await queue_read_back(tx, appointment.tenant_id, job, dedupe_key, now)
            if current.active:  # not for one cancelled meanwhile
                await request_callback(tx, current, now, "calendar_unavailable")
            await tx.commit()

    async def _event(
        self, appointment: Appointment, kind: str, *, recovery_point: str | None, data: dict[str, Any]
    ) -> None:
        try:
            async with self.uow.writing() as tx:
                await tx.add_event(
                    appointment, kind, at=self.clock.now(), recovery_point=recovery_point, data=data
                )
                await tx.commit()
        except Exception as error:
            log.error("saga: could not record %s for %s: %s", kind, appointment.id, type(error).__name__)

    # --- cancel -------------------------------------------------------------------------------

    async def cancel_at_calendar(self, appointment: Appointment) -> bool:
        """Run the queued cancellation of a cancelled appointment now; False leaves it to the worker."""
        if not appointment.external_uid:
            return True
        try:
            await self.calendar.cancel_uid(
                self.catalog,
                appointment.external_uid,
                start=appointment.starts_at,
                end=appointment.ends_at,
                staff_id=appointment.staff_id,
            )
        except CalendarUnavailable:
            return False
        await self._event(
            appointment, "calendar_cancelled", recovery_point="done", data={"uid": appointment.external_uid}
        )
        return True

    # --- reschedule ---------------------------------------------------------------------------

    async def move(
        self,
        old: Appointment,
        claim: Appointment,
        new_start: datetime,
        alternatives: Alternatives,
        *,
        idempotency_key: str | None = None,
    ) -> Appointment:
        """Move `old` at the calendar and here. `claim` is the new pending row, or `old` itself widened."""
        widened = claim.id == old.id
        same_staff = claim.staff_id == old.staff_id
        try:
            if same_staff:
                booking = await self.calendar.reschedule(self.catalog, old, new_start)
            else:
                booking = await self.calendar.create(self.catalog, claim)
        except CalendarRefused as refused:
            SAGA_STEPS.labels("move", "refused").inc()
            await self._undo_move(old, claim, "slot_taken")
            raise SlotTaken(alternatives=list(await _quietly(alternatives))) from refused
        except CalendarOutcomeUnknown as unknown:
            SAGA_STEPS.labels("move", "unknown").inc()
            await self._park_move(old, claim, new_start, unknown)
            raise MoveInDoubt(str(unknown.details.get("detail")), appointment_id=old.id) from unknown
        except CalendarUnavailable as down:
            SAGA_STEPS.labels("move", "unavailable").inc()
            await self._undo_move(old, claim, "calendar_unavailable")
            raise CalendarUnavailable(str(down.details.get("detail")), moved=False) from down
        SAGA_STEPS.labels("move", "ok").inc()
        new_end = new_start + (old.ends_at - old.starts_at)
        if booking.start != new_start or booking.end != new_end:
            log.error("saga: calendar moved appointment %s to another time", old.id)
        now = self.clock.now()
        async with self.uow.writing() as tx:
            current_old = await tx.appointment(old.tenant_id, old.id) or old
            current = current_old if widened else await tx.appointment(claim.tenant_id, claim.id) or claim
            overtaken = current_old.status is not AppointmentStatus.CONFIRMED or (
                not widened and current.status is not AppointmentStatus.PENDING
            )
            if not overtaken:
                released = await tx.set_status(current_old, AppointmentStatus.CANCELLED, at=now)
                if widened:
                    service = self.catalog.service_by_id(old.service_id)
                    moved = await insert_moved(
                        tx, released, block_of(service, new_start), new_end, booking, now, idempotency_key
                    )
                else:
                    moved = await tx.confirm_external(current, external_uid=booking.uid or "", at=now)
                await tx.add_event(
                    moved,
                    "confirmed",
                    at=now,
                    recovery_point="done",
                    data={"uid": booking.uid, "from": old.id},
                )
                await tx.add_event(
                    released, "rescheduled", at=now, recovery_point="done", data={"to": moved.id}
                )
                if not same_staff and old.external_uid:
                    await queue_calendar_cancel(  # cancel_at_calendar below goes first
                        tx, old, old.external_uid, "rescheduled", now, run_after=now + INLINE_GRACE
                    )
                await tx.commit()
        if overtaken:
            await self._move_overtaken(old, claim, booking)
            raise AppointmentNotActive(AppointmentStatus.CANCELLED.value)
        if not same_staff:
            await self.cancel_at_calendar(released)
        return moved

    async def _move_overtaken(self, old: Appointment, claim: Appointment, booking: ExternalBooking) -> None:
        """The appointment was cancelled here (another call, the salon, an erasure) while the calendar
        moved it: it ends cancelled on both sides, not back at the new time. The booking the move made
        there is cancelled, the old appointment too if only the move's claim was cancelled, and the
        claim's hold given back."""
        await self._compensate(claim, booking, "cancelled_meanwhile")
        now = self.clock.now()
        async with self.uow.writing() as tx:
            current_old = await tx.appointment(old.tenant_id, old.id) or old
            if current_old.status is AppointmentStatus.CONFIRMED:
                cancelled = await tx.set_status(current_old, AppointmentStatus.CANCELLED, at=now)
                await tx.add_event(
                    cancelled, "cancelled", at=now, recovery_point="done", data={"source": "move_overtaken"}
                )
                if old.external_uid and claim.staff_id != old.staff_id:  # still booked there
                    await queue_calendar_cancel(tx, old, old.external_uid, "cancelled", now)
            if claim.id != old.id:
                await fail_if_pending(tx, claim, now, {"reason": "cancelled_meanwhile"})
            await tx.commit()
        SAGA_STEPS.labels("move", "overtaken").inc()
        log.warning("saga: appointment %s was cancelled while the calendar moved it", old.id)

    async def _park_move(
        self, old: Appointment, claim: Appointment, new_start: datetime, unknown: CalendarOutcomeUnknown
    ) -> None:
        """Outcome unknown: the calendar may have moved it (Cal.com's reschedule cancels the old
        booking then), so nothing is undone here. Both times stay held (the old row, and the new
        claim or the widened block) until a job reads the calendar back after the deadline
        (`Reconciler.resolve_move`): moved there -> the move is completed here; not -> undone."""
        job, dedupe_key = move_resolution(old, claim)
        await self._read_back_later(
            old,
            "reschedule_unknown",
            {"to": new_start.isoformat(), "claim": claim.id, "calendar": unknown.details.get("detail")},
            job=job,
            dedupe_key=dedupe_key,
        )

    async def _undo_move(self, old: Appointment, claim: Appointment, reason: str) -> None:
        """The old appointment stays as it was: give back the widened block or fail the new claim."""
        now = self.clock.now()
        async with self.uow.writing() as tx:
            current_old = await tx.appointment(old.tenant_id, old.id) or old
            if claim.id == old.id:
                await tx.set_block(current_old, Interval(old.block_starts_at, old.block_ends_at), at=now)
            else:
                await fail_if_pending(tx, claim, now, {"reason": reason})
            await tx.add_event(
                current_old, "reschedule_failed", at=now, recovery_point="done", data={"reason": reason}
            )
            if reason == "calendar_unavailable":
                await request_callback(tx, current_old, now, reason)
            await tx.commit()


async def queue_read_back(
    tx: BookingTx, tenant_id: int, job: dict[str, Any], dedupe_key: str, now: datetime
) -> None:
    """Queue the `resolve_pending` job that reads the calendar back once the deadline has passed."""
    await tx.enqueue_job(
        JOB_RESOLVE, job, at=now, tenant_id=tenant_id, dedupe_key=dedupe_key, run_after=now + PENDING_DEADLINE
    )


def move_resolution(old: Appointment, claim: Appointment) -> tuple[dict[str, Any], str]:
    """The resolve job of one move (`Reconciler.resolve_move`): its payload (the claim, the moved
    appointment and the block to give back) and its dedupe key, the same for whoever queues it
    first: the claim of a widened block, or a move parked in doubt. The claim's version is in the
    key, so the next move of the same appointment gets a job of its own."""
    payload = {
        "appointment_id": claim.id,
        "move_of": old.id,
        "block": [old.block_starts_at.isoformat(), old.block_ends_at.isoformat()],
    }
    return payload, f"{JOB_RESOLVE}:move:{old.id}:{claim.id}:{claim.version}"


async def queue_calendar_cancel(
    tx: BookingTx,
    appointment: Appointment,
    uid: str,
    why: str,
    now: datetime,
    *,
    run_after: datetime | None = None,
    **more: Any,
) -> None:
    """Queue the `calendar_cancel` job of the booking `uid` (the appointment's, or one made for
    it), in `tx`: one job per uid whoever queues it first."""
    await tx.enqueue_job(
        JOB_CANCEL,
        {"uid": uid, "appointment_id": appointment.id, "why": why, **more},
        at=now,
        tenant_id=appointment.tenant_id,
        dedupe_key=f"{JOB_CANCEL}:{uid}",
        run_after=run_after,
    )


async def fail_if_pending(tx: BookingTx, claim: Appointment, now: datetime, data: dict[str, Any]) -> None:
    """Fail a move's claim that still waits (pending), its event saying why (`data`)."""
    current = await tx.appointment(claim.tenant_id, claim.id)
    if current is not None and current.status is AppointmentStatus.PENDING:
        failed = await tx.set_status(current, AppointmentStatus.FAILED, at=now)
        await tx.add_event(failed, "failed", at=now, recovery_point="done", data=data)


async def insert_moved(
    tx: BookingTx,
    old: Appointment,
    block: Interval,
    end: datetime,
    booking: ExternalBooking,
    now: datetime,
    idempotency_key: str | None,
) -> Appointment:
    """The moved appointment as a new row (the old row, cancelled in this transaction, held the time)."""
    start = end - (old.ends_at - old.starts_at)
    new = NewAppointment(
        tenant_id=old.tenant_id,
        service_id=old.service_id,
        staff_id=old.staff_id,
        customer_id=old.customer_id,
        starts_at=start,
        ends_at=end,
        block_starts_at=block.start,
        block_ends_at=block.end,
        status=AppointmentStatus.PENDING,
        source=old.source,
        provider=old.provider,
        call_id=old.call_id,
        idempotency_key=idempotency_key,
        spoken_name=old.spoken_name,
        rescheduled_from_id=old.id,
    )
    inserted = await tx.insert_appointment(new, at=now)
    return await tx.confirm_external(inserted, external_uid=booking.uid or "", at=now)


async def request_callback(tx: BookingTx, appointment: Appointment, now: datetime, reason: str) -> None:
    """Store a request to call the customer back (staff see it; no worker runs it)."""
    await tx.enqueue_job(
        JOB_CALLBACK,
        {
            "appointment_id": appointment.id,
            "customer_id": appointment.customer_id,
            "call_id": appointment.call_id,
            "service_id": appointment.service_id,
            "start": appointment.starts_at.isoformat(),
            "reason": reason,
        },
        at=now,
        tenant_id=appointment.tenant_id,
        dedupe_key=f"{JOB_CALLBACK}:{appointment.id}",
    )


async def _quietly(alternatives: Alternatives) -> tuple[Slot, ...]:
    """Alternatives if the calendar can tell them right now, else none (the refusal stands)."""
    try:
        return await alternatives()
    except BookingError:
        return ()
