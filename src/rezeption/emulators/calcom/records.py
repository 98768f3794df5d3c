"""Records the Cal.com emulator keeps in memory, and their JSON as the v2 API renders it.

Owns ``Booking`` and ``Reservation`` (mutable: cancel and reschedule change them in place), the
emulator's clock (frozen or real, movable by tests), and id/uid generation from the seeded RNG.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rezeption.emulators.calcom.config import EventTypeConfig, UserConfig
from rezeption.emulators.calcom.wire import iso_ms

__all__ = ["ACTIVE", "Booking", "EmulatorClock", "Reservation", "new_booking_uid", "new_reservation_uid"]

ACTIVE = frozenset({"accepted", "pending"})
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def new_booking_uid(rng: random.Random) -> str:
    """A 22-character base58 uid like Cal.com's short-uuid."""
    return "".join(rng.choice(_BASE58) for _ in range(22))


def new_reservation_uid(rng: random.Random) -> str:
    """A UUID v4 string drawn from the seeded RNG."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class EmulatorClock:
    """The emulator's "now": frozen at a given instant (tests) or the real UTC time, plus an offset."""

    def __init__(self, frozen: datetime | None = None) -> None:
        self._frozen = frozen.astimezone(UTC) if frozen is not None else None
        self._offset = timedelta(0)

    def now(self) -> datetime:
        """The current emulated instant (aware, UTC)."""
        base = self._frozen if self._frozen is not None else datetime.now(UTC)
        return base + self._offset

    def running(self) -> datetime:
        """Real time plus the offset: what rate limits count in, even while "now" is frozen (a
        test that freezes the calendar's day still meets Cal.com's per-minute limit)."""
        return datetime.now(UTC) + self._offset

    def set(self, value: datetime) -> None:
        """Freeze the clock at ``value``."""
        self._frozen = value.astimezone(UTC)
        self._offset = timedelta(0)

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self._offset += timedelta(seconds=seconds)


@dataclass
class Reservation:
    """A slot hold."""

    uid: str
    event_type_id: int
    start: datetime
    end: datetime
    duration_minutes: int
    reservation_minutes: int
    until: datetime
    created_at: datetime

    def to_json(self, *, with_duration: bool = True) -> dict[str, Any]:
        """The reservation object of the 2024-09-04 slots API."""
        body: dict[str, Any] = {
            "eventTypeId": self.event_type_id,
            "slotStart": iso_ms(self.start),
            "slotEnd": iso_ms(self.end),
            "slotDuration": self.duration_minutes,
            "reservationUid": self.uid,
            "reservationUntil": iso_ms(self.until),
        }
        if with_duration:
            body["reservationDuration"] = self.reservation_minutes
        return body


@dataclass
class Booking:
    """A booking row."""

    id: int
    uid: str
    event_type_id: int
    host_id: int
    start: datetime
    end: datetime
    status: str
    attendee: dict[str, Any]
    metadata: dict[str, str]
    responses: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    cancellation_reason: str = ""
    cancelled_by_email: str = ""
    rescheduled_to_uid: str | None = None
    rescheduled_from_uid: str | None = None
    idempotency_key: str | None = None
    source: str = "api"

    @property
    def is_active(self) -> bool:
        """Accepted and pending bookings hold their time."""
        return self.status in ACTIVE

    def to_json(self, event_type: EventTypeConfig, host: UserConfig) -> dict[str, Any]:
        """The booking object of the 2024-08-13 bookings API."""
        attendee = {
            "name": self.attendee.get("name", ""),
            "email": self.attendee.get("email", ""),
            "displayEmail": self.attendee.get("email", ""),
            "timeZone": self.attendee.get("timeZone", "UTC"),
            "language": self.attendee.get("language", "en"),
            "absent": False,
        }
        if self.attendee.get("phoneNumber"):
            attendee["phoneNumber"] = self.attendee["phoneNumber"]
        body: dict[str, Any] = {
            "id": self.id,
            "uid": self.uid,
            "title": f"{event_type.title} between {host.name} and {attendee['name']}",
            "description": "",
            "status": self.status,
            "start": iso_ms(self.start),
            "end": iso_ms(self.end),
            "duration": int((self.end - self.start).total_seconds() // 60),
            "eventTypeId": self.event_type_id,
            "eventType": {"id": event_type.id, "slug": event_type.slug},
            "hosts": [
                {
                    "id": host.id,
                    "name": host.name,
                    "email": host.email,
                    "username": host.username,
                    "timeZone": host.time_zone,
                }
            ],
            "attendees": [attendee],
            "guests": [],
            "location": "",
            "meetingUrl": "",
            "absentHost": False,
            "cancellationReason": self.cancellation_reason,
            "cancelledByEmail": self.cancelled_by_email,
            "bookingFieldsResponses": {
                "name": attendee["name"],
                "email": attendee["email"],
                **self.responses,
            },
            "metadata": dict(self.metadata),
            "icsUid": f"{self.uid}@Cal.com",
            "createdAt": iso_ms(self.created_at) if self.created_at else None,
            "updatedAt": iso_ms(self.updated_at) if self.updated_at else None,
        }
        if self.rescheduled_to_uid:
            body["rescheduledToUid"] = self.rescheduled_to_uid
        if self.rescheduled_from_uid:
            body["rescheduledFromUid"] = self.rescheduled_from_uid
        return body
