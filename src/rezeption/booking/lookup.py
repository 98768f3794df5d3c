"""Find a caller's appointments: by their number, a spoken name, date/time/service words, or this call.

Owns the `find_appointments` use case and `pick` (exactly one appointment to cancel or move, or the
question to ask). Rules:

- Only the salon's own, active (pending/confirmed), future appointments are ever found.
- Anchors say *whose* appointments: the caller's number (E.164), a spoken name (phonetic + fuzzy,
  `names.LIKELY_SAME`), or the call that booked them. Without an anchor nothing is searched: date or
  service words alone would read out strangers' bookings. Date, time and service words narrow.
- A number shared by several people with appointments and no name said: ask for the name. A caller
  whose number and said name identify a customer is searched under that number only.
- Answers: none (with a German question), one (a spoken summary), several (a spoken list to choose
  from). Every appointment comes with an opaque reference (`booking.references`); `pick` refuses to
  guess: several candidates -> the question, no appointment id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from rezeption.booking.catalog import CatalogCache
from rezeption.booking.lookup_model import (
    AppointmentHit,
    FoundAppointment,
    LookupQuery,
    LookupResult,
    LookupStore,
    Pick,
    Windows,
    names_agree,
)
from rezeption.booking.lookup_speech import describe_many, describe_one
from rezeption.booking.ports import Clock, UnitOfWork
from rezeption.booking.references import References
from rezeption.domain.errors import AppointmentInPast, AppointmentNotActive, AppointmentNotFound
from rezeption.domain.model import ACTIVE_STATUSES, Catalog
from rezeption.language import match_service, normalize_name, normalize_phone, resolve_when

__all__ = [
    "AppointmentFinder",
    "AppointmentHit",
    "FoundAppointment",
    "LookupQuery",
    "LookupResult",
    "LookupStore",
    "Pick",
    "names_agree",
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


def _none(message: str, reason: str) -> LookupResult:
    return LookupResult("none", message, (), reason)


ASK_NAME = "Unter welchem Namen haben Sie gebucht?"


@dataclass
class AppointmentFinder:
    """The lookup use case over a store, a unit of work (for the catalog), a clock and a reference key."""

    store: LookupStore
    uow: UnitOfWork
    clock: Clock
    references: References
    catalogs: CatalogCache = field(default_factory=CatalogCache)

    async def _catalog(self, tenant_id: int, now: datetime) -> Catalog:
        async with self.uow.reading() as tx:
            return await self.catalogs.get(tx, tenant_id, now.date())

    async def find_appointments(self, query: LookupQuery) -> LookupResult:
        """The caller's future active appointments matching what they said (see the module rules)."""
        now = self.clock.now()
        catalog = await self._catalog(query.tenant_id, now)
        zone = catalog.tenant.zone
        narrowing = _narrowing(query, catalog, now.astimezone(zone))
        if narrowing.failed is not None:
            return narrowing.failed
        hits, reason = await self._anchored(query, narrowing, zone, now)
        if reason is not None:
            return _none("Unter dieser Nummer sind mehrere Personen gebucht. " + ASK_NAME, reason)
        if not hits:
            return _nothing_found(query, narrowing)
        found = tuple(self._found(catalog, query, hit, zone) for hit in hits)
        today = now.astimezone(zone).date()
        if len(found) == 1:
            return LookupResult("one", describe_one(found[0], today), found)
        return LookupResult("several", describe_many(found, today, MAX_LISTED), found)

    async def _anchored(
        self, query: LookupQuery, narrowing: _Narrowing, zone: ZoneInfo, now: datetime
    ) -> tuple[list[AppointmentHit], str | None]:
        tenant_id, windows = query.tenant_id, narrowing.windows
        phone = normalize_phone(query.caller_number) if query.caller_number else None
        name = query.name if query.name and normalize_name(query.name) else None
        if phone is not None:
            identified = name is not None and any(
                c.name and names_agree(name, c.name)
                for c in await self.store.customers_by_phone(tenant_id, phone)
            )
            hits = _narrow(
                await self.store.by_phone(tenant_id, phone, after=now, windows=windows), narrowing, zone
            )
            if name is not None:
                hits = [h for h in hits if _same_name(name, h)]
            if name is None and len({_person(h) for h in hits}) > 1:
                return [], "shared_number"
            if hits or identified:
                return hits, None
        if name is not None:
            hits = await self.store.by_name(tenant_id, name, after=now, windows=windows)
            hits = [h for h in _narrow(hits, narrowing, zone) if _same_name(name, h)]
            if hits:
                return hits, None
        if query.call_id:
            hits = _narrow(
                await self.store.by_call(tenant_id, query.call_id, after=now, windows=windows),
                narrowing,
                zone,
            )
            if name is not None:
                hits = [h for h in hits if not _named(h) or _same_name(name, h)]
            return hits, None
        return [], None

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

    async def pick(self, query: LookupQuery, reference: str | None = None) -> Pick:
        """Exactly one appointment to cancel or move, or (appointment_id None) what to ask instead.

        A reference must be this salon's and this call's (else InvalidReference /
        ReferenceFromOtherCall); its appointment must be active (AppointmentNotActive) and ahead
        (AppointmentInPast). All refusals are BookingErrors with a German sentence; nothing changes.
        """
        if not reference:
            result = await self.find_appointments(query)
            chosen = result.appointments[0].appointment_id if result.kind == "one" else None
            return Pick(chosen, result)
        appointment_id = self.references.read(query.tenant_id, query.call_id, reference)
        hit = await self.store.appointment(query.tenant_id, appointment_id)
        if hit is None:
            raise AppointmentNotFound(reference)
        if hit.status not in {s.value for s in ACTIVE_STATUSES}:
            raise AppointmentNotActive(hit.status)
        now = self.clock.now()
        if hit.starts_at <= now:
            raise AppointmentInPast()
        catalog = await self._catalog(query.tenant_id, now)
        zone = catalog.tenant.zone
        found = self._found(catalog, query, hit, zone)
        summary = describe_one(found, now.astimezone(zone).date())
        return Pick(hit.id, LookupResult("one", summary, (found,)))


def _named(hit: AppointmentHit) -> bool:
    return bool(hit.customer_name or hit.spoken_name)


def _same_name(said: str, hit: AppointmentHit) -> bool:
    stored = [n for n in (hit.customer_name, hit.spoken_name) if n]
    return any(names_agree(said, n) for n in stored)


def _person(hit: AppointmentHit) -> str:
    name = hit.customer_name or hit.spoken_name
    return normalize_name(name) if name else f"#{hit.customer_id}"


def _narrowing(query: LookupQuery, catalog: Catalog, local_now: datetime) -> _Narrowing:
    windows: Windows = ()
    at: time | None = None
    between: tuple[time, time] | None = None
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
    return _Narrowing(windows, at, between, service_ids)


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


def _narrow(hits: list[AppointmentHit], narrowing: _Narrowing, zone: ZoneInfo) -> list[AppointmentHit]:
    if narrowing.service_ids is not None:
        hits = [h for h in hits if h.service_id in narrowing.service_ids]
    if narrowing.between is not None:
        start, end = narrowing.between
        hits = [h for h in hits if start <= h.starts_at.astimezone(zone).time() < end]
    if narrowing.at is not None:
        said = _minutes(narrowing.at)
        gap = {h.id: abs(_minutes(h.starts_at.astimezone(zone).time()) - said) for h in hits}
        exact = [h for h in hits if gap[h.id] == 0]
        hits = exact or [h for h in hits if gap[h.id] <= TIME_TOLERANCE.total_seconds() // 60]
    return hits


def _nothing_found(query: LookupQuery, narrowing: _Narrowing) -> LookupResult:
    narrowed = bool(narrowing.windows or narrowing.at or narrowing.between or narrowing.service_ids)
    if not (query.name or query.caller_number or query.call_id):
        return _none(ASK_NAME, "need_name")
    if query.name and narrowed:
        return _none(
            "Dazu finde ich unter diesem Namen keinen kommenden Termin. Wann ist Ihr Termin denn?",
            "not_found",
        )
    if query.name:
        return _none(
            "Unter diesem Namen finde ich keinen kommenden Termin. Haben Sie vielleicht unter einem "
            "anderen Namen gebucht?",
            "not_found",
        )
    return _none("Ich finde leider keinen kommenden Termin für Sie. " + ASK_NAME, "not_found")
