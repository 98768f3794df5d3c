"""Reads for the web admin's pages: one appointment with its event log and call, calls with their
function traces, customers by name or number, pending rows. Every read takes the salon's id and
filters by it, so an id of another salon finds nothing (the page says "not found", never whose).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, or_, select

from rezeption.language import normalize_name, normalize_phone
from rezeption.store.db import Database
from rezeption.store.tables import (
    AppointmentEventRow,
    AppointmentRow,
    CallRow,
    CustomerRow,
    FunctionCallTraceRow,
    ServiceRow,
    StaffRow,
)


@dataclass(frozen=True)
class AppointmentView:
    id: int
    starts_at: datetime
    ends_at: datetime
    status: str
    source: str
    service: str
    staff: str
    customer_id: int | None
    customer: str | None
    phone: str | None
    call_id: str | None
    events: list[tuple[datetime, str, dict[str, Any]]]


@dataclass(frozen=True)
class CallSummary:
    call_id: str
    created_at: datetime
    status: str
    from_number: str | None
    functions: int
    failed: int


@dataclass(frozen=True)
class TraceView:
    at: datetime
    function: str
    ok: bool
    reason: str | None
    latency_ms: int
    args: dict[str, Any]
    reply: dict[str, Any]
    flags: dict[str, Any] | None


@dataclass(frozen=True)
class CallView:
    call_id: str
    created_at: datetime
    status: str
    from_number: str | None
    transcript: str | None
    traces: list[TraceView]
    appointment_ids: list[int]


@dataclass(frozen=True)
class CustomerView:
    id: int
    name: str | None
    phone: str | None
    consent_at: datetime | None
    appointments: list[tuple[int, datetime, str, str]]  # id, start, service, status


async def appointment(database: Database, tenant_id: int, appointment_id: int) -> AppointmentView | None:
    """The salon's appointment with its event log (None for an id of another salon)."""
    async with database.read() as session:
        row = (
            await session.execute(
                select(
                    AppointmentRow, ServiceRow.name, StaffRow.name, CustomerRow.name, CustomerRow.phone_e164
                )
                .join(ServiceRow, ServiceRow.id == AppointmentRow.service_id)
                .join(StaffRow, StaffRow.id == AppointmentRow.staff_id)
                .outerjoin(CustomerRow, CustomerRow.id == AppointmentRow.customer_id)
                .where(AppointmentRow.id == appointment_id, AppointmentRow.tenant_id == tenant_id)
            )
        ).first()
        if row is None:
            return None
        found, service, staff, customer, phone = row
        events = (
            await session.execute(
                select(AppointmentEventRow.at, AppointmentEventRow.kind, AppointmentEventRow.data)
                .where(
                    AppointmentEventRow.appointment_id == appointment_id,
                    AppointmentEventRow.tenant_id == tenant_id,
                )
                .order_by(AppointmentEventRow.id)
            )
        ).all()
    return AppointmentView(
        found.id, found.starts_at, found.ends_at, found.status, found.source, service, staff,
        found.customer_id, customer or found.spoken_name, phone, found.call_id,
        [(at, kind, data or {}) for at, kind, data in events],
    )  # fmt: skip


async def calls(database: Database, tenant_id: int, *, limit: int = 100) -> list[CallSummary]:
    """The salon's latest calls with how many function calls each made and how many failed."""
    counts = (
        select(
            FunctionCallTraceRow.retell_call_id.label("call_id"),
            func.count().label("n"),
            func.sum(case((FunctionCallTraceRow.ok.is_(False), 1), else_=0)).label("failed"),
        )
        .where(FunctionCallTraceRow.tenant_id == tenant_id)
        .group_by(FunctionCallTraceRow.retell_call_id)
        .subquery()
    )
    async with database.read() as session:
        rows = (
            await session.execute(
                select(
                    CallRow.retell_call_id,
                    CallRow.created_at,
                    CallRow.status,
                    CallRow.from_number,
                    counts.c.n,
                    counts.c.failed,
                )
                .outerjoin(counts, counts.c.call_id == CallRow.retell_call_id)
                .where(CallRow.tenant_id == tenant_id)
                .order_by(CallRow.created_at.desc(), CallRow.id.desc())
                .limit(limit)
            )
        ).all()
    return [CallSummary(c, at, s, n, int(k or 0), int(f or 0)) for c, at, s, n, k, f in rows]


async def call(database: Database, tenant_id: int, call_id: str) -> CallView | None:
    """One of the salon's calls with its transcript (while kept) and every function call."""
    async with database.read() as session:
        row = (
            await session.execute(
                select(CallRow).where(CallRow.retell_call_id == call_id, CallRow.tenant_id == tenant_id)
            )
        ).scalar_one_or_none()
        if row is None:
            return None
        traces = (
            await session.scalars(
                select(FunctionCallTraceRow)
                .where(
                    FunctionCallTraceRow.retell_call_id == call_id,
                    FunctionCallTraceRow.tenant_id == tenant_id,
                )
                .order_by(FunctionCallTraceRow.at, FunctionCallTraceRow.id)
            )
        ).all()
        booked = (
            await session.scalars(
                select(AppointmentRow.id)
                .where(AppointmentRow.call_id == call_id, AppointmentRow.tenant_id == tenant_id)
                .order_by(AppointmentRow.id)
            )
        ).all()
    return CallView(
        row.retell_call_id, row.created_at, row.status, row.from_number, row.transcript,
        [TraceView(t.at, t.function, t.ok, t.reason, t.latency_ms, t.args or {}, t.reply or {}, t.flags)
         for t in traces],
        list(booked),
    )  # fmt: skip


async def customers(database: Database, tenant_id: int, query: str, *, limit: int = 50) -> list[CustomerView]:
    """The salon's customers whose name contains the words of `query`, or whose number it is."""
    query = query.strip()
    if not query:
        return []
    phone = normalize_phone(query) if any(ch.isdigit() for ch in query) else None
    name = normalize_name(query)
    conditions = []
    if phone:
        conditions.append(CustomerRow.phone_e164 == phone)
    if name:
        conditions.append(CustomerRow.name_normalized.contains(name))
    if not conditions:
        return []
    async with database.read() as session:
        rows = (
            await session.scalars(
                select(CustomerRow)
                .where(CustomerRow.tenant_id == tenant_id, or_(*conditions))
                .order_by(CustomerRow.name, CustomerRow.id)
                .limit(limit)
            )
        ).all()
    return [CustomerView(r.id, r.name, r.phone_e164, r.caller_id_consent_at, []) for r in rows]


async def customer(database: Database, tenant_id: int, customer_id: int) -> CustomerView | None:
    """One of the salon's customers with their appointments (newest first)."""
    async with database.read() as session:
        row = (
            await session.execute(
                select(CustomerRow).where(CustomerRow.id == customer_id, CustomerRow.tenant_id == tenant_id)
            )
        ).scalar_one_or_none()
        if row is None:
            return None
        booked = (
            await session.execute(
                select(AppointmentRow.id, AppointmentRow.starts_at, ServiceRow.name, AppointmentRow.status)
                .join(ServiceRow, ServiceRow.id == AppointmentRow.service_id)
                .where(AppointmentRow.customer_id == customer_id, AppointmentRow.tenant_id == tenant_id)
                .order_by(AppointmentRow.starts_at.desc())
                .limit(200)
            )
        ).all()
    appointments = [(int(i), start, str(name), str(status)) for i, start, name, status in booked]
    return CustomerView(row.id, row.name, row.phone_e164, row.caller_id_consent_at, appointments)


async def pending(
    database: Database, tenant_id: int, *, limit: int = 100
) -> list[tuple[int, datetime, datetime]]:
    """The salon's pending appointments: id, start, created (the reconciler settles them)."""
    async with database.read() as session:
        rows = (
            await session.execute(
                select(AppointmentRow.id, AppointmentRow.starts_at, AppointmentRow.created_at)
                .where(AppointmentRow.tenant_id == tenant_id, AppointmentRow.status == "pending")
                .order_by(AppointmentRow.created_at)
                .limit(limit)
            )
        ).all()
    return [(int(i), s, c) for i, s, c in rows]


REPAIRS = ("orphan_cancelled", "compensated", "compensation_queued")
"""Events that say a calendar booking had to be undone: by the reconciler (an orphan) or the saga."""


async def repairs(
    database: Database, tenant_id: int, *, since: datetime, limit: int = 100
) -> list[tuple[datetime, str, int]]:
    """The salon's undone calendar bookings since `since`: when, what, which appointment."""
    async with database.read() as session:
        rows = (
            await session.execute(
                select(AppointmentEventRow.at, AppointmentEventRow.kind, AppointmentEventRow.appointment_id)
                .where(
                    AppointmentEventRow.tenant_id == tenant_id,
                    AppointmentEventRow.kind.in_(REPAIRS),
                    AppointmentEventRow.at >= since,
                )
                .order_by(AppointmentEventRow.at.desc())
                .limit(limit)
            )
        ).all()
    return [(at, str(kind), int(i)) for at, kind, i in rows]
