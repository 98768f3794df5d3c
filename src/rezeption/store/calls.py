"""Calls and their memory: which salon a call belongs to, and what the caller told us during it.

A call's memory is a small JSON document (name, service, phone, chosen date and time, the
appointments booked) so that a later function call that lacks the name still knows it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    String,
    and_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from rezeption.booking.ports import ERASED, CallRecord, Trace
from rezeption.store import direct
from rezeption.store.db import Database
from rezeption.store.tables import CallRow, FunctionCallTraceRow, TenantRouteRow, table

CALLS = table(CallRow)
ROUTES = table(TenantRouteRow)
TRACES = table(FunctionCallTraceRow)
RECORD_COLUMNS = (
    CALLS.c.retell_call_id,
    CALLS.c.tenant_id,
    CALLS.c.from_number,
    CALLS.c.memory,
    CALLS.c.agent_id,
    CALLS.c.to_number,
    CALLS.c.created_at,
    CALLS.c.ended_at,
)
GET_CALL = select(*RECORD_COLUMNS).where(CALLS.c.retell_call_id == bindparam("call_id"))
INSERT_TRACES = insert(TRACES)
_TRACED = (
    "tenant_id",
    "retell_call_id",
    "function",
    "idempotency_key",
    "args",
    "reply",
    "ok",
    "reason",
    "latency_ms",
    "at",
    "flags",
)
INSERT_TRACES_RELAXED = insert(TRACES).from_select(
    list(_TRACED), direct.relaxed_commit(select(*direct.placeholders(TRACES, _TRACED).values()))
)
"""PostgreSQL: traces committed without waiting for the disk (a trace lost in a crash of
PostgreSQL loses nothing a caller or the salon relies on; the next durable commit flushes it)."""


async def tenant_for(database: Database, *, agent_id: str | None, to_number: str | None) -> int | None:
    """The salon a call belongs to: by Retell agent id first, then by the called number (E.164)."""
    wanted = [(kind, value) for kind, value in (("agent", agent_id), ("number", to_number)) if value]
    if not wanted:
        return None
    query = (
        select(ROUTES.c.tenant_id)
        .where(or_(*((ROUTES.c.kind == kind) & (ROUTES.c.value == value) for kind, value in wanted)))
        .order_by(case((ROUTES.c.kind == "agent", 0), else_=1))
        .limit(1)
    )
    async with database.statement() as conn:
        found = await conn.scalar(query)
    return None if found is None else int(found)


class TenantRoutes:
    """`tenant_for` with a short per-process memory: routes change only when a salon file is loaded,
    and every call's first requests ask for the same agent and number. While the database is away,
    a route learned before is still answered (however old)."""

    def __init__(self, database: Database, ttl_seconds: float = 30.0) -> None:
        self.database = database
        self.ttl = ttl_seconds
        self._known: dict[tuple[str | None, str | None], tuple[float, int | None]] = {}

    async def tenant_for(self, *, agent_id: str | None, to_number: str | None) -> int | None:
        """The salon for this agent / called number (None when unknown; unknowns are not remembered)."""
        key = (agent_id, to_number)
        cached = self._known.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            tenant_id = await tenant_for(self.database, agent_id=agent_id, to_number=to_number)
        except Exception:
            if cached is None:
                raise
            return cached[1]  # the database is away: a route that was true a moment ago still is
        if tenant_id is not None:
            if len(self._known) > 10_000:
                self._known.clear()
            self._known[key] = (time.monotonic() + self.ttl, tenant_id)
        return tenant_id


async def get_call(database: Database, retell_call_id: str) -> CallRecord | None:
    """The call with this Retell id, if we have seen it."""
    async with database.statement() as conn:
        row = await direct.first(conn, GET_CALL, {"call_id": retell_call_id})
    return record(row) if row else None


def record(row: Any) -> CallRecord:
    """A call's row (RECORD_COLUMNS) as a CallRecord."""
    return CallRecord(
        row.retell_call_id,
        row.tenant_id,
        row.from_number,
        dict(row.memory or {}),
        row.agent_id,
        row.to_number,
        row.created_at,
        row.ended_at,
    )


KNOWN_FIELDS = ("tenant_id", "agent_id", "from_number", "to_number")


@cache
def _upsert_statement(dialect: str) -> Any:
    """INSERT ... ON CONFLICT DO UPDATE filling only what is still missing, built once per backend
    (a statement built per request spent more CPU on its cache key than the database on the row)."""
    columns = ("retell_call_id", "memory", "created_at", "status", *KNOWN_FIELDS)
    statement = (sqlite_insert if dialect == "sqlite" else pg_insert)(CALLS).values(
        direct.placeholders(CALLS, columns)
    )
    fill = {name: func.coalesce(CALLS.c[name], statement.excluded[name]) for name in KNOWN_FIELDS}
    return statement.on_conflict_do_update(index_elements=["retell_call_id"], set_=fill).returning(
        *RECORD_COLUMNS
    )


async def upsert_call(conn: AsyncConnection, retell_call_id: str, at: datetime, **known: Any) -> CallRecord:
    """The call's row, inserted first if missing; fields already stored are kept, missing ones filled.

    One INSERT ... ON CONFLICT DO UPDATE: on PostgreSQL it also locks the row until the transaction
    ends, so two deliveries of one event for one call are applied one after the other.
    """
    values = {"retell_call_id": retell_call_id, "memory": {}, "created_at": at, "status": "inbound"}
    values.update({name: known.get(name) for name in KNOWN_FIELDS})
    row = await direct.first(conn, _upsert_statement(conn.dialect.name), values)
    assert row is not None  # an upsert returns its row
    return record(row)


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
    async with database.statement(writes=True) as conn:
        return await upsert_call(
            conn,
            retell_call_id,
            at,
            tenant_id=tenant_id,
            agent_id=agent_id,
            from_number=from_number,
            to_number=to_number,
        )


async def remember(database: Database, retell_call_id: str, facts: Mapping[str, Any]) -> None:
    """Merge `facts` into the call's memory (None values are ignored). On PostgreSQL the merge
    commits without waiting for the disk, as the memory stored with a write's reply does: a crash
    of PostgreSQL itself may lose its last moment (the caller is asked again), and the read that
    learned it no longer waits for a disk flush before it answers."""
    step = memory_merge(database.engine.dialect.name, retell_call_id, facts)
    if step is None:
        return
    async with database.statement(writes=True) as conn:
        if database.is_sqlite:
            await conn.execute(step.statement, step.values)
        else:
            await direct.rows(conn, _MERGE_RELAXED, step.values)


@cache
def _merge_statement(dialect: str) -> Any:
    """UPDATE calls SET memory = <stored memory with :facts laid over it>, merged by the database
    itself, so two concurrent merges into one call never lose each other's facts. Top-level keys
    replace; the facts we keep are flat values and lists, where both backends' merges agree."""
    merged: ColumnElement[Any]
    if dialect == "sqlite":
        merged = func.json_patch(func.coalesce(CALLS.c.memory, "{}"), bindparam("facts", type_=String))
    else:
        merged = CALLS.c.memory.op("||")(bindparam("facts", type_=JSONB))
    return update(CALLS).where(CALLS.c.retell_call_id == bindparam("merge_call_id")).values(memory=merged)


_MERGE_RELAXED = direct.relaxed_commit(_merge_statement("postgresql"))


@dataclass(frozen=True)
class Step:
    """A prepared statement with its values, for a caller that runs it inside its own statement."""

    statement: Any
    values: dict[str, Any]


def memory_merge(dialect: str, retell_call_id: str, facts: Mapping[str, Any]) -> Step | None:
    """The UPDATE that merges `facts` into the call's memory (None when there is nothing to merge)."""
    updates = {k: v for k, v in facts.items() if v is not None}
    if not updates:
        return None
    value = json.dumps(updates, ensure_ascii=False) if dialect == "sqlite" else updates
    return Step(_merge_statement(dialect), {"merge_call_id": retell_call_id, "facts": value})


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
    agreeing: bool = False,
) -> bool:
    """Apply one call-event webhook; False when this event was already applied (a duplicate) or
    someone was erased from the call (`ERASED`: nothing is written).

    PostgreSQL: one statement (`_event_statement`), committed on its own. SQLite: the call's row
    upserted and updated in one transaction under the single writer.

    `agreeing`: only if a call stored under this id agrees with the event (its salon is
    `tenant_id`, the agent id and called number given equal what it recorded, the caller's number is
    the one it came from; `booking.calls.Calls.agrees`), checked by the same statement; False
    also when it does not, or cannot be checked so (SQLite): the caller then reads and decides."""
    told: dict[str, Any] = {"_events": [event]}
    if analysis is not None:
        told["analysis"] = dict(analysis)
    known = {"tenant_id": tenant_id, "agent_id": agent_id, "from_number": from_number, "to_number": to_number}
    if agreeing and database.autocommit is None:
        return False
    if database.autocommit is not None:
        values = {
            "retell_call_id": retell_call_id,
            "memory": told,
            "created_at": at,
            "status": _status_after(started_at, ended_at, ended_before=None) or "inbound",
            "started_at": started_at,
            "ended_at": ended_at,
            "transcript": transcript,
            **known,
        }
        async with database.statement(writes=True) as conn:
            return await direct.scalar(conn, _event_statement(agreeing), values) is not None
    async with database.transaction() as conn:
        before = await direct.first(conn, GET_CALL, {"call_id": retell_call_id})
        if before is not None and ERASED in (before.memory or {}):
            return False
        call = await upsert_call(conn, retell_call_id, at, **known)
        memory = dict(call.memory)
        seen = list(memory.get("_events", []))
        if event in seen:
            return False
        memory.update(told, _events=[*seen, event])
        changes: dict[str, Any] = {"memory": memory}
        for name, value in (("started_at", started_at), ("ended_at", ended_at), ("transcript", transcript)):
            if value is not None:
                changes[name] = value
        status = _status_after(started_at, ended_at, ended_before=call.ended_at)
        if status is not None:
            changes["status"] = status
        await conn.execute(update(CALLS).where(CALLS.c.retell_call_id == retell_call_id).values(**changes))
        return True


async def end_call(database: Database, retell_call_id: str, *, ended_at: datetime) -> bool:
    """Mark a call ended at `ended_at` unless it already is (its end is not moved), writing nothing
    else: for a call someone was erased from, whose later events bring nothing back. False when
    there is no such call or it had ended."""
    statement = (
        update(CALLS)
        .where(CALLS.c.retell_call_id == retell_call_id, CALLS.c.ended_at.is_(None))
        .values(ended_at=ended_at, status="ended")
    )
    async with database.statement(writes=True) as conn:
        return bool((await conn.execute(statement)).rowcount)


def _status_after(
    started_at: datetime | None, ended_at: datetime | None, *, ended_before: datetime | None
) -> str | None:
    """A call's status after an event with these times (None: the event leaves it as it is). A late
    call_started (Retell delivers it again after our 503) does not reopen an ended call.
    `_event_statement` states the same rule in SQL for a call already stored."""
    if started_at is None and ended_at is None:
        return None
    return "ended" if ended_at is not None or ended_before is not None else "ongoing"


@cache
def _event_statement(agreeing: bool = False) -> Any:
    """PostgreSQL: a call event applied in one INSERT ... ON CONFLICT DO UPDATE ... WHERE the event
    is not among the call's `_events` yet, RETURNING the call's id (nothing for a duplicate, an
    erased call or, `agreeing`, one that does not agree).

    A new call is inserted with the event's fields; a known one keeps the fields it has, gains the
    missing ones, the event's times, transcript and status, and the event's facts laid over its
    memory, merged by the database. Two deliveries of one event: the second waits for the first's
    row lock, sees the event in the new row, and changes nothing. Before, this was a transaction of
    four round trips (BEGIN, upsert, UPDATE, COMMIT) at every call's start and end."""
    columns = (
        "retell_call_id", "memory", "created_at", "status", "started_at", "ended_at", "transcript",
        *KNOWN_FIELDS,
    )  # fmt: skip
    statement = pg_insert(CALLS).values(direct.placeholders(CALLS, columns))
    new = statement.excluded
    stored_memory = type_coerce(CALLS.c.memory, JSONB)
    told = type_coerce(new.memory, JSONB)
    seen = func.coalesce(stored_memory.op("->", return_type=JSONB)("_events"), func.jsonb_build_array())
    told_events = told.op("->", return_type=JSONB)("_events")
    memory = stored_memory.op("||", return_type=JSONB)(told.op("-", return_type=JSONB)("_events")).op(
        "||", return_type=JSONB
    )(func.jsonb_build_object("_events", seen.op("||", return_type=JSONB)(told_events)))
    fill = {name: func.coalesce(CALLS.c[name], new[name]) for name in KNOWN_FIELDS}
    latest = {
        name: func.coalesce(new[name], CALLS.c[name]) for name in ("started_at", "ended_at", "transcript")
    }
    status = case(  # `_status_after`, for the stored call
        (func.coalesce(new.ended_at, CALLS.c.ended_at).is_not(None), "ended"),
        (new.started_at.is_not(None), "ongoing"),
        else_=CALLS.c.status,
    )
    applies = ~seen.op("@>", return_type=Boolean)(told_events) & ~stored_memory.has_key(ERASED)
    if agreeing:  # `Calls.agrees` for the stored call, its routes checked before (`record_if_agrees`)
        same = [
            or_(new[name].is_(None), CALLS.c[name].is_(None), CALLS.c[name] == new[name])
            for name in ("agent_id", "to_number")
        ]
        caller = CALLS.c.from_number.is_not_distinct_from(new.from_number)
        applies &= or_(CALLS.c.tenant_id.is_(None), and_(CALLS.c.tenant_id == new.tenant_id, *same, caller))
    return statement.on_conflict_do_update(
        index_elements=["retell_call_id"],
        set_={**fill, **latest, "status": status, "memory": memory},
        where=applies,
    ).returning(CALLS.c.retell_call_id)


async def add_traces(database: Database, traces: list[Trace]) -> None:
    """Store a batch of traces in one statement."""
    if not traces:
        return
    rows = [
        {
            "tenant_id": t.tenant_id,
            "retell_call_id": t.retell_call_id,
            "function": t.function,
            "idempotency_key": None,
            "args": t.args,
            "reply": t.reply,
            "ok": bool(t.reply.get("ok")),
            "reason": t.reply.get("reason"),
            "latency_ms": t.latency_ms,
            "at": t.at,
            "flags": t.flags,
        }
        for t in traces
    ]
    async with database.statement(writes=True) as conn:
        relaxed = conn.dialect.name == "postgresql"
        await conn.execute(INSERT_TRACES_RELAXED if relaxed else INSERT_TRACES, rows)
