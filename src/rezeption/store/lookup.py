"""SQL for finding a caller's appointments and recognizing callers by number; consent is written here.

Owns the customers' name search keys (`customer_name_keys`, migration 0004): the Kölner Phonetik
code of each surname part with a final "-er" read as "-a" (`language.names.search_keys`), so
"Meier"/"Mayer" share a key and "Gisela Schuster" reaches "Gisela Schuster-Wendt". The queries are
scoped by tenant and shaped for the indexes: customers (tenant_id, phone_e164) or name keys
(tenant_id, key) -> appointments (customer_id, starts_at); appointments (call_id); only active
appointments after `after`. Implements `booking.lookup.LookupStore`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    bindparam,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from rezeption.booking.lookup_model import AppointmentHit, CustomerHit
from rezeption.domain.clock import require_aware
from rezeption.domain.model import ACTIVE_STATUSES
from rezeption.language.names import normalize_name, said_keys, search_keys
from rezeption.store.db import Database
from rezeption.store.tables import AppointmentRow, CallRow, CustomerNameKeyRow, CustomerRow, table

ACTIVE = sorted(s.value for s in ACTIVE_STATUSES)
PER_CUSTOMER = 20  # next appointments looked at per matching customer
NAME_KEYS = table(CustomerNameKeyRow)
INSERT_NAME_KEYS = insert(NAME_KEYS)

Windows = Sequence[tuple[datetime, datetime]]
HitsQuery = Select[*tuple[Any, ...]]


async def write_name_keys(conn: AsyncConnection, customer_id: int, tenant_id: int, name: str | None) -> None:
    """Store the search keys of a new customer's name (none for no name)."""
    keys = search_keys(name)
    if keys:
        await conn.execute(
            INSERT_NAME_KEYS, [{"customer_id": customer_id, "tenant_id": tenant_id, "key": k} for k in keys]
        )


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


# Caller ID runs at every call_inbound: its statements are built once, with placeholders.
CALLERS = (
    select(CustomerRow.id, CustomerRow.name, CustomerRow.caller_id_consent_at)
    .where(CustomerRow.tenant_id == bindparam("tenant_id"), CustomerRow.phone_e164 == bindparam("phone"))
    .order_by(CustomerRow.id)
)


def _hit(row: object) -> AppointmentHit:
    return AppointmentHit(*row)  # type: ignore[misc]


def _in_windows(n: int) -> ColumnElement[bool]:
    a = AppointmentRow
    return or_(
        *(and_(a.starts_at >= bindparam(f"from_{i}"), a.starts_at < bindparam(f"to_{i}")) for i in range(n))
    )


def _hits_query(windows: int) -> HitsQuery:
    a = AppointmentRow
    query = (
        select(*HIT_COLUMNS)
        .where(a.tenant_id == bindparam("tenant_id"), a.status.in_(ACTIVE), a.starts_at > bindparam("after"))
        .order_by(a.starts_at, a.id)
        .limit(bindparam("limit", type_=Integer))
    )
    return query.where(_in_windows(windows)) if windows else query


def _via_customers(who: ColumnElement[bool], windows: int, lateral: bool) -> HitsQuery:
    """The customers matching `who` (which scopes them to the salon), each with their next active
    appointments.

    PostgreSQL (`lateral`): per customer from (customer_id, starts_at), so the planner cannot swap
    this for a scan of the salon's whole future, which it otherwise picks for common surnames. The
    appointments are not filtered by tenant in SQL (their customer is the salon's; a tenant filter
    there made the planner AND in a bitmap of the salon's 20,000 appointments); `_hits` checks it.
    SQLite has no LATERAL: a plain join.
    """
    a, c = AppointmentRow, CustomerRow
    if not lateral:
        return _hits_query(windows).join(c, c.id == a.customer_id).where(who)
    upcoming = (
        select(a.id, a.tenant_id, a.customer_id, a.service_id, a.staff_id, a.starts_at, a.status, a.call_id)
        .add_columns(a.spoken_name)
        .where(a.customer_id == c.id, a.status.in_(ACTIVE), a.starts_at > bindparam("after"))
        .order_by(a.starts_at)
        .limit(PER_CUSTOMER)
    )
    if windows:
        upcoming = upcoming.where(_in_windows(windows))
    found = upcoming.lateral("upcoming")
    return (
        select(*found.c, c.name, c.phone_e164)
        .select_from(c)
        .join(found, true())
        .where(who)
        .order_by(found.c.starts_at, found.c.id)
        .limit(bindparam("limit", type_=Integer))
    )


@cache
def _shape(kind: str, windows: int, lateral: bool = True) -> HitsQuery:
    """Each lookup shape is built once per (kind, number of day windows, backend) with placeholders:
    a statement built per request spent more CPU on its cache key than PostgreSQL on the query."""
    a, c = AppointmentRow, CustomerRow
    if kind == "phone":
        who = and_(c.tenant_id == bindparam("tenant_id"), c.phone_e164 == bindparam("phone"))
        return _via_customers(who, windows, lateral)
    if kind == "name":
        keyed = select(NAME_KEYS.c.customer_id).where(
            NAME_KEYS.c.tenant_id == bindparam("tenant_id"),
            NAME_KEYS.c.key.in_(bindparam("keys", expanding=True)),
        )
        return _via_customers(c.id.in_(keyed), windows, lateral)
    outer = _hits_query(windows).outerjoin(c, c.id == a.customer_id)
    if kind == "call":
        return outer.where(a.call_id == bindparam("call_id"))
    return outer.where(a.customer_id.in_(bindparam("customer_ids", expanding=True)))


def _params(tenant_id: int, after: datetime, windows: Windows, limit: int, **more: Any) -> dict[str, Any]:
    values = {"tenant_id": tenant_id, "after": require_aware(after), "limit": limit, **more}
    for i, (start, end) in enumerate(windows):
        values[f"from_{i}"], values[f"to_{i}"] = start, end
    return values


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
    return _shape("phone", len(windows), lateral).params(
        _params(tenant_id, after, windows, limit, phone=phone_e164)
    )


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
    return _shape("name", len(windows), lateral).params(
        _params(tenant_id, after, windows, limit, keys=list(keys))
    )


def call_query(
    tenant_id: int, call_id: str, *, after: datetime, windows: Windows = (), limit: int = 50
) -> HitsQuery:
    """Active appointments after `after` that were booked in call `call_id`."""
    return _shape("call", len(windows)).params(_params(tenant_id, after, windows, limit, call_id=call_id))


def customers_query(
    tenant_id: int, customer_ids: Sequence[int], *, after: datetime, limit: int = 3
) -> HitsQuery:
    """The next active appointments of these customers."""
    return _shape("customers", 0).params(
        _params(tenant_id, after, (), limit, customer_ids=list(customer_ids))
    )


def callers_query(tenant_id: int, phone_e164: str) -> HitsQuery:
    """The salon's customers with this number and their consent (caller ID)."""
    return CALLERS.params(tenant_id=tenant_id, phone=phone_e164)


APPOINTMENT_HIT = (
    select(*HIT_COLUMNS)
    .outerjoin(CustomerRow, CustomerRow.id == AppointmentRow.customer_id)
    .where(AppointmentRow.id == bindparam("id"), AppointmentRow.tenant_id == bindparam("tenant_id"))
)


class SqlLookupStore:
    """The lookup and caller-ID queries over a `Database` (each call is one short read)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def _hits(self, query: HitsQuery, values: dict[str, Any]) -> list[AppointmentHit]:
        async with self.database.statement() as conn:
            rows = await conn.execute(query, values)
        return [hit for row in rows if (hit := _hit(tuple(row))).tenant_id == values["tenant_id"]]

    async def by_phone(
        self, tenant_id: int, phone_e164: str, *, after: datetime, windows: Windows = (), limit: int = 50
    ) -> list[AppointmentHit]:
        """Active appointments after `after` of the salon's customers with this number."""
        shape = _shape("phone", len(windows), not self.database.is_sqlite)
        return await self._hits(shape, _params(tenant_id, after, windows, limit, phone=phone_e164))

    async def by_name(
        self, tenant_id: int, name: str, *, after: datetime, windows: Windows = (), limit: int = 200
    ) -> list[AppointmentHit]:
        """Candidates with a surname part that sounds like a word of `name` (the caller decides)."""
        keys = said_keys(name)
        if not keys:
            return []
        shape = _shape("name", len(windows), not self.database.is_sqlite)
        return await self._hits(shape, _params(tenant_id, after, windows, limit, keys=keys))

    async def by_call(
        self, tenant_id: int, call_id: str, *, after: datetime, windows: Windows = (), limit: int = 50
    ) -> list[AppointmentHit]:
        """Active appointments after `after` that were booked in call `call_id`."""
        return await self._hits(
            _shape("call", len(windows)), _params(tenant_id, after, windows, limit, call_id=call_id)
        )

    async def by_customers(
        self, tenant_id: int, customer_ids: Sequence[int], *, after: datetime, limit: int = 3
    ) -> list[AppointmentHit]:
        """The next active appointments of these customers."""
        if not customer_ids:
            return []
        return await self._hits(
            _shape("customers", 0), _params(tenant_id, after, (), limit, customer_ids=list(customer_ids))
        )

    async def appointment(self, tenant_id: int, appointment_id: int) -> AppointmentHit | None:
        """The salon's appointment with this id, whatever its status or time (None for another salon's)."""
        async with self.database.statement() as conn:
            row = (
                await conn.execute(APPOINTMENT_HIT, {"id": appointment_id, "tenant_id": tenant_id})
            ).first()
        return _hit(tuple(row)) if row is not None else None

    async def customers_by_phone(self, tenant_id: int, phone_e164: str) -> list[CustomerHit]:
        """The salon's customers with this number, with their consent to caller ID."""
        async with self.database.statement() as conn:
            rows = await conn.execute(CALLERS, {"tenant_id": tenant_id, "phone": phone_e164})
            return [CustomerHit(id=i, name=n, consent_at=at) for i, n, at in rows]

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
        phone_e164=phone_e164,
        created_at=at,
        updated_at=at,
    )
    session.add(row)
    await session.flush()
    await write_name_keys(await session.connection(), row.id, tenant_id, name)
    return [row.id]
