"""The booking use cases: check availability, book, cancel, reschedule.

Each use case owns its transaction, is idempotent by a caller-chosen key, and writes every step to
the appointment's event log. A booking is claimed by inserting its row; the database refuses
overlaps (exclusion constraint / trigger), so two callers racing for one slot get one booking. On
the embedded calendar the claim is the booking (confirmed at once). With an external provider
(Cal.com) the claim is `pending` and `booking.saga` takes it through the calendar to confirmed, or
releases it; availability there also asks the calendar (through its slot cache).
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import NoReturn

from rezeption.booking.availability import (
    AvailabilityAnswer,
    DayAnswer,
    alternatives,
    check_claims,
    inside_opening,
    window_reason,
)
from rezeption.booking.catalog import CatalogCache, candidate_staff, find_service
from rezeption.booking.ports import (
    Asker,
    AvailabilityUnchecked,
    BookingTx,
    CalendarDirectory,
    CalendarProvider,
    CalendarUnavailable,
    Clock,
    ExternalCalendar,
    Held,
    KeyAlreadyUsed,
    MoveInDoubt,
    NewAppointment,
    NewEvent,
    SlotClaimFailed,
    UnitOfWork,
    booking_token,
)
from rezeption.booking.saga import (
    INLINE_GRACE,
    JOB_CALLBACK,
    JOB_CANCEL,
    JOB_RESOLVE,
    PENDING_DEADLINE,
    Saga,
    move_resolution,
    queue_calendar_cancel,
    queue_read_back,
)
from rezeption.domain.clock import require_aware
from rezeption.domain.errors import (
    AppointmentInPast,
    AppointmentNotActive,
    AppointmentNotFound,
    AppointmentPending,
    BookingError,
    IdempotencyConflict,
    InvalidRequest,
    NotBookable,
    SlotTaken,
    TooLateToChange,
    TooManyAppointments,
    TooManyInOneCall,
)
from rezeption.domain.model import Appointment, AppointmentStatus, Catalog, Interval, Service, Slot, Staff
from rezeption.domain.schedule import StartCheck, block_of, check_start, salon_refusal, staff_free
from rezeption.ops.metrics import observe_booking

CUSTOMER_CANCELS = frozenset({"phone", "gdpr_erase"})
"""Cancels that close the appointment's open callback request: the customer's own (by phone), and
an erasure's (nobody is called about an erased person). The salon's staff close their own."""


@dataclass(frozen=True)
class BookingResult:
    """A booked (or replayed) appointment with what a reply needs to speak about it."""

    appointment: Appointment
    service: Service
    staff: Staff
    replayed: bool = False
    previous: Appointment | None = None
    awaiting_salon: bool = False
    """The calendar holds it as a request its host still confirms ("pending" at Cal.com)."""


@dataclass(frozen=True)
class BookingRequest:
    """Everything needed to book one appointment."""

    tenant_id: int
    service: str | int
    start: datetime
    staff: str | int | None = None
    customer_name: str | None = None
    phone_e164: str | None = None
    call_id: str | None = None
    source: str = "phone"
    idempotency_key: str | None = None


class Bookings:
    """The use cases over a unit of work, a calendar provider and a clock."""

    def __init__(self, *, uow: UnitOfWork, calendars: CalendarDirectory, clock: Clock) -> None:
        self.uow = uow
        self.calendars = calendars
        self.clock = clock
        self.catalogs = CatalogCache()
        self.turns = StylistTurns()
        self.working = WorkingStylists()

    async def _catalog(self, tx: BookingTx, tenant_id: int, now: datetime) -> Catalog:
        return await self.catalogs.get(tx, tenant_id, now.date())

    async def current_catalog(self, tenant_id: int, now: datetime) -> Catalog:
        """The salon's catalog (`CatalogCache.current`)."""
        return await self.catalogs.current(self.uow, tenant_id, now.date())

    async def availability(
        self, *, tenant_id: int, service: str | int, start: datetime, staff: str | int | None = None
    ) -> AvailabilityAnswer:
        """Is `start` free for `service` (with `staff` or anyone)? If not, why, and what is near."""
        start = _aware(start)
        now = self.clock.now()
        async with self.uow.reading() as tx:
            catalog = await self._catalog(tx, tenant_id, now)
            chosen = find_service(catalog, service)
            members = candidate_staff(catalog, chosen, staff)
            check = await check_claims(tx, catalog, chosen, members, start, now, named=_named(staff))
        provider = self.calendars.for_tenant(catalog)
        try:
            if check.free and provider.external:
                check = await _external_check(provider, catalog, chosen, members, check, start)
            near = () if check.free else await alternatives(provider, catalog, chosen, members, start, now)
        except AvailabilityUnchecked:
            raise
        except CalendarUnavailable as error:  # a question, not a booking: say we could not look
            raise AvailabilityUnchecked(error.details.get("detail", ""), cause_code=error.code) from error
        return AvailabilityAnswer(
            requested=start, service=chosen, check=check, alternatives=near, catalog=catalog
        )

    async def day_availability(
        self,
        *,
        tenant_id: int,
        service: str | int,
        first_day: date,
        last_day: date | None = None,
        staff: str | int | None = None,
        hours: tuple[time, time] | None = None,
    ) -> DayAnswer:
        """The free starts for `service` from `first_day` to `last_day` (starting within `hours` of
        each day when given); when there are none, why not and the nearest alternatives."""
        last_day = last_day or first_day
        catalog, chosen, slots = await self.free_slots(
            tenant_id=tenant_id,
            service=service,
            first_day=first_day,
            days=(last_day - first_day).days + 1,
            staff=staff,
        )
        zone = catalog.tenant.zone
        provider = self.calendars.for_tenant(catalog)
        if provider.external:
            slots = inside_opening(catalog, slots)
        if hours is not None:
            slots = [s for s in slots if hours[0] <= s.start.astimezone(zone).time() < hours[1]]
        if slots:
            return DayAnswer(first_day, last_day, chosen, tuple(slots), None, (), catalog)
        members = candidate_staff(catalog, chosen, staff)
        now = self.clock.now()
        today = now.astimezone(zone).date()
        if first_day > today + timedelta(days=catalog.tenant.policy.horizon_days):
            return DayAnswer(first_day, last_day, chosen, (), "beyond_horizon", (), catalog)
        reason = window_reason(catalog, chosen, members, first_day, last_day, hours)
        at = hours[0] if hours is not None else _first_opening(catalog, first_day)
        try:
            near = await alternatives(
                provider, catalog, chosen, members, datetime.combine(first_day, at, tzinfo=zone), now
            )
        except CalendarUnavailable as error:
            raise AvailabilityUnchecked(error.details.get("detail", ""), cause_code=error.code) from error
        return DayAnswer(first_day, last_day, chosen, (), reason, near, catalog)

    async def free_slots(
        self,
        *,
        tenant_id: int,
        service: str | int,
        first_day: date,
        days: int = 1,
        staff: str | int | None = None,
    ) -> tuple[Catalog, Service, list[Slot]]:
        """Every free start for `service` over `days` local days from `first_day` (for operators)."""
        now = self.clock.now()
        async with self.uow.reading() as tx:
            catalog = await self._catalog(tx, tenant_id, now)
        chosen = find_service(catalog, service)
        members = candidate_staff(catalog, chosen, staff)
        zone, policy = catalog.tenant.zone, catalog.tenant.policy
        start = max(datetime.combine(first_day, time(0), tzinfo=zone), now + policy.min_notice)
        last = min(
            first_day + timedelta(days=days),
            now.astimezone(zone).date() + timedelta(days=policy.horizon_days + 1),
        )
        end = datetime.combine(last, time(0), tzinfo=zone)
        if end <= start:
            return catalog, chosen, []
        return (
            catalog,
            chosen,
            await self.calendars.for_tenant(catalog).free_slots(
                catalog, chosen, members, Interval(start, end)
            ),
        )

    async def book(self, request: BookingRequest) -> BookingResult:
        """Book `request`, or replay the booking made earlier under the same idempotency key."""
        try:
            result = await self._book_or_replay(request)
        except BookingError as error:
            observe_booking(self._provider(request.tenant_id), error.code)
            raise
        except Exception:
            observe_booking(self._provider(request.tenant_id), "other")
            raise
        if not result.replayed:
            observe_booking(result.appointment.provider, None)
        return result

    def _provider(self, tenant_id: int) -> str:
        """The salon's calendar provider as last loaded (a metric label; "unknown" before any load)."""
        catalog = self.catalogs.last_known(tenant_id)
        return catalog.tenant.calendar_provider if catalog is not None else "unknown"

    async def _book_or_replay(self, request: BookingRequest) -> BookingResult:
        try:
            return await self._book(request)
        except KeyAlreadyUsed:
            # A concurrent duplicate committed first: answer exactly what it answered.
            replay = await self._replay_of(request)
            if replay is None:
                raise
            return replay

    async def _replay_of(self, request: BookingRequest) -> BookingResult | None:
        """The answer of the booking made under the request's key, if there is one."""
        start, now = _aware(request.start), self.clock.now()
        async with self.uow.reading() as tx:
            catalog = await self._catalog(tx, request.tenant_id, now)
            service = find_service(catalog, request.service)
            members = candidate_staff(catalog, service, request.staff)
            earlier = await tx.appointment_by_key(request.idempotency_key or "")
        if earlier is None:
            return None
        return _replay(catalog, earlier, service, start, members, request.idempotency_key or "")

    async def _book(self, request: BookingRequest) -> BookingResult:
        start = _aware(request.start)
        now = self.clock.now()
        resumed: Appointment | None = None
        booked: Appointment | None = None
        catalog = await self.current_catalog(request.tenant_id, now)
        # On our own calendar every write of a booking is one statement (`claim_as_customer`), so
        # its reads and claims need no transaction; a Cal.com claim is followed by its event.
        external = self.calendars.for_tenant(catalog).external
        async with self.uow.writing() if external else self.uow.claiming() as tx:
            service = find_service(catalog, request.service)
            members = candidate_staff(catalog, service, request.staff)
            staff_ids, window = [m.id for m in members], block_of(service, start)
            if request.source == "admin":  # the salon's own booking: no caller limit to count
                held = Held(by_caller=0, key_used=bool(request.idempotency_key))
                busy = await tx.busy(request.tenant_id, staff_ids, window)
            else:  # what the caller holds, and who is busy then: one read (with the claim at once)
                asker = _asker(request, now)
                if external or not tx.claims_with_read:
                    held, busy = await tx.held_and_busy(
                        request.tenant_id, asker, staff_ids=staff_ids, window=window
                    )
                else:
                    at_once, held, busy = await self._claim_at_once(
                        tx, catalog, service, members, request, asker, start, now
                    )
                    if at_once is not None:
                        await tx.commit()
                        return BookingResult(at_once, service, catalog.staff_by_id(at_once.staff_id))
            earlier = await tx.appointment_by_key(request.idempotency_key or "") if held.key_used else None
            if earlier is not None:
                replay = _replay(catalog, earlier, service, start, members, request.idempotency_key or "")
                if earlier.provider == "local" or earlier.status is AppointmentStatus.CONFIRMED:
                    return replay
                resumed = earlier
            else:  # a retry answers as its first attempt did, whatever the caller holds since
                try:
                    _within_caller_limit(catalog, request, held)
                except (TooManyAppointments, TooManyInOneCall):
                    if duplicate := await _duplicate_committed(tx, catalog, service, members, request):
                        return duplicate
                    raise
            check = check_start(catalog, service, members, busy, start, now, named=_named(request.staff))
            booked = (
                await self._claim(tx, catalog, service, members, check, request, start, now)
                if check.free and resumed is None
                else None
            )
            if booked is not None:
                await tx.commit()
                if booked.status is AppointmentStatus.CONFIRMED:
                    return BookingResult(booked, service, catalog.staff_by_id(booked.staff_id))
            elif resumed is None and (
                duplicate := await _duplicate_committed(tx, catalog, service, members, request)
            ):
                return duplicate
        if resumed is not None:
            return await self._resume(catalog, service, members, resumed, now)
        if booked is not None:
            saga = self._saga(catalog)
            confirmed = await saga.book(
                booked,
                lambda: alternatives(
                    self.calendars.for_tenant(catalog), catalog, service, members, start, now
                ),
            )
            staff = catalog.staff_by_id(confirmed.staff_id)
            return BookingResult(confirmed, service, staff, awaiting_salon=saga.calendar_status == "pending")
        raise await self._refusal(catalog, service, members, start, now, check)

    async def _claim_at_once(
        self,
        tx: BookingTx,
        catalog: Catalog,
        service: Service,
        members: Sequence[Staff],
        request: BookingRequest,
        asker: Asker,
        start: datetime,
        now: datetime,
    ) -> tuple[Appointment | None, Held, dict[int, list[Interval]]]:
        """Our own calendar: claim the time at once, for the first free stylist in turn among
        those who work then, beside the read of what the caller holds and who is busy
        (`claim_or_read`: one round trip instead of two). The claim is written only within the
        caller's limits, and the no-overlap rule and the unique key refuse it as any claim; when it
        is refused, the read decides as before (someone else, a limit, a retry's replay). A time
        the salon's rules refuse is only read."""
        staff_ids, window = [m.id for m in members], block_of(service, start)
        choices = (
            ()
            if salon_refusal(catalog, service, start, now) is not None
            else self.turns.order(self.working.at(catalog, service, start, members), request, staff_ids)
        )
        if not choices:
            held, busy = await tx.held_and_busy(request.tenant_id, asker, staff_ids=staff_ids, window=window)
            return None, held, busy
        return await self._claim_first_free(tx, catalog, service, request, asker, choices, staff_ids, window)

    def _saga(self, catalog: Catalog) -> Saga:
        provider = self.calendars.for_tenant(catalog)
        if not isinstance(provider, ExternalCalendar):
            raise CalendarUnavailable(f"{provider.name} is not an external calendar")
        return Saga(uow=self.uow, calendar=provider, catalog=catalog, clock=self.clock)

    async def _resume(
        self, catalog: Catalog, service: Service, members: list[Staff], earlier: Appointment, now: datetime
    ) -> BookingResult:
        """A retry of an external booking: resume a pending one, repeat the refusal of a failed one."""
        staff = catalog.staff_by_id(earlier.staff_id)
        if earlier.status is AppointmentStatus.PENDING:
            saga = self._saga(catalog)
            confirmed = await saga.book(
                earlier,
                lambda: alternatives(
                    self.calendars.for_tenant(catalog), catalog, service, members, earlier.starts_at, now
                ),
            )
            awaiting = saga.calendar_status == "pending"
            return BookingResult(confirmed, service, staff, replayed=True, awaiting_salon=awaiting)
        if earlier.status is AppointmentStatus.FAILED:
            async with self.uow.reading() as tx:
                await _repeat_refusal(tx, earlier)
        return BookingResult(earlier, service, staff, replayed=True)

    async def _claim(
        self,
        tx: BookingTx,
        catalog: Catalog,
        service: Service,
        members: Sequence[Staff],
        check: StartCheck,
        request: BookingRequest,
        start: datetime,
        now: datetime,
    ) -> Appointment | None:
        request = dataclasses.replace(request, start=start)
        provider = self.calendars.for_tenant(catalog)
        if not provider.external and tx.claims_with_read and request.source != "admin":
            claimed, still_free = await self._claim_again_at_once(
                tx, catalog, service, members, check, request, now
            )
            if claimed is not None or not still_free:
                return claimed
            check = dataclasses.replace(check, free_staff_ids=still_free)  # each claim waits for another's
        status = AppointmentStatus.PENDING if provider.external else AppointmentStatus.CONFIRMED
        for staff_id in self.turns.order(check.free_staff_ids, request, [m.id for m in members]):
            new = _new_appointment(
                catalog,
                service,
                staff_id,
                request,
                status=status,
                customer_id=None,  # found or created with the claim
                provider=provider.name,
                spoken_name=request.customer_name,
                pending_until=now + PENDING_DEADLINE if provider.external else None,
            )
            steps = () if provider.external else _local_steps(request)
            try:
                booked = await tx.claim_as_customer(
                    new, name=request.customer_name, phone_e164=request.phone_e164, at=now, events=steps
                )
            except SlotClaimFailed:
                continue
            if provider.external:
                await tx.add_event(
                    booked,
                    "reserved",
                    at=now,
                    idempotency_key=request.idempotency_key,
                    recovery_point="calendar_requested",
                    data={"token": booking_token(booked)},
                )
            return booked
        return None

    async def _claim_first_free(
        self,
        tx: BookingTx,
        catalog: Catalog,
        service: Service,
        request: BookingRequest,
        asker: Asker,
        choices: tuple[int, ...],
        staff_ids: list[int],
        window: Interval,
    ) -> tuple[Appointment | None, Held, dict[int, list[Interval]]]:
        """`claim_or_read` on our own calendar for the first of `choices` (stylists in turn) free
        then, within the caller's limits, beside what the caller holds and who of `staff_ids` is
        busy in `window`; the turn hears whom it got."""
        policy = catalog.tenant.policy
        claimed, held, busy = await tx.claim_or_read(
            _new_appointment(
                catalog,
                service,
                choices[0],
                request,
                status=AppointmentStatus.CONFIRMED,
                customer_id=None,  # found or created with the claim
                provider=self.calendars.for_tenant(catalog).name,
                spoken_name=request.customer_name,
                pending_until=None,
            ),
            name=request.customer_name,
            phone_e164=request.phone_e164,
            at=asker.now,
            events=_local_steps(request),
            asker=asker,
            limits=(policy.max_active_per_caller, policy.max_bookings_per_call),
            staff_ids=staff_ids,
            window=window,
            or_else=choices[1:],
        )
        if claimed is not None:
            self.turns.landed(request, staff_ids, choices, claimed.staff_id)
        return claimed, held, busy

    async def _claim_again_at_once(
        self,
        tx: BookingTx,
        catalog: Catalog,
        service: Service,
        members: Sequence[Staff],
        check: StartCheck,
        request: BookingRequest,
        now: datetime,
    ) -> tuple[Appointment | None, tuple[int, ...]]:
        """PostgreSQL, our own calendar, a caller's booking whose claim at once was refused though
        someone was free: mostly a race lost, the stylist it chose booked by another process's claim
        that committed while it looked. The same statement again (`claim_or_read`), offered those
        its read found free, in turn: its own snapshot sees what committed since, and its locks
        pass over claims being made now. Up to CLAIM_ROUNDS rounds, each offered those still free
        by the round before; a claim per stylist instead waited for each claim being made to be
        refused (five claims for each refused claim at once in the two-process benchmark).

        Returns the claim, or None and those still free by the last read: stylists whose claims by
        others were still being made. Such a claim may yet fail (its caller's limits), so those are
        then claimed one by one, each waiting for the other claim's outcome, never refused unseen.
        A duplicate of this request that committed meanwhile is answered as `_claimed` answers it
        (KeyAlreadyUsed: its answer is replayed), also when it took the caller's last place."""
        staff_ids, window = [m.id for m in members], block_of(service, request.start)
        asker = _asker(request, now)
        free = check.free_staff_ids
        for _ in range(CLAIM_ROUNDS):
            choices = self.turns.order(free, request, staff_ids)
            if not choices:
                return None, ()
            claimed, held, busy = await self._claim_first_free(
                tx, catalog, service, request, asker, choices, staff_ids, window
            )
            if claimed is not None:
                return claimed, ()
            if held.key_used:  # a duplicate of this request committed meanwhile: it answers
                raise KeyAlreadyUsed()
            try:
                _within_caller_limit(catalog, request, held)  # the caller's other booking came first
            except (TooManyAppointments, TooManyInOneCall):  # or a duplicate, since this round read
                if request.idempotency_key and await tx.appointment_by_key(request.idempotency_key):
                    raise KeyAlreadyUsed() from None
                raise
            free = tuple(s for s in free if s not in busy)
        return None, free

    async def _refusal(
        self,
        catalog: Catalog,
        service: Service,
        members: list[Staff],
        start: datetime,
        now: datetime,
        check: StartCheck,
    ) -> BookingError:
        near = await alternatives(self.calendars.for_tenant(catalog), catalog, service, members, start, now)
        reason = check.reason or "slot_taken"
        if reason == "slot_taken":
            return SlotTaken(alternatives=list(near), start=start, service=service.name)
        return NotBookable(reason, alternatives=list(near), start=start, service=service.name)

    async def cancel(
        self,
        *,
        tenant_id: int,
        appointment_id: int,
        idempotency_key: str | None = None,
        source: str = "phone",
        respect_notice: bool = True,
    ) -> BookingResult:
        """Cancel the appointment; a retry with the same key replays the first answer.

        `respect_notice=False` skips the salon's change notice (`change_min_notice_hours`): an
        operator's GDPR erasure (source "gdpr_erase") cancels even an appointment in two hours. A
        started or past appointment is never cancelled.
        """
        now = self.clock.now()
        async with self.uow.writing() as tx:
            catalog = await self._catalog(tx, tenant_id, now)
            appointment = await tx.appointment(tenant_id, appointment_id)
            if appointment is None:
                raise AppointmentNotFound(appointment_id)
            service = catalog.service_by_id(appointment.service_id)
            staff = catalog.staff_by_id(appointment.staff_id)
            if not appointment.active:
                last = await tx.last_event(appointment.id, "cancelled")
                if idempotency_key and last is not None and last[0] == idempotency_key:
                    return BookingResult(appointment, service, staff, replayed=True)
                raise AppointmentNotActive(appointment.status.value)
            _ensure_changeable(catalog, appointment, now, respect_notice=respect_notice)
            provider = self.calendars.for_tenant(catalog)
            if not provider.external:
                await provider.cancel(catalog, appointment)
            cancelled = await tx.set_status(appointment, AppointmentStatus.CANCELLED, at=now)
            await tx.add_event(
                cancelled, "cancelled", at=now, idempotency_key=idempotency_key, data={"source": source}
            )
            if provider.external and cancelled.external_uid:
                # Transactional outbox: the calendar cancellation exists exactly when ours committed.
                await queue_calendar_cancel(  # the cancel below goes first
                    tx, cancelled, cancelled.external_uid, "cancelled", now, run_after=now + INLINE_GRACE
                )
            elif (
                provider.external
                and appointment.status is AppointmentStatus.PENDING
                and appointment.rescheduled_from_id is None  # a move's claim has its own job
            ):
                # Its create is in flight or in doubt (no uid yet): a live saga undoes what the
                # calendar books, and this read-back does it once the deadline has passed if the
                # saga died or parked (a job of the same key may be queued already).
                job = {"appointment_id": cancelled.id}
                await queue_read_back(tx, tenant_id, job, f"{JOB_RESOLVE}:{cancelled.id}", now)
            if provider.external and source in CUSTOMER_CANCELS:
                # the customer has nothing left to be called about (only an external calendar's
                # trouble stores callback requests); the salon's own cancel leaves its staff's
                # open request for them to close
                await tx.finish_job(f"{JOB_CALLBACK}:{cancelled.id}", at=now)
            await tx.commit()
        if (
            provider.external
            and cancelled.external_uid
            and await self._saga(catalog).cancel_at_calendar(cancelled)
        ):
            async with self.uow.writing() as tx:
                await tx.finish_job(f"{JOB_CANCEL}:{cancelled.external_uid}", at=self.clock.now())
                await tx.commit()
        return BookingResult(cancelled, service, staff)

    async def reschedule(
        self,
        *,
        tenant_id: int,
        appointment_id: int,
        start: datetime,
        staff: str | int | None = None,
        idempotency_key: str | None = None,
        source: str = "phone",
    ) -> BookingResult:
        """Move the appointment atomically: the old one stays valid unless the new one is booked."""
        start = _aware(start)
        now = self.clock.now()
        claim: Appointment | None = None
        async with self.uow.writing() as tx:
            catalog = await self._catalog(tx, tenant_id, now)
            old = await tx.appointment(tenant_id, appointment_id)
            if old is None:
                raise AppointmentNotFound(appointment_id)
            service = catalog.service_by_id(old.service_id)
            members = candidate_staff(catalog, service, staff)
            members.sort(key=lambda m: m.id != old.staff_id)
            if idempotency_key:
                earlier = await tx.appointment_by_key(idempotency_key)
                if earlier is not None:
                    if earlier.rescheduled_from_id != old.id:
                        raise IdempotencyConflict(idempotency_key)
                    if earlier.status is AppointmentStatus.PENDING:  # in flight, or in doubt there
                        raise MoveInDoubt("the move's claim is still pending", appointment_id=old.id)
                    if earlier.status is AppointmentStatus.FAILED:
                        # the move's claim that the calendar refused or never confirmed: the retry
                        # hears the first answer again, not "moved", unless the reconciler found
                        # the move done at the calendar and completed it here (under no key)
                        earlier = await _completed_move(tx, old) or await _repeat_refusal(tx, earlier)
                    result = _replay(catalog, earlier, service, start, members, idempotency_key)
                    return BookingResult(
                        result.appointment, service, result.staff, replayed=True, previous=old
                    )
            if not old.active:
                raise AppointmentNotActive(old.status.value)
            if old.status is AppointmentStatus.PENDING:  # its booking there is not settled yet
                raise AppointmentPending()
            await _not_in_doubt(tx, service, old)
            _ensure_changeable(catalog, old, now)
            if start == old.starts_at and (staff is None or members[0].id == old.staff_id):
                raise InvalidRequest("Das ist bereits die Uhrzeit Ihres Termins.", code="unchanged")
            released = await tx.set_status(old, AppointmentStatus.CANCELLED, at=now)
            check = await check_claims(tx, catalog, service, members, start, now, named=_named(staff))
            request = BookingRequest(
                tenant_id=tenant_id,
                service=service.id,
                start=start,
                customer_name=old.spoken_name,
                call_id=old.call_id,
                source=source,
                idempotency_key=idempotency_key,
            )
            provider = self.calendars.for_tenant(catalog)
            if provider.external:
                claim = (
                    await self._claim_move(tx, catalog, service, check, request, released, now)
                    if check.free
                    else None
                )
                if claim is not None:
                    await tx.commit()
            booked = (
                await self._move(tx, catalog, service, check, request, old, now)
                if check.free and not provider.external
                else None
            )
            if booked is not None:
                await tx.add_event(released, "rescheduled", at=now, data={"to": booked.id})
                await tx.commit()
                return BookingResult(booked, service, catalog.staff_by_id(booked.staff_id), previous=released)
        if provider.external and claim is not None:
            moved = await self._saga(catalog).move(
                old,
                claim,
                start,
                lambda: alternatives(provider, catalog, service, members, start, now),
                idempotency_key=idempotency_key,
            )
            return BookingResult(moved, service, catalog.staff_by_id(moved.staff_id), previous=old)
        raise await self._refusal(catalog, service, members, start, now, check)

    async def _claim_move(
        self,
        tx: BookingTx,
        catalog: Catalog,
        service: Service,
        check: StartCheck,
        request: BookingRequest,
        released: Appointment,
        now: datetime,
    ) -> Appointment | None:
        """Claim the new time while the old appointment stays valid (external calendars).

        The same stylist with overlapping times: the old row's block is widened to cover both;
        otherwise a new pending row claims the new time.
        """
        old = await tx.set_status(released, AppointmentStatus.CONFIRMED, at=now)
        block = block_of(service, request.start)
        for staff_id in check.free_staff_ids:
            if staff_id == old.staff_id and block.overlaps(Interval(old.block_starts_at, old.block_ends_at)):
                union = Interval(min(block.start, old.block_starts_at), max(block.end, old.block_ends_at))
                try:
                    widened = await tx.set_block(old, union, at=now)
                except SlotClaimFailed:
                    continue
                await tx.add_event(
                    widened,
                    "reschedule_requested",
                    at=now,
                    idempotency_key=request.idempotency_key,
                    recovery_point="calendar_requested",
                    data={"to": request.start.isoformat(), "widened": True},
                )
                # a pending row has its deadline; a widened block gets its read-back job now, so a
                # process killed before the request leaves gives the new time back after it
                await queue_read_back(tx, old.tenant_id, *move_resolution(old, widened), now)
                return widened
            new = _new_appointment(
                catalog,
                service,
                staff_id,
                request,
                status=AppointmentStatus.PENDING,
                customer_id=old.customer_id,
                provider=old.provider,
                spoken_name=old.spoken_name,
                rescheduled_from_id=old.id,
                pending_until=now + PENDING_DEADLINE,
            )
            try:
                claimed = await tx.insert_appointment(new, at=now)
            except SlotClaimFailed:
                continue
            await tx.add_event(
                claimed,
                "reserved",
                at=now,
                idempotency_key=request.idempotency_key,
                recovery_point="calendar_requested",
                data={"token": booking_token(claimed), "from": old.id},
            )
            return claimed
        return None

    async def _move(
        self,
        tx: BookingTx,
        catalog: Catalog,
        service: Service,
        check: StartCheck,
        request: BookingRequest,
        old: Appointment,
        now: datetime,
    ) -> Appointment | None:
        for staff_id in check.free_staff_ids:
            new = _new_appointment(
                catalog,
                service,
                staff_id,
                request,
                status=AppointmentStatus.CONFIRMED,
                customer_id=old.customer_id,
                provider=self.calendars.for_tenant(catalog).name,
                spoken_name=old.spoken_name,
                rescheduled_from_id=old.id,
            )
            try:
                booked = await tx.insert_appointment(new, at=now)
            except SlotClaimFailed:
                continue
            await tx.add_event(
                booked, "confirmed", at=now, idempotency_key=request.idempotency_key, data={"from": old.id}
            )
            return booked
        return None


async def _external_check(
    provider: CalendarProvider,
    catalog: Catalog,
    service: Service,
    members: list[Staff],
    check: StartCheck,
    start: datetime,
) -> StartCheck:
    """Narrow a locally free start to the stylists the external calendar also has free then."""
    day = Interval(start, start + timedelta(minutes=1))
    slots = await provider.free_slots(
        catalog, service, [m for m in members if m.id in check.free_staff_ids], day
    )
    free = tuple(s.staff_id for s in slots if s.start == start)
    if free:
        return dataclasses.replace(check, free_staff_ids=free)
    return dataclasses.replace(check, free_staff_ids=(), reason="slot_taken")


def _new_appointment(
    catalog: Catalog,
    service: Service,
    staff_id: int,
    request: BookingRequest,
    *,
    status: AppointmentStatus,
    customer_id: int | None,
    provider: str,
    spoken_name: str | None,
    rescheduled_from_id: int | None = None,
    pending_until: datetime | None = None,
) -> NewAppointment:
    """The row that claims `request.start` for `service` with one stylist (block = buffers included)."""
    block = block_of(service, request.start)
    return NewAppointment(
        tenant_id=catalog.tenant.id,
        service_id=service.id,
        staff_id=staff_id,
        customer_id=customer_id,
        starts_at=request.start,
        ends_at=request.start + service.duration,
        block_starts_at=block.start,
        block_ends_at=block.end,
        status=status,
        source=request.source,
        provider=provider,
        call_id=request.call_id,
        idempotency_key=request.idempotency_key,
        spoken_name=spoken_name,
        rescheduled_from_id=rescheduled_from_id,
        pending_until=pending_until,
    )


def _local_steps(request: BookingRequest) -> tuple[NewEvent, ...]:
    """The local calendar's claim is the booking: its two steps are stored with it."""
    return (
        NewEvent("reserved", idempotency_key=request.idempotency_key),
        NewEvent("confirmed", recovery_point="done"),
    )


CLAIM_ROUNDS = 3
"""How often a caller's booking on our own calendar claims at once again after a race lost."""


class StylistTurns:
    """Which free stylist a booking for "anyone" tries first, so callers racing for one time try
    different stylists instead of queueing on the first one; a named stylist stays as asked.

    The first request for a time in this process starts where its key's hash points (another
    process most likely starts elsewhere); the next ones for that time go on from there in turn,
    so up to one per stylist never meet at the same claim. A hash alone sent 10 callers racing for
    20 stylists into each other's claims: a fifth of the claims in the floor benchmark were
    refused and retried. The turn walks the salon's list of stylists for the service, not the
    list of those free: racing callers read who is free at slightly different moments, and a turn
    counted in lists that differ sent two of them to the same stylist (a tenth of the claims).
    Kept per process, forgotten past `REMEMBERED` times. Another process's turn is not known here:
    the claim at once is offered every stylist at work in this order and takes the first one free
    (`BookingTx.claim_or_read`), which `landed` reports back."""

    REMEMBERED = 10_000

    def __init__(self) -> None:
        self._next: dict[tuple[int, datetime], int] = {}

    def order(
        self, staff_ids: tuple[int, ...], request: BookingRequest, ring: Sequence[int]
    ) -> tuple[int, ...]:
        """The free `staff_ids` in the order this request tries them; `ring` is every stylist who
        offers the service, in the salon's order (the free ones are among them)."""
        if _named(request.staff) or len(staff_ids) < 2:
            return staff_ids
        everyone = list(ring) or list(staff_ids)
        turn = self._turn(request, len(everyone))
        free, known = set(staff_ids), set(everyone)
        ordered = [s for s in everyone[turn:] + everyone[:turn] if s in free]
        self._moved_on(request, everyone, ordered[0] if ordered else None, turn)
        return (*ordered, *(s for s in staff_ids if s not in known))  # not in the ring: last

    def landed(self, request: BookingRequest, ring: Sequence[int], tried: Sequence[int], got: int) -> None:
        """The claim at once offered `tried` (`order`'s answer) got a later one of them, the first
        ones being busy or being claimed by someone else (another process's turn): the next caller
        goes on after `got`, unless the turn has already gone past it (the claims of this process
        that raced this one moved it on)."""
        if _named(request.staff) or got == tried[0] or got not in ring:
            return
        everyone = list(ring)
        turn, stylists = self._turn(request, len(everyone)), len(everyone)
        since_tried = everyone.index(tried[0]) if tried[0] in everyone else turn
        if (turn - since_tried) % stylists <= (everyone.index(got) - since_tried) % stylists:
            self._moved_on(request, everyone, got, turn)

    def _turn(self, request: BookingRequest, stylists: int) -> int:
        """Where this request's walk through the ring starts: where the last one for its time left
        off, else where its key's hash points."""
        turn = self._next.get((request.tenant_id, request.start))
        if turn is None:
            seed = request.idempotency_key or f"{request.call_id}:{request.customer_name}"
            turn = zlib.crc32(seed.encode())
        return turn % stylists

    def _moved_on(self, request: BookingRequest, everyone: list[int], first: int | None, turn: int) -> None:
        """The next caller goes on after the stylist this one tries first, not after its turn's
        place: with the first stylists booked, places in a row lead to the same free one."""
        at = (request.tenant_id, request.start)
        if at not in self._next and len(self._next) >= self.REMEMBERED:
            self._next.clear()
        self._next[at] = everyone.index(first) + 1 if first is not None else turn + 1


class WorkingStylists:
    """Which of a service's stylists the salon's rules let work at a start (absences, hours,
    breaks; not who is booked then), remembered per catalog: a claim at once for "anyone" is
    offered all of them, in turn. The rules for the twenty stylists of the benchmark's salon cost
    0.24 ms of Python, and callers racing for one time ask the same question again and again. A
    changed salon is a new catalog, whose answers are worked out afresh. Kept per process,
    forgotten past `REMEMBERED` questions."""

    REMEMBERED = 10_000

    def __init__(self) -> None:
        self._known: dict[tuple[int, int, datetime, tuple[int, ...]], tuple[Catalog, tuple[int, ...]]] = {}

    def at(
        self, catalog: Catalog, service: Service, start: datetime, members: Sequence[Staff]
    ) -> tuple[int, ...]:
        """The ids of `members` who can take `service` at `start` by the salon's rules, in order."""
        key = (catalog.tenant.id, service.id, start, tuple(m.id for m in members))
        known = self._known.get(key)
        if known is not None and known[0] is catalog:
            return known[1]
        working = tuple(m.id for m in members if staff_free(catalog, m, service, start))
        if key not in self._known and len(self._known) >= self.REMEMBERED:
            self._known.clear()
        self._known[key] = (catalog, working)
        return working


def _first_opening(catalog: Catalog, day: date) -> time:
    """The salon's usual opening time on `day`'s weekday (09:00 on a closed weekday)."""
    ranges = catalog.tenant.opening_hours.get(day.weekday())
    return ranges[0].start if ranges else time(9)


def _named(staff: str | int | None) -> bool:
    return staff is not None and staff != ""


def _aware(start: datetime) -> datetime:
    try:
        return require_aware(start).astimezone(UTC)
    except ValueError as error:
        raise InvalidRequest("Die Uhrzeit konnte ich nicht eindeutig zuordnen.", code="naive_time") from error


def _ensure_changeable(
    catalog: Catalog, appointment: Appointment, now: datetime, *, respect_notice: bool = True
) -> None:
    if appointment.starts_at <= now:
        raise AppointmentInPast()
    window = catalog.tenant.policy.change_min_notice
    if respect_notice and appointment.starts_at - now < window:
        raise TooLateToChange(int(window.total_seconds() // 3600))


def _replay(
    catalog: Catalog, earlier: Appointment, service: Service, start: datetime, members: list[Staff], key: str
) -> BookingResult:
    same = (
        earlier.tenant_id == catalog.tenant.id
        and earlier.service_id == service.id
        and earlier.starts_at == start
        and earlier.staff_id in {m.id for m in members}
    )
    if not same:
        raise IdempotencyConflict(key)
    return BookingResult(earlier, service, catalog.staff_by_id(earlier.staff_id), replayed=True)


async def _duplicate_committed(
    tx: BookingTx, catalog: Catalog, service: Service, members: list[Staff], request: BookingRequest
) -> BookingResult | None:
    """Before a refusal (the slot or the caller's limit taken): a concurrent duplicate under the
    same key that committed after this request looked may have taken it; then this request answers
    what it answered. Asked in the refusing transaction (PostgreSQL's read committed shows each
    statement what committed before it), so a refusal costs one statement, not a second session."""
    if not request.idempotency_key:
        return None
    earlier = await tx.appointment_by_key(request.idempotency_key)
    if earlier is None or not earlier.active:
        return None
    return _replay(catalog, earlier, service, _aware(request.start), members, request.idempotency_key)


async def _completed_move(tx: BookingTx, old: Appointment) -> Appointment | None:
    """The appointment `old` was moved to by the reconciler after its move's confirm never came
    (the first answer a retry of that move repeats, whatever happened to it since)."""
    moved = await tx.last_event(old.id, "rescheduled")
    if moved is None or moved[1].get("reconciled") != "moved_at_calendar":
        return None
    return await tx.appointment(old.tenant_id, int(moved[1]["to"]))  # also when since moved on


async def _not_in_doubt(tx: BookingTx, service: Service, appointment: Appointment) -> None:
    """Refuse to move an appointment again while the calendar's outcome of its last move is
    unknown (its block still widened to hold the new time): the reconciler settles it first. Only
    a block wider than the service's costs a look at the events."""
    own = block_of(service, appointment.starts_at)
    if (appointment.block_starts_at, appointment.block_ends_at) == (own.start, own.end):
        return
    parked = await tx.last_event(appointment.id, "reschedule_unknown")
    if parked is not None and parked[1].get("claim") == appointment.id:
        raise MoveInDoubt("its last move is in doubt", appointment_id=appointment.id)


async def _repeat_refusal(tx: BookingTx, failed: Appointment) -> NoReturn:
    """Raise the refusal an attempt that failed at the calendar was answered with."""
    last = await tx.last_event(failed.id, "failed")
    if last is not None and last[1].get("reason") == "slot_taken":
        raise SlotTaken()
    raise CalendarUnavailable("earlier attempt failed")


def _asker(request: BookingRequest, now: datetime) -> Asker:
    """Who asks for the booking, as the caller's limits count them."""
    return Asker(request.phone_e164, request.customer_name, request.call_id, now, request.idempotency_key)


def _within_caller_limit(catalog: Catalog, request: BookingRequest, held: Held) -> None:
    """Refuse a caller's booking when their number or name already holds the salon's maximum of
    future appointments, or when this call has booked its maximum already (a caller who withholds
    the number and gives a new name each time): a caller or a bot cannot hoard slots. The salon's
    own bookings pass. Two bookings of one caller in the same instant may both pass the count: a
    bound, not a lock."""
    if request.source == "admin":
        return
    policy = catalog.tenant.policy
    if request.call_id and held.in_call >= policy.max_bookings_per_call:
        raise TooManyInOneCall(policy.max_bookings_per_call)
    if held.by_caller >= policy.max_active_per_caller:
        raise TooManyAppointments(policy.max_active_per_caller)
