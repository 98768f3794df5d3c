"""The booking use cases: check availability, book, cancel, reschedule.

Each use case owns its transaction, is idempotent by a caller-chosen key, and writes every step to
the appointment's event log. A booking is claimed by inserting its row; the database refuses
overlaps (exclusion constraint / trigger), so two callers racing for one slot get one booking. On
the embedded calendar the claim is the booking (confirmed at once). External providers (Cal.com)
go through the saga in a later step: the claim is then `pending` until the provider has confirmed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from rezeption.booking.availability import AvailabilityAnswer, alternatives, check_claims
from rezeption.booking.catalog import CatalogCache, candidate_staff, find_service
from rezeption.booking.ports import (
    BookingTx,
    CalendarDirectory,
    Clock,
    KeyAlreadyUsed,
    NewAppointment,
    SlotClaimFailed,
    UnitOfWork,
)
from rezeption.domain.clock import require_aware
from rezeption.domain.errors import (
    AppointmentInPast,
    AppointmentNotActive,
    AppointmentNotFound,
    BookingError,
    IdempotencyConflict,
    InvalidRequest,
    NotBookable,
    SlotTaken,
    TooLateToChange,
)
from rezeption.domain.model import Appointment, AppointmentStatus, Catalog, Interval, Service, Slot, Staff
from rezeption.domain.schedule import StartCheck, block_of


@dataclass(frozen=True)
class BookingResult:
    """A booked (or replayed) appointment with what a reply needs to speak about it."""

    appointment: Appointment
    service: Service
    staff: Staff
    replayed: bool = False
    previous: Appointment | None = None


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

    async def _catalog(self, tx: BookingTx, tenant_id: int, now: datetime) -> Catalog:
        return await self.catalogs.get(tx, tenant_id, now.date())

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
        near = (
            ()
            if check.free
            else await alternatives(self.calendars.for_tenant(catalog), catalog, chosen, members, start, now)
        )
        return AvailabilityAnswer(requested=start, service=chosen, check=check, alternatives=near)

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
            return await self._book(request)
        except KeyAlreadyUsed:
            # A concurrent duplicate committed first: answer exactly what it answered.
            start, now = _aware(request.start), self.clock.now()
            async with self.uow.reading() as tx:
                catalog = await self._catalog(tx, request.tenant_id, now)
                service = find_service(catalog, request.service)
                members = candidate_staff(catalog, service, request.staff)
                earlier = await tx.appointment_by_key(request.idempotency_key or "")
            if earlier is None:
                raise
            return _replay(catalog, earlier, service, start, members, request.idempotency_key or "")

    async def _book(self, request: BookingRequest) -> BookingResult:
        start = _aware(request.start)
        now = self.clock.now()
        async with self.uow.writing() as tx:
            catalog = await self._catalog(tx, request.tenant_id, now)
            service = find_service(catalog, request.service)
            members = candidate_staff(catalog, service, request.staff)
            if request.idempotency_key:
                earlier = await tx.appointment_by_key(request.idempotency_key)
                if earlier is not None:
                    return _replay(catalog, earlier, service, start, members, request.idempotency_key)
            check = await check_claims(tx, catalog, service, members, start, now, named=_named(request.staff))
            booked = (
                await self._claim(tx, catalog, service, check, request, start, now) if check.free else None
            )
            if booked is not None:
                await tx.commit()
                return BookingResult(booked, service, catalog.staff_by_id(booked.staff_id))
        raise await self._refusal(catalog, service, members, start, now, check)

    async def _claim(
        self,
        tx: BookingTx,
        catalog: Catalog,
        service: Service,
        check: StartCheck,
        request: BookingRequest,
        start: datetime,
        now: datetime,
    ) -> Appointment | None:
        customer_id = await tx.upsert_customer(
            catalog.tenant.id, name=request.customer_name, phone_e164=request.phone_e164, at=now
        )
        block = block_of(service, start)
        provider = self.calendars.for_tenant(catalog)
        status = AppointmentStatus.PENDING if provider.external else AppointmentStatus.CONFIRMED
        for staff_id in check.free_staff_ids:
            new = NewAppointment(
                tenant_id=catalog.tenant.id,
                service_id=service.id,
                staff_id=staff_id,
                customer_id=customer_id,
                starts_at=start,
                ends_at=start + service.duration,
                block_starts_at=block.start,
                block_ends_at=block.end,
                status=status,
                source=request.source,
                provider=provider.name,
                call_id=request.call_id,
                idempotency_key=request.idempotency_key,
                spoken_name=request.customer_name,
            )
            try:
                booked = await tx.insert_appointment(new, at=now)
            except SlotClaimFailed:
                continue
            await tx.add_event(booked, "reserved", at=now, idempotency_key=request.idempotency_key)
            if status is AppointmentStatus.CONFIRMED:
                await tx.add_event(booked, "confirmed", at=now, recovery_point="done")
            return booked
        return None

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
            return SlotTaken(alternatives=list(near))
        return NotBookable(reason, alternatives=list(near))

    async def cancel(
        self,
        *,
        tenant_id: int,
        appointment_id: int,
        idempotency_key: str | None = None,
        source: str = "phone",
    ) -> BookingResult:
        """Cancel the appointment; a retry with the same key replays the first answer."""
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
            _ensure_changeable(catalog, appointment, now)
            await self.calendars.for_tenant(catalog).cancel(catalog, appointment)
            cancelled = await tx.set_status(appointment, AppointmentStatus.CANCELLED, at=now)
            await tx.add_event(
                cancelled, "cancelled", at=now, idempotency_key=idempotency_key, data={"source": source}
            )
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
                    result = _replay(catalog, earlier, service, start, members, idempotency_key)
                    return BookingResult(
                        result.appointment, service, result.staff, replayed=True, previous=old
                    )
            if not old.active:
                raise AppointmentNotActive(old.status.value)
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
            booked = await self._move(tx, catalog, service, check, request, old, now) if check.free else None
            if booked is not None:
                await tx.add_event(released, "rescheduled", at=now, data={"to": booked.id})
                await tx.commit()
                return BookingResult(booked, service, catalog.staff_by_id(booked.staff_id), previous=released)
        raise await self._refusal(catalog, service, members, start, now, check)

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
        block = block_of(service, request.start)
        for staff_id in check.free_staff_ids:
            new = NewAppointment(
                tenant_id=catalog.tenant.id,
                service_id=service.id,
                staff_id=staff_id,
                customer_id=old.customer_id,
                starts_at=request.start,
                ends_at=request.start + service.duration,
                block_starts_at=block.start,
                block_ends_at=block.end,
                status=AppointmentStatus.CONFIRMED,
                source=request.source,
                provider=self.calendars.for_tenant(catalog).name,
                call_id=request.call_id,
                idempotency_key=request.idempotency_key,
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


def _named(staff: str | int | None) -> bool:
    return staff is not None and staff != ""


def _aware(start: datetime) -> datetime:
    try:
        return require_aware(start).astimezone(UTC)
    except ValueError as error:
        raise InvalidRequest("Die Uhrzeit konnte ich nicht eindeutig zuordnen.", code="naive_time") from error


def _ensure_changeable(catalog: Catalog, appointment: Appointment, now: datetime) -> None:
    if appointment.starts_at <= now:
        raise AppointmentInPast()
    window = catalog.tenant.policy.change_min_notice
    if appointment.starts_at - now < window:
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
