"""Signed requests seen before: Retell signs body and time only, so the same bytes sent again within
the signature's five minutes verify again. The first sight of a signature is recorded here (one
INSERT ... ON CONFLICT DO NOTHING), and the routes refuse or answer a second one without running it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete

from rezeption.domain.clock import require_aware
from rezeption.store import direct
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


async def purge(database: Database, *, now: datetime) -> int:
    """Forget signatures past their keep time; how many."""
    async with database.statement(writes=True) as conn:
        result = await conn.execute(delete(SEEN).where(SEEN.c.expires_at < require_aware(now)))
    return int(result.rowcount)
