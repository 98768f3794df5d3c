"""Cal.com API v2 client: the endpoints plus safe writes that never repeat a side effect.

Owns reading back after ambiguous writes. Each method sends its create, cancel or reschedule once
(a caller may send it again only as its docstring allows); our own token rides in the booking's
``metadata`` under ``TOKEN_METADATA_KEY``. After an ambiguous
outcome (timeout, reset, 5xx: ``CalcomUnavailable.outcome_unknown``) the ``*_safely`` methods read
back what happened instead of sending the write again:

- ``create_booking_safely``: find the booking by token → return it, or ``CalcomNothingBooked``
  (optionally a 5xx answer is left to the caller, who may send the create once more: Cal.com
  refuses a second accepted booking of one host and time, and a busy answer is read back);
- ``cancel_booking_safely``: re-read the booking → cancelled means done (also after "already
  cancelled"), else ``CalcomNotApplied`` (optionally a 5xx is first answered by the same cancel
  once more: a cancel has no effect the second time);
- ``reschedule_booking_safely``: follow ``rescheduledToUid`` from the old uid.

If the read-back fails too, ``CalcomOutcomeUnknown`` tells the caller to reconcile later. A write
still executing server-side after our timeout can commit *after* the read-back; the token in its
``metadata`` lets a later reconcile find it (``readback_delay`` narrows that window).
Errors: see ``rezeption.calendars.calcom.errors``; endpoints: ``rezeption.calendars.calcom.api``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from rezeption.calendars.calcom.api import CalcomApi
from rezeption.calendars.calcom.errors import (
    CalcomAlreadyCancelled,
    CalcomConflict,
    CalcomError,
    CalcomNotApplied,
    CalcomNothingBooked,
    CalcomOutcomeUnknown,
    CalcomServerError,
    CalcomSlotUnavailable,
    CalcomTimeout,
    CalcomUnavailable,
)
from rezeption.calendars.calcom.models import CalcomAttendee, CalcomBooking, require_aware

__all__ = ["CalcomClient"]


class CalcomClient(CalcomApi):
    """Async Cal.com API v2 client. Use as ``async with CalcomClient(base_url, api_key) as client``.

    Constructor (see ``CalcomApi``): ``base_url``, ``api_key``, optional ``http_client`` or
    ``transport``, ``timeout`` (seconds, per call; methods take ``call_timeout``),
    ``read_attempts``/``backoff_initial``/``backoff_max`` (read retries), ``breaker``, ``clock``
    and ``readback_delay`` (seconds to wait before reading back an ambiguous write).
    """

    # --- reading back after ambiguous writes -------------------------------------------------

    async def find_booking_by_token(
        self, token: str, *, start: datetime, end: datetime, event_type_id: int
    ) -> CalcomBooking | None:
        """The first booking whose ``metadata`` carries ``token`` (any status), or ``None``."""
        found = await self.find_bookings_by_token(
            token, start=start, end=end, event_type_id=event_type_id, first_only=True
        )
        return found[0] if found else None

    async def find_bookings_by_token(
        self,
        token: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        event_type_id: int | None = None,
        attendee_email: str | None = None,
        max_pages: int = 10,
        first_only: bool = False,
    ) -> list[CalcomBooking]:
        """Every booking whose ``metadata`` carries ``token`` (any status), in Cal.com's order."""
        page_size = 100
        found: list[CalcomBooking] = []
        for page in range(max_pages):
            result = await self.list_bookings(
                attendee_email=attendee_email,
                event_type_id=event_type_id,
                after_start=start,
                before_end=end,
                take=page_size,
                skip=page * page_size,
            )
            for booking in result.bookings:
                if booking.token == token:
                    found.append(booking)
                    if first_only:
                        return found
            if not result.has_next_page:
                break
        return found

    async def create_booking_safely(
        self,
        event_type_id: int,
        start: datetime,
        attendee: CalcomAttendee,
        *,
        token: str,
        end: datetime | None = None,
        metadata: Mapping[str, str] | None = None,
        length_in_minutes: int | None = None,
        booking_fields_responses: Mapping[str, str] | None = None,
        reserved_slot_uid: str | None = None,
        call_timeout: float | None = None,
        read_back_server_error: bool = True,
    ) -> CalcomBooking:
        """Create once; on an ambiguous outcome or a busy answer, read back by ``token``.

        Without ``read_back_server_error`` a 5xx answer is raised as ``CalcomServerError`` unread:
        the caller sends the create once more (see ``CalcomCalendar.create``), and a busy answer to
        that is read back here.

        Returns the booking if one carrying ``token`` exists (created now or by an earlier
        attempt). Raises ``CalcomNothingBooked`` when the read-back proves nothing was booked after
        an ambiguous outcome, the original ``CalcomSlotUnavailable``/``CalcomConflict`` when the
        slot is really taken by someone else, and ``CalcomOutcomeUnknown`` when even the read-back
        failed (the token stays in ``metadata``, so a later reconcile can still find it).
        """
        if not token:
            raise ValueError("create_booking_safely needs a non-empty token")
        window_end = end or start + timedelta(minutes=length_in_minutes or 24 * 60)
        try:
            return await self.create_booking(
                event_type_id,
                start,
                attendee,
                token=token,
                metadata=metadata,
                length_in_minutes=length_in_minutes,
                booking_fields_responses=booking_fields_responses,
                reserved_slot_uid=reserved_slot_uid,
                call_timeout=call_timeout,
            )
        except CalcomUnavailable as exc:
            if not exc.outcome_unknown or (isinstance(exc, CalcomServerError) and not read_back_server_error):
                raise
            return await self.read_back_create(token, event_type_id, start, window_end, exc)
        except (CalcomSlotUnavailable, CalcomConflict) as exc:
            # A busy answer may be our own earlier attempt that committed (a retried saga step).
            found = await self._read_back(token, event_type_id, start, window_end, exc)
            if found is None or not found.is_active:
                raise
            return found

    async def read_back_create(
        self, token: str, event_type_id: int, start: datetime, end: datetime, cause: CalcomError
    ) -> CalcomBooking:
        """The booking an ambiguous create (``cause``) made, found by ``token``; else
        ``CalcomNothingBooked`` (``CalcomOutcomeUnknown`` when reading back failed)."""
        found = await self._read_back(token, event_type_id, start, end, cause)
        if found is None:
            raise CalcomNothingBooked(
                f"Cal.com create was ambiguous ({type(cause).__name__}); read back by token: "
                "nothing was booked",
                path="/v2/bookings",
            ) from cause
        return found

    async def _read_back(
        self, token: str, event_type_id: int, start: datetime, end: datetime, cause: CalcomError
    ) -> CalcomBooking | None:
        if self.readback_delay > 0:
            await asyncio.sleep(self.readback_delay)
        try:
            return await self.find_booking_by_token(
                token, start=start - timedelta(minutes=1), end=end, event_type_id=event_type_id
            )
        except CalcomError as exc:
            raise CalcomOutcomeUnknown(
                f"Cal.com write outcome unknown ({type(cause).__name__}) and reading back failed "
                f"({type(exc).__name__}); reconcile later by token",
                path=cause.path,
                outcome_unknown=True,
            ) from exc

    async def cancel_booking_safely(
        self,
        uid: str,
        *,
        reason: str | None = None,
        call_timeout: float | None = None,
        resend_after_server_error: bool = False,
    ) -> CalcomBooking:
        """Cancel once; after an ambiguous outcome or "already cancelled", read the booking back.

        With ``resend_after_server_error`` a 5xx answer is followed by the same cancel once more
        instead of a read-back: a cancel changes nothing the second time (Cal.com answers "already
        cancelled", which is then read back), and the usual 5xx cancelled nothing.
        """
        try:
            return await self.cancel_booking(uid, reason=reason, call_timeout=call_timeout)
        except (CalcomUnavailable, CalcomAlreadyCancelled) as exc:
            if isinstance(exc, CalcomUnavailable) and not exc.outcome_unknown:
                raise
            if resend_after_server_error and isinstance(exc, CalcomServerError):
                return await self.cancel_booking_safely(uid, reason=reason, call_timeout=call_timeout)
            booking = await self._get_or_unknown(uid, exc)
            if booking.status == "cancelled":
                return booking
            raise CalcomNotApplied(
                f"Cal.com cancel was ambiguous ({type(exc).__name__}); the booking is still {booking.status}",
                path=exc.path,
            ) from exc

    async def reschedule_booking_safely(
        self,
        uid: str,
        new_start: datetime,
        *,
        reason: str | None = None,
        call_timeout: float | None = None,
    ) -> CalcomBooking:
        """Reschedule once; after an ambiguous outcome follow ``rescheduledToUid`` from the old uid.
        Not moved there after a timeout is still unknown (the request may be applied after our read);
        after a reset or a 5xx it is not applied."""
        try:
            return await self.reschedule_booking(uid, new_start, reason=reason, call_timeout=call_timeout)
        except (CalcomUnavailable, CalcomAlreadyCancelled) as exc:
            if isinstance(exc, CalcomUnavailable) and not exc.outcome_unknown:
                raise
            old = await self._get_or_unknown(uid, exc)
            if old.rescheduled_to_uid:
                new = await self._get_or_unknown(old.rescheduled_to_uid, exc)
                if new.start == require_aware(new_start).astimezone(UTC):
                    return new
            if isinstance(exc, CalcomAlreadyCancelled):
                raise
            if isinstance(exc, CalcomTimeout):  # still in flight, maybe: Cal.com may move it later
                raise CalcomOutcomeUnknown(
                    "Cal.com reschedule timed out and is not applied yet; it may still be",
                    path=exc.path,
                    outcome_unknown=True,
                ) from exc
            raise CalcomNotApplied(
                f"Cal.com reschedule was ambiguous ({type(exc).__name__}); the booking was not moved",
                path=exc.path,
            ) from exc

    async def _get_or_unknown(self, uid: str, cause: CalcomError) -> CalcomBooking:
        try:
            return await self.get_booking(uid)
        except CalcomError as exc:
            raise CalcomOutcomeUnknown(
                f"Cal.com write outcome unknown ({type(cause).__name__}) and reading back failed "
                f"({type(exc).__name__})",
                path=cause.path,
                outcome_unknown=True,
            ) from exc
