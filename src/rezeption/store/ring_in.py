"""A call's ring-in (call_inbound) in one round trip on PostgreSQL: the first sight of its signed
request (`replays`), the call opened (or its missing fields filled, as `calls.ensure_call`) and the
salon's customers at the caller's number (`lookup.CALLERS`, for caller ID) in one statement, the
two writes as data-modifying CTEs of the read. Before, these were three statements, a quarter of a
ringing phone's server CPU. SQLite runs the same three steps in one write transaction.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Integer, bindparam, exists, func, literal, select, true
from sqlalchemy.dialects.postgresql import insert as pg_insert

from rezeption.booking.lookup_model import CustomerHit
from rezeption.booking.ports import RingIn
from rezeption.domain.clock import require_aware
from rezeption.store import direct
from rezeption.store.calls import CALLS, KNOWN_FIELDS, upsert_call
from rezeption.store.db import Database
from rezeption.store.lookup import CALLERS
from rezeption.store.replays import FIRST_SIGHT, KEEP, SEEN
from rezeption.store.tables import CustomerRow

_OPENED = ("retell_call_id", "memory", "created_at", "status", *KNOWN_FIELDS)


@cache
def _statement() -> Any:
    """PostgreSQL: `first` (the signature new) on every row, and the customers at :phone (none
    when :phone is null), as (first, id, name, consent_at) rows; at least one row, its customer
    columns null when nobody matched. The call is opened only when :retell_call_id is not null."""
    seen = (
        pg_insert(SEEN)
        .values(direct.placeholders(SEEN, ("digest", "expires_at")))
        .on_conflict_do_nothing()
        .returning(SEEN.c.digest)
        .cte("seen")
    )
    opening = direct.placeholders(CALLS, _OPENED)
    opening["status"] = literal("inbound")
    insert = pg_insert(CALLS).from_select(
        list(_OPENED), select(*opening.values()).where(opening["retell_call_id"].is_not(None))
    )
    opened = insert.on_conflict_do_update(  # fields already stored are kept, missing ones filled
        index_elements=["retell_call_id"],
        set_={name: func.coalesce(CALLS.c[name], insert.excluded[name]) for name in KNOWN_FIELDS},
    ).cte("opened")
    customers = (
        select(CustomerRow.id, CustomerRow.name, CustomerRow.caller_id_consent_at)
        .where(
            CustomerRow.tenant_id == bindparam("tenant_id", type_=Integer),
            CustomerRow.phone_e164 == bindparam("phone", type_=CustomerRow.phone_e164.type),
        )
        .subquery("customers")
    )
    first = exists(select(seen.c.digest)).label("first")
    return (
        select(first, customers.c.id, customers.c.name, customers.c.caller_id_consent_at)
        .select_from(select(literal(1).label("one")).subquery("one").outerjoin(customers, true()))
        .order_by(customers.c.id)
        .add_cte(opened)
    )


async def ring_in(
    database: Database,
    *,
    digest: str,
    now: datetime,
    retell_call_id: str | None,
    tenant_id: int,
    agent_id: str | None,
    from_number: str | None,
    to_number: str | None,
    phone: str | None,
) -> RingIn:
    """Record the signature `digest`, open the call (when it has an id), and read the salon's
    customers at `phone` (None: no lookup): `first` is False for a signature seen before."""
    now = require_aware(now)
    call = {"tenant_id": tenant_id, "agent_id": agent_id, "from_number": from_number, "to_number": to_number}
    if database.is_sqlite:
        async with database.transaction() as conn:
            inserted = await conn.execute(FIRST_SIGHT["sqlite"], {"digest": digest, "expires_at": now + KEEP})
            first = inserted.first() is not None
            if retell_call_id:
                await upsert_call(conn, retell_call_id, now, **call)
            found = (
                (await conn.execute(CALLERS, {"tenant_id": tenant_id, "phone": phone})).all() if phone else []
            )
        return RingIn(first, [CustomerHit(id=i, name=n, consent_at=at) for i, n, at in found])
    values: dict[str, Any] = {
        "digest": digest,
        "expires_at": now + KEEP,
        "retell_call_id": retell_call_id,
        "memory": {},
        "created_at": now,
        **call,
        "phone": phone,
    }
    async with database.statement(writes=True) as conn:
        rows = await direct.rows(conn, _statement(), values)
    return RingIn(
        bool(rows[0].first),
        [
            CustomerHit(id=row.id, name=row.name, consent_at=row.caller_id_consent_at)
            for row in rows
            if row.id is not None
        ],
    )
