"""In-memory state of the Cal.com emulator and the rules of its operations.

Owns users, schedules, event types (from the config), bookings and reservations, and what each
API operation does to them: slot listing, holds with TTL and 422 overlap rules, create with the
availability/notice/past checks and the ACCEPTED-only unique ``idempotencyKey`` (one 201, one 409
under a real race), cancel, reschedule (new uid, old one cancelled with ``rescheduledToUid``),
listing with filters. Booking-level faults (slot stolen, duplicate, hold expiry, ...) are applied
here, given as the request's active faults.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from rezeption.emulators.calcom_config import EmulatorConfig, EventTypeConfig, ScheduleConfig, UserConfig
from rezeption.emulators.calcom_faults import ActiveFault
from rezeption.emulators.calcom_records import (
    Booking,
    EmulatorClock,
    Reservation,
    new_booking_uid,
    new_reservation_uid,
)
from rezeption.emulators.calcom_requests import (
    BookingFilter,
    CreateBookingRequest,
    RescheduleRequest,
    ReserveRequest,
    SlotQuery,
    minutes,
)
from rezeption.emulators.calcom_slots import Interval, SlotRules, free_slots, working_windows
from rezeption.emulators.calcom_wire import ApiError

__all__ = ["EmulatorState"]

SLOT_TAKEN = "User either already has booking at this time or is not available"
OUT_OF_BOUNDS = (
    "The event type can't be booked at the \"start\" time provided. This could be because it's too soon "
    "(violating the minimum booking notice) or too far in the future (outside the event's scheduling "
    "window). Try fetching available slots first using the GET /v2/slots endpoint and then make a booking "
    'with "start" time set to one of the available slots.'
)


def _fault(faults: Sequence[ActiveFault], mode: str) -> ActiveFault | None:
    return next((f for f in faults if f.mode == mode), None)


class EmulatorState:
    """Everything the emulated Cal.com knows."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self._load()

    def reset(self) -> None:
        """Back to the config: no bookings, no holds, the configured clock and seed."""
        self._load()

    def _load(self) -> None:
        config = self.config
        self.clock = EmulatorClock(config.now)
        self.rng = random.Random(config.seed)
        self.users: dict[int, UserConfig] = {u.id: u for u in config.users}
        self.schedules: dict[int, ScheduleConfig] = {s.id: s for s in config.schedules}
        self.event_types: dict[int, EventTypeConfig] = {e.id: e for e in config.event_types}
        self.bookings: dict[str, Booking] = {}
        self.reservations: dict[str, Reservation] = {}
        self._next_id = 1

    def now(self) -> datetime:
        """The emulated current instant."""
        return self.clock.now()

    # --- lookups -----------------------------------------------------------------------------

    def event_type(self, event_type_id: int, message: str) -> EventTypeConfig:
        """The event type or a 404 with ``message`` (``{id}`` is filled in)."""
        found = self.event_types.get(event_type_id)
        if found is None:
            raise ApiError(404, message.format(id=event_type_id))
        return found

    def host(self, event_type: EventTypeConfig) -> UserConfig:
        """The event type's host."""
        return self.users[event_type.host_id]

    def schedule(self, event_type: EventTypeConfig) -> ScheduleConfig:
        """The schedule that decides the event type's working hours."""
        return self.schedules[event_type.schedule_id or self.host(event_type).schedule_id]

    def booking(self, uid: str, message: str) -> Booking:
        """The booking or a 404 with ``message`` (``{uid}`` is filled in)."""
        found = self.bookings.get(uid)
        if found is None:
            raise ApiError(404, message.format(uid=uid))
        return found

    def booking_json(self, booking: Booking) -> dict[str, Any]:
        """A booking rendered with its event type and host."""
        event_type = self.event_types[booking.event_type_id]
        return booking.to_json(event_type, self.users[booking.host_id])

    # --- slots -------------------------------------------------------------------------------

    def _busy(self, host_id: int, ignore_uid: str | None = None) -> list[Interval]:
        return [
            Interval(b.start, b.end)
            for b in self.bookings.values()
            if b.host_id == host_id and b.is_active and b.uid != ignore_uid
        ]

    def _drop_expired_holds(self) -> None:
        now = self.now()
        for uid in [uid for uid, r in self.reservations.items() if r.until <= now]:
            del self.reservations[uid]  # expired rows are dropped lazily, like Cal.com

    def _held(self, event_type_id: int, ignore_uid: str | None = None) -> list[Interval]:
        self._drop_expired_holds()
        return [
            Interval(r.start, r.end)
            for r in self.reservations.values()
            if r.event_type_id == event_type_id and r.uid != ignore_uid
        ]

    def _rules(self, event_type: EventTypeConfig, duration: int) -> SlotRules:
        window = event_type.booking_window_days
        return SlotRules(
            duration=minutes(duration),
            interval=minutes(event_type.slot_interval or event_type.length),
            minimum_notice=minutes(event_type.minimum_booking_notice),
            before_buffer=minutes(event_type.before_buffer),
            after_buffer=minutes(event_type.after_buffer),
            booking_window=timedelta(days=window) if window is not None else None,
        )

    def slots(
        self, query: SlotQuery, event_type: EventTypeConfig, faults: Sequence[ActiveFault]
    ) -> list[datetime]:
        """Free slot starts for the query (UTC)."""
        duration = query.duration or event_type.length
        if query.duration is not None and query.duration not in {
            event_type.length,
            *event_type.length_options,
        }:
            raise ApiError(400, f"Invalid duration {query.duration} for event type {event_type.id}")
        stale = _fault(faults, "stale_slots") is not None
        windows = working_windows(
            self.schedule(event_type), query.start, query.end, dst_bug=_fault(faults, "dst_bug") is not None
        )
        return free_slots(
            windows,
            self._rules(event_type, duration),
            start=query.start,
            end=query.end,
            now=self.now(),
            busy=[] if stale else self._busy(event_type.host_id, query.reschedule_uid),
            held=[] if stale else self._held(event_type.id),
        )

    # --- reservations ------------------------------------------------------------------------

    def reserve(self, request: ReserveRequest, *, authenticated: bool) -> Reservation:
        """Hold a slot (422 if booked or already held for this event type)."""
        event_type = self.event_type(request.event_type_id, "Event Type with ID={id} not found")
        if request.reservation_duration is not None and not authenticated:
            raise ApiError(
                401,
                "reservationDuration can only be used for authenticated requests - use access token, "
                "api key or OAuth credentials",
            )
        duration = event_type.length
        if request.slot_duration is not None:
            if request.slot_duration not in event_type.length_options:
                raise ApiError(400, f"Invalid slotDuration {request.slot_duration} for this event type")
            duration = request.slot_duration
        span = Interval(request.slot_start, request.slot_start + minutes(duration))
        booked = [
            b for b in self.bookings.values()
            if b.event_type_id == event_type.id and b.is_active and span.overlaps(Interval(b.start, b.end))
        ]  # fmt: skip
        if booked:
            raise ApiError(422, "Can't reserve a slot if the event is already booked.")
        if any(span.overlaps(held) for held in self._held(event_type.id)):
            raise ApiError(
                422, "This time slot is already reserved by another user. Please choose a different time."
            )
        ttl = request.reservation_duration or self.config.reservation_ttl_minutes
        now = self.now()
        reservation = Reservation(
            uid=new_reservation_uid(self.rng),
            event_type_id=event_type.id,
            start=span.start,
            end=span.end,
            duration_minutes=duration,
            reservation_minutes=ttl,
            until=now + minutes(ttl),
            created_at=now,
        )
        self.reservations[reservation.uid] = reservation
        return reservation

    # --- bookings ----------------------------------------------------------------------------

    def _check_bounds(self, event_type: EventTypeConfig, start: datetime) -> None:
        now = self.now()
        if start < now:
            raise ApiError(400, "Attempting to book a meeting in the past.")
        too_soon = start < now + minutes(event_type.minimum_booking_notice)
        window = event_type.booking_window_days
        if too_soon or (window is not None and start > now + timedelta(days=window)):
            raise ApiError(400, OUT_OF_BOUNDS)

    def _check_free(self, event_type: EventTypeConfig, span: Interval, ignore_uid: str | None) -> None:
        windows = working_windows(self.schedule(event_type), span.start, span.end)
        inside = any(w.start <= span.start and span.end <= w.end for w in windows)
        before, after = minutes(event_type.before_buffer), minutes(event_type.after_buffer)
        padded = Interval(span.start - before, span.end + after)
        if not inside or any(padded.overlaps(b) for b in self._busy(event_type.host_id, ignore_uid)):
            raise ApiError(400, SLOT_TAKEN)

    def _check_reserved_slot(
        self, event_type: EventTypeConfig, span: Interval, reserved_uid: str | None
    ) -> None:
        if reserved_uid is None:
            return  # bookings without a hold id are not checked against holds (cal.com #23938)
        self._drop_expired_holds()
        own = self.reservations.get(reserved_uid)
        since = own.created_at if own is not None else self.now()
        for other in self.reservations.values():
            same = (
                other.event_type_id == event_type.id and other.start == span.start and other.end == span.end
            )
            if same and other.uid != reserved_uid and other.created_at <= since:
                seconds = int((other.until - self.now()).total_seconds())
                raise ApiError(
                    409,
                    "Someone else reserved this booking time slot before you. This time slot will be freed "
                    f"up in {seconds} seconds.",
                )

    def insert(
        self,
        event_type: EventTypeConfig,
        span: Interval,
        attendee: dict[str, Any],
        metadata: dict[str, str],
        *,
        status: str = "accepted",
        responses: dict[str, Any] | None = None,
        source: str = "api",
        rescheduled_from_uid: str | None = None,
    ) -> Booking:
        """Insert a booking row; an ACCEPTED one must not repeat (start, end, host): 409 shape D."""
        key = None
        if status == "accepted":
            key = f"{span.start.isoformat()}.{span.end.isoformat()}.{event_type.host_id}"
            if any(b.idempotency_key == key for b in self.bookings.values()):
                raise ApiError(409, "booking_conflict_error", shape="D")
        now = self.now()
        booking = Booking(
            id=self._next_id,
            uid=new_booking_uid(self.rng),
            event_type_id=event_type.id,
            host_id=event_type.host_id,
            start=span.start,
            end=span.end,
            status=status,
            attendee=attendee,
            metadata=metadata,
            responses=responses or {},
            created_at=now,
            idempotency_key=key,
            source=source,
            rescheduled_from_uid=rescheduled_from_uid,
        )
        self._next_id += 1
        self.bookings[booking.uid] = booking
        return booking

    def _span(self, event_type: EventTypeConfig, start: datetime, length: int | None) -> Interval:
        if length is not None:
            if not event_type.length_options:
                raise ApiError(
                    400,
                    "Can't specify 'lengthInMinutes' because event type does not have multiple possible "
                    "lengths. Please, remove the 'lengthInMinutes' field from the request.",
                )
            if length not in event_type.length_options:
                raise ApiError(
                    400, "Provided 'lengthInMinutes' is not one of the possible lengths for the event type."
                )
        return Interval(start, start + minutes(length or event_type.length))

    async def create(self, request: CreateBookingRequest, faults: Sequence[ActiveFault]) -> Booking:
        """``POST /v2/bookings``."""
        event_type = self.event_type(request.event_type_id, "Event type with id {id} not found.")
        span = self._span(event_type, request.start, request.length_in_minutes)
        self._check_bounds(event_type, span.start)
        if _fault(faults, "slot_stolen"):
            walk_in = {"name": "Walk-in", "email": "walkin@salon.example", "timeZone": "Europe/Berlin"}
            self.insert(event_type, span, walk_in, {}, source="fault:slot_stolen")
        if _fault(faults, "hold_expiry") and request.reserved_slot_uid in self.reservations:
            self.reservations[request.reserved_slot_uid].until = self.now()
        if _fault(faults, "concurrent_duplicate"):
            self.insert(event_type, span, request.attendee, dict(request.metadata), source="fault:duplicate")
            raise ApiError(409, "booking_conflict_error", shape="D")
        if _fault(faults, "refuse_booking"):
            raise ApiError(400, SLOT_TAKEN)
        self._check_reserved_slot(event_type, span, request.reserved_slot_uid)
        self._check_free(event_type, span, None)
        race = _fault(faults, "race_window")
        if race is not None:
            await asyncio.sleep(float(race.params.get("seconds", 0.2)))
        pending = event_type.requires_confirmation or _fault(faults, "pending") is not None
        booking = self.insert(
            event_type,
            span,
            request.attendee,
            dict(request.metadata),
            status="pending" if pending else "accepted",
            responses=request.responses,
        )
        if request.reserved_slot_uid:
            self.reservations.pop(request.reserved_slot_uid, None)
        return booking

    def cancel(self, uid: str, reason: str) -> Booking:
        """``POST /v2/bookings/{uid}/cancel``."""
        booking = self.booking(uid, "Booking with uid={uid} not found")
        if booking.status in ("cancelled", "rejected"):
            raise ApiError(
                400,
                f"Can't cancel booking with uid={uid} because it has been cancelled already. Please provide "
                "uid of a booking that is not cancelled.",
            )
        if booking.end <= self.now():
            raise ApiError(400, "Cannot cancel a booking that has already ended", shape="D")
        booking.status = "cancelled"
        booking.cancellation_reason = reason
        booking.cancelled_by_email = self.users[booking.host_id].email
        booking.idempotency_key = None
        booking.updated_at = self.now()
        return booking

    async def reschedule(
        self, uid: str, request: RescheduleRequest, faults: Sequence[ActiveFault]
    ) -> Booking:
        """``POST /v2/bookings/{uid}/reschedule``: a new booking; the old one becomes cancelled."""
        old = self.booking(uid, "Booking with uid={uid} was not found in the database")
        if old.status == "cancelled":
            if old.rescheduled_to_uid:
                new_uid = old.rescheduled_to_uid
                raise ApiError(
                    400,
                    f"Can't reschedule booking with uid={uid} because it has been cancelled and rescheduled "
                    f"already to booking with uid={new_uid}. You probably want to reschedule {new_uid} "
                    "instead by passing it within the request URL.",
                )
            raise ApiError(
                400,
                f"Can't reschedule booking with uid={uid} because it has been cancelled. Please provide uid "
                "of a booking that is not cancelled.",
            )
        event_type = self.event_types[old.event_type_id]
        span = Interval(request.start, request.start + (old.end - old.start))
        self._check_bounds(event_type, span.start)
        if _fault(faults, "slot_stolen"):
            walk_in = {"name": "Walk-in", "email": "walkin@salon.example", "timeZone": "Europe/Berlin"}
            self.insert(event_type, span, walk_in, {}, source="fault:slot_stolen")
        self._check_reserved_slot(event_type, span, request.reserved_slot_uid)
        self._check_free(event_type, span, old.uid)
        old.idempotency_key = None  # freed first so a reschedule onto an overlapping time is allowed
        new = self.insert(
            event_type,
            span,
            dict(old.attendee),
            dict(old.metadata),
            status="pending" if event_type.requires_confirmation else "accepted",
            responses=dict(old.responses),
            rescheduled_from_uid=old.uid,
        )
        old.status = "cancelled"
        old.cancellation_reason = request.reason
        old.rescheduled_to_uid = new.uid
        old.updated_at = self.now()
        return new

    # --- listing -----------------------------------------------------------------------------

    def _status_matches(self, booking: Booking, statuses: tuple[str, ...]) -> bool:
        if not statuses:
            return True
        now = self.now()
        live = booking.status not in ("cancelled", "rejected")
        checks = {
            "upcoming": live and booking.end >= now,
            "past": live and booking.end <= now,
            "cancelled": not live,
            "unconfirmed": booking.status == "pending" and booking.end >= now,
            "recurring": False,
        }
        return any(checks[s] for s in statuses)

    def list(self, flt: BookingFilter) -> tuple[list[Booking], int]:
        """Bookings matching the filter, sorted and paged; plus the total before paging."""
        found = [
            b
            for b in self.bookings.values()
            if self._status_matches(b, flt.statuses)
            and (
                flt.attendee_email is None
                or b.attendee.get("email", "").lower() == flt.attendee_email.lower()
            )
            and (flt.attendee_name is None or flt.attendee_name.lower() in b.attendee.get("name", "").lower())
            and (flt.booking_uid is None or b.uid == flt.booking_uid)
            and (not flt.event_type_ids or b.event_type_id in flt.event_type_ids)
            and (flt.after_start is None or b.start >= flt.after_start)
            and (flt.before_end is None or b.end <= flt.before_end)
        ]
        if flt.sort is not None:
            name, descending = flt.sort
            found.sort(key=lambda b: (getattr(b, name), b.id), reverse=descending)
        elif len(flt.statuses) == 1:
            found.sort(key=lambda b: b.start, reverse=flt.statuses[0] in ("past", "cancelled"))
        else:
            found.sort(key=lambda b: b.id)
        return found[flt.skip : flt.skip + flt.take], len(found)
