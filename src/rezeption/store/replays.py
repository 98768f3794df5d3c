"""Signed requests seen before: Retell signs body and time only, so the same bytes sent again within
the signature's five minutes verify again. The first sight of a signature is recorded here (one
INSERT ... ON CONFLICT DO NOTHING), and the routes refuse or answer a second one without running it.
A read function's first sight goes with its call's read (`call_at_first_sight`: one statement on
PostgreSQL, the INSERT a data-modifying CTE of the SELECT).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import delete, exists, literal, select, true
from sqlalchemy.dialects.postgresql import insert as pg_insert

from rezeption.booking.ports import CallRecord
from rezeption.domain.clock import require_aware
from rezeption.store import direct
from rezeption.store.calls import GET_CALL, get_call, record
from rezeption.store.db import Database
from rezeption.store.tables import SeenRequestRow, table

SEEN = table(SeenRequestRow)
KEEP = timedelta(minutes=10)  # longer than the signature's window (five minutes either way)
_SIGHT = ("digest", "expires_at")
FIRST_SIGHT = direct.insert_once(SEEN, _SIGHT, SEEN.c.digest)


async def first_sight(database: Database, digest: str, *, now: datetime) -> bool:
    """Record the signature `digest`; False when it was seen before (a replay)."""
    async with database.statement(writes=True) as conn:
        inserted = await direct.scalar(
            conn, FIRST_SIGHT[conn.dialect.name], {"digest": digest, "expires_at": require_aware(now) + KEEP}
        )
    return inserted is not None


@cache
def _call_at_first_sight() -> Any:
    """PostgreSQL: one row, `first` (the signature new, now recorded) and the call's columns (null
    when the call is unknown), committed without waiting for the disk: a crash of PostgreSQL itself
    may forget the last moment's signatures, which lets only those requests, if replayed within
    their five minutes, be answered once more (a read's answer to the one who holds its bytes)."""
    seen = (
        pg_insert(SEEN)
        .values(direct.placeholders(SEEN, _SIGHT))
        .on_conflict_do_nothing()
        .returning(SEEN.c.digest)
        .cte("seen")
    )
    found = GET_CALL.subquery("found")
    one = select(literal(1).label("one")).subquery("one")
    return direct.relaxed_commit(
        select(exists(select(seen.c.digest)).label("first"), *found.c).select_from(
            one.outerjoin(found, true())
        )
    )


async def call_at_first_sight(
    database: Database, call_id: str, digest: str, *, now: datetime
) -> tuple[CallRecord | None, bool]:
    """The call `call_id` (None: unknown), and whether the signature `digest` is new (recorded
    now; False: seen before, a replay)."""
    if database.is_sqlite:
        return await get_call(database, call_id), await first_sight(database, digest, now=now)
    values = {"digest": digest, "expires_at": require_aware(now) + KEEP, "call_id": call_id}
    async with database.statement(writes=True) as conn:
        row = await direct.first(conn, _call_at_first_sight(), values)
    assert row is not None  # the outer join keeps its one row
    return (record(row) if row.retell_call_id is not None else None), bool(row.first)


async def purge(database: Database, *, now: datetime) -> int:
    """Forget signatures past their keep time; how many."""
    async with database.statement(writes=True) as conn:
        result = await conn.execute(delete(SEEN).where(SEEN.c.expires_at < require_aware(now)))
    return int(result.rowcount)
