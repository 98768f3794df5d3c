"""The Cal.com calendar provider: a salon's bookings live in Cal.com (API v2).

Owns the translation between the salon's catalog and Cal.com, and of Cal.com's errors into the
booking port's (`CalendarRefused`, `CalendarUnavailable`, `CalendarOutcomeUnknown`). The salon file
says where and what (`calendar.settings`):

    base_url: https://api.cal.com        # or https://api.cal.eu, or our emulator
    api_key: cal_live_...
    event_types:                          # service key -> event type id, for every stylist,
      herrenhaarschnitt: {anna: 101, ben: 201}   # or per stylist key
      bartpflege: 202
    hosts: {anna: 11, ben: 12}            # optional: Cal.com user id per stylist (imports)
    webhook_secret: ...                   # X-Cal-Signature-256 of Cal.com's webhooks
    read_timeout: 4.0, write_timeout: 8.0, slot_cache_seconds: 60

Free slots come from `GET /v2/slots` per event type and local day, through the slot cache; two
callers asking for the same day share one fetch. Writes use the client's safe variants with our
token (`booking_token`) in `metadata`, so nothing is ever sent twice blindly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from rezeption.booking.ports import (
    CalendarOutcomeUnknown,
    CalendarRefused,
    CalendarUnavailable,
    ExternalBooking,
    booking_token,
)
from rezeption.calendars.calcom_client import CalcomClient
from rezeption.calendars.calcom_errors import (
    CalcomAlreadyCancelled,
    CalcomConflict,
    CalcomError,
    CalcomHoldConflict,
    CalcomNotApplied,
    CalcomNotFound,
    CalcomOutcomeUnknown,
    CalcomOutOfBounds,
    CalcomSlotUnavailable,
    CalcomUnavailable,
)
from rezeption.calendars.calcom_models import CalcomAttendee, CalcomBooking
from rezeption.calendars.slot_cache import MemorySlotCache, SlotCache, SlotSpans
from rezeption.domain.model import Appointment, Catalog, Interval, Service, Slot, Staff

log = logging.getLogger(__name__)

__all__ = ["CalcomCalendar", "CalcomSettings"]

REFUSALS = (CalcomSlotUnavailable, CalcomConflict, CalcomOutOfBounds, CalcomHoldConflict)


@dataclass(frozen=True)
class CalcomSettings:
    """A salon's `calendar.settings` for Cal.com, validated."""

    base_url: str
    api_key: str
    event_types: Mapping[str, int | Mapping[str, int]]
    hosts: Mapping[str, int] = field(default_factory=dict)
    webhook_secret: str | None = None
    read_timeout: float = 4.0
    write_timeout: float = 8.0
    slot_cache_seconds: float = 60.0
    attendee_email_domain: str = "kunden.rezeption.invalid"

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> CalcomSettings:
        """Parse the salon file's settings; ValueError names what is missing."""
        missing = [k for k in ("base_url", "api_key", "event_types") if not raw.get(k)]
        if missing:
            raise ValueError(f"calendar.settings needs {', '.join(missing)} for provider calcom")
        types: dict[str, int | dict[str, int]] = {}
        for service_key, value in dict(raw["event_types"]).items():
            types[str(service_key)] = (
                {str(k): int(v) for k, v in value.items()} if isinstance(value, Mapping) else int(value)
            )
        return cls(
            base_url=str(raw["base_url"]).rstrip("/"),
            api_key=str(raw["api_key"]),
            event_types=types,
            hosts={str(k): int(v) for k, v in dict(raw.get("hosts") or {}).items()},
            webhook_secret=raw.get("webhook_secret"),
            read_timeout=float(raw.get("read_timeout", 4.0)),
            write_timeout=float(raw.get("write_timeout", 8.0)),
            slot_cache_seconds=float(raw.get("slot_cache_seconds", 60.0)),
            attendee_email_domain=str(raw.get("attendee_email_domain", "kunden.rezeption.invalid")),
        )


class CalcomCalendar:
    """`booking.ports.ExternalCalendar` over one salon's Cal.com account."""

    name = "calcom"
    external = True

    def __init__(
        self,
        *,
        client: CalcomClient,
        settings: CalcomSettings,
        scope: str,
        cache: SlotCache | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.scope = scope
        self.cache: SlotCache = cache or MemorySlotCache()
        self._now = now or (lambda: datetime.now(UTC))
        self._inflight: dict[tuple[date, int], asyncio.Task[SlotSpans]] = {}
        self._epoch: dict[date, int] = {}
        self._background: set[asyncio.Task[Any]] = set()

    # --- mapping -----------------------------------------------------------------------------

    def event_type_for(self, service: Service, staff: Staff) -> int | None:
        """The Cal.com event type that books `service` with `staff` (None: not mapped)."""
        mapped = self.settings.event_types.get(service.key)
        if isinstance(mapped, Mapping):
            return mapped.get(staff.key)
        return mapped

    def _reverse(self, catalog: Catalog) -> dict[int, list[tuple[Service, Staff]]]:
        found: dict[int, list[tuple[Service, Staff]]] = {}
        for service in catalog.services:
            for member in catalog.qualified_staff(service):
                event_type = self.event_type_for(service, member)
                if event_type is not None:
                    found.setdefault(event_type, []).append((service, member))
        return found

    def _external(self, catalog: Catalog, booking: CalcomBooking) -> ExternalBooking:
        service_id = staff_id = None
        pairs = self._reverse(catalog).get(booking.event_type_id or -1, [])
        if pairs:
            hosts = {host: key for key, host in self.settings.hosts.items()}
            by_host = [p for p in pairs if any(hosts.get(h) == p[1].key for h in booking.host_ids)]
            service, member = (by_host or pairs)[0]
            service_id, staff_id = service.id, member.id
        return ExternalBooking(
            uid=booking.uid,
            start=booking.start,
            end=booking.end,
            status=booking.status,
            token=booking.token,
            service_id=service_id,
            staff_id=staff_id,
            rescheduled_to_uid=booking.rescheduled_to_uid,
        )

    def _require_event_type(self, catalog: Catalog, appointment: Appointment) -> int:
        service = catalog.service_by_id(appointment.service_id)
        event_type = self.event_type_for(service, catalog.staff_by_id(appointment.staff_id))
        if event_type is None:
            raise CalendarUnavailable(f"no Cal.com event type for service {service.key}")
        return event_type

    # --- free slots ----------------------------------------------------------------------------

    async def free_slots(
        self, catalog: Catalog, service: Service, staff: Sequence[Staff], window: Interval
    ) -> list[Slot]:
        """Free starts in `window` per stylist from Cal.com (cached); CalendarUnavailable if down."""
        zone = catalog.tenant.zone
        first = window.start.astimezone(zone).date()
        last = (window.end - timedelta(microseconds=1)).astimezone(zone).date()
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        wanted = [(m, t) for m in staff if (t := self.event_type_for(service, m)) is not None]
        results = await asyncio.gather(
            *(self.day_spans(catalog, day, event_type) for _, event_type in wanted for day in days),
            return_exceptions=True,
        )
        slots: list[Slot] = []
        for index, result in enumerate(results):
            if isinstance(result, CalcomError):
                raise _unavailable(result) from result
            if isinstance(result, BaseException):
                raise result
            member = wanted[index // len(days)][0]
            for start, end in result:
                if window.start <= start < window.end:
                    slots.append(Slot(start=start, end=end, staff_id=member.id))
        slots.sort(key=lambda s: (s.start, s.staff_id))
        return slots

    async def day_spans(self, catalog: Catalog, day: date, event_type: int) -> SlotSpans:
        """One local day's free (start, end) for an event type: cached, or fetched once for all waiters."""
        cached = await self.cache.get(self.scope, day, event_type)
        if cached is not None:
            return cached
        key = (day, event_type)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._fetch_day(catalog, day, event_type))
            self._inflight[key] = task
            task.add_done_callback(lambda _t, k=key: self._inflight.pop(k, None))  # type: ignore[misc]
        return await asyncio.shield(task)

    async def _fetch_day(self, catalog: Catalog, day: date, event_type: int) -> SlotSpans:
        zone = catalog.tenant.zone
        epoch = self._epoch.get(day, 0)
        start = datetime.combine(day, time(0), tzinfo=zone)
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
        fetched = await self.client.get_slots(
            event_type,
            start.astimezone(UTC),
            end.astimezone(UTC),
            catalog.tenant.timezone,
            call_timeout=self.settings.read_timeout,
        )
        spans = [(s.start.astimezone(UTC), s.end.astimezone(UTC)) for s in fetched]
        if self._epoch.get(day, 0) == epoch:  # not invalidated while we were fetching
            await self.cache.put(self.scope, day, event_type, spans, self.settings.slot_cache_seconds)
        return spans

    def forget_slots(self, catalog: Catalog, start: datetime | None = None) -> None:
        """Drop cached slots of `start`'s local day (all days when None); runs in the background."""
        days = None if start is None else [start.astimezone(catalog.tenant.zone).date()]
        for day in days or list(self._epoch):
            self._epoch[day] = self._epoch.get(day, 0) + 1
        self._spawn(self.cache.forget(self.scope, days))

    def _spawn(self, work: Awaitable[Any]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception as error:  # a cache outage must never fail a booking
                log.warning("slot cache update failed: %s", type(error).__name__)

        task = asyncio.ensure_future(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def prefetch(self, catalog: Catalog, days: int, *, today: date | None = None) -> int:
        """Warm the cache for every mapped event type over the next `days` local days; count fetched."""
        zone = catalog.tenant.zone
        first = today or self._now().astimezone(zone).date()
        event_types = sorted(self._reverse(catalog))
        jobs = [
            self.day_spans(catalog, first + timedelta(days=n), t) for t in event_types for n in range(days)
        ]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        return sum(1 for r in results if not isinstance(r, BaseException))

    # --- writes ----------------------------------------------------------------------------

    async def create(self, catalog: Catalog, appointment: Appointment) -> ExternalBooking:
        """Book the appointment at Cal.com with our token (read back, never resent, on ambiguity)."""
        event_type = self._require_event_type(catalog, appointment)
        token = booking_token(appointment)
        attendee = CalcomAttendee(
            name=appointment.spoken_name or "Kundin oder Kunde",
            time_zone=catalog.tenant.timezone,
            email=f"{token}@{self.settings.attendee_email_domain}",
            language="de",
        )
        try:
            booking = await self.client.create_booking_safely(
                event_type,
                appointment.starts_at,
                attendee,
                token=token,
                end=appointment.ends_at,
                metadata={"rezeption_appointment": str(appointment.id)},
                call_timeout=self.settings.write_timeout,
            )
        except REFUSALS as error:
            raise CalendarRefused(type(error).__name__) from error
        except CalcomError as error:
            raise _unavailable(error) from error
        finally:
            self.forget_slots(catalog, appointment.starts_at)
        return self._external(catalog, booking)

    async def cancel(self, catalog: Catalog, appointment: Appointment) -> None:
        """Cancel the appointment's booking at Cal.com (nothing to do without a uid)."""
        if appointment.external_uid:
            await self.cancel_uid(catalog, appointment.external_uid)
        self.forget_slots(catalog, appointment.starts_at)

    async def cancel_uid(self, catalog: Catalog, uid: str) -> None:
        """Cancel by uid; done when Cal.com holds it cancelled (already cancelled or gone counts)."""
        try:
            await self.client.cancel_booking_safely(
                uid, reason="rezeption", call_timeout=self.settings.write_timeout
            )
        except (CalcomAlreadyCancelled, CalcomNotFound):
            return
        except CalcomError as error:
            raise _unavailable(error) from error
        finally:
            self.forget_slots(catalog)

    async def reschedule(
        self, catalog: Catalog, appointment: Appointment, start: datetime
    ) -> ExternalBooking:
        """Move the booking at Cal.com (a new uid; the old one becomes cancelled there)."""
        if not appointment.external_uid:
            raise CalendarUnavailable("appointment has no Cal.com uid")
        try:
            booking = await self.client.reschedule_booking_safely(
                appointment.external_uid, start, reason="rezeption", call_timeout=self.settings.write_timeout
            )
        except REFUSALS as error:
            raise CalendarRefused(type(error).__name__) from error
        except CalcomError as error:
            raise _unavailable(error) from error
        finally:
            self.forget_slots(catalog, appointment.starts_at)
            self.forget_slots(catalog, start)
        return self._external(catalog, booking)

    # --- reading back ------------------------------------------------------------------------

    async def find(self, catalog: Catalog, appointment: Appointment) -> ExternalBooking | None:
        """The booking carrying the appointment's token, or None; CalendarUnavailable if unreadable."""
        event_type = self._require_event_type(catalog, appointment)
        try:
            booking = await self.client.find_booking_by_token(
                booking_token(appointment),
                start=appointment.starts_at - timedelta(minutes=1),
                end=appointment.ends_at + timedelta(minutes=1),
                event_type_id=event_type,
            )
        except CalcomError as error:
            raise _unavailable(error) from error
        return None if booking is None else self._external(catalog, booking)

    async def get(self, catalog: Catalog, uid: str) -> ExternalBooking | None:
        """One booking by uid (None if Cal.com does not know it)."""
        try:
            return self._external(catalog, await self.client.get_booking(uid))
        except CalcomNotFound:
            return None
        except CalcomError as error:
            raise _unavailable(error) from error

    async def bookings(self, catalog: Catalog, window: Interval) -> list[ExternalBooking]:
        """Every booking of the salon's event types inside `window`, any status."""
        found: dict[str, ExternalBooking] = {}
        try:
            for event_type in sorted(self._reverse(catalog)):
                for page in range(50):
                    result = await self.client.list_bookings(
                        event_type_id=event_type,
                        after_start=window.start,
                        before_end=window.end,
                        take=100,
                        skip=page * 100,
                        call_timeout=self.settings.read_timeout,
                    )
                    for booking in result.bookings:
                        found[booking.uid] = self._external(catalog, booking)
                    if not result.has_next_page:
                        break
        except CalcomError as error:
            raise _unavailable(error) from error
        return list(found.values())

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()


def _unavailable(error: BaseException) -> CalendarUnavailable:
    """Cal.com's failure as the port's error (outcome unknown when a write may have happened)."""
    name = type(error).__name__
    if isinstance(error, CalcomOutcomeUnknown):
        return CalendarOutcomeUnknown(name)
    if isinstance(error, CalcomUnavailable) and error.outcome_unknown:
        return CalendarOutcomeUnknown(name)
    if isinstance(error, CalcomNotApplied | CalcomError):
        return CalendarUnavailable(name)
    return CalendarUnavailable(f"unexpected {name}")
