"""The metrics that live in the database, read at each scrape: outbox depth and oldest job, callback
requests waiting, pending appointments. No process counts these (any process may have written a
job, the worker may be down): the table is the truth, so /metrics asks it, in three small indexed
reads. When the database does not answer within `patience`, the scrape still answers with
`rezeption_metrics_database_up 0` (an alert of its own) and the counted families.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from sqlalchemy import func, select

from rezeption.booking.saga import JOB_CALLBACK, JOB_CANCEL, JOB_REREAD, JOB_RESOLVE
from rezeption.domain.clock import require_aware
from rezeption.ops.metrics import Fact
from rezeption.store.db import Database
from rezeption.store.tables import AppointmentRow, OutboxJobRow

JOB_KINDS = (JOB_CANCEL, JOB_RESOLVE, JOB_REREAD)
"""The kinds the worker runs (a callback request waits for a person and is counted on its own)."""
WAITING = ("pending", "running")


async def database_facts(database: Database, now: datetime, *, patience: float = 2.0) -> list[Fact]:
    """The database's gauges now (zeros included, so an alert never meets an empty series)."""
    now = require_aware(now)
    try:
        facts = await asyncio.wait_for(_read(database, now), patience)
    except Exception:
        return [("rezeption_metrics_database_up", "1 when the scrape could read the database.", {}, 0.0)]
    return [("rezeption_metrics_database_up", "1 when the scrape could read the database.", {}, 1.0), *facts]


async def _read(database: Database, now: datetime) -> list[Fact]:
    async with database.statement() as conn:
        jobs = (
            await conn.execute(
                select(
                    OutboxJobRow.kind, OutboxJobRow.status, func.count(), func.min(OutboxJobRow.created_at)
                )
                .where(OutboxJobRow.status.in_((*WAITING, "dead")))
                .group_by(OutboxJobRow.kind, OutboxJobRow.status)
            )
        ).all()
        pending = (
            await conn.execute(
                select(func.count(), func.min(AppointmentRow.created_at)).where(
                    AppointmentRow.status == "pending"
                )
            )
        ).one()
    depth = {(kind, status): 0 for kind in JOB_KINDS for status in (*WAITING, "dead")}
    oldest: dict[str, float] = dict.fromkeys(JOB_KINDS, 0.0)
    callbacks, callback_age = 0, 0.0
    for kind, status, count, first in jobs:
        age = _age(now, first)
        if kind == JOB_CALLBACK:
            if status in WAITING:
                callbacks += count
                callback_age = max(callback_age, age)
            continue
        depth[(kind, status)] = depth.get((kind, status), 0) + count
        if status in WAITING:
            oldest[kind] = max(oldest.get(kind, 0.0), age)
    facts: list[Fact] = [
        ("rezeption_outbox_jobs", "Outbox jobs by kind and status (pending, running, dead).",
         {"kind": kind, "status": status}, float(count))
        for (kind, status), count in sorted(depth.items())
    ]  # fmt: skip
    facts += [
        ("rezeption_outbox_oldest_job_age_seconds", "Age of the oldest job not yet done, by kind.",
         {"kind": kind}, age)
        for kind, age in sorted(oldest.items())
    ]  # fmt: skip
    facts += [
        ("rezeption_callback_requests_waiting", "Callers waiting to be called back.", {}, float(callbacks)),
        ("rezeption_callback_request_oldest_age_seconds", "Age of the oldest open callback request.", {},
         callback_age),
        ("rezeption_pending_appointments", "Appointments claimed, the calendar not yet settled.", {},
         float(pending[0])),
        ("rezeption_pending_appointment_oldest_age_seconds", "Age of the oldest pending appointment.", {},
         _age(now, pending[1])),
    ]  # fmt: skip
    return facts


def _age(now: datetime, first: datetime | None) -> float:
    if first is None:
        return 0.0
    return max(0.0, (now - require_aware(first)).total_seconds())
