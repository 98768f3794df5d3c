"""In-memory state of the Cal.com emulator: what it knows and how it is read.

Owns users, schedules, event types (from the config), bookings and reservations; slot listing
(incl. the ``stale_slots`` and ``dst_bug`` faults), holds with TTL and the 422 overlap rules, the
row insert that keeps the ACCEPTED-only unique ``idempotencyKey`` (one 201, one 409 under a real
race), and listing with filters. Booking writes live in ``bookings``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from rezeption.emulators.calcom.config import EmulatorConfig, EventTypeConfig, ScheduleConfig, UserConfig
from rezeption.emulators.calcom.faults import ActiveFault
from rezeption.emulators.calcom.records import (
    Booking,
    EmulatorClock,
    Reservation,
    new_booking_uid,
    new_reservation_uid,
)
from rezeption.emulators.calcom.requests import (
    BookingFilter,
    ReserveRequest,
    SlotQuery,
    minutes,
)
from rezeption.emulators.calcom.slots import Interval, SlotRules, free_slots, working_windows
from rezeption.emulators.calcom.wire import ApiError

__all__ = ["EmulatorState"]


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

    def schedule(self, event_type: EventTypeConfig, host_id: int | None = None) -> ScheduleConfig:
        """The schedule that decides the event type's working hours (a team host's own schedule)."""
        if host_id is not None and event_type.host_ids:
            return self.schedules[self.users[host_id].schedule_id]
        return self.schedules[event_type.schedule_id or self.host(event_type).schedule_id]

    def hosts(self, event_type: EventTypeConfig) -> list[int]:
        """Who may host a booking of the event type: its round-robin team, or its one host."""
        return list(event_type.host_ids) or [event_type.host_id]

    def host_is_free(
        self, event_type: EventTypeConfig, host_id: int, span: Interval, ignore_uid: str | None = None
    ) -> bool:
        """Inside the host's working hours and clear of their bookings, buffers included."""
        windows = working_windows(self.schedule(event_type, host_id), span.start, span.end)
        inside = any(w.start <= span.start and span.end <= w.end for w in windows)
        before, after = minutes(event_type.before_buffer), minutes(event_type.after_buffer)
        padded = Interval(span.start - before, span.end + after)
        return inside and not any(padded.overlaps(b) for b in self.busy(host_id, ignore_uid))

    def round_robin_host(self, event_type: EventTypeConfig, span: Interval) -> int | None:
        """The team host Cal.com would pick: free then, fewest active bookings first (lowest id on a
        tie); None when nobody is free."""
        load = {
            h: sum(1 for b in self.bookings.values() if b.host_id == h and b.is_active)
            for h in self.hosts(event_type)
        }
        free = [h for h in sorted(load, key=lambda h: (load[h], h)) if self.host_is_free(event_type, h, span)]
        return free[0] if free else None

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

    def busy(self, host_id: int, ignore_uid: str | None = None, *, pending: bool = True) -> list[Interval]:
        """The host's booked spans; with `pending=False` only accepted bookings (what a create's
        availability check sees: bookings awaiting confirmation do not stop another, #13936, #29958)."""
        return [
            Interval(b.start, b.end)
            for b in self.bookings.values()
            if b.host_id == host_id
            and b.uid != ignore_uid
            and (b.status == "accepted" if not pending else b.is_active)
        ]

    def drop_expired_holds(self) -> None:
        now = self.now()
        for uid in [uid for uid, r in self.reservations.items() if r.until <= now]:
            del self.reservations[uid]  # expired rows are dropped lazily, like Cal.com

    def _held(self, event_type_id: int, ignore_uid: str | None = None) -> list[Interval]:
        self.drop_expired_holds()
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
        starts: set[datetime] = set()
        for host_id in self.hosts(event_type):  # a team's slot is free when any of its hosts is
            windows = working_windows(
                self.schedule(event_type, host_id),
                query.start,
                query.end,
                dst_bug=_fault(faults, "dst_bug") is not None,
            )
            starts.update(
                free_slots(
                    windows,
                    self._rules(event_type, duration),
                    start=query.start,
                    end=query.end,
                    now=self.now(),
                    busy=[] if stale else self.busy(host_id, query.reschedule_uid),
                    held=[] if stale else self._held(event_type.id),
                )
            )
        return sorted(starts)

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
        host_id: int | None = None,
    ) -> Booking:
        """Insert a booking row; an ACCEPTED one must not repeat (start, end, host): 409 shape D."""
        host_id = host_id if host_id is not None else event_type.host_id
        key = None
        if status == "accepted":
            key = f"{span.start.isoformat()}.{span.end.isoformat()}.{host_id}"
            if any(b.idempotency_key == key for b in self.bookings.values()):
                raise ApiError(409, "booking_conflict_error", shape="D")
        now = self.now()
        booking = Booking(
            id=self._next_id,
            uid=new_booking_uid(self.rng),
            event_type_id=event_type.id,
            host_id=host_id,
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
