"""The worker's housekeeping: transcripts past the salon's retention are blanked, old replies dropped."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from rezeption.domain.clock import FixedClock
from rezeption.ops.worker import housekeeping
from rezeption.store.db import Database
from rezeption.store.idempotency import IdempotencyStore
from rezeption.store.tables import CallRow


async def test_old_transcripts_and_expired_replies_go_recent_ones_stay(
    database: Database, clock: FixedClock, salon_id: int
) -> None:
    now = clock.now()
    async with database.write() as session, session.begin():
        for call_id, age in (("old", timedelta(days=91)), ("recent", timedelta(days=3))):
            session.add(
                CallRow(
                    retell_call_id=call_id,
                    tenant_id=salon_id,
                    memory={},
                    transcript="User: Ich heiße Peter Schuster.",
                    started_at=now - age,
                    ended_at=now - age,
                    created_at=now - age,
                    status="ended",
                )
            )
    replies = IdempotencyStore(database, clock)
    assert (await replies.claim("expired", scope="book_appointment", tenant_id=salon_id)).owned
    await replies.finish("expired", {"ok": True, "message": "gebucht, Peter Schuster"})
    clock.advance(timedelta(hours=49))
    assert (await replies.claim("fresh", scope="book_appointment", tenant_id=salon_id)).owned
    clock.advance(timedelta(minutes=1))

    blanked, dropped = await housekeeping(database, clock)

    assert (blanked, dropped) == (1, 1)
    async with database.read() as session:
        transcripts = dict((await session.execute(select(CallRow.retell_call_id, CallRow.transcript))).all())
    assert transcripts["old"] in (None, "") and transcripts["recent"] is not None
    assert await replies.count() == 1
