"""Values the Cal.com client returns, and the wire format of instants.

Owns the small frozen dataclasses (slots, reservations, bookings, event types, attendees) built
from Cal.com's JSON, and the two conversions every call needs: an aware datetime to a UTC ``Z``
string, and a Cal.com time string back to an aware datetime. Naive datetimes are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "TOKEN_METADATA_KEY",
    "CalcomAttendee",
    "CalcomBooking",
    "CalcomBookingPage",
    "CalcomEventType",
    "CalcomReservation",
    "CalcomSlot",
    "parse_instant",
    "require_aware",
    "to_wire",
]

TOKEN_METADATA_KEY = "rezeption_token"
"""The ``metadata`` key under which our own booking token travels with a Cal.com booking."""

ACTIVE_STATUSES = frozenset({"accepted", "pending"})


def require_aware(value: datetime, name: str = "datetime") -> datetime:
    """Return ``value`` if it carries a zone; raise ``ValueError`` for a naive datetime."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got a naive datetime")
    return value


def to_wire(value: datetime, name: str = "datetime") -> str:
    """An aware datetime as Cal.com wants it: UTC with milliseconds and ``Z``."""
    utc = require_aware(value, name).astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_instant(text: str) -> datetime:
    """A Cal.com time string as an aware datetime; an offset-less value is UTC (as Cal.com reads it)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def _optional_instant(value: Any) -> datetime | None:
    return parse_instant(value) if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class CalcomSlot:
    """One bookable start with its end, in the zone the slots were asked for."""

    start: datetime
    end: datetime

    @property
    def duration(self) -> timedelta:
        """Length of the slot."""
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class CalcomReservation:
    """A temporary hold on a slot (``POST /v2/slots/reservations``)."""

    uid: str
    event_type_id: int
    slot_start: datetime
    slot_end: datetime
    until: datetime | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CalcomReservation:
        """Build from the ``data`` object of a reservation answer."""
        return cls(
            uid=str(data["reservationUid"]),
            event_type_id=int(data["eventTypeId"]),
            slot_start=parse_instant(data["slotStart"]),
            slot_end=parse_instant(data["slotEnd"]),
            until=_optional_instant(data.get("reservationUntil")),
        )


@dataclass(frozen=True, slots=True)
class CalcomAttendee:
    """A person on a booking. Personal fields stay out of ``repr`` so they never reach a log."""

    name: str = field(repr=False)
    time_zone: str
    email: str | None = field(default=None, repr=False)
    phone_number: str | None = field(default=None, repr=False)
    language: str | None = None

    def to_json(self) -> dict[str, str]:
        """The ``attendee`` object of a create request."""
        body = {"name": self.name, "timeZone": self.time_zone}
        if self.email:
            body["email"] = self.email
        if self.phone_number:
            body["phoneNumber"] = self.phone_number
        if self.language:
            body["language"] = self.language
        return body

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CalcomAttendee:
        """Build from one entry of a booking's ``attendees``."""
        return cls(
            name=str(data.get("name", "")),
            time_zone=str(data.get("timeZone", "UTC")),
            email=data.get("email") or None,
            phone_number=data.get("phoneNumber") or None,
            language=data.get("language") or None,
        )


@dataclass(frozen=True, slots=True)
class CalcomBooking:
    """A Cal.com booking as the 2024-08-13 bookings API returns it."""

    id: int
    uid: str
    status: str
    start: datetime
    end: datetime
    event_type_id: int | None
    title: str
    metadata: Mapping[str, str]
    attendees: tuple[CalcomAttendee, ...]
    host_ids: tuple[int, ...] = ()
    cancellation_reason: str | None = None
    rescheduled_to_uid: str | None = None
    rescheduled_from_uid: str | None = None
    created_at: datetime | None = None

    @property
    def token(self) -> str | None:
        """Our own booking token carried in ``metadata``, if any."""
        return self.metadata.get(TOKEN_METADATA_KEY)

    @property
    def is_active(self) -> bool:
        """True for accepted and pending bookings (they hold the time)."""
        return self.status in ACTIVE_STATUSES

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CalcomBooking:
        """Build from a booking object."""
        metadata = data.get("metadata") or {}
        return cls(
            id=int(data.get("id", 0)),
            uid=str(data["uid"]),
            status=str(data.get("status", "")).lower(),
            start=parse_instant(data["start"]),
            end=parse_instant(data["end"]),
            event_type_id=int(data["eventTypeId"]) if data.get("eventTypeId") is not None else None,
            title=str(data.get("title", "")),
            metadata={str(k): str(v) for k, v in metadata.items()},
            attendees=tuple(CalcomAttendee.from_json(a) for a in data.get("attendees") or ()),
            host_ids=tuple(int(h["id"]) for h in data.get("hosts") or () if "id" in h),
            cancellation_reason=data.get("cancellationReason") or None,
            rescheduled_to_uid=data.get("rescheduledToUid") or None,
            rescheduled_from_uid=data.get("rescheduledFromUid") or None,
            created_at=_optional_instant(data.get("createdAt")),
        )


@dataclass(frozen=True, slots=True)
class CalcomBookingPage:
    """One page of ``GET /v2/bookings``."""

    bookings: tuple[CalcomBooking, ...]
    total_items: int
    has_next_page: bool


@dataclass(frozen=True, slots=True)
class CalcomEventType:
    """An event type (a bookable service) as the 2024-06-14 event-types API returns it."""

    id: int
    slug: str
    title: str
    length_minutes: int
    length_options: tuple[int, ...]
    slot_interval: int | None
    minimum_booking_notice: int
    before_buffer: int
    after_buffer: int
    hidden: bool
    owner_id: int | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CalcomEventType:
        """Build from an event-type object."""
        return cls(
            id=int(data["id"]),
            slug=str(data.get("slug", "")),
            title=str(data.get("title", "")),
            length_minutes=int(data["lengthInMinutes"]),
            length_options=tuple(int(x) for x in data.get("lengthInMinutesOptions") or ()),
            slot_interval=int(data["slotInterval"]) if data.get("slotInterval") else None,
            minimum_booking_notice=int(data.get("minimumBookingNotice") or 0),
            before_buffer=int(data.get("beforeEventBuffer") or 0),
            after_buffer=int(data.get("afterEventBuffer") or 0),
            hidden=bool(data.get("hidden", False)),
            owner_id=int(data["ownerId"]) if data.get("ownerId") is not None else None,
        )
