"""SQL for finding a caller's appointments and recognizing callers by number; consent is written here.

Owns the surname search key on customers (`name_phonetic`): the Kölner Phonetik code of the last
name, with a final "-er" read as "-a", so "Meier"/"Mayer" and "Schuster"/"Schusta" share a key. The
queries are scoped by tenant and shaped for migration 0003's indexes: customers (tenant_id,
phone_e164) or (tenant_id, name_phonetic) -> appointments (customer_id, starts_at); appointments
(call_id); only active appointments after `after`. Implements `booking.lookup.LookupStore`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from rezeption.booking.lookup_model import AppointmentHit, CustomerHit, name_words
from rezeption.domain.clock import require_aware
from rezeption.domain.model import ACTIVE_STATUSES
from rezeption.language.names import normalize_name
from rezeption.language.phonetics import cologne_code
from rezeption.store.db import Database
from rezeption.store.flags import CALLER_ID, flag_enabled
from rezeption.store.tables import AppointmentRow, CallRow, CustomerRow, TenantRow

ACTIVE = sorted(s.value for s in ACTIVE_STATUSES)
PER_CUSTOMER = 20  # next appointments looked at per matching customer
_FINAL_ER = re.compile(r"er$")

Windows = Sequence[tuple[datetime, datetime]]
HitsQuery = Select[*tuple[Any, ...]]


def _key(token: str) -> str | None:
    return cologne_code(_FINAL_ER.sub("a", token)) or None


def surname_key(name: str | None) -> str | None:
    """The stored search key of a customer's name: its surname's sound ("Meier" -> "6")."""
    tokens = name_words(name) if name else []
    return _key(tokens[-1]) if tokens else None


def said_name_keys(name: str) -> list[str]:
    """Search keys for a spoken name: every word may be the surname ("Schuster Peter")."""
    return sorted({key for token in name_words(name)[-3:] if (key := _key(token))})


HIT_COLUMNS = (
    AppointmentRow.id,
    AppointmentRow.tenant_id,
    AppointmentRow.customer_id,
    AppointmentRow.service_id,
    AppointmentRow.staff_id,
    AppointmentRow.starts_at,
    AppointmentRow.status,
    AppointmentRow.call_id,
    AppointmentRow.spoken_name,
    CustomerRow.name,
    CustomerRow.phone_e164,
)
"""The columns of an `AppointmentHit`, in its field order."""


def _hit(row: object) -> AppointmentHit:
    return AppointmentHit(*row)  # type: ignore[misc]


def _hits_query(tenant_id: int, after: datetime, windows: Windows, limit: int) -> HitsQuery:
    a = AppointmentRow
    query = (
        select(*HIT_COLUMNS)
        .where(a.tenant_id == tenant_id, a.status.in_(ACTIVE), a.starts_at > require_aware(after))
        .order_by(a.starts_at, a.id)
        .limit(limit)
    )
    if windows:
        query = query.where(or_(*(and_(a.starts_at >= s, a.starts_at < e) for s, e in windows)))
    return query


def _via_customers(
    tenant_id: int, who: ColumnElement[bool], after: datetime, windows: Windows, limit: int, lateral: bool
) -> HitsQuery:
    """The salon's customers matching `who`, each with their next active appointments.

    PostgreSQL (`lateral`): per customer from (customer_id, starts_at), so the planner cannot swap
    this for a scan of the salon's whole future, which it otherwise picks for common surnames.
    SQLite has no LATERAL: a plain join.
    """
    a, c = AppointmentRow, CustomerRow
    if not lateral:
        joined = _hits_query(tenant_id, after, windows, limit).join(c, c.id == a.customer_id)
        return joined.where(c.tenant_id == tenant_id, who)
    upcoming = (
        select(a.id, a.tenant_id, a.customer_id, a.service_id, a.staff_id, a.starts_at, a.status, a.call_id)
        .add_columns(a.spoken_name)
        .where(
            a.customer_id == c.id,
            a.tenant_id == tenant_id,
            a.status.in_(ACTIVE),
            a.starts_at > require_aware(after),
        )
        .order_by(a.starts_at)
        .limit(PER_CUSTOMER)
    )
    if windows:
        upcoming = upcoming.where(or_(*(and_(a.starts_at >= s, a.starts_at < e) for s, e in windows)))
    found = upcoming.lateral("upcoming")
    return (
        select(*found.c, c.name, c.phone_e164)
        .select_from(c)
        .join(found, true())
        .where(c.tenant_id == tenant_id, who)
        .order_by(found.c.starts_at, found.c.id)
        .limit(limit)
    )


def phone_query(
    tenant_id: int,
    phone_e164: str,
    *,
    after: datetime,
    windows: Windows = (),
    limit: int = 50,
    lateral: bool = True,
) -> HitsQuery:
    """Active appointments after `after` of the salon's customers with this number."""
    return _via_customers(tenant_id, CustomerRow.phone_e164 == phone_e164, after, windows, limit, lateral)


def name_query(
    tenant_id: int,
    keys: Sequence[str],
    *,
    after: datetime,
    windows: Windows = (),
    limit: int = 200,
    lateral: bool = True,
) -> HitsQuery:
    """Active appointments after `after` of the salon's customers whose surname key is one of `keys`."""
    who = CustomerRow.name_phonetic.in_(list(keys))
    return _via_customers(tenant_id, who, after, windows, limit, lateral)


def call_query(
    tenant_id: int, call_id: str, *, after: datetime, windows: Windows = (), limit: int = 50
) -> HitsQuery:
    """Active appointments after `after` that were booked in call `call_id`."""
    c = CustomerRow
    query = _hits_query(tenant_id, after, windows, limit).outerjoin(c, c.id == AppointmentRow.customer_id)
    return query.where(AppointmentRow.call_id == call_id)


def customers_query(
    tenant_id: int, customer_ids: Sequence[int], *, after: datetime, limit: int = 3
) -> HitsQuery:
    """The next active appointments of these customers."""
    c = CustomerRow
    query = _hits_query(tenant_id, after, (), limit).outerjoin(c, c.id == AppointmentRow.customer_id)
    return query.where(AppointmentRow.customer_id.in_(list(customer_ids)))


def callers_query(tenant_id: int, phone_e164: str) -> HitsQuery:
    """The salon's customers with this number and their consent (caller ID)."""
    c = CustomerRow
    return (
        select(c.id, c.name, c.caller_id_consent_at)
        .where(c.tenant_id == tenant_id, c.phone_e164 == phone_e164)
        .order_by(c.id)
    )


# Caller ID runs at every call_inbound: its statements are built once, with placeholders.
CALLERS = callers_query(bindparam("tenant_id"), bindparam("phone"))  # type: ignore[arg-type]
TENANT_SLUG = select(TenantRow.slug).where(TenantRow.id == bindparam("id"))


class SqlLookupStore:
    """The lookup and caller-ID queries over a `Database` (each call is one short read)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def _hits(self, query: HitsQuery) -> list[AppointmentHit]:
        async with self.database.statement() as conn:
            return [_hit(tuple(row)) for row in await conn.execute(query)]

    async def by_phone(
        self, tenant_id: int, phone_e164: str, *, after: datetime, windows: Windows = (), limit: int = 50
    ) -> list[AppointmentHit]:
        """Active appointments after `after` of the salon's customers with this number."""
        lateral = not self.database.is_sqlite
        query = phone_query(tenant_id, phone_e164, after=after, windows=windows, limit=limit, lateral=lateral)
        return await self._hits(query)

    async def by_name(
        self, tenant_id: int, name: str, *, after: datetime, windows: Windows = (), limit: int = 200
    ) -> list[AppointmentHit]:
        """Candidates whose surname sounds like a word of `name` (the caller filters by score)."""
        keys = said_name_keys(name)
        if not keys:
            return []
        lateral = not self.database.is_sqlite
        return await self._hits(
            name_query(tenant_id, keys, after=after, windows=windows, limit=limit, lateral=lateral)
        )

    async def by_call(
        self, tenant_id: int, call_id: str, *, after: datetime, windows: Windows = (), limit: int = 50
    ) -> list[AppointmentHit]:
        """Active appointments after `after` that were booked in call `call_id`."""
        return await self._hits(call_query(tenant_id, call_id, after=after, windows=windows, limit=limit))

    async def by_customers(
        self, tenant_id: int, customer_ids: Sequence[int], *, after: datetime, limit: int = 3
    ) -> list[AppointmentHit]:
        """The next active appointments of these customers."""
        if not customer_ids:
            return []
        return await self._hits(customers_query(tenant_id, customer_ids, after=after, limit=limit))

    async def appointment(self, tenant_id: int, appointment_id: int) -> AppointmentHit | None:
        """The salon's appointment with this id, whatever its status or time (None for another salon's)."""
        a, c = AppointmentRow, CustomerRow
        query = (
            select(*HIT_COLUMNS)
            .outerjoin(c, c.id == a.customer_id)
            .where(a.id == appointment_id, a.tenant_id == tenant_id)
        )
        async with self.database.statement() as conn:
            row = (await conn.execute(query)).first()
        return _hit(tuple(row)) if row is not None else None

    async def customers_by_phone(self, tenant_id: int, phone_e164: str) -> list[CustomerHit]:
        """The salon's customers with this number, with their consent to caller ID."""
        async with self.database.statement() as conn:
            rows = await conn.execute(CALLERS, {"tenant_id": tenant_id, "phone": phone_e164})
            return [CustomerHit(id=i, name=n, consent_at=at) for i, n, at in rows]

    async def caller_id_enabled(self, tenant_id: int) -> bool:
        """The caller-ID kill switch for this salon (feature flag "caller_id", on by default)."""
        async with self.database.statement() as conn:
            slug = await conn.scalar(TENANT_SLUG, {"id": tenant_id})
            return await flag_enabled(conn, CALLER_ID, tenant_slug=slug)

    async def record_consent(
        self,
        tenant_id: int,
        *,
        call_id: str | None,
        at: datetime,
        customer_id: int | None = None,
        phone_e164: str | None = None,
        name: str | None = None,
    ) -> list[int]:
        """Store consent (time and call) on the customer, or on every row of this person at this number.

        A person is a number plus a name (normalized); when none exists yet, one is created.
        """
        at = require_aware(at)
        async with self.database.write() as session, session.begin():
            ids = await _consenting_ids(session, tenant_id, at, customer_id, phone_e164, name)
            if ids:
                await session.execute(
                    update(CustomerRow)
                    .where(CustomerRow.id.in_(ids))
                    .values(caller_id_consent_at=at, consent_call_id=call_id, updated_at=at)
                )
            if call_id and len(ids) == 1:
                await session.execute(
                    update(CallRow)
                    .where(CallRow.retell_call_id == call_id, CallRow.tenant_id == tenant_id)
                    .values(customer_id=ids[0])
                )
            return ids


async def _consenting_ids(
    session: AsyncSession,
    tenant_id: int,
    at: datetime,
    customer_id: int | None,
    phone_e164: str | None,
    name: str | None,
) -> list[int]:
    c = CustomerRow
    if customer_id is not None:
        found = await session.scalar(select(c.id).where(c.id == customer_id, c.tenant_id == tenant_id))
        return [found] if found is not None else []
    if not phone_e164 or not name or not normalize_name(name):
        return []
    person = normalize_name(name)
    rows = await session.execute(
        select(c.id, c.name).where(c.tenant_id == tenant_id, c.phone_e164 == phone_e164)
    )
    ids = [i for i, stored in rows if stored and normalize_name(stored) == person]
    if ids:
        return ids
    row = CustomerRow(
        tenant_id=tenant_id,
        name=name,
        name_normalized=" ".join(name.casefold().split()),
        name_phonetic=surname_key(name),
        phone_e164=phone_e164,
        created_at=at,
        updated_at=at,
    )
    session.add(row)
    await session.flush()
    return [row.id]
