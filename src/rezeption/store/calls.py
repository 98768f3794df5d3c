"""Calls and their memory: which salon a call belongs to, and what the caller told us during it.

A call's memory is a small JSON document (name, service, phone, chosen date and time, the
appointments booked) so that a later function call that lacks the name still knows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from rezeption.store.db import Database
from rezeption.store.tables import CallRow, FunctionCallTraceRow, TenantRouteRow


@dataclass(frozen=True)
class CallRecord:
    """A call as the adapter needs it."""

    retell_call_id: str
    tenant_id: int | None
    from_number: str | None
    memory: dict[str, Any] = field(default_factory=dict)


async def tenant_for(database: Database, *, agent_id: str | None, to_number: str | None) -> int | None:
    """The salon a call belongs to: by Retell agent id first, then by the called number (E.164)."""
    async with database.read() as session:
        for kind, value in (("agent", agent_id), ("number", to_number)):
            if value:
                found = await session.scalar(
                    select(TenantRouteRow.tenant_id).where(
                        TenantRouteRow.kind == kind, TenantRouteRow.value == value
                    )
                )
                if found is not None:
                    return int(found)
    return None


async def get_call(database: Database, retell_call_id: str) -> CallRecord | None:
    """The call with this Retell id, if we have seen it."""
    async with database.read() as session:
        row = await session.scalar(select(CallRow).where(CallRow.retell_call_id == retell_call_id))
        return _record(row) if row else None


def _record(row: CallRow) -> CallRecord:
    return CallRecord(row.retell_call_id, row.tenant_id, row.from_number, dict(row.memory or {}))


async def _get_or_add(session: AsyncSession, retell_call_id: str, at: datetime, **values: Any) -> CallRow:
    """The call's row, inserted first if missing (concurrent first requests of one call are fine)."""
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert
    await session.execute(
        insert(CallRow)
        .values(retell_call_id=retell_call_id, memory={}, created_at=at, status="inbound")
        .on_conflict_do_nothing(index_elements=["retell_call_id"])
    )
    row = (
        await session.scalars(
            select(CallRow)
            .where(CallRow.retell_call_id == retell_call_id)
            .execution_options(populate_existing=True)
        )
    ).one()
    for key, value in values.items():
        if value is not None and getattr(row, key) is None:
            setattr(row, key, value)
    await session.flush()
    return row


async def ensure_call(
    database: Database,
    retell_call_id: str,
    *,
    tenant_id: int | None,
    at: datetime,
    agent_id: str | None = None,
    from_number: str | None = None,
    to_number: str | None = None,
) -> CallRecord:
    """Record the call if new (fields already known are kept); return it."""
    async with database.write() as session, session.begin():
        row = await _get_or_add(
            session,
            retell_call_id,
            at,
            tenant_id=tenant_id,
            agent_id=agent_id,
            from_number=from_number,
            to_number=to_number,
        )
        return _record(row)


async def remember(database: Database, retell_call_id: str, facts: Mapping[str, Any]) -> None:
    """Merge `facts` into the call's memory (None values are ignored)."""
    async with database.write() as session, session.begin():
        await merge_memory(session, retell_call_id, facts)


async def merge_memory(session: AsyncSession, retell_call_id: str, facts: Mapping[str, Any]) -> None:
    """Merge `facts` into the call's memory inside the caller's transaction."""
    updates = {k: v for k, v in facts.items() if v is not None}
    if not updates:
        return
    row = await session.scalar(select(CallRow).where(CallRow.retell_call_id == retell_call_id))
    if row is not None:
        memory = {**(row.memory or {}), **updates}
        await session.execute(update(CallRow).where(CallRow.id == row.id).values(memory=memory))


async def record_event(
    database: Database,
    retell_call_id: str,
    *,
    event: str,
    tenant_id: int | None,
    at: datetime,
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
    from_number: str | None = None,
    to_number: str | None = None,
    agent_id: str | None = None,
    transcript: str | None = None,
    analysis: Mapping[str, Any] | None = None,
) -> bool:
    """Apply one call-event webhook; False when this event was already applied (a duplicate)."""
    async with database.write() as session, session.begin():
        row = await _get_or_add(
            session,
            retell_call_id,
            at,
            tenant_id=tenant_id,
            agent_id=agent_id,
            from_number=from_number,
            to_number=to_number,
        )
        memory = dict(row.memory or {})
        seen = list(memory.get("_events", []))
        if event in seen:
            return False
        seen.append(event)
        memory["_events"] = seen
        if analysis is not None:
            memory["analysis"] = dict(analysis)
        values: dict[str, Any] = {"memory": memory}
        if started_at is not None:
            values["started_at"] = started_at
            values["status"] = "ongoing"
        if ended_at is not None:
            values["ended_at"] = ended_at
            values["status"] = "ended"
        if transcript is not None:
            values["transcript"] = transcript
        await session.execute(update(CallRow).where(CallRow.id == row.id).values(**values))
        return True


@dataclass(frozen=True)
class Trace:
    """One function call's arguments, reply and latency, for operators."""

    tenant_id: int
    retell_call_id: str
    function: str
    args: dict[str, Any]
    reply: dict[str, Any]
    latency_ms: int
    at: datetime


async def add_traces(database: Database, traces: list[Trace]) -> None:
    """Store a batch of traces in one transaction."""
    if not traces:
        return
    async with database.write() as session, session.begin():
        session.add_all(
            FunctionCallTraceRow(
                tenant_id=t.tenant_id,
                retell_call_id=t.retell_call_id,
                function=t.function,
                args=t.args,
                reply=t.reply,
                ok=bool(t.reply.get("ok")),
                reason=t.reply.get("reason"),
                latency_ms=t.latency_ms,
                at=t.at,
            )
            for t in traces
        )
