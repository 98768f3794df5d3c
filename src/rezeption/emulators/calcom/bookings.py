"""Booking writes of the Cal.com emulator: create, cancel, reschedule, with Cal.com's rules.

Owns the checks a booking must pass (not in the past, minimum notice and booking window, inside
working hours, host free incl. buffers, the ``reservedSlotUid`` "someone else reserved first" rule)
and the booking-level faults (slot stolen, concurrent duplicate, race window, refused booking,
hold expiry, pending). Rows are inserted through ``EmulatorState.insert``, which keeps the
ACCEPTED-only unique idempotency key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta

from rezeption.emulators.calcom.config import EventTypeConfig
from rezeption.emulators.calcom.faults import ActiveFault
from rezeption.emulators.calcom.records import Booking
from rezeption.emulators.calcom.requests import CreateBookingRequest, RescheduleRequest, minutes
from rezeption.emulators.calcom.slots import Interval, working_windows
from rezeption.emulators.calcom.state import EmulatorState
from rezeption.emulators.calcom.wire import ApiError

__all__ = [
    "OUT_OF_BOUNDS",
    "SLOT_TAKEN",
    "TEAM_SLOT_TAKEN",
    "cancel_booking",
    "create_booking",
    "reassign_booking",
    "reschedule_booking",
]

SLOT_TAKEN = "User either already has booking at this time or is not available"
TEAM_SLOT_TAKEN = "One of the hosts either already has booking at this time or is not available"
OUT_OF_BOUNDS = (
    "The event type can't be booked at the \"start\" time provided. This could be because it's too soon "
    "(violating the minimum booking notice) or too far in the future (outside the event's scheduling "
    "window). Try fetching available slots first using the GET /v2/slots endpoint and then make a booking "
    'with "start" time set to one of the available slots.'
)


def _fault(faults: Sequence[ActiveFault], mode: str) -> ActiveFault | None:
    return next((f for f in faults if f.mode == mode), None)


def _check_bounds(state: EmulatorState, event_type: EventTypeConfig, start: datetime) -> None:
    now = state.now()
    if start < now:
        raise ApiError(400, "Attempting to book a meeting in the past.")
    too_soon = start < now + minutes(event_type.minimum_booking_notice)
    window = event_type.booking_window_days
    if too_soon or (window is not None and start > now + timedelta(days=window)):
        raise ApiError(400, OUT_OF_BOUNDS)


def _check_free(
    state: EmulatorState,
    event_type: EventTypeConfig,
    span: Interval,
    ignore_uid: str | None,
    *,
    pending_blocks: bool = True,
) -> None:
    windows = working_windows(state.schedule(event_type), span.start, span.end)
    inside = any(w.start <= span.start and span.end <= w.end for w in windows)
    before, after = minutes(event_type.before_buffer), minutes(event_type.after_buffer)
    padded = Interval(span.start - before, span.end + after)
    busy = state.busy(event_type.host_id, ignore_uid, pending=pending_blocks)
    if not inside or any(padded.overlaps(b) for b in busy):
        raise ApiError(400, SLOT_TAKEN)


def _check_reserved_slot(
    state: EmulatorState, event_type: EventTypeConfig, span: Interval, reserved_uid: str | None
) -> None:
    if reserved_uid is None:
        return  # bookings without a hold id are not checked against holds (cal.com #23938)
    state.drop_expired_holds()
    own = state.reservations.get(reserved_uid)
    since = own.created_at if own is not None else state.now()
    for other in state.reservations.values():
        same = other.event_type_id == event_type.id and other.start == span.start and other.end == span.end
        if same and other.uid != reserved_uid and other.created_at <= since:
            seconds = int((other.until - state.now()).total_seconds())
            raise ApiError(
                409,
                "Someone else reserved this booking time slot before you. This time slot will be freed "
                f"up in {seconds} seconds.",
            )


def _span(state: EmulatorState, event_type: EventTypeConfig, start: datetime, length: int | None) -> Interval:
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


async def create_booking(
    state: EmulatorState, request: CreateBookingRequest, faults: Sequence[ActiveFault]
) -> Booking:
    """``POST /v2/bookings``."""
    event_type = state.event_type(request.event_type_id, "Event type with id {id} not found.")
    span = _span(state, event_type, request.start, request.length_in_minutes)
    _check_bounds(state, event_type, span.start)
    if _fault(faults, "slot_stolen"):
        walk_in = {"name": "Walk-in", "email": "walkin@salon.example", "timeZone": "Europe/Berlin"}
        state.insert(event_type, span, walk_in, {}, source="fault:slot_stolen")
    if _fault(faults, "hold_expiry") and request.reserved_slot_uid in state.reservations:
        state.reservations[request.reserved_slot_uid].until = state.now()
    if _fault(faults, "concurrent_duplicate"):
        state.insert(event_type, span, request.attendee, dict(request.metadata), source="fault:duplicate")
        raise ApiError(409, "booking_conflict_error", shape="D")
    if _fault(faults, "refuse_booking"):
        raise ApiError(400, SLOT_TAKEN)
    _check_reserved_slot(state, event_type, span, request.reserved_slot_uid)
    host_id = None
    if event_type.host_ids:  # round robin: Cal.com picks the host, not the caller
        host_id = state.round_robin_host(event_type, span)
        if host_id is None:
            raise ApiError(400, TEAM_SLOT_TAKEN)
    else:
        # A booking awaiting the host's confirmation does not stop another one (#13936, #29958):
        # two callers, or one create sent twice, can both get one for the same time.
        _check_free(state, event_type, span, None, pending_blocks=False)
    race = _fault(faults, "race_window")
    if race is not None:
        await asyncio.sleep(float(race.params.get("seconds", 0.2)))
    pending = event_type.requires_confirmation or _fault(faults, "pending") is not None
    booking = state.insert(
        event_type,
        span,
        request.attendee,
        dict(request.metadata),
        status="pending" if pending else "accepted",
        responses=request.responses,
        host_id=host_id,
    )
    if request.reserved_slot_uid:
        state.reservations.pop(request.reserved_slot_uid, None)
    return booking


def reassign_booking(state: EmulatorState, uid: str, user_id: int) -> Booking:
    """``POST /v2/bookings/{uid}/reassign/{userId}``: a round-robin booking to another team host."""
    booking = state.booking(uid, "Booking with uid={uid} not found")
    event_type = state.event_types[booking.event_type_id]
    if not event_type.host_ids:
        raise ApiError(400, "Only round robin bookings can be reassigned")
    if user_id not in event_type.host_ids:
        raise ApiError(400, f"User with id={user_id} is not a host of this event type")
    if not booking.is_active:
        raise ApiError(400, f"Booking with uid={uid} is not active")
    span = Interval(booking.start, booking.end)
    if user_id != booking.host_id and not state.host_is_free(event_type, user_id, span, uid):
        raise ApiError(400, f"User with id={user_id} is not available at the booking time")
    booking.host_id = user_id
    if booking.idempotency_key is not None:
        booking.idempotency_key = f"{span.start.isoformat()}.{span.end.isoformat()}.{user_id}"
    return booking


def cancel_booking(state: EmulatorState, uid: str, reason: str) -> Booking:
    """``POST /v2/bookings/{uid}/cancel``."""
    booking = state.booking(uid, "Booking with uid={uid} not found")
    if booking.status in ("cancelled", "rejected"):
        raise ApiError(
            400,
            f"Can't cancel booking with uid={uid} because it has been cancelled already. Please provide "
            "uid of a booking that is not cancelled.",
        )
    if booking.end <= state.now():
        raise ApiError(400, "Cannot cancel a booking that has already ended", shape="D")
    booking.status = "cancelled"
    booking.cancellation_reason = reason
    booking.cancelled_by_email = state.users[booking.host_id].email
    booking.idempotency_key = None
    booking.updated_at = state.now()
    return booking


async def reschedule_booking(
    state: EmulatorState, uid: str, request: RescheduleRequest, faults: Sequence[ActiveFault]
) -> Booking:
    """``POST /v2/bookings/{uid}/reschedule``: a new booking; the old one becomes cancelled."""
    old = state.booking(uid, "Booking with uid={uid} was not found in the database")
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
    event_type = state.event_types[old.event_type_id]
    span = Interval(request.start, request.start + (old.end - old.start))
    _check_bounds(state, event_type, span.start)
    if _fault(faults, "slot_stolen"):
        walk_in = {"name": "Walk-in", "email": "walkin@salon.example", "timeZone": "Europe/Berlin"}
        state.insert(event_type, span, walk_in, {}, source="fault:slot_stolen")
    _check_reserved_slot(state, event_type, span, request.reserved_slot_uid)
    if event_type.host_ids:  # a round-robin booking moves with its host
        if not state.host_is_free(event_type, old.host_id, span, old.uid):
            raise ApiError(400, TEAM_SLOT_TAKEN)
    else:
        _check_free(state, event_type, span, old.uid)
    old.idempotency_key = None  # freed first so a reschedule onto an overlapping time is allowed
    new = state.insert(
        event_type,
        span,
        dict(old.attendee),
        dict(old.metadata),
        status="pending" if event_type.requires_confirmation else "accepted",
        responses=dict(old.responses),
        rescheduled_from_uid=old.uid,
        host_id=old.host_id,
    )
    old.status = "cancelled"
    old.cancellation_reason = request.reason
    old.rescheduled_to_uid = new.uid
    old.updated_at = state.now()
    return new
