"""The reconciler: makes our database and the external calendar (Cal.com) tell the same story.

Owns the repair rules, each a read of the calendar first and never a blind write:

- a `pending` row past its deadline: the calendar is read by our token; a booking found there is
  cancelled (the caller was never told yes: we only say yes after the local confirm) and the row
  is marked failed; nothing there -> failed;
- a calendar booking carrying one of our tokens without a confirmed row of ours is an orphan:
  cancelled there and counted — unless it is one of our appointments moved there (Cal.com's
  reschedule makes a new booking with our token and cancels the old one) by a move whose confirm
  here never came (the process died in between): once the pending deadline has passed, the move is
  completed here (the appointment lives at its new time there) and a callback request tells the
  salon to tell the caller; before it, both are left alone (the move may still be running);
- a booking made directly in the calendar (walk-in, staff) is imported as an external appointment
  so our availability stays true; one cancelled (or rejected by its host) there is cancelled here,
  and when a caller booked it with us, a callback request tells the salon to call them.

A run goes on past a step that fails (the calendar answers one booking with an error, a row is
locked) and reports each failed step with its cause (`ReconcileReport.errors`): what, and the
exception's type and text, never personal data.

Runs as a scheduled worker job (`ops.worker`) and as `rezeption reconcile`; webhooks and outbox jobs
call the targeted variants (`reread`, `resolve_pending`, `cancel_uid`). What it costs at the
calendar: one listing per pass for all of a salon's event types (`ExternalCalendar.bookings`), and
with several workers one pass per interval between them (`reconcile_all(claim_for=...)`: the first
to claim the salon's pass runs it). The worker's schedule claims the two halves of a pass apart:
overdue pending rows every minute (a database read, and a read by token only for a row found
overdue), the listing every ten minutes (`list_for`). The listing is the safety net behind
webhooks and the targeted jobs, so it need not run as often, and once a minute it cost a salon
1,440 Cal.com requests a day whether anybody called or not. A webhook's re-read is skipped when
our database already tells the story the signed delivery tells (our own booking created, a
cancelled one cancelled here): the echo of our own writes costs no read. What it learns goes into
the calendar's cached free slots too (`ExternalCalendar.note`): an imported booking takes its
time, one cancelled there gives it back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rezeption.booking.catalog import CatalogCache
from rezeption.booking.ports import (
    BookingTx,
    CalendarDirectory,
    CalendarUnavailable,
    Clock,
    ExternalBooking,
    ExternalCalendar,
    NewAppointment,
    SlotClaimFailed,
    UnitOfWork,
    appointment_id_of_token,
)
from rezeption.booking.saga import PENDING_DEADLINE, fail_if_pending, insert_moved, request_callback
from rezeption.domain.errors import technical_cause
from rezeption.domain.model import Appointment, AppointmentStatus, Catalog, Interval
from rezeption.domain.schedule import block_of
from rezeption.ops.metrics import RECONCILE_FOUND, RECONCILE_RUNS, SAGA_STEPS

log = logging.getLogger(__name__)

LOOKBACK = timedelta(days=1)


@dataclass
class ReconcileReport:
    """What one reconcile run found and repaired."""

    pending_failed: int = 0
    orphans_cancelled: int = 0
    imported: int = 0
    cancelled_here: int = 0
    conflicts: int = 0
    moves_completed: int = 0
    skipped: int = 0  # salons whose scheduled pass another worker had claimed
    errors: list[str] = field(default_factory=list)

    def add(self, other: ReconcileReport) -> None:
        """Sum another report into this one."""
        self.pending_failed += other.pending_failed
        self.orphans_cancelled += other.orphans_cancelled
        self.imported += other.imported
        self.cancelled_here += other.cancelled_here
        self.conflicts += other.conflicts
        self.moves_completed += other.moves_completed
        self.skipped += other.skipped
        self.errors.extend(other.errors)


def _count(report: ReconcileReport) -> None:
    """One salon's run, in /metrics (orphans and pending rows found are what an operator watches)."""
    RECONCILE_RUNS.inc()
    found = {
        "orphan": report.orphans_cancelled,
        "pending": report.pending_failed,
        "imported": report.imported,
        "cancelled_here": report.cancelled_here,
        "conflict": report.conflicts,
        "move_completed": report.moves_completed,
        "error": len(report.errors),
    }
    for kind, count in found.items():
        if count:
            RECONCILE_FOUND.labels(kind).inc(count)


class Reconciler:
    """Repairs per salon, over the store, the calendars and a clock."""

    def __init__(self, *, uow: UnitOfWork, calendars: CalendarDirectory, clock: Clock) -> None:
        self.uow = uow
        self.calendars = calendars
        self.clock = clock
        self.catalogs = CatalogCache()

    async def _context(self, tenant_id: int) -> tuple[Catalog, ExternalCalendar | None]:
        async with self.uow.reading() as tx:
            catalog = await self.catalogs.get(tx, tenant_id, self.clock.now().date())
        provider = self.calendars.for_tenant(catalog)
        return catalog, provider if isinstance(provider, ExternalCalendar) else None

    async def reconcile_all(
        self, *, claim_for: float | None = None, list_for: float | None = None
    ) -> ReconcileReport:
        """Reconcile every salon with an external calendar; with `claim_for` (the worker's schedule)
        only the salons whose pass this process claims for that many seconds, and their calendars
        listed only when this process claims the listing for `list_for` seconds (else `claim_for`)."""
        async with self.uow.reading() as tx:
            tenants = await tx.external_tenants()
        report = ReconcileReport()
        for tenant_id in tenants:
            try:
                report.add(await self.reconcile_tenant(tenant_id, claim_for=claim_for, list_for=list_for))
            except Exception as error:  # one salon's outage must not stop the others
                report.errors.append(f"salon {tenant_id}: {technical_cause(error)}")
        return report

    async def reconcile_tenant(
        self, tenant_id: int, *, claim_for: float | None = None, list_for: float | None = None
    ) -> ReconcileReport:
        """Resolve overdue pending rows, cancel orphans, import and follow the calendar's own changes.
        With `claim_for`, nothing happens unless this process claims the salon's pass (another
        worker ran it within that many seconds: `skipped`), and the calendar is listed only when
        it also claims the listing for `list_for` seconds (default: `claim_for`)."""
        catalog, calendar = await self._context(tenant_id)
        report = ReconcileReport()
        if calendar is None:
            return report
        if claim_for is not None and not await calendar.claim_reconcile(claim_for):
            report.skipped += 1
            return report
        now = self.clock.now()
        async with self.uow.reading() as tx:
            overdue = await tx.pending_due(tenant_id, now)
        for appointment in overdue:
            try:
                outcome = await self._resolve(catalog, calendar, appointment)
            except Exception as error:
                report.errors.append(f"pending appointment {appointment.id}: {technical_cause(error)}")
                continue
            report.pending_failed += outcome != "unchanged"
            report.orphans_cancelled += outcome == "cancelled_there"
        listing = list_for if list_for is not None else claim_for
        if listing is not None and not await calendar.listing_due(listing, hold=claim_for or listing):
            _count(report)
            return report  # listed within `listing` seconds (by this worker or another)
        window = Interval(now - LOOKBACK, now + timedelta(days=catalog.tenant.policy.horizon_days + 1))
        try:
            bookings = await calendar.bookings(catalog, window)
        except Exception as error:  # not marked listed: the next pass tries again
            report.errors.append(f"listing the calendar's bookings: {technical_cause(error)}")
            _count(report)
            return report
        if listing is not None:
            await calendar.listed(listing)
        for booking in bookings:
            try:
                await self._follow(catalog, calendar, booking, report)
            except Exception as error:
                report.errors.append(f"calendar booking {booking.uid}: {technical_cause(error)}")
        for problem in report.errors:
            log.warning("reconcile: salon %s: %s", tenant_id, problem)
        _count(report)
        return report

    async def resolve_pending(self, tenant_id: int, appointment_id: int) -> str:
        """Settle one pending appointment by reading the calendar (a job after an unknown outcome)."""
        catalog, calendar = await self._context(tenant_id)
        async with self.uow.reading() as tx:
            appointment = await tx.appointment(tenant_id, appointment_id)
        if calendar is None or appointment is None:
            return "unchanged"
        outcome = await self._resolve(catalog, calendar, appointment)
        SAGA_STEPS.labels("resolve", outcome).inc()
        return outcome

    async def resolve_move(
        self, tenant_id: int, old_id: int, claim_id: int, block: Interval | None = None
    ) -> str:
        """Settle a move whose outcome at the calendar stayed unknown (a job after the deadline):
        made there -> completed here; not made -> undone here (the widened `block` given back, the
        new claim failed). A move with another stylist (a new booking under the claim's token) is
        settled as any pending claim: what the calendar made is cancelled, the old appointment stays."""
        catalog, calendar = await self._context(tenant_id)
        async with self.uow.reading() as tx:
            old = await tx.appointment(tenant_id, old_id)
            claim = await tx.appointment(tenant_id, claim_id)
        if calendar is None or old is None or claim is None or old.status is not AppointmentStatus.CONFIRMED:
            return "unchanged"  # moved or cancelled meanwhile
        widened = claim.id == old.id
        if widened and (block is None or block == Interval(old.block_starts_at, old.block_ends_at)):
            return "unchanged"  # undone meanwhile
        if not widened and claim.status is not AppointmentStatus.PENDING:
            return "unchanged"
        if claim.staff_id != old.staff_id:
            outcome = await self._resolve(catalog, calendar, claim)
        else:
            outcome = await self._settle_reschedule(catalog, calendar, old, claim, block)
        SAGA_STEPS.labels("resolve_move", outcome).inc()
        log.info("reconcile: move of appointment %s resolved: %s", old.id, outcome)
        return outcome

    async def _settle_reschedule(
        self,
        catalog: Catalog,
        calendar: ExternalCalendar,
        old: Appointment,
        claim: Appointment,
        block: Interval | None,
    ) -> str:
        """Read the old booking back: moved by Cal.com's reschedule (cancelled there, pointing to its
        successor) -> complete the move; otherwise give back what the move held here."""
        there = await calendar.get(catalog, old.external_uid or "")
        moved = None
        if there is not None and not there.active and there.rescheduled_to_uid:
            moved = await calendar.get(catalog, there.rescheduled_to_uid)
        if moved is not None and moved.active and _moved_from(moved, old):
            report = ReconcileReport()
            await self._complete_move(
                catalog, calendar, old, moved, report, in_doubt=None if claim.id == old.id else claim
            )
            return "moved_there" if report.moves_completed else "unchanged"
        now = self.clock.now()
        async with self.uow.writing() as tx:
            current = await tx.appointment(old.tenant_id, old.id)
            if current is None or current.status is not AppointmentStatus.CONFIRMED:
                return "unchanged"
            if claim.id == old.id and block is not None:
                await tx.set_block(current, block, at=now)
            else:
                await _fail_if_pending(tx, claim, now, "not_moved_there")
            await tx.add_event(
                current, "reschedule_failed", at=now, recovery_point="done",
                data={"reason": "calendar_unavailable", "reconciled": "not_moved_there"},
            )  # fmt: skip
            await tx.commit()
        return "not_moved_there"

    async def _resolve(self, catalog: Catalog, calendar: ExternalCalendar, appointment: Appointment) -> str:
        """Settle a claim past its deadline: cancel there what its create booked, fail it here. A
        claim cancelled here meanwhile (no uid: its create was in flight or in doubt) is only
        cancelled there, now rather than at the next listing."""
        cancelled_in_doubt = (
            appointment.status is AppointmentStatus.CANCELLED
            and appointment.external_uid is None
            and appointment.rescheduled_from_id is None  # a move's claim: `resolve_move` settles it
        )
        if appointment.status is not AppointmentStatus.PENDING and not cancelled_in_doubt:
            return "unchanged"
        found = await calendar.find(catalog, appointment)
        outcome = "nothing_there"
        if found is not None and found.active and found.uid:
            await calendar.cancel_uid(
                catalog,
                found.uid,
                start=appointment.starts_at,
                end=appointment.ends_at,
                staff_id=appointment.staff_id,
            )
            outcome = "cancelled_there"
        elif found is None:  # its create never landed: the time it held in the cached slots is free
            calendar.note(catalog, _gone(appointment))
        if cancelled_in_doubt:
            log.info("reconcile: appointment %s, cancelled in doubt: %s", appointment.id, outcome)
            return outcome
        now = self.clock.now()
        async with self.uow.writing() as tx:
            current = await tx.appointment(appointment.tenant_id, appointment.id)
            if current is None or current.status is not AppointmentStatus.PENDING:
                return "unchanged"
            failed = await tx.set_status(current, AppointmentStatus.FAILED, at=now)
            await tx.add_event(
                failed,
                "failed",
                at=now,
                recovery_point="done",
                data={
                    "reason": "calendar_unavailable",
                    "reconciled": outcome,
                    "uid": found.uid if found else None,
                },
            )
            await tx.commit()
        log.info("reconcile: pending appointment %s resolved: %s", appointment.id, outcome)
        return outcome

    async def reread(self, tenant_id: int, uid: str, trigger: str | None = None) -> str:
        """A webhook's hint: read this one booking back and follow it, unless our database already
        agrees with what the delivery's `trigger` says of it ("known": nothing read)."""
        catalog, calendar = await self._context(tenant_id)
        if calendar is None:
            return "unchanged"
        if trigger is not None:
            async with self.uow.reading() as tx:
                ours = (await tx.appointments_by_uid(tenant_id, [uid])).get(uid)
            if _agrees(trigger, ours):
                return "known"
        booking = await calendar.get(catalog, uid)
        if booking is None:
            return "unknown"
        calendar.note(catalog, booking)
        report = ReconcileReport()
        await self._follow(catalog, calendar, booking, report)
        return "followed"

    async def cancel_uid(self, tenant_id: int, uid: str, appointment_id: int | None = None) -> None:
        """Cancel one booking at the calendar (a compensation or cancellation job); with the
        appointment it was made for, its time is free again in the cached slots at once."""
        catalog, calendar = await self._context(tenant_id)
        if calendar is None:
            return
        appointment = None
        if appointment_id is not None:
            async with self.uow.reading() as tx:
                appointment = await tx.appointment(tenant_id, appointment_id)
        if appointment is None:
            await calendar.cancel_uid(catalog, uid)
            return
        await calendar.cancel_uid(
            catalog, uid, start=appointment.starts_at, end=appointment.ends_at, staff_id=appointment.staff_id
        )

    async def _follow(
        self, catalog: Catalog, calendar: ExternalCalendar, booking: ExternalBooking, report: ReconcileReport
    ) -> None:
        if not booking.uid:
            return
        before = booking.rescheduled_from_uid
        async with self.uow.reading() as tx:
            uids = [booking.uid, before] if before else [booking.uid]
            known = await tx.appointments_by_uid(catalog.tenant.id, uids)
            ours = known.get(booking.uid)
            # the appointment Cal.com moved here: its reschedule copies the token of the booking it
            # moved, so after one move the token names the appointment as first booked, not this one
            prior = known.get(before) if before else None
            token_id = appointment_id_of_token(booking.token)
            origin = await tx.appointment(catalog.tenant.id, token_id) if token_id is not None else None
        if booking.active:
            if ours is not None and ours.status is AppointmentStatus.CONFIRMED:
                return
            if booking.token is not None:
                if origin is not None and origin.status is AppointmentStatus.PENDING and ours is None:
                    return  # its saga is still running; the pending deadline decides
                # Moved from one of our appointments: completed here while that one is confirmed.
                # Cancelled here since (its move was in doubt), nobody holds it: an orphan.
                moved_here = ours is None and prior is not None and _moved_from(booking, prior)
                if moved_here and prior is not None and prior.status is AppointmentStatus.CONFIRMED:
                    await self._complete_move(catalog, calendar, prior, booking, report)
                    return
                if (
                    ours is None
                    and not moved_here
                    and await self._onto_twin(catalog, calendar, origin, booking)
                ):
                    return

                await calendar.cancel_uid(
                    catalog, booking.uid, start=booking.start, end=booking.end, staff_id=booking.staff_id
                )
                report.orphans_cancelled += 1
                log.warning("reconcile: orphan %s cancelled at the calendar", booking.uid)
                if origin is not None:  # on the appointment it was made for: operators see it there
                    async with self.uow.writing() as tx:
                        await tx.add_event(
                            origin, "orphan_cancelled", at=self.clock.now(), recovery_point="done",
                            data={"uid": booking.uid},
                        )  # fmt: skip
                        await tx.commit()
                return
            if ours is None:
                await self._import(catalog, booking, report)
                calendar.note(catalog, booking)  # its time is taken, imported or not
            return
        if ours is not None and ours.status is AppointmentStatus.CONFIRMED:
            if booking.rescheduled_to_uid:  # moved there: follow it to its new booking
                moved = await calendar.get(catalog, booking.rescheduled_to_uid)
                if moved is not None and moved.active and _moved_from(moved, ours):
                    async with self.uow.reading() as tx:
                        known = await tx.appointments_by_uid(catalog.tenant.id, [moved.uid or ""])
                    if not known:
                        await self._complete_move(catalog, calendar, ours, moved, report)
                        return
            if ours.source != "calendar":  # ours, with our token: a live twin may carry it on
                try:
                    twin = await self._live_twin(catalog, calendar, ours, booking)
                except CalendarUnavailable:
                    return  # cannot say: cancelled there, confirmed here until the next pass
                if twin is not None:
                    await self._onto(ours, twin)
                    return
            now = self.clock.now()
            async with self.uow.writing() as tx:
                current = await tx.appointment(ours.tenant_id, ours.id) or ours
                cancelled = await tx.set_status(current, AppointmentStatus.CANCELLED, at=now)
                await tx.add_event(
                    cancelled,
                    "cancelled",
                    at=now,
                    recovery_point="done",
                    data={"source": "calendar", "calendar_status": booking.status},
                )
                if current.source != "calendar":  # a caller was told yes: someone must tell them
                    await request_callback(tx, cancelled, now, f"calendar_{booking.status or 'cancelled'}")
                await tx.commit()
            calendar.note(catalog, booking)
            report.cancelled_here += 1

    async def _live_twin(
        self, catalog: Catalog, calendar: ExternalCalendar, ours: Appointment, gone: ExternalBooking
    ) -> ExternalBooking | None:
        """A live booking carrying `ours`'s token at its host, start and end, other than `gone`
        (its booking, cancelled there): two creates of one appointment, whose saga cancelled the
        one the row stood on and keeps the other (`Saga._keep_one`), its rebind not yet done when
        the cancellation's webhook is re-read. One Cal.com read, only when a booking of ours was
        cancelled there."""
        for candidate in await calendar.find_live(catalog, ours):
            if candidate.uid != gone.uid and _twin_of(candidate, ours):
                return candidate
        return None

    async def _onto_twin(
        self,
        catalog: Catalog,
        calendar: ExternalCalendar,
        origin: Appointment | None,
        booking: ExternalBooking,
    ) -> bool:
        """`booking` (live, no row names it) carries the token of `origin`, confirmed here on
        another booking at the same time: two creates of one appointment (a retry resumed its
        saga). When origin's own booking is gone there (cancelled, not moved on; or unknown), origin
        moves onto this one, as its saga's `_keep_one` does; a webhook's re-read may come first,
        and cancelling it as an orphan would leave the caller's appointment on a dead booking.
        True when it is settled so (or left for the next pass: the calendar cannot say, or the row
        changed meanwhile); False when origin's booking stands and this one is an orphan."""
        if (
            origin is None
            or origin.status is not AppointmentStatus.CONFIRMED
            or not origin.external_uid
            or not _twin_of(booking, origin)
        ):
            return False  # not a twin of what the row holds: another host, another time
        try:
            sibling = await calendar.get(catalog, origin.external_uid)
        except CalendarUnavailable:
            return True  # two bookings for a while, never none: the next pass decides
        if sibling is not None and (sibling.active or sibling.rescheduled_to_uid):
            return False
        await self._onto(origin, booking)
        return True

    async def _onto(self, origin: Appointment, booking: ExternalBooking) -> None:
        """Move confirmed `origin` onto its twin `booking`, if it still stands where it was read
        (its uid and time); changed meanwhile (its saga rebound it, a cancel): the next pass."""
        now = self.clock.now()
        try:
            async with self.uow.writing() as tx:
                current = await tx.appointment(origin.tenant_id, origin.id) or origin
                if (current.external_uid, current.starts_at) != (origin.external_uid, origin.starts_at):
                    return
                moved = await tx.rebind_external(current, external_uid=booking.uid or "", at=now)
                await tx.add_event(
                    moved, "confirmed", at=now, recovery_point="done",
                    data={"uid": booking.uid, "replaces": origin.external_uid,
                          "calendar_status": booking.status, "why": "twin"},
                )  # fmt: skip
                await tx.commit()
        except SlotClaimFailed:
            return
        log.warning("reconcile: appointment %s moved onto its live twin %s", origin.id, booking.uid)

    async def _complete_move(
        self,
        catalog: Catalog,
        calendar: ExternalCalendar,
        old: Appointment,
        moved: ExternalBooking,
        report: ReconcileReport,
        *,
        in_doubt: Appointment | None = None,
    ) -> None:
        """`moved` is `old` moved at the calendar by a move whose confirm here never came: make it
        the appointment here (as the saga's confirm would have), once the pending deadline has
        passed since the calendar made it; until then the move may still be running. `in_doubt`:
        the move's own pending claim, which held the new time and is released in the same step."""
        now = self.clock.now()
        if moved.created_at is not None and now - moved.created_at < PENDING_DEADLINE:
            return
        service = catalog.service_by_id(old.service_id)
        async with self.uow.writing() as tx:
            current = await tx.appointment(old.tenant_id, old.id)
            if (
                current is None
                or current.status is not AppointmentStatus.CONFIRMED
                or current.external_uid != moved.rescheduled_from_uid
            ):
                return  # settled meanwhile
            if in_doubt is not None:
                await _fail_if_pending(tx, in_doubt, now, "moved_at_calendar")
            released = await tx.set_status(current, AppointmentStatus.CANCELLED, at=now)
            try:
                confirmed = await insert_moved(
                    tx, released, block_of(service, moved.start), moved.end, moved, now, None
                )
            except SlotClaimFailed:  # the move's own claim still holds the time: a later run
                log.warning("reconcile: moved booking %s waits for its claim to be resolved", moved.uid)
                return
            await tx.add_event(
                confirmed, "confirmed", at=now, recovery_point="done",
                data={"uid": moved.uid, "from": old.id, "reconciled": "moved_at_calendar"},
            )  # fmt: skip
            await tx.add_event(
                released, "rescheduled", at=now, recovery_point="done",
                data={"to": confirmed.id, "reconciled": "moved_at_calendar"},
            )  # fmt: skip
            if current.source != "calendar":  # the caller never heard the new time for sure
                await request_callback(tx, confirmed, now, "calendar_moved")
            await tx.commit()
        calendar.note(catalog, moved)  # its time is taken there (a failed claim gave it back)
        report.moves_completed += 1
        log.warning(
            "reconcile: appointment %s moved at the calendar to %s, completed here", old.id, moved.uid
        )

    async def _import(self, catalog: Catalog, booking: ExternalBooking, report: ReconcileReport) -> None:
        """A booking made directly in the calendar becomes an external appointment here."""
        if booking.service_id is None or booking.staff_id is None or not booking.uid:
            return
        service = catalog.service_by_id(booking.service_id)
        block = block_of(service, booking.start)
        now = self.clock.now()
        new = NewAppointment(
            tenant_id=catalog.tenant.id,
            service_id=service.id,
            staff_id=booking.staff_id,
            customer_id=None,
            starts_at=booking.start,
            ends_at=max(booking.end, booking.start + timedelta(minutes=1)),
            block_starts_at=min(block.start, booking.start),
            block_ends_at=max(block.end, booking.end),
            status=AppointmentStatus.PENDING,
            source="calendar",
            provider=catalog.tenant.calendar_provider,
            call_id=None,
            idempotency_key=None,
            spoken_name=None,
        )
        async with self.uow.writing() as tx:
            try:
                inserted = await tx.insert_appointment(new, at=now)
            except SlotClaimFailed:
                report.conflicts += 1
                log.error("reconcile: calendar booking %s overlaps one of ours", booking.uid)
                return
            confirmed = await tx.confirm_external(inserted, external_uid=booking.uid, at=now)
            await tx.add_event(
                confirmed, "imported", at=now, recovery_point="done", data={"uid": booking.uid}
            )
            await tx.commit()
        report.imported += 1


TAKES_TIME = frozenset({"BOOKING_CREATED", "BOOKING_REQUESTED", "BOOKING_RESCHEDULED"})
"""Webhook triggers (Cal.com's names) after which the booking holds its time there."""
GIVES_TIME_BACK = frozenset({"BOOKING_CANCELLED", "BOOKING_REJECTED"})
"""Webhook triggers after which it holds it no more."""


def _agrees(trigger: str, ours: Appointment | None) -> bool:
    """Whether our row for a booking already says what a webhook's trigger says of it: a booking
    made or moved there that we hold confirmed (our own write's echo), or one cancelled there that
    we never held or hold no more. Anything else is read back."""
    if trigger in TAKES_TIME:
        return ours is not None and ours.status is AppointmentStatus.CONFIRMED
    if trigger in GIVES_TIME_BACK:
        return ours is None or ours.status not in (AppointmentStatus.CONFIRMED, AppointmentStatus.PENDING)
    return False


async def _fail_if_pending(tx: BookingTx, claim: Appointment, now: datetime, reconciled: str) -> None:
    """Fail a move's claim that still waits (pending), saying what the reconciler found."""
    await fail_if_pending(tx, claim, now, {"reason": "calendar_unavailable", "reconciled": reconciled})


def _gone(appointment: Appointment) -> ExternalBooking:
    """The appointment's time as a booking that no longer holds it."""
    return ExternalBooking(
        uid=None,
        start=appointment.starts_at,
        end=appointment.ends_at,
        status="cancelled",
        service_id=appointment.service_id,
        staff_id=appointment.staff_id,
    )


def _twin_of(booking: ExternalBooking, appointment: Appointment) -> bool:
    """Whether `booking` holds what `appointment` holds: its start, end and (when known) host."""
    same_time = (booking.start, booking.end) == (appointment.starts_at, appointment.ends_at)
    return same_time and (booking.staff_id is None or booking.staff_id == appointment.staff_id)


def _moved_from(booking: ExternalBooking, appointment: Appointment) -> bool:
    """Whether the calendar made `booking` by moving `appointment`'s booking there: it names that
    booking as the one it was rescheduled from and carries one of our tokens (that of the
    appointment as first booked: Cal.com's reschedule copies it, so after an earlier move it is not
    `appointment`'s own)."""
    return (
        booking.rescheduled_from_uid is not None
        and booking.rescheduled_from_uid == appointment.external_uid
        and appointment_id_of_token(booking.token) is not None
    )
