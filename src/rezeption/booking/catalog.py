"""The salon's catalog as the use cases need it: loaded with public holidays, services and staff found.

Lookup here is exact (key, name or spoken alias, case- and umlaut-insensitive). Fuzzy matching of a
caller's words is `rezeption.language`'s job; adapters resolve words to a key before calling us.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from datetime import date
from functools import lru_cache

import holidays

from rezeption.booking.ports import BookingTx, UnitOfWork
from rezeption.domain.errors import StaffDoesNotOfferService, UnknownService, UnknownStaff
from rezeption.domain.model import Catalog, Closure, Service, SpecialDay, Staff


@lru_cache(maxsize=64)
def public_holidays(state: str, first_year: int, last_year: int) -> frozenset[date]:
    """German public holidays of `state` (e.g. "BE") for the years given, inclusive."""
    years = range(first_year, last_year + 1)
    return frozenset(holidays.country_holidays("DE", subdiv=state, years=years).keys())


async def load_catalog(tx: BookingTx, tenant_id: int, today: date) -> Catalog:
    """The salon's catalog with its public holidays from `today` through the booking horizon."""
    catalog = await tx.load_catalog(tenant_id)
    tenant = catalog.tenant
    last_year = today.year + 1 + tenant.policy.horizon_days // 365
    return dataclasses.replace(
        catalog,
        holidays=public_holidays(tenant.holiday_state, today.year - 1, last_year),
        special_days=special_days(catalog.closures, today.year - 1, last_year),
    )


def special_days(closures: Sequence[Closure], first_year: int, last_year: int) -> dict[date, SpecialDay]:
    """Each local day with a salon-wide exception; where two overlap, the later-listed one wins
    (the command line's after the salon file's)."""
    days: dict[date, SpecialDay] = {}
    for closure in closures:
        for day in closure.days(first_year, last_year):
            days[day] = SpecialDay(closure.hours, closure.reason)
    return days


class CatalogCache:
    """Catalogs kept in memory, checked against the salon's catalog version (one cheap query).

    Every change to a salon's services, staff, hours, absences or closures (a salon-file load, a
    `closures` command) bumps the version, so each process reloads on its next request. The version itself is
    re-read at most every `recheck_seconds` (so a reload takes effect within that time).
    """

    def __init__(self, recheck_seconds: float = 1.0) -> None:
        self.recheck_seconds = recheck_seconds
        self._entries: dict[int, tuple[int, int, Catalog, float]] = {}

    def fresh(self, tenant_id: int, today: date) -> Catalog | None:
        """The salon's catalog if it was checked within `recheck_seconds` (no database needed)."""
        entry = self._entries.get(tenant_id)
        if (
            entry is not None
            and entry[1] == today.year
            and time.monotonic() - entry[3] < self.recheck_seconds
        ):
            return entry[2]
        return None

    async def current(self, uow: UnitOfWork, tenant_id: int, today: date) -> Catalog:
        """The salon's current catalog: from memory while it is fresh (no session opened), else
        read in a session of `uow`."""
        known = self.fresh(tenant_id, today)
        if known is not None:
            return known
        async with uow.reading() as tx:
            return await self.get(tx, tenant_id, today)

    async def get(self, tx: BookingTx, tenant_id: int, today: date) -> Catalog:
        """The salon's current catalog."""
        known = self.fresh(tenant_id, today)
        if known is not None:
            return known
        entry = self._entries.get(tenant_id)
        checked = time.monotonic()
        version = await tx.catalog_version(tenant_id)
        if entry is not None and entry[0] == version and entry[1] == today.year:
            self._entries[tenant_id] = (version, today.year, entry[2], checked)
            return entry[2]
        catalog = await load_catalog(tx, tenant_id, today)
        self._entries[tenant_id] = (version, today.year, catalog, checked)
        return catalog

    def forget(self, tenant_id: int) -> None:
        """Reload the salon's catalog on its next use (this process changed it just now)."""
        self._entries.pop(tenant_id, None)

    def last_known(self, tenant_id: int) -> Catalog | None:
        """The catalog this process last loaded for the salon, however old (for when the database
        is away: call_inbound still tells the agent the salon's name, hours and services)."""
        entry = self._entries.get(tenant_id)
        return entry[2] if entry is not None else None


def _fold(text: str) -> str:
    text = " ".join(text.casefold().split())
    for umlaut, plain in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss")):
        text = text.replace(umlaut, plain)
    return text


def find_service(catalog: Catalog, ref: str | int) -> Service:
    """The active service with this id, key, name or alias; UnknownService (with the offer) if none."""
    active = [s for s in catalog.services if s.active]
    for service in active:
        if isinstance(ref, int) and service.id == ref:
            return service
        if isinstance(ref, str) and _fold(ref) in {_fold(service.key), _fold(service.name)} | {
            _fold(alias) for alias in service.aliases
        }:
            return service
    raise UnknownService(str(ref), [s.name for s in active])


def find_staff(catalog: Catalog, ref: str | int) -> Staff:
    """The active stylist with this id, key or name (first name suffices); UnknownStaff if none."""
    active = [s for s in catalog.staff if s.active]
    for member in active:
        if isinstance(ref, int) and member.id == ref:
            return member
        if isinstance(ref, str) and _fold(ref) in {
            _fold(member.key),
            _fold(member.name),
            _fold(member.name.split()[0]),
        }:
            return member
    raise UnknownStaff(str(ref), [s.name for s in active])


def candidate_staff(catalog: Catalog, service: Service, staff_ref: str | int | None) -> list[Staff]:
    """The stylists who may take `service`: the named one (if they offer it) or every qualified one."""
    if staff_ref is None or staff_ref == "":
        return catalog.qualified_staff(service)
    member = find_staff(catalog, staff_ref)
    if member.id not in service.staff_ids:
        raise StaffDoesNotOfferService(member.name, service.name)
    return [member]
