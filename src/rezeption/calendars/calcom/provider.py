"""The Cal.com calendar provider: a salon's bookings live in Cal.com (API v2).

Owns the translation between the salon's catalog and Cal.com, and of Cal.com's errors into the
booking port's (`CalendarRefused`, `CalendarUnavailable`, `CalendarOutcomeUnknown`). The salon file
says where and what (`calendar.settings`):

    base_url: https://api.cal.com        # or https://api.cal.eu, or our emulator
    api_key: cal_live_...
    event_types:                          # service key -> event type id, for every stylist,
      herrenhaarschnitt: {anna: 101, ben: 201}   # or per stylist key
      bartpflege: 202
    hosts: {anna: 11, ben: 12}            # Cal.com user id per stylist (imports, round-robin hosts)
    webhook_secret: ...                   # X-Cal-Signature-256 of Cal.com's webhooks
    read_timeout: 3.0, write_timeout: 4.0       # seconds per request
    slot_refresh_seconds: 600, slot_horizon_days: 35
    rate_limit: {per_minute: 100}          # requests in any 60 s, under Cal.com's 120 per key

Free slots are a rolling picture (`slot_cache`): one `GET /v2/slots` request per event type covers
the next `slot_horizon_days` days (five weeks: the three weeks callers ask for, and the fortnight
after the last of them where alternatives are looked for), shared by concurrent callers and kept
current without reading: our own creates, cancels and moves hold and release their times in it at
once (`picture`), and so do Cal.com's booking webhooks (`note_booking`) and the reconciler's
findings (`note`: bookings made or cancelled directly in Cal.com). What we cannot know makes just
that day stale (a slot Cal.com refused us: someone else has it; a write whose outcome stayed
unknown), and the next caller asking for that day reads it again. The whole range is re-read only
as a safety net, when older than `slot_refresh_seconds` (600 s), by `ops.slot_refresher` in the
background (and by `prefetch` at call_inbound): one request per event type per ten minutes, for the
demo salon's 12 event types 1.2 requests a minute, 1 % of Cal.com's 120 a minute per key. Callers
treat a picture as current for `STALE_GRACE` (120 s) longer than that, so the background refresh,
not a caller, pays for it while the refresher runs.

A caller never waits long for Cal.com: after `voice_wait` seconds (1.5) the last known picture
answers (the booking itself is checked by Cal.com, and a refusal means "taken" with our
alternatives); with nothing known, at most `voice_wait_unknown` (2.2). Every request takes a token
from the key's budget (`budget`); a read the budget refuses is answered from the picture.

Writes use the client's safe variants with our token (`booking_token`) in `metadata`, so nothing is
ever sent twice blindly. A create that Cal.com answered with a 5xx is sent once more at once (while
`write_budget`, 5.8 s, leaves at least 2 s) when its event type has one host and this process saw
its last booking accepted: Cal.com refuses a second accepted booking of one host and time
(calcom.md 4.2), so if the first was booked after all, the resend hears "busy" and that is read
back by our token; a resend stopped before Cal.com answers it (the breaker, the rate limit) is read
back too. The read that the usual 5xx (nothing booked) needed before is saved. Cal.com's guard
does not cover bookings awaiting the host's confirmation (#10789, #29958): a resend that comes back
`pending` has every other booking with our token cancelled, and an event type not seen accepting
(after a start, or answering `pending`), a round-robin team (its resend may go to another host) or
a dropped answer is read back first, as before. A
cancel answered with a 5xx is sent once more too (a second cancel changes nothing: "already
cancelled" is read back), instead of a read-back now and the same cancel from the outbox later.
"""

from __future__ import annotations

import asyncio
import logging
import time as time_module
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

from rezeption.booking.ports import (
    CalendarBusy,
    CalendarOutcomeUnknown,
    CalendarRefused,
    CalendarUnavailable,
    ExternalBooking,
    booking_token,
)
from rezeption.calendars.calcom.budget import BudgetConfig, background, write_priority
from rezeption.calendars.calcom.client import CalcomClient
from rezeption.calendars.calcom.errors import (
    CalcomAlreadyCancelled,
    CalcomConflict,
    CalcomError,
    CalcomHoldConflict,
    CalcomNotApplied,
    CalcomNotFound,
    CalcomNothingBooked,
    CalcomOutcomeUnknown,
    CalcomOutOfBounds,
    CalcomRateLimited,
    CalcomRejected,
    CalcomServerError,
    CalcomSlotUnavailable,
    CalcomTimeout,
    CalcomUnavailable,
)
from rezeption.calendars.calcom.models import CalcomAttendee, CalcomBooking
from rezeption.calendars.calcom.picture import SlotPicture
from rezeption.calendars.slot_cache import MemorySlotCache, Picture, SlotCache, SlotSpans
from rezeption.domain.model import Appointment, Catalog, Interval, Service, Slot, Staff
from rezeption.domain.schedule import ListedSlots, block_of, working_intervals
from rezeption.ops.metrics import SLOT_CACHE

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = ["CalcomCalendar", "CalcomSettings"]

MIN_RETRY_SECONDS = 2.0  # a create is sent once more only with at least this much of its budget left
LIST_PAGE = 250  # bookings per list request (Cal.com's largest page)
STALE_GRACE = 120.0
"""Seconds past `slot_refresh_seconds` a caller still answers from the picture without a read:
four rounds of `ops.slot_refresher`, which re-reads a range once it is `slot_refresh_seconds` old."""
REFUSALS = (CalcomSlotUnavailable, CalcomConflict, CalcomOutOfBounds, CalcomHoldConflict)
READ_BACK_BY_THE_CLIENT = (CalcomSlotUnavailable, CalcomConflict, CalcomNothingBooked, CalcomOutcomeUnknown)
"""A create's errors that `create_booking_safely` raises only after reading back by our token."""


@dataclass(frozen=True)
class CalcomSettings:
    """A salon's `calendar.settings` for Cal.com, validated."""

    base_url: str
    api_key: str
    event_types: Mapping[str, int | Mapping[str, int]]
    hosts: Mapping[str, int] = field(default_factory=dict)
    webhook_secret: str | None = None
    read_timeout: float = 3.0
    write_timeout: float = 4.0
    slot_refresh_seconds: float = 600.0
    refresh_while_called_seconds: float = 1800.0  # background refreshes this long after a call
    slot_horizon_days: int = 35
    voice_wait: float = 1.5
    voice_wait_unknown: float = 2.2
    write_budget: float = 5.8
    rate_limit: BudgetConfig = field(default_factory=BudgetConfig)
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
            read_timeout=float(raw.get("read_timeout", 3.0)),
            write_timeout=float(raw.get("write_timeout", 4.0)),
            slot_refresh_seconds=float(raw.get("slot_refresh_seconds", raw.get("slot_cache_seconds", 600.0))),
            refresh_while_called_seconds=float(raw.get("refresh_while_called_seconds", 1800.0)),
            slot_horizon_days=int(raw.get("slot_horizon_days", 35)),
            voice_wait=float(raw.get("voice_wait", 1.5)),
            voice_wait_unknown=float(raw.get("voice_wait_unknown", 2.2)),
            write_budget=float(raw.get("write_budget", 5.8)),
            rate_limit=BudgetConfig(**dict(raw.get("rate_limit") or {})),
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
        self._inflight: dict[tuple[int, date, date], asyncio.Task[dict[date, SlotSpans]]] = {}
        self.picture = SlotPicture(self.cache, scope, self.event_type_for)
        self._waited_out: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        self.stale_answers = 0  # answers given from an old picture because Cal.com was slow or busy
        self._accepting: set[int] = set()  # event types whose last create here came back accepted

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

    def _mapped(
        self, catalog: Catalog, event_type_id: int | None, host_ids: Sequence[int]
    ) -> tuple[int | None, int | None]:
        """The (service id, staff id) a Cal.com booking of this event type and these hosts is."""
        pairs = self._reverse(catalog).get(event_type_id or -1, [])
        if not pairs:
            return None, None
        hosts = {host: key for key, host in self.settings.hosts.items()}
        by_host = [p for p in pairs if any(hosts.get(h) == p[1].key for h in host_ids)]
        service, member = (by_host or pairs)[0]
        return service.id, member.id

    def _external(self, catalog: Catalog, booking: CalcomBooking) -> ExternalBooking:
        service_id, staff_id = self._mapped(catalog, booking.event_type_id, booking.host_ids)
        return ExternalBooking(
            uid=booking.uid,
            start=booking.start,
            end=booking.end,
            status=booking.status,
            token=booking.token,
            service_id=service_id,
            staff_id=staff_id,
            rescheduled_to_uid=booking.rescheduled_to_uid,
            rescheduled_from_uid=booking.rescheduled_from_uid,
            created_at=booking.created_at,
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
        """Free starts in `window` per stylist from Cal.com (cached); CalendarUnavailable if down,
        or while Cal.com refuses our key (slots need none there, but a booking would fail)."""
        if self.client.key_refused:
            raise CalendarUnavailable("Cal.com refused the salon's API key (401/403)")
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
                if window.start <= start < window.end and _works(catalog, service, member, start):
                    slots.append(Slot(start=start, end=end, staff_id=member.id))
        slots.sort(key=lambda s: (s.start, s.staff_id))
        return slots

    async def free_starts(
        self, catalog: Catalog, service: Service, staff: Sequence[Staff], window: Interval
    ) -> ListedSlots:
        """`free_slots` of `window` (one answer per day and event type, cached), to be narrowed."""
        return ListedSlots(await self.free_slots(catalog, service, staff, window))

    async def day_spans(self, catalog: Catalog, day: date, event_type: int) -> SlotSpans:
        """One local day's free (start, end) for an event type: from the picture when it is fresh,
        else fetched (shared with concurrent callers); the last known picture when Cal.com is slow,
        away or over budget. CalcomError only when nothing at all is known of that day."""
        known = await self._known(day, event_type)
        if known is not None and known.fresh(self.settings.slot_refresh_seconds + STALE_GRACE):
            SLOT_CACHE.labels("fresh").inc()
            return known.spans
        fetch = self._fetch(catalog, event_type, *self._range_for(catalog, day))
        patience = self.settings.voice_wait if known is not None else self.settings.voice_wait_unknown
        if fetch in self._waited_out:
            patience = 0.0  # a caller already waited for this fetch: nobody waits for it twice
        try:
            fetched = await asyncio.wait_for(asyncio.shield(fetch), patience)
        except (TimeoutError, CalcomError) as error:
            if isinstance(error, TimeoutError):
                self._waited_out.add(fetch)
            if known is None:
                if isinstance(error, CalcomError):
                    raise
                raise CalcomTimeout(
                    f"Cal.com slots not answered within {patience:g} s", path="/v2/slots"
                ) from error
            self.stale_answers += 1
            SLOT_CACHE.labels("stale").inc()
            log.info("calcom slots: answered from the last known picture (%s)", type(error).__name__)
            return known.spans
        SLOT_CACHE.labels("fetched").inc()
        return fetched.get(day, [])

    async def _known(self, day: date, event_type: int) -> Picture | None:
        try:
            return await self.cache.get(self.scope, day, event_type)
        except Exception as error:  # a cache outage costs a fetch, never an answer
            log.warning("slot cache read failed: %s", type(error).__name__)
            return None

    def _today(self, catalog: Catalog) -> date:
        return self._now().astimezone(catalog.tenant.zone).date()

    def _range_for(self, catalog: Catalog, day: date) -> tuple[date, date]:
        """The days one fetch covers: the horizon-long block from today that holds `day` (the
        first block is the horizon itself), so callers asking for nearby days share one request."""
        today = self._today(catalog)
        length = max(1, self.settings.slot_horizon_days)
        if day < today:
            return day, day
        first = today + timedelta(days=(day - today).days // length * length)
        return first, first + timedelta(days=length - 1)

    def _fetch(
        self, catalog: Catalog, event_type: int, first: date, last: date
    ) -> asyncio.Task[dict[date, SlotSpans]]:
        key = (event_type, first, last)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._fetch_range(catalog, event_type, first, last))
            self._inflight[key] = task
            task.add_done_callback(lambda t, k=key: self._settle(k, t))  # type: ignore[misc]
        return task

    def _settle(self, key: tuple[int, date, date], task: asyncio.Task[Any]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: a fetch nobody waits for any more must not warn

    async def _fetch_range(
        self, catalog: Catalog, event_type: int, first: date, last: date
    ) -> dict[date, SlotSpans]:
        zone = catalog.tenant.zone
        began = time_module.time()
        start = datetime.combine(first, time(0), tzinfo=zone)
        end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=zone)
        fetched = await self.client.get_slots(
            event_type,
            start.astimezone(UTC),
            end.astimezone(UTC),
            catalog.tenant.timezone,
            call_timeout=self.settings.read_timeout,
        )
        days: dict[date, SlotSpans] = {first + timedelta(days=n): [] for n in range((last - first).days + 1)}
        for slot in fetched:
            day = slot.start.astimezone(zone).date()
            if day in days:
                days[day].append((slot.start.astimezone(UTC), slot.end.astimezone(UTC)))
        whole = first == self._today(catalog) and (last - first).days + 1 >= self.settings.slot_horizon_days
        try:
            await self.cache.put_days(self.scope, event_type, days, fetched_at=began, whole_range=whole)
        except Exception as error:
            log.warning("slot cache write failed: %s", type(error).__name__)
        return days

    def forget_slots(self, catalog: Catalog, start: datetime | None = None) -> None:
        """Mark `start`'s local day (all days when None) stale; runs in the background."""
        self.picture.forget(catalog, start)

    def note(self, catalog: Catalog, booking: ExternalBooking) -> None:
        """What we learned of a booking without asking for slots (the reconciler found it, a
        webhook told of it): active, it holds its time in the picture; else it gives it back. A
        booking of no stylist we know makes its day stale."""
        if booking.staff_id is None:
            self.picture.forget(catalog, booking.start)
        elif booking.active:
            block = (booking.start, booking.end)
            if booking.service_id is not None:
                service = catalog.service_by_id(booking.service_id)
                own = block_of(service, booking.start)
                block = (min(own.start, booking.start), max(own.end, booking.end))
            self.picture.hold(catalog, booking.staff_id, booking.start, booking.end, block)
        else:
            self.picture.release(catalog, booking.staff_id, booking.start, booking.end)

    def note_booking(
        self,
        catalog: Catalog,
        *,
        event_type_id: int | None,
        host_ids: Sequence[int],
        start: datetime,
        end: datetime,
        active: bool,
    ) -> None:
        """`note` for a booking as Cal.com's webhook describes it (event type, hosts, times)."""
        service_id, staff_id = self._mapped(catalog, event_type_id, host_ids)
        status = "accepted" if active else "cancelled"
        booking = ExternalBooking(
            uid=None, start=start, end=end, status=status, service_id=service_id, staff_id=staff_id
        )
        self.note(catalog, booking)

    def _hold(self, catalog: Catalog, appointment: Appointment, *, stale: bool = False) -> None:
        """The appointment's time is (or may be) taken at Cal.com: out of the picture at once, as
        our own check would refuse it; `stale` when someone else may hold more of that day."""
        self.picture.hold(
            catalog,
            appointment.staff_id,
            appointment.starts_at,
            appointment.ends_at,
            (appointment.block_starts_at, appointment.block_ends_at),
        )
        if stale:
            self.picture.forget(catalog, appointment.starts_at)

    async def settled(self) -> None:
        """Wait until the picture holds every update learned so far (tests, shutdown)."""
        await self.picture.settled()

    async def prefetch(
        self,
        catalog: Catalog,
        days: int | None = None,
        *,
        today: date | None = None,
        only_while_called: bool = False,
    ) -> int:
        """Refresh the picture of every mapped event type whose range is older than the refresh
        interval: one request each over the horizon; returns how many were fetched.

        A call's prefetch (call_inbound) marks the salon as being called for
        `refresh_while_called_seconds`; the background refresher (`only_while_called`) reads
        nothing for a salon without that mark: a quiet salon costs no slot reads (12 event types
        re-read every ten minutes were 1,728 Cal.com requests a day), and the next call's own
        prefetch brings its picture up to date."""
        if only_while_called:
            if not await self._called():
                return 0
        else:
            await self._note_call()
        first = today or self._today(catalog)
        last = first + timedelta(days=(days or self.settings.slot_horizon_days) - 1)
        due = []
        for event_type in sorted(self._reverse(catalog)):
            fetched_at = await self.cache.range_fetched_at(self.scope, event_type)
            if time_module.time() - fetched_at < self.settings.slot_refresh_seconds:
                continue
            if not await self._claim_refresh(event_type):
                continue  # another process (or this one) is refreshing it right now
            with background():  # the task copies this context: it waits behind callers' reads
                due.append(self._fetch(catalog, event_type, first, last))
        results = await asyncio.gather(*due, return_exceptions=True)
        return sum(1 for r in results if not isinstance(r, BaseException))

    async def _shared(self, work: Awaitable[T], *, what: str, outage: T) -> T:
        """`work` on the shared cache; in an outage of it, `outage`: the answer that costs one
        Cal.com request too many, never one too few (a refresh, a listing, a pass)."""
        try:
            return await work
        except Exception as error:
            log.warning("slot cache %s failed: %s", what, type(error).__name__)
            return outage

    async def _note_call(self) -> None:
        mark = self.cache.mark(self.scope, "called", self.settings.refresh_while_called_seconds)
        await self._shared(mark, what="mark", outage=None)

    async def _called(self) -> bool:
        return await self._shared(self.cache.marked(self.scope, "called"), what="mark read", outage=True)

    async def _claim_refresh(self, event_type: int) -> bool:
        """One background refresh of a range at a time across the processes sharing the picture;
        the claim lapses after a read's timeout and a little (a refresh that failed is tried again)."""
        claim = self.cache.claim_refresh(self.scope, event_type, self.settings.read_timeout + 2.0)
        return await self._shared(claim, what="claim", outage=True)

    async def claim_reconcile(self, seconds: float) -> bool:
        """Whether this process runs the salon's scheduled reconcile pass now: one per `seconds`
        across the workers sharing the picture (Redis), so several workers do not each read
        Cal.com. A cache outage lets the pass run (one too many, never none)."""
        claim = self.cache.claim(self.scope, "reconcile", seconds)
        return await self._shared(claim, what="claim", outage=True)

    async def listing_due(self, every: float, *, hold: float) -> bool:
        """Whether this process lists Cal.com's bookings now: none listed within `every` seconds
        (the mark `listed`, shared), and this one claims the listing for `hold` seconds, so two
        workers do not list at once and a failed listing is tried again once the claim lapses.
        A cache outage lets it list (one too many, never none)."""
        if await self._shared(self.cache.marked(self.scope, "listed"), what="mark read", outage=False):
            return False
        claim = self.cache.claim(self.scope, "reconcile:list", hold)
        return await self._shared(claim, what="claim", outage=True)

    async def listed(self, every: float) -> None:
        """A listing succeeded: mark it for `every` seconds."""
        await self._shared(self.cache.mark(self.scope, "listed", every), what="mark", outage=None)

    # --- writes ----------------------------------------------------------------------------

    async def create(self, catalog: Catalog, appointment: Appointment) -> ExternalBooking:
        """Book the appointment at Cal.com with our token; after an ambiguous answer what Cal.com
        made is read back by the token, and the create is sent once more only as the module's
        docstring says (a 5xx of an event type seen accepting, or a read-back that found nothing)."""
        event_type = self._require_event_type(catalog, appointment)
        token = booking_token(appointment)
        attendee = CalcomAttendee(
            name=appointment.spoken_name or "Kundin oder Kunde",
            time_zone=catalog.tenant.timezone,
            email=f"{token}@{self.settings.attendee_email_domain}",
            language="de",
        )
        team = self._is_team(catalog, event_type)
        # One host whose bookings this process has seen accepted: a 5xx is answered by the create
        # once more, unread (Cal.com refuses a second accepted booking of one host and time); else
        # it is read back by our token before anything is sent again.
        resend_first = not team and event_type in self._accepting
        unread: CalcomServerError | None = None  # the 5xx whose create was sent once more unread
        began = time_module.monotonic()
        outcome = "unchanged"  # booked, refused (taken there), unknown (it may have been booked)
        try:
            with write_priority():
                timeout = self.settings.write_timeout
                for attempt in (1, 2):
                    try:
                        booking = await self.client.create_booking_safely(
                            event_type,
                            appointment.starts_at,
                            attendee,
                            token=token,
                            end=appointment.ends_at,
                            metadata={"rezeption_appointment": str(appointment.id)},
                            call_timeout=timeout,
                            read_back_server_error=not (resend_first and attempt == 1),
                        )
                        break
                    except CalcomConflict:
                        # A team event type: Cal.com gave a host that another booking took a moment
                        # ago (409 booking_conflict_error, read back: not ours). Others may be free.
                        if attempt == 2 or not team:
                            raise
                        log.info("calcom create: team host taken meanwhile, asking once more")
                    except (CalcomNothingBooked, CalcomServerError) as nothing:
                        # Cal.com answered 5xx or dropped the connection, and the read-back found
                        # nothing (or, resending first, a 5xx left unread): send it once more.
                        # Never after a timeout: that create may still be running there and commit
                        # later (the reconciler settles it then).
                        left = self.settings.write_budget - (time_module.monotonic() - began)
                        timed_out = isinstance(nothing.__cause__, CalcomTimeout)
                        if attempt == 2 or timed_out or left < MIN_RETRY_SECONDS:
                            if isinstance(nothing, CalcomServerError):  # no time left to resend
                                booking = await self._read_back(token, event_type, appointment, nothing)
                                break
                            raise
                        if isinstance(nothing, CalcomServerError):
                            unread = nothing
                        timeout = min(self.settings.write_timeout, left - 0.3)
                        log.info("calcom create: %s, sending it once more", type(nothing).__name__)
                    except CalcomError as error:
                        if unread is None or isinstance(error, READ_BACK_BY_THE_CLIENT):
                            raise
                        # The resend after an unread 5xx was stopped before any read-back (the
                        # breaker, the rate limit, a refusal that is no "busy"): the first create
                        # may have booked. Read it back (the read has its own breaker).
                        booking = await self._read_back(token, event_type, appointment, unread)
                        break
                self._learn_confirmation(event_type, booking)
                if unread is not None and booking.status != "accepted":
                    await self._cancel_twins(token, event_type, appointment, booking)
                if team:
                    booking = await self._with_named_host(catalog, appointment, booking)
            outcome = "booked"
        except REFUSALS as error:
            outcome = "refused"  # someone else has that time there, and maybe more of the day
            raise CalendarRefused(type(error).__name__) from error
        except CalcomNothingBooked as error:
            raise _unavailable(error) from error  # nothing changed there: the picture holds
        except CalcomError as error:
            outcome = "unknown"  # it may have been booked: offer it no more, read the day again
            raise _unavailable(error) from error
        finally:
            if outcome != "unchanged":
                self._hold(catalog, appointment, stale=outcome != "booked")
        return self._external(catalog, booking)

    def _learn_confirmation(self, event_type: int, booking: CalcomBooking) -> None:
        """Remember whether the event type's last booking was accepted: only then is a 5xx on its
        creates answered by the create once more before any read-back. One awaiting the host's
        confirmation (`pending`), or an event type not seen yet (after a start), is read back first."""
        if booking.status == "accepted":
            self._accepting.add(event_type)
        else:
            self._accepting.discard(event_type)

    async def _read_back(
        self, token: str, event_type: int, appointment: Appointment, cause: CalcomError
    ) -> CalcomBooking:
        """The booking an ambiguous create made, by our token (`CalcomNothingBooked` if none)."""
        return await self.client.read_back_create(
            token, event_type, appointment.starts_at, appointment.ends_at, cause
        )

    async def _cancel_twins(
        self, token: str, event_type: int, appointment: Appointment, kept: CalcomBooking
    ) -> None:
        """A create sent once more after an unread 5xx came back awaiting confirmation: Cal.com
        guards only accepted bookings against a second one of the same host and time (calcom.md
        4.2), so the first may have been booked too. Any other live booking carrying our token is
        cancelled; one that cannot be is left to the reconciler (an orphan by our token)."""
        try:
            found = await self.client.find_bookings_by_token(
                token,
                start=appointment.starts_at - timedelta(minutes=1),
                end=appointment.ends_at,
                event_type_id=event_type,
            )
            for twin in found:
                if twin.uid != kept.uid and twin.is_active:
                    log.warning("calcom create: the 5xx'd create was booked too, cancelling that twin")
                    await self.client.cancel_booking_safely(
                        twin.uid,
                        reason="rezeption: duplicate of a resent booking",
                        call_timeout=self.settings.write_timeout,
                    )
        except CalcomError as error:
            log.error("calcom create: twins not checked (%s), the reconciler will", type(error).__name__)

    def _is_team(self, catalog: Catalog, event_type: int) -> bool:
        """Whether several stylists share the event type (a round-robin team at Cal.com)."""
        return len({staff.id for _, staff in self._reverse(catalog).get(event_type, [])}) > 1

    async def _with_named_host(
        self, catalog: Catalog, appointment: Appointment, booking: CalcomBooking
    ) -> CalcomBooking:
        """The stylist we named to the caller hosts the booking: Cal.com's round robin picks its
        own host, so a booking given to someone else is reassigned to ours. If ours is not free
        there after all, the booking is cancelled there and the time refused as taken."""
        staff = catalog.staff_by_id(appointment.staff_id)
        wanted = self.settings.hosts.get(staff.key)
        if wanted is None or wanted in booking.host_ids:
            return booking
        try:
            return await self.client.reassign_booking(
                booking.uid, wanted, call_timeout=self.settings.write_timeout
            )
        except CalcomRejected as refused:
            log.info("calcom create: the named host is not free there, cancelling the round-robin booking")
            await self.client.cancel_booking_safely(
                booking.uid, reason="rezeption: host unavailable", call_timeout=self.settings.write_timeout
            )
            raise CalcomSlotUnavailable(
                "the named host is not free at Cal.com", path=refused.path
            ) from refused

    async def cancel(self, catalog: Catalog, appointment: Appointment) -> None:
        """Cancel the appointment's booking at Cal.com (nothing to do without a uid)."""
        if appointment.external_uid:
            await self.cancel_uid(
                catalog,
                appointment.external_uid,
                start=appointment.starts_at,
                end=appointment.ends_at,
                staff_id=appointment.staff_id,
            )
        else:
            self.forget_slots(catalog, appointment.starts_at)

    async def cancel_uid(
        self,
        catalog: Catalog,
        uid: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        staff_id: int | None = None,
    ) -> None:
        """Cancel by uid; done when Cal.com holds it cancelled (already cancelled or gone counts).
        Once done, the booking's time goes back into the picture when its stylist, start and end
        are given (what its hold took); with its start only, that day is read again; with nothing,
        every day. A cancel that failed changes nothing there, nor in the picture."""
        try:
            with write_priority():
                await self.client.cancel_booking_safely(
                    uid,
                    reason="rezeption",
                    call_timeout=self.settings.write_timeout,
                    resend_after_server_error=True,
                )
        except (CalcomAlreadyCancelled, CalcomNotFound):
            pass
        except CalcomError as error:
            raise _unavailable(error) from error
        if start is not None and end is not None and staff_id is not None:
            self.picture.release(catalog, staff_id, start, end)
        else:
            self.forget_slots(catalog, start)

    async def reschedule(
        self, catalog: Catalog, appointment: Appointment, start: datetime
    ) -> ExternalBooking:
        """Move the booking at Cal.com (a new uid; the old one becomes cancelled there). Moved, the
        old time goes back into the picture and the new one leaves it; refused or unknown, the new
        time leaves it and its day is read again (the old one stays held: too full, never wrong)."""
        if not appointment.external_uid:
            raise CalendarUnavailable("appointment has no Cal.com uid")
        service = catalog.service_by_id(appointment.service_id)
        end = start + (appointment.ends_at - appointment.starts_at)
        block = block_of(service, start)
        outcome = "unchanged"
        try:
            with write_priority():
                booking = await self.client.reschedule_booking_safely(
                    appointment.external_uid,
                    start,
                    reason="rezeption",
                    call_timeout=self.settings.write_timeout,
                )
            outcome = "moved"
        except REFUSALS as error:
            outcome = "refused"
            raise CalendarRefused(type(error).__name__) from error
        except CalcomNotApplied as error:
            raise _unavailable(error) from error  # read back: not moved
        except CalcomError as error:
            outcome = "unknown"
            raise _unavailable(error) from error
        finally:
            if outcome == "moved":
                self.picture.release(
                    catalog, appointment.staff_id, appointment.starts_at, appointment.ends_at
                )
            if outcome != "unchanged":
                self.picture.hold(catalog, appointment.staff_id, start, end, (block.start, block.end))
            if outcome in ("refused", "unknown"):
                self.picture.forget(catalog, start)
        return self._external(catalog, booking)

    # --- reading back ------------------------------------------------------------------------

    async def find(self, catalog: Catalog, appointment: Appointment) -> ExternalBooking | None:
        """The booking carrying the appointment's token, or None; CalendarUnavailable if unreadable."""
        with write_priority():  # the saga's read-back of its own write
            found = await self._by_token(catalog, appointment, first_only=True)
        return found[0] if found else None

    async def find_live(self, catalog: Catalog, appointment: Appointment) -> list[ExternalBooking]:
        """Every live booking carrying the appointment's token around its time (the reconciler's
        look for a twin); CalendarUnavailable if unreadable."""
        return [b for b in await self._by_token(catalog, appointment, first_only=False) if b.active]

    async def _by_token(
        self, catalog: Catalog, appointment: Appointment, *, first_only: bool
    ) -> list[ExternalBooking]:
        """The bookings (any status) carrying the appointment's token within a minute of its time."""
        event_type = self._require_event_type(catalog, appointment)
        try:
            found = await self.client.find_bookings_by_token(
                booking_token(appointment),
                start=appointment.starts_at - timedelta(minutes=1),
                end=appointment.ends_at + timedelta(minutes=1),
                event_type_id=event_type,
                first_only=first_only,
            )
        except CalcomError as error:
            raise _unavailable(error) from error
        return [self._external(catalog, booking) for booking in found]

    async def get(self, catalog: Catalog, uid: str) -> ExternalBooking | None:
        """One booking by uid (None if Cal.com does not know it)."""
        try:
            return self._external(catalog, await self.client.get_booking(uid))
        except CalcomNotFound:
            return None
        except CalcomError as error:
            raise _unavailable(error) from error

    async def bookings(self, catalog: Catalog, window: Interval) -> list[ExternalBooking]:
        """Every booking of the salon's event types inside `window`, any status: one request for
        all event types together per 250 bookings (the reconciler's pass; it asked once per event
        type before, 12 requests a pass for the demo salon)."""
        types = sorted(self._reverse(catalog))
        found: dict[str, ExternalBooking] = {}
        if not types:
            return []
        try:
            with background():  # the reconciler: it may wait for the budget, callers may not
                for page in range(50):
                    result = await self.client.list_bookings(
                        event_type_ids=types,
                        after_start=window.start,
                        before_end=window.end,
                        take=LIST_PAGE,
                        skip=page * LIST_PAGE,
                        call_timeout=self.settings.read_timeout,
                    )
                    for booking in result.bookings:
                        if booking.event_type_id in types:
                            found[booking.uid] = self._external(catalog, booking)
                    if not result.has_next_page:
                        break
        except CalcomError as error:
            raise _unavailable(error) from error
        return list(found.values())

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()


def _works(catalog: Catalog, service: Service, member: Staff, start: datetime) -> bool:
    """Whether our own rules let `member` do `service` at `start` (hours within opening, breaks,
    absences): Cal.com's schedules may say more than the salon file, and a start offered to a
    caller must also pass the booking's own check."""
    block = block_of(service, start)
    if any(absence.overlaps(block) for absence in member.absences):
        return False
    day = start.astimezone(catalog.tenant.zone).date()
    return any(w.contains(block) for w in working_intervals(catalog, member, day))


def _unavailable(error: BaseException) -> CalendarUnavailable:
    """Cal.com's failure as the port's error (outcome unknown when a write may have happened)."""
    name = type(error).__name__
    detail = f"{name}: {error}"[:200]  # Cal.com errors carry status, path and Cal.com's message only
    if isinstance(error, CalcomOutcomeUnknown):
        return CalendarOutcomeUnknown(detail)
    if isinstance(error, CalcomUnavailable) and error.outcome_unknown:
        return CalendarOutcomeUnknown(detail)
    if isinstance(error, CalcomRateLimited):
        return CalendarBusy(detail)
    if isinstance(error, CalcomNotApplied | CalcomError):
        return CalendarUnavailable(detail)
    return CalendarUnavailable(f"unexpected {detail}")
