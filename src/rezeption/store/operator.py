"""What an operator sees and changes from a terminal without SQL: salons, a day's plan, salon-wide
closures, blocked time and the outbox's waiting jobs.

Reads return plain values for the commands to print; writes bump the salon's catalog version where
availability depends on them (closures, blocked time), so every process applies them on its next
request. Bookings and cancellations do not come here: they go through the booking use cases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from rezeption.domain.model import Interval
from rezeption.store.db import Database
from rezeption.store.tables import (
    AppointmentRow,
    ClosureRow,
    CustomerRow,
    OutboxJobRow,
    ServiceRow,
    StaffAbsenceRow,
    StaffRow,
    TenantRouteRow,
    TenantRow,
)


class OperatorError(ValueError):
    """An operator's request that cannot be done; the message says why, precisely."""


@dataclass(frozen=True)
class SalonSummary:
    """One salon in `tenants list`."""

    id: int
    slug: str
    name: str
    provider: str
    staff: int
    services: int
    upcoming: int
    routes: tuple[str, ...]


@dataclass(frozen=True)
class PlanEntry:
    """One line of a day plan: an appointment or a blocked span of a stylist."""

    starts_at: datetime
    ends_at: datetime
    staff: str
    kind: str  # "appointment" or "blocked"
    appointment_id: int | None = None
    service: str | None = None
    customer: str | None = None
    phone: str | None = None
    status: str | None = None
    source: str | None = None
    reason: str | None = None


async def salon_slugs(database: Database) -> list[str]:
    """Every salon's slug, sorted."""
    async with database.read() as session:
        return list((await session.scalars(select(TenantRow.slug).order_by(TenantRow.slug))).all())


async def salons(database: Database, *, now: datetime) -> list[SalonSummary]:
    """Every salon with its size and how many active appointments lie ahead (one query per count,
    grouped by salon)."""

    async def per_tenant(session: AsyncSession, column: Any, *where: Any) -> dict[int, int]:
        rows = await session.execute(select(column, func.count()).where(*where).group_by(column))
        return {int(tenant_id): int(count) for tenant_id, count in rows}

    async with database.read() as session:
        tenants = (await session.scalars(select(TenantRow).order_by(TenantRow.slug))).all()
        staff = await per_tenant(session, StaffRow.tenant_id, StaffRow.active.is_(True))
        services = await per_tenant(session, ServiceRow.tenant_id, ServiceRow.active.is_(True))
        upcoming = await per_tenant(
            session,
            AppointmentRow.tenant_id,
            AppointmentRow.starts_at >= now,
            AppointmentRow.status.in_(("pending", "confirmed")),
        )
        routes: dict[int, list[str]] = {}
        for tenant_id, kind, value in await session.execute(
            select(TenantRouteRow.tenant_id, TenantRouteRow.kind, TenantRouteRow.value)
        ):
            routes.setdefault(tenant_id, []).append(f"{kind}:{value}")
    return [
        SalonSummary(
            t.id,
            t.slug,
            t.name,
            t.calendar_provider,
            staff.get(t.id, 0),
            services.get(t.id, 0),
            upcoming.get(t.id, 0),
            tuple(routes.get(t.id, ())),
        )
        for t in tenants
    ]


async def day_plan(
    database: Database, tenant_id: int, window: Interval, *, staff_ids: Sequence[int] | None = None
) -> list[PlanEntry]:
    """The appointments (every status but failed) and blocked spans of `window`, by start."""
    query = (
        select(AppointmentRow, StaffRow.name, ServiceRow.name, CustomerRow.name, CustomerRow.phone_e164)
        .join(StaffRow, StaffRow.id == AppointmentRow.staff_id)
        .join(ServiceRow, ServiceRow.id == AppointmentRow.service_id)
        .outerjoin(CustomerRow, CustomerRow.id == AppointmentRow.customer_id)
        .where(
            AppointmentRow.tenant_id == tenant_id,
            AppointmentRow.starts_at < window.end,
            AppointmentRow.ends_at > window.start,
            AppointmentRow.status != "failed",
        )
    )
    blocks = (
        select(StaffAbsenceRow, StaffRow.name)
        .join(StaffRow, StaffRow.id == StaffAbsenceRow.staff_id)
        .where(
            StaffAbsenceRow.tenant_id == tenant_id,
            StaffAbsenceRow.starts_at < window.end,
            StaffAbsenceRow.ends_at > window.start,
        )
    )
    if staff_ids is not None:
        query = query.where(AppointmentRow.staff_id.in_(list(staff_ids)))
        blocks = blocks.where(StaffAbsenceRow.staff_id.in_(list(staff_ids)))
    entries: list[PlanEntry] = []
    async with database.read() as session:
        for row, staff, service, customer, phone in (await session.execute(query)).all():
            entries.append(
                PlanEntry(
                    row.starts_at,
                    row.ends_at,
                    staff,
                    "appointment",
                    appointment_id=row.id,
                    service=service,
                    customer=customer or row.spoken_name,
                    phone=phone,
                    status=row.status,
                    source=row.source,
                )
            )
        for absence, staff in (await session.execute(blocks)).all():
            entries.append(
                PlanEntry(absence.starts_at, absence.ends_at, staff, "blocked", reason=absence.reason)
            )
    entries.sort(key=lambda e: (e.starts_at, e.staff))
    return entries


async def add_closure(
    database: Database,
    tenant_id: int,
    *,
    first_day: date,
    last_day: date,
    hours: Sequence[tuple[time, time]],
    reason: str | None,
    yearly: bool = False,
) -> int:
    """Add a salon-wide closure (no hours) or special hours by command; returns its id."""
    if last_day < first_day:
        raise OperatorError("the closure ends before it starts")
    for start, end in hours:
        if end <= start:
            raise OperatorError(f"{start:%H:%M}-{end:%H:%M} must end after it starts")
    async with database.write() as session, session.begin():
        row = ClosureRow(
            tenant_id=tenant_id,
            first_day=first_day,
            last_day=last_day,
            hours=[[s.strftime("%H:%M"), e.strftime("%H:%M")] for s, e in hours],
            reason=reason,
            yearly=yearly,
            origin="command",
        )
        session.add(row)
        await _bump(session, tenant_id)
        await session.flush()
        return int(row.id)


async def remove_closure(database: Database, tenant_id: int, closure_id: int) -> None:
    """Remove a closure (one from the salon file comes back with the file's next load)."""
    async with database.write() as session, session.begin():
        row = await session.get(ClosureRow, closure_id)
        if row is None or row.tenant_id != tenant_id:
            raise OperatorError(f"no closure {closure_id} in this salon")
        await session.delete(row)
        await _bump(session, tenant_id)


async def block_time(
    database: Database, tenant_id: int, staff_id: int, span: Interval, reason: str | None
) -> int:
    """Block a stylist's time (no booking may touch it); refused while an active appointment lies
    in it, naming how many. Returns the block's id."""
    async with database.write() as session, session.begin():
        session.add(
            block := StaffAbsenceRow(
                tenant_id=tenant_id,
                staff_id=staff_id,
                starts_at=span.start,
                ends_at=span.end,
                reason=reason,
                origin="command",
            )
        )
        await _bump(session, tenant_id)
        await session.flush()
        clashing = await session.scalar(
            select(func.count()).where(
                AppointmentRow.tenant_id == tenant_id,
                AppointmentRow.staff_id == staff_id,
                AppointmentRow.block_starts_at < span.end,
                AppointmentRow.block_ends_at > span.start,
                AppointmentRow.status.in_(("pending", "confirmed")),
            )
        )
        if clashing:
            raise OperatorError(
                f"{clashing} appointment(s) of this stylist lie in that time: move or cancel them first"
            )
        return int(block.id)


async def unblock_time(database: Database, tenant_id: int, block_id: int) -> None:
    """Remove time blocked by command (absences from the salon file are the file's)."""
    async with database.write() as session, session.begin():
        row = await session.get(StaffAbsenceRow, block_id)
        if row is None or row.tenant_id != tenant_id or row.origin != "command":
            raise OperatorError(
                f"no blocked time {block_id} in this salon (salon-file absences: edit the file)"
            )
        await session.delete(row)
        await _bump(session, tenant_id)


async def _bump(session: AsyncSession, tenant_id: int) -> None:
    """Tell every process's catalog cache that availability changed."""
    await session.execute(
        update(TenantRow)
        .where(TenantRow.id == tenant_id)
        .values(catalog_version=TenantRow.catalog_version + 1)
    )


async def retry_job(database: Database, job_id: int, *, now: datetime) -> str:
    """Run a dead (or waiting) job again now, with a fresh count of attempts; returns its kind."""
    async with database.write() as session, session.begin():
        row = await session.get(OutboxJobRow, job_id)
        if row is None:
            raise OperatorError(f"no job {job_id}")
        if row.status not in ("dead", "pending"):
            raise OperatorError(f"job {job_id} is {row.status}: only dead or pending jobs are retried")
        row.status, row.attempts, row.run_after = "pending", 0, now
        row.locked_by, row.locked_until, row.updated_at = None, None, now
        return str(row.kind)


async def resolve_job(database: Database, job_id: int, *, now: datetime, note: str | None) -> str:
    """Mark a job done by hand (a callback made, a dead job settled elsewhere); returns its kind."""
    async with database.write() as session, session.begin():
        row = await session.get(OutboxJobRow, job_id)
        if row is None:
            raise OperatorError(f"no job {job_id}")
        if row.status == "done":
            raise OperatorError(f"job {job_id} is already done")
        if row.status == "running":
            raise OperatorError(f"job {job_id} is running: wait for the worker")
        row.status, row.updated_at = "done", now
        row.last_error = f"resolved by operator{': ' + note if note else ''}"
        return str(row.kind)
