"""The outbox: jobs that must happen eventually (compensations, cancellations, re-reads, call-backs).

Owns the `outbox_jobs` table's life cycle. A job is enqueued inside the transaction that decided it
(so it exists exactly when that decision was committed), claimed by one worker at a time —
`FOR UPDATE SKIP LOCKED` on PostgreSQL, so any number of workers can run; the single writer
(`BEGIN IMMEDIATE`) on SQLite — and then done, or retried with exponential backoff until it goes
`dead` after `max_attempts` (dead jobs stay in the table for an operator: `rezeption worker --dead`).
A claim is a lease: a worker killed mid-job leaves a `running` row that becomes claimable again
once `locked_until` has passed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from rezeption.booking.ports import OutboxJob
from rezeption.store.db import Database
from rezeption.store.tables import OutboxJobRow

__all__ = ["JobView", "backoff", "claim", "complete", "counts", "enqueue", "fail", "jobs"]

BACKOFF_BASE = timedelta(seconds=2)
BACKOFF_CAP = timedelta(minutes=10)


@dataclass(frozen=True)
class JobView:
    """A job as an operator sees it."""

    id: int
    tenant_id: int | None
    kind: str
    status: str
    attempts: int
    run_after: datetime
    last_error: str | None
    payload: dict[str, Any]


def backoff(attempts: int, base: timedelta = BACKOFF_BASE, cap: timedelta = BACKOFF_CAP) -> timedelta:
    """Wait before the next try after `attempts` failed tries: base·2^(n-1), at most `cap`."""
    wait: timedelta = base * (2 ** max(attempts - 1, 0))
    return min(wait, cap)


async def enqueue(
    session: AsyncSession,
    kind: str,
    payload: Mapping[str, Any],
    *,
    at: datetime,
    tenant_id: int | None = None,
    dedupe_key: str | None = None,
    run_after: datetime | None = None,
) -> None:
    """Add a job in the session's transaction; a job with the same `dedupe_key` wins (no-op)."""
    values = {
        "tenant_id": tenant_id,
        "kind": kind,
        "payload": dict(payload),
        "dedupe_key": dedupe_key,
        "status": "pending",
        "attempts": 0,
        "run_after": run_after or at,
        "created_at": at,
        "updated_at": at,
    }
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(OutboxJobRow).values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"])
    await session.execute(statement)


async def claim(
    database: Database,
    *,
    worker: str,
    now: datetime,
    kinds: Sequence[str],
    limit: int = 10,
    lease: timedelta = timedelta(seconds=60),
) -> list[OutboxJob]:
    """Take up to `limit` due jobs of `kinds` for `worker` (also jobs whose lease ran out)."""
    due = or_(
        and_(OutboxJobRow.status == "pending", OutboxJobRow.run_after <= now),
        and_(OutboxJobRow.status == "running", OutboxJobRow.locked_until < now),
    )
    query = (
        select(OutboxJobRow)
        .where(due, OutboxJobRow.kind.in_(list(kinds)))
        .order_by(OutboxJobRow.run_after, OutboxJobRow.id)
        .limit(limit)
    )
    if not database.is_sqlite:
        query = query.with_for_update(skip_locked=True)
    async with database.write() as session:
        rows = (await session.scalars(query)).all()
        claimed = [
            OutboxJob(
                id=r.id, tenant_id=r.tenant_id, kind=r.kind, payload=dict(r.payload), attempts=r.attempts + 1
            )
            for r in rows
        ]
        for row in rows:
            await session.execute(
                update(OutboxJobRow)
                .where(OutboxJobRow.id == row.id)
                .values(
                    status="running",
                    attempts=row.attempts + 1,
                    locked_by=worker,
                    locked_until=now + lease,
                    updated_at=now,
                )
            )
        await session.commit()
    return claimed


async def complete(database: Database, job: OutboxJob, *, now: datetime) -> None:
    """Mark the job done."""
    async with database.write() as session:
        await session.execute(
            update(OutboxJobRow)
            .where(OutboxJobRow.id == job.id)
            .values(status="done", locked_by=None, locked_until=None, last_error=None, updated_at=now)
        )
        await session.commit()


async def fail(
    database: Database,
    job: OutboxJob,
    error: str,
    *,
    now: datetime,
    max_attempts: int = 8,
    retry_in: timedelta | None = None,
) -> str:
    """Record a failed try: back to pending after the backoff, or `dead` after `max_attempts`."""
    status = "dead" if job.attempts >= max_attempts else "pending"
    wait = retry_in if retry_in is not None else backoff(job.attempts)
    async with database.write() as session:
        await session.execute(
            update(OutboxJobRow)
            .where(OutboxJobRow.id == job.id)
            .values(
                status=status,
                run_after=now + wait,
                locked_by=None,
                locked_until=None,
                last_error=error[:2000],
                updated_at=now,
            )
        )
        await session.commit()
    return status


async def jobs(
    database: Database,
    *,
    status: str | None = None,
    kind: str | None = None,
    tenant_id: int | None = None,
    job_id: int | None = None,
    limit: int = 100,
) -> list[JobView]:
    """Jobs for an operator, newest first (one salon's, or one job, when asked)."""
    query = select(OutboxJobRow).order_by(OutboxJobRow.id.desc()).limit(limit)
    if tenant_id is not None:
        query = query.where(OutboxJobRow.tenant_id == tenant_id)
    if job_id is not None:
        query = query.where(OutboxJobRow.id == job_id)
    if status:
        query = query.where(OutboxJobRow.status == status)
    if kind:
        query = query.where(OutboxJobRow.kind == kind)
    async with database.read() as session:
        rows = (await session.scalars(query)).all()
    return [
        JobView(
            id=r.id,
            tenant_id=r.tenant_id,
            kind=r.kind,
            status=r.status,
            attempts=r.attempts,
            run_after=r.run_after,
            last_error=r.last_error,
            payload=dict(r.payload),
        )
        for r in rows
    ]


async def counts(database: Database) -> dict[str, int]:
    """How many jobs are in each status."""
    async with database.read() as session:
        rows = await session.execute(select(OutboxJobRow.status, func.count()).group_by(OutboxJobRow.status))
        return {status: int(n) for status, n in rows}
