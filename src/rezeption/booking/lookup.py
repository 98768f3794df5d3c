"""Find a caller's appointments: by this call, the caller's own line, or a name or number plus a fact.

Owns the `find_appointments` use case and `pick` (the one appointment to cancel or move: only by a
reference read out in this call). What may be read out to whom is `booking.disclosure`'s policy;
this module does the reading:

- Only the salon's own, active (pending/confirmed), future appointments are ever found.
- Date, time and service words narrow (`_narrowing`); on the caller's own line a time matches within
  30 minutes, for a caller from another line only exactly. Date or service words alone never search.
- Answers: none (with a German question), one (a spoken summary), several (a spoken list, only of
  the caller's own or this call's appointments). Every appointment comes with an opaque reference
  (`booking.references`), bound to this salon and this call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from rezeption.booking import disclosure
from rezeption.booking.catalog import CatalogCache
from rezeption.booking.disclosure import ASK_NAME, Claim, Question
from rezeption.booking.lookup_model import (
    AppointmentHit,
    FoundAppointment,
    LookupQuery,
    LookupResult,
    LookupStore,
    Pick,
    Windows,
)
from rezeption.booking.lookup_speech import describe_many, describe_one
from rezeption.booking.ports import Clock, UnitOfWork
from rezeption.booking.references import References
from rezeption.domain.errors import AppointmentInPast, AppointmentNotActive, AppointmentNotFound
from rezeption.domain.model import ACTIVE_STATUSES, Catalog
from rezeption.language import match_service, normalize_phone, resolve_when

__all__ = [
    "AppointmentFinder",
    "AppointmentHit",
    "FoundAppointment",
    "LookupQuery",
    "LookupResult",
    "LookupStore",
    "Pick",
]

TIME_TOLERANCE = timedelta(minutes=30)
MAX_LISTED = 4


@dataclass(frozen=True)
class _Narrowing:
    windows: Windows = ()
    at: time | None = None
    between: tuple[time, time] | None = None
    service_ids: frozenset[int] | None = None
    failed: LookupResult | None = None
    has_fact: bool = False  # a day, a time, or one service: something the customer knows


def _none(message: str, reason: str, missed: bool = False) -> LookupResult:
    return LookupResult("none", message, (), reason, missed)


def _asked(question: Question) -> LookupResult:
    return _none(question.message, question.reason, question.missed)


@dataclass
class AppointmentFinder:
    """The lookup use case over a store, a unit of work (for the catalog), a clock and a reference key."""

    store: LookupStore
    uow: UnitOfWork
    clock: Clock
    references: References
    catalogs: CatalogCache = field(default_factory=CatalogCache)

    async def _catalog(self, tenant_id: int, now: datetime) -> Catalog:
        return await self.catalogs.current(self.uow, tenant_id, now.date())

    async def find_appointments(self, query: LookupQuery) -> LookupResult:
        """The caller's future active appointments matching what they said, as far as the
        disclosure policy lets this caller hear of them (see `booking.disclosure`)."""
        now = self.clock.now()
        catalog = await self._catalog(query.tenant_id, now)
        zone = catalog.tenant.zone
        narrowing = _narrowing(query, catalog, now.astimezone(zone))
        if narrowing.failed is not None:
            return narrowing.failed
        if disclosure.bad_name(query.name):
            return _none(ASK_NAME, "need_name")
        name = query.name if query.name and query.name.strip() else None
        said_phone = normalize_phone(query.said_phone) if query.said_phone else None
        if query.said_phone and said_phone is None:
            return _none(
                "Die Telefonnummer habe ich nicht richtig verstanden. Können Sie sie bitte wiederholen?",
                "invalid_phone",
            )
        line = normalize_phone(query.caller_number) if query.caller_number else None
        if said_phone is not None and said_phone == line:
            said_phone = None
        today = now.astimezone(zone).date()
        own = await self._own(query, name, line, narrowing, zone, now)
        if isinstance(own, LookupResult):
            return own
        if own:
            return self._answer(catalog, query, own, zone, today)
        claim = Claim(name, said_phone, narrowing.has_fact, query.misses)
        refusal = disclosure.claim_refusal(claim)
        if refusal is not None:
            return _asked(refusal)
        if said_phone is not None:
            rows = await self.store.by_phone(
                query.tenant_id, said_phone, after=now, windows=narrowing.windows
            )
        else:
            assert name is not None
            rows = await self.store.by_name(query.tenant_id, name, after=now, windows=narrowing.windows)
        matching = _narrow(disclosure.claimed(claim, rows), narrowing, zone, exact_time=True)
        question = disclosure.claim_answer(matching)
        if question is not None:
            return _asked(question)
        return self._answer(catalog, query, matching, zone, today)

    async def _own(
        self,
        query: LookupQuery,
        name: str | None,
        line: str | None,
        narrowing: _Narrowing,
        zone: ZoneInfo,
        now: datetime,
    ) -> list[AppointmentHit] | LookupResult:
        """Rules 1 and 2: this call's bookings and the named person's on their own line.

        A LookupResult when the answer is final here (the line's person was named but nothing fits,
        or the name fits several people on the line); else the hits, empty when neither rule applies.
        """
        tenant_id, windows = query.tenant_id, narrowing.windows
        hits: list[AppointmentHit] = []
        if query.call_id:
            booked = await self.store.by_call(tenant_id, query.call_id, after=now, windows=windows)
            hits = _narrow(disclosure.booked_in_call(name, booked), narrowing, zone)
        if line is None or name is None:
            return hits
        people = disclosure.line_people(name, await self.store.customers_by_phone(tenant_id, line))
        if len(people) > 1:
            return _none(disclosure.ASK_FIRST_NAME, "need_first_name")
        if not people:
            return hits
        rows = await self.store.by_phone(tenant_id, line, after=now, windows=windows)
        mine = _narrow(disclosure.on_own_line(name, next(iter(people)), rows), narrowing, zone)
        seen = {h.id for h in hits}
        hits = sorted([*hits, *(h for h in mine if h.id not in seen)], key=lambda h: (h.starts_at, h.id))
        return hits or _nothing_found(narrowing)

    def _answer(
        self,
        catalog: Catalog,
        query: LookupQuery,
        hits: list[AppointmentHit],
        zone: ZoneInfo,
        today: date,
    ) -> LookupResult:
        found = tuple(self._found(catalog, query, hit, zone) for hit in hits)
        if len(found) == 1:
            return LookupResult("one", describe_one(found[0], today), found)
        return LookupResult("several", describe_many(found, today, MAX_LISTED), found)

    def _found(
        self, catalog: Catalog, query: LookupQuery, hit: AppointmentHit, zone: ZoneInfo
    ) -> FoundAppointment:
        local = hit.starts_at.astimezone(zone)
        return FoundAppointment(
            reference=self.references.issue(query.tenant_id, hit.id, query.call_id),
            appointment_id=hit.id,
            starts_at=hit.starts_at,
            local_date=local.date(),
            local_time=local.time().replace(tzinfo=None),
            service=catalog.service_by_id(hit.service_id).name,
            staff=catalog.staff_by_id(hit.staff_id).name,
        )

    async def pick(self, query: LookupQuery, reference: str | None = None, *, keyed: bool = False) -> Pick:
        """The one appointment to cancel or move, by the reference read out in this call; without a
        reference never an appointment id, only the lookup to read back and confirm.

        A reference must be this salon's and this call's (else InvalidReference /
        ReferenceFromOtherCall); its appointment must be active (AppointmentNotActive) and ahead
        (AppointmentInPast). All refusals are BookingErrors with a German sentence; nothing changes.
        `keyed`: the change carries an idempotency key, so an inactive appointment goes on to the use
        case, which replays the change this key already made (its reply was lost) or refuses alike.
        """
        if not reference:
            return Pick(None, await self.find_appointments(query))
        appointment_id = self.references.read(query.tenant_id, query.call_id, reference)
        hit = await self.store.appointment(query.tenant_id, appointment_id)
        if hit is None:
            raise AppointmentNotFound(reference)
        inactive = hit.status not in {s.value for s in ACTIVE_STATUSES}
        if inactive and not keyed:
            raise AppointmentNotActive(hit.status)
        now = self.clock.now()
        if hit.starts_at <= now:
            raise AppointmentNotActive(hit.status) if inactive else AppointmentInPast()
        catalog = await self._catalog(query.tenant_id, now)
        zone = catalog.tenant.zone
        found = self._found(catalog, query, hit, zone)
        summary = describe_one(found, now.astimezone(zone).date())
        return Pick(hit.id, LookupResult("one", summary, (found,)))


def _narrowing(query: LookupQuery, catalog: Catalog, local_now: datetime) -> _Narrowing:
    windows: Windows = ()
    at: time | None = None
    between: tuple[time, time] | None = None
    known_day = False
    if query.date_words.strip() or query.time_words.strip():
        when = resolve_when(query.date_words, query.time_words, local_now)
        if when.reason is not None:
            return _Narrowing(failed=_none(when.message or "Das habe ich nicht verstanden.", when.reason))
        days = _days(when.date, [r.date for r in when.alternatives], when.window)
        zone = catalog.tenant.zone
        windows = tuple(
            (
                datetime.combine(d, time(0), tzinfo=zone),
                datetime.combine(d + timedelta(days=1), time(0), tzinfo=zone),
            )
            for d in days
        )
        at = when.time
        known_day = when.date is not None
        if at is None and when.window is not None and when.window.start and when.window.end:
            between = (when.window.start, when.window.end)
    service_ids: frozenset[int] | None = None
    if query.service_words.strip():
        match = match_service(query.service_words, catalog.services)
        keys = {match.service.key} if match.service is not None else {c.key for c in match.candidates}
        if not keys:
            return _Narrowing(
                failed=_none(
                    "Diese Leistung bieten wir nicht an, dafür finde ich keinen Termin. "
                    "Für welche Leistung haben Sie gebucht?",
                    "unknown_service",
                )
            )
        service_ids = frozenset(s.id for s in catalog.services if s.key in keys)
    one_service = service_ids is not None and len(service_ids) == 1
    return _Narrowing(windows, at, between, service_ids, has_fact=known_day or at is not None or one_service)


def _days(day: date | None, alternatives: list[date | None], window: Any) -> list[date]:
    if day is not None:
        return sorted({day, *(d for d in alternatives if d is not None)})
    if window is not None and window.first_day is not None:
        last = window.last_day or window.first_day
        span = min((last - window.first_day).days, 62)
        return [window.first_day + timedelta(days=i) for i in range(span + 1)]
    return []


def _minutes(value: time) -> int:
    return value.hour * 60 + value.minute


def _narrow(
    hits: list[AppointmentHit], narrowing: _Narrowing, zone: ZoneInfo, *, exact_time: bool = False
) -> list[AppointmentHit]:
    """The hits that fit the said day(s), part of day, time and service; with `exact_time` a said
    time must be the start to the minute, else the nearest within TIME_TOLERANCE count."""
    if narrowing.service_ids is not None:
        hits = [h for h in hits if h.service_id in narrowing.service_ids]
    if narrowing.between is not None:
        start, end = narrowing.between
        hits = [h for h in hits if start <= h.starts_at.astimezone(zone).time() < end]
    if narrowing.at is not None:
        said = _minutes(narrowing.at)
        gap = {h.id: abs(_minutes(h.starts_at.astimezone(zone).time()) - said) for h in hits}
        exact = [h for h in hits if gap[h.id] == 0]
        if exact_time:
            return exact
        hits = exact or [h for h in hits if gap[h.id] <= TIME_TOLERANCE.total_seconds() // 60]
    return hits


def _nothing_found(narrowing: _Narrowing) -> LookupResult:
    """The named person on their own line has nothing that fits (they may hear that)."""
    if narrowing.windows or narrowing.at or narrowing.between or narrowing.service_ids:
        return _none(
            "Dazu finde ich unter diesem Namen keinen kommenden Termin. Wann ist Ihr Termin denn?",
            "not_found",
        )
    return _none(
        "Unter diesem Namen finde ich keinen kommenden Termin. Haben Sie vielleicht unter einem "
        "anderen Namen gebucht?",
        "not_found",
    )
