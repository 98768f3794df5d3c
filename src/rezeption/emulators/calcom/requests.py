"""Request parsing of the Cal.com emulator: query strings and JSON bodies → typed requests.

Owns the validation rules and the exact 400 messages of calcom.md 2, 3 and 4 (unknown
properties, ISO dates, attendee contact, metadata limits), so the state never sees bad input.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rezeption.emulators.calcom.wire import ApiError, parse_iso

__all__ = [
    "BookingFilter",
    "CreateBookingRequest",
    "RescheduleRequest",
    "ReserveRequest",
    "SlotQuery",
    "parse_booking_filter",
    "parse_create_booking",
    "parse_reschedule",
    "parse_reserve",
    "parse_slot_query",
]

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PHONE = re.compile(r"^\+[1-9]\d{7,14}$")


def _bad(messages: list[str]) -> ApiError:
    return ApiError(400, ", ".join(messages) + " ")


def _unknown(keys: Mapping[str, Any] | list[str], allowed: set[str]) -> list[str]:
    return [f"{key} property is wrong,property {key} should not exist" for key in keys if key not in allowed]


def _iso(value: Any, name: str, errors: list[str]) -> datetime | None:
    if not isinstance(value, str):
        errors.append(f"{name} property is wrong,{name} must be a valid ISO 8601 date string")
        return None
    try:
        return parse_iso(value)
    except ValueError:
        errors.append(f"{name} property is wrong,{name} must be a valid ISO 8601 date string")
        return None


def _zone(value: str, name: str, errors: list[str]) -> ZoneInfo | None:
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        errors.append(f"{name} property is wrong,{name} must be a valid IANA time zone")
        return None


def _int(value: Any, name: str, errors: list[str]) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        errors.append(f"{name} property is wrong,{name} must be an integer number")
        return None


@dataclass(frozen=True)
class SlotQuery:
    """``GET /v2/slots`` parameters after UTC normalisation."""

    start: datetime
    end: datetime
    event_type_id: int | None
    event_type_slug: str | None
    username: str | None
    zone: ZoneInfo | None
    duration: int | None
    range_format: bool
    reschedule_uid: str | None


_SLOT_PARAMS = {
    "start", "end", "eventTypeId", "eventTypeSlug", "username", "teamSlug", "organizationSlug",
    "usernames", "timeZone", "duration", "format", "bookingUidToReschedule",
}  # fmt: skip


def parse_slot_query(query: Mapping[str, str]) -> SlotQuery:
    """Validate ``GET /v2/slots``; date-only bounds and a UTC-midnight end are widened like Cal.com."""
    errors = _unknown(list(query), _SLOT_PARAMS)
    start = end = None
    for name in ("start", "end"):
        if name not in query:
            errors.append(f"{name} property is wrong,{name} must be a valid ISO 8601 date string")
    if "start" in query:
        start = _iso(query["start"], "start", errors)
    if "end" in query:
        end = _iso(query["end"], "end", errors)
        if end is not None and (_DATE_ONLY.match(query["end"]) or end.time() == time(0, 0)):
            end = end.replace(hour=23, minute=59, second=59, microsecond=999000)
    zone = _zone(query["timeZone"], "timeZone", errors) if "timeZone" in query else None
    duration = _int(query["duration"], "duration", errors) if "duration" in query else None
    event_type_id = _int(query["eventTypeId"], "eventTypeId", errors) if "eventTypeId" in query else None
    fmt = query.get("format", "time")
    if fmt not in ("time", "range"):
        errors.append("format property is wrong,format must be one of the following values: time, range")
    if event_type_id is None and not ("eventTypeSlug" in query and "username" in query) and not errors:
        errors.append("usernames property is wrong,usernames must contain at least 2 elements")
    if errors:
        raise _bad(errors)
    assert start is not None and end is not None
    if end < start:
        raise ApiError(400, "Invalid time range given - check the 'start' and 'end' query parameters.")
    return SlotQuery(
        start=start,
        end=end,
        event_type_id=event_type_id,
        event_type_slug=query.get("eventTypeSlug"),
        username=query.get("username"),
        zone=zone,
        duration=duration,
        range_format=fmt == "range",
        reschedule_uid=query.get("bookingUidToReschedule"),
    )


@dataclass(frozen=True)
class ReserveRequest:
    """``POST /v2/slots/reservations`` body."""

    event_type_id: int
    slot_start: datetime
    slot_duration: int | None
    reservation_duration: int | None


def parse_reserve(body: Any) -> ReserveRequest:
    """Validate a reservation body."""
    if not isinstance(body, dict):
        raise _bad(["eventTypeId property is wrong,eventTypeId must be an integer number"])
    errors = _unknown(body, {"eventTypeId", "slotStart", "slotDuration", "reservationDuration"})
    event_type_id = _int(body.get("eventTypeId"), "eventTypeId", errors)
    slot_start = _iso(body.get("slotStart"), "slotStart", errors)
    slot_duration = _int(body["slotDuration"], "slotDuration", errors) if "slotDuration" in body else None
    reservation = (
        _int(body["reservationDuration"], "reservationDuration", errors)
        if "reservationDuration" in body
        else None
    )
    if errors:
        raise _bad(errors)
    assert event_type_id is not None and slot_start is not None
    return ReserveRequest(event_type_id, slot_start, slot_duration, reservation)


@dataclass(frozen=True)
class CreateBookingRequest:
    """``POST /v2/bookings`` body."""

    start: datetime
    event_type_id: int
    attendee: dict[str, Any]
    metadata: dict[str, str]
    responses: dict[str, Any]
    length_in_minutes: int | None
    reserved_slot_uid: str | None


_CREATE_KEYS = {
    "start", "eventTypeId", "eventTypeSlug", "username", "teamSlug", "organizationSlug", "attendee",
    "bookingFieldsResponses", "metadata", "lengthInMinutes", "location", "guests", "recurrenceCount",
    "routing", "emailVerificationCode", "instant", "reservedSlotUid",
}  # fmt: skip


def _attendee(value: Any, errors: list[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        errors.append("attendee property is wrong,attendee must be an object")
        return {}
    if not isinstance(value.get("name"), str) or not value["name"].strip():
        errors.append("attendee property is wrong,name must be a string")
    if not isinstance(value.get("timeZone"), str):
        errors.append("attendee property is wrong,timeZone must be a valid IANA time zone")
    else:
        _zone(value["timeZone"], "attendee.timeZone", errors)
    email, phone = value.get("email"), value.get("phoneNumber")
    if not email and not phone:
        errors.append("Attendee must have at least one contact method (email or phone number)")
    if email is not None and (not isinstance(email, str) or "@" not in email):
        errors.append("attendee property is wrong,email must be an email")
    if phone is not None and (not isinstance(phone, str) or not _PHONE.match(phone)):
        errors.append("attendee property is wrong,phoneNumber must be a valid phone number")
    return dict(value)


def _metadata(value: Any, errors: list[str]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.append("metadata property is wrong,metadata must be an object")
        return {}
    if len(value) > 50 or any(len(str(k)) > 40 for k in value):
        errors.append(
            "metadata property is wrong,Metadata can have at most 50 keys, each at most 40 characters"
        )
    if any(not isinstance(v, str | int | float | bool) or len(str(v)) > 500 for v in value.values()):
        errors.append("metadata property is wrong,Metadata values must be at most 500 characters")
    return {str(k): str(v) for k, v in value.items()}


def parse_create_booking(body: Any, *, supports_reserved_slot_uid: bool) -> CreateBookingRequest:
    """Validate a create body (2024-08-13)."""
    if not isinstance(body, dict):
        raise _bad(["start property is wrong,start must be a valid ISO 8601 date string"])
    allowed = _CREATE_KEYS if supports_reserved_slot_uid else _CREATE_KEYS - {"reservedSlotUid"}
    errors = _unknown(body, allowed)
    start = _iso(body.get("start"), "start", errors)
    if "eventTypeId" not in body:
        if not errors:
            raise ApiError(
                400,
                "Either eventTypeId or eventTypeSlug + username or eventTypeSlug + teamSlug must be provided",
            )
        event_type_id = None
    else:
        event_type_id = _int(body["eventTypeId"], "eventTypeId", errors)
    attendee = _attendee(body.get("attendee"), errors)
    metadata = _metadata(body.get("metadata"), errors)
    length = _int(body["lengthInMinutes"], "lengthInMinutes", errors) if "lengthInMinutes" in body else None
    responses = body.get("bookingFieldsResponses") or {}
    if not isinstance(responses, dict):
        errors.append("bookingFieldsResponses property is wrong,bookingFieldsResponses must be an object")
        responses = {}
    if errors:
        raise _bad(errors)
    assert start is not None and event_type_id is not None
    reserved = body.get("reservedSlotUid")
    return CreateBookingRequest(
        start=start,
        event_type_id=event_type_id,
        attendee=attendee,
        metadata=metadata,
        responses={k: ("" if v is None else v) for k, v in responses.items()},
        length_in_minutes=length,
        reserved_slot_uid=str(reserved) if reserved else None,
    )


@dataclass(frozen=True)
class RescheduleRequest:
    """``POST /v2/bookings/{uid}/reschedule`` body."""

    start: datetime
    reason: str
    rescheduled_by: str | None
    reserved_slot_uid: str | None


def parse_reschedule(body: Any) -> RescheduleRequest:
    """Validate a reschedule body."""
    if not isinstance(body, dict):
        raise _bad(["start property is wrong,start must be a valid ISO 8601 date string"])
    errors = _unknown(
        body,
        {
            "start",
            "reschedulingReason",
            "rescheduledBy",
            "reservedSlotUid",
            "seatUid",
            "emailVerificationCode",
        },
    )
    start = _iso(body.get("start"), "start", errors)
    if errors:
        raise _bad(errors)
    assert start is not None
    return RescheduleRequest(
        start=start,
        reason=str(body.get("reschedulingReason") or ""),
        rescheduled_by=body.get("rescheduledBy"),
        reserved_slot_uid=body.get("reservedSlotUid"),
    )


@dataclass(frozen=True)
class BookingFilter:
    """``GET /v2/bookings`` filters."""

    statuses: tuple[str, ...] = ()
    attendee_email: str | None = None
    attendee_name: str | None = None
    booking_uid: str | None = None
    event_type_ids: tuple[int, ...] = ()
    after_start: datetime | None = None
    before_end: datetime | None = None
    sort: tuple[str, bool] | None = None  # (field, descending)
    take: int = 100
    skip: int = 0
    extra: dict[str, str] = field(default_factory=dict)


_STATUSES = {"upcoming", "recurring", "past", "cancelled", "unconfirmed"}
_SORTS = {"sortStart": "start", "sortEnd": "end", "sortCreated": "created_at"}
_FILTER_KEYS = {
    "status", "attendeeEmail", "attendeeName", "bookingUid", "eventTypeId", "eventTypeIds", "afterStart",
    "beforeEnd", "take", "skip", "sortStart", "sortEnd", "sortCreated", "teamId", "teamsIds",
}  # fmt: skip


def parse_booking_filter(query: Mapping[str, str]) -> BookingFilter:
    """Validate ``GET /v2/bookings`` (400 ``Bad Request Exception`` like the global pipe)."""
    errors = _unknown(list(query), _FILTER_KEYS)
    statuses = tuple(s for s in query.get("status", "").split(",") if s)
    errors += [f"status property is wrong,status {s} is not valid" for s in statuses if s not in _STATUSES]
    ids: list[int] = []
    for name in ("eventTypeId", "eventTypeIds"):
        for part in query.get(name, "").split(","):
            if part:
                value = _int(part, name, errors)
                if value is not None:
                    ids.append(value)
    after = _iso(query["afterStart"], "afterStart", errors) if "afterStart" in query else None
    before = _iso(query["beforeEnd"], "beforeEnd", errors) if "beforeEnd" in query else None
    take = _int(query.get("take", "100"), "take", errors) or 0
    skip = _int(query.get("skip", "0"), "skip", errors) or 0
    if not 1 <= take <= 250:
        errors.append("take property is wrong,take must not be greater than 250 or less than 1")
    sort = None
    for name, field_name in _SORTS.items():
        if name in query:
            if query[name] not in ("asc", "desc"):
                errors.append(
                    f"{name} property is wrong,{name} must be one of the following values: asc, desc"
                )
            sort = (field_name, query[name] == "desc")
    if errors:
        raise ApiError(400, "Bad Request Exception " + ", ".join(errors))
    return BookingFilter(
        statuses=statuses,
        attendee_email=query.get("attendeeEmail"),
        attendee_name=query.get("attendeeName"),
        booking_uid=query.get("bookingUid"),
        event_type_ids=tuple(ids),
        after_start=after,
        before_end=before,
        sort=sort,
        take=take,
        skip=max(0, skip),
    )


def minutes(value: int) -> timedelta:
    """Minutes as a timedelta."""
    return timedelta(minutes=value)
