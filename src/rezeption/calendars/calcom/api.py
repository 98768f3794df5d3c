"""The Cal.com API v2 endpoints, one method each: slots, reservations, bookings, event types.

Owns request building and response parsing per endpoint. Every instant goes out as UTC ``Z``
and comes back as an aware datetime; results are frozen dataclasses. Reads (and the idempotent
reservation delete) are retried by the transport; creates, cancels and reschedules are sent
exactly once. ``CalcomClient`` (``client``) adds reading back after ambiguous writes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Self
from zoneinfo import ZoneInfo

import httpx

from rezeption.calendars.calcom.breaker import CircuitBreaker
from rezeption.calendars.calcom.budget import RequestBudget
from rezeption.calendars.calcom.errors import (
    CalcomBadRequest,
)
from rezeption.calendars.calcom.models import (
    TOKEN_METADATA_KEY,
    CalcomAttendee,
    CalcomBooking,
    CalcomBookingPage,
    CalcomEventType,
    CalcomReservation,
    CalcomSlot,
    parse_instant,
    require_aware,
    to_wire,
)
from rezeption.calendars.calcom.transport import CalcomTransport

__all__ = ["CalcomApi"]

_UNSUPPORTED_RESERVED_SLOT = "property reservedSlotUid should not exist"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _data(body: Any) -> Any:
    return body.get("data") if isinstance(body, dict) else None


class CalcomApi:
    """Async Cal.com API v2 endpoints. Use ``CalcomClient``, which adds the safe writes."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
        read_attempts: int = 3,
        backoff_initial: float = 0.25,
        backoff_max: float = 4.0,
        breaker: CircuitBreaker | None = None,
        read_breaker: CircuitBreaker | None = None,
        budget: RequestBudget | None = None,
        clock: Callable[[], datetime] = _utc_now,
        readback_delay: float = 0.0,
        salon: str = "-",
    ) -> None:
        self._transport = CalcomTransport(
            salon=salon,
            base_url=base_url,
            api_key=api_key,
            http_client=http_client,
            transport=transport,
            timeout=timeout,
            read_attempts=read_attempts,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            breaker=breaker,
            read_breaker=read_breaker,
            budget=budget,
            clock=clock,
        )
        self.readback_delay = readback_delay

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release the HTTP connection pool (only if the client created it)."""
        await self._transport.aclose()

    @property
    def breaker(self) -> CircuitBreaker:
        """The circuit breaker guarding writes and their read-backs."""
        return self._transport.breaker

    @property
    def key_refused(self) -> bool:
        """Cal.com refused our API key (401/403) and no request that needs it has worked since."""
        return self._transport.key_refused

    @property
    def read_breaker(self) -> CircuitBreaker:
        """The circuit breaker guarding reads (slots, lists): its failures never block a write."""
        return self._transport.read_breaker

    @property
    def rate_limited_until(self) -> datetime | None:
        """While in the future, calls fail fast with ``CalcomRateLimited`` without being sent."""
        return self._transport.blocked_until

    # --- availability -------------------------------------------------------------------------

    async def get_slots(
        self,
        event_type_id: int,
        start: datetime,
        end: datetime,
        time_zone: str = "UTC",
        *,
        duration_minutes: int | None = None,
        booking_uid_to_reschedule: str | None = None,
        call_timeout: float | None = None,
    ) -> list[CalcomSlot]:
        """Free slots starting in [start, end], as aware datetimes in ``time_zone``, sorted by instant.

        Compare them as instants (``.astimezone(UTC)``): on a DST fold two slots share a wall time
        and differ only in ``fold``, which same-zone comparisons ignore.
        """
        zone = ZoneInfo(time_zone)
        end_utc = require_aware(end, "end").astimezone(UTC)
        if end_utc.time() == datetime.min.time():
            end_utc -= timedelta(seconds=1)  # Cal.com widens a midnight end to 23:59:59 of that day
        params: dict[str, str | int] = {
            "eventTypeId": event_type_id,
            "start": to_wire(start, "start"),
            "end": to_wire(end_utc),
            "timeZone": time_zone,
            "format": "range",
        }
        if duration_minutes is not None:
            params["duration"] = duration_minutes
        if booking_uid_to_reschedule:
            params["bookingUidToReschedule"] = booking_uid_to_reschedule
        body = await self._transport.request(
            "GET", "/v2/slots", params=params, call_timeout=call_timeout, retry=True
        )
        slots: list[CalcomSlot] = []
        for day_slots in (_data(body) or {}).values():
            for item in day_slots:
                slot_start = parse_instant(item["start"] if isinstance(item, dict) else item)
                if isinstance(item, dict) and item.get("end"):
                    slot_end = parse_instant(item["end"])
                else:
                    slot_end = slot_start + timedelta(minutes=duration_minutes or 0)
                slots.append(CalcomSlot(start=slot_start.astimezone(zone), end=slot_end.astimezone(zone)))
        # Sort by instant: within one zone Python compares wall times and ignores ``fold``.
        slots.sort(key=lambda slot: slot.start.astimezone(UTC))
        return slots

    async def reserve_slot(
        self,
        event_type_id: int,
        slot_start: datetime,
        *,
        slot_duration_minutes: int | None = None,
        reservation_minutes: int | None = None,
        call_timeout: float | None = None,
    ) -> CalcomReservation:
        """Hold a slot for a few minutes (advisory: only writers that also hold are stopped)."""
        payload: dict[str, Any] = {
            "eventTypeId": event_type_id,
            "slotStart": to_wire(slot_start, "slot_start"),
        }
        if slot_duration_minutes is not None:
            payload["slotDuration"] = slot_duration_minutes
        if reservation_minutes is not None:
            payload["reservationDuration"] = reservation_minutes
        body = await self._transport.request(
            "POST", "/v2/slots/reservations", json=payload, call_timeout=call_timeout, retry=False
        )
        return CalcomReservation.from_json(_data(body))

    async def get_reservation(
        self, uid: str, *, call_timeout: float | None = None
    ) -> CalcomReservation | None:
        """The hold with this uid, or ``None`` if it is unknown or gone."""
        body = await self._transport.request(
            "GET", f"/v2/slots/reservations/{uid}", call_timeout=call_timeout, retry=True
        )
        data = _data(body)
        return CalcomReservation.from_json(data) if data else None

    async def release_reservation(self, uid: str, *, call_timeout: float | None = None) -> None:
        """Drop a hold. Idempotent on Cal.com's side, so it is retried like a read."""
        await self._transport.request(
            "DELETE", f"/v2/slots/reservations/{uid}", call_timeout=call_timeout, retry=True
        )

    # --- bookings ----------------------------------------------------------------------------

    async def create_booking(
        self,
        event_type_id: int,
        start: datetime,
        attendee: CalcomAttendee,
        *,
        token: str | None = None,
        metadata: Mapping[str, str] | None = None,
        length_in_minutes: int | None = None,
        booking_fields_responses: Mapping[str, str] | None = None,
        reserved_slot_uid: str | None = None,
        call_timeout: float | None = None,
    ) -> CalcomBooking:
        """Create a booking, sent once. Prefer ``create_booking_safely`` unless you reconcile yourself."""
        payload: dict[str, Any] = {
            "start": to_wire(start, "start"),
            "eventTypeId": event_type_id,
            "attendee": attendee.to_json(),
        }
        meta = dict(metadata or {})
        if token is not None:
            meta[TOKEN_METADATA_KEY] = token
        if meta:
            payload["metadata"] = meta
        if length_in_minutes is not None:
            payload["lengthInMinutes"] = length_in_minutes
        if booking_fields_responses:
            payload["bookingFieldsResponses"] = dict(booking_fields_responses)
        if reserved_slot_uid:
            payload["reservedSlotUid"] = reserved_slot_uid
        try:
            body = await self._transport.request(
                "POST", "/v2/bookings", json=payload, call_timeout=call_timeout, retry=False
            )
        except CalcomBadRequest as exc:
            # Feature detection (calcom.md 10.1.5): a 400 changed nothing, so one resend is safe.
            if not reserved_slot_uid or _UNSUPPORTED_RESERVED_SLOT not in exc.message:
                raise
            del payload["reservedSlotUid"]
            body = await self._transport.request(
                "POST", "/v2/bookings", json=payload, call_timeout=call_timeout, retry=False
            )
        return CalcomBooking.from_json(_data(body))

    async def get_booking(self, uid: str, *, call_timeout: float | None = None) -> CalcomBooking:
        """One booking by uid (cancelled and rescheduled ones included)."""
        body = await self._transport.request(
            "GET", f"/v2/bookings/{uid}", call_timeout=call_timeout, retry=True
        )
        return CalcomBooking.from_json(_data(body))

    async def list_bookings(
        self,
        *,
        status: Sequence[str] = (),
        attendee_email: str | None = None,
        event_type_id: int | None = None,
        event_type_ids: Sequence[int] = (),
        after_start: datetime | None = None,
        before_end: datetime | None = None,
        sort_start: str | None = None,
        take: int = 100,
        skip: int = 0,
        call_timeout: float | None = None,
    ) -> CalcomBookingPage:
        """One page of bookings matching the filters (status: upcoming, past, cancelled, unconfirmed;
        ``event_type_ids``: any of these event types, in one request)."""
        params: dict[str, str | int] = {"take": take, "skip": skip}
        if status:
            params["status"] = ",".join(status)
        if attendee_email:
            params["attendeeEmail"] = attendee_email
        if event_type_id is not None:
            params["eventTypeId"] = event_type_id
        if event_type_ids:
            params["eventTypeIds"] = ",".join(str(t) for t in event_type_ids)
        if after_start is not None:
            params["afterStart"] = to_wire(after_start, "after_start")
        if before_end is not None:
            params["beforeEnd"] = to_wire(before_end, "before_end")
        if sort_start:
            params["sortStart"] = sort_start
        body = await self._transport.request(
            "GET", "/v2/bookings", params=params, call_timeout=call_timeout, retry=True
        )
        pagination = (body.get("pagination") or {}) if isinstance(body, dict) else {}
        bookings = tuple(CalcomBooking.from_json(item) for item in _data(body) or ())
        return CalcomBookingPage(
            bookings=bookings,
            total_items=int(pagination.get("totalItems", len(bookings))),
            has_next_page=bool(pagination.get("hasNextPage", False)),
        )

    async def cancel_booking(
        self, uid: str, *, reason: str | None = None, call_timeout: float | None = None
    ) -> CalcomBooking:
        """Cancel a booking, sent once. Prefer ``cancel_booking_safely``."""
        payload = {"cancellationReason": reason} if reason else {}
        body = await self._transport.request(
            "POST", f"/v2/bookings/{uid}/cancel", json=payload, call_timeout=call_timeout, retry=False
        )
        return CalcomBooking.from_json(_data(body))

    async def reassign_booking(
        self, uid: str, user_id: int, *, call_timeout: float | None = None
    ) -> CalcomBooking:
        """Give a round-robin booking to another team host (``/reassign/{userId}``), sent once;
        idempotent by nature (reassigning to the host it already has changes nothing)."""
        body = await self._transport.request(
            "POST", f"/v2/bookings/{uid}/reassign/{user_id}", json={}, call_timeout=call_timeout, retry=False
        )
        return CalcomBooking.from_json(_data(body))

    async def reschedule_booking(
        self,
        uid: str,
        new_start: datetime,
        *,
        reason: str | None = None,
        rescheduled_by: str | None = None,
        call_timeout: float | None = None,
    ) -> CalcomBooking:
        """Move a booking, sent once. Returns the *new* booking (new uid). Prefer the safe variant."""
        payload: dict[str, Any] = {"start": to_wire(new_start, "new_start")}
        if reason:
            payload["reschedulingReason"] = reason
        if rescheduled_by:
            payload["rescheduledBy"] = rescheduled_by
        body = await self._transport.request(
            "POST", f"/v2/bookings/{uid}/reschedule", json=payload, call_timeout=call_timeout, retry=False
        )
        return CalcomBooking.from_json(_data(body))

    # --- event types -------------------------------------------------------------------------

    async def list_event_types(
        self, *, username: str | None = None, call_timeout: float | None = None
    ) -> list[CalcomEventType]:
        """The key owner's event types, or a user's public ones."""
        params: dict[str, str | int] = {"username": username} if username else {}
        body = await self._transport.request(
            "GET", "/v2/event-types", params=params, call_timeout=call_timeout, retry=True
        )
        return [CalcomEventType.from_json(item) for item in _data(body) or ()]

    async def get_event_type(
        self, event_type_id: int, *, call_timeout: float | None = None
    ) -> CalcomEventType:
        """One event type by id."""
        body = await self._transport.request(
            "GET", f"/v2/event-types/{event_type_id}", call_timeout=call_timeout, retry=True
        )
        return CalcomEventType.from_json(_data(body))
