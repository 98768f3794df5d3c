"""The `CallStore` port on our database: calls and their events (`store.calls`), the signatures
seen (`store.replays`) and a call's ring-in in one statement (`store.ring_in`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rezeption.booking.ports import CallRecord, RingIn, Trace
from rezeption.store.calls import (
    TenantRoutes,
    add_traces,
    end_call,
    ensure_call,
    get_call,
    record_event,
    remember,
)
from rezeption.store.db import Database
from rezeption.store.replays import call_at_first_sight
from rezeption.store.ring_in import ring_in


class SqlCallStore:
    """The `CallStore` port on our database (`booking.calls.Calls` is its service)."""

    def __init__(self, database: Database, routes: TenantRoutes) -> None:
        self.database = database
        self.routes = routes

    async def get_call(self, call_id: str) -> CallRecord | None:
        """The call with this Retell id, if we have seen it."""
        return await get_call(self.database, call_id)

    async def ensure_call(
        self,
        call_id: str,
        *,
        tenant_id: int,
        at: datetime,
        agent_id: str | None = None,
        from_number: str | None = None,
        to_number: str | None = None,
    ) -> CallRecord:
        """The call, recorded now if it was not."""
        return await ensure_call(
            self.database,
            call_id,
            tenant_id=tenant_id,
            at=at,
            agent_id=agent_id,
            from_number=from_number,
            to_number=to_number,
        )

    async def tenant_for(self, *, agent_id: str | None, to_number: str | None) -> int | None:
        """The salon of an agent id or called number (cached a few seconds)."""
        return await self.routes.tenant_for(agent_id=agent_id, to_number=to_number)

    async def remember(self, call_id: str, facts: Mapping[str, Any]) -> None:
        """Merge facts into the call's memory."""
        await remember(self.database, call_id, facts)

    async def record_event(self, call_id: str, **event: Any) -> None:
        """Apply one call event once."""
        await record_event(self.database, call_id, **event)

    async def record_agreeing_event(self, call_id: str, **event: Any) -> bool:
        """Apply one call event once, only if a stored call agrees with it (checked in the same
        statement on PostgreSQL); False when it was not applied (or cannot be checked so)."""
        return await record_event(self.database, call_id, agreeing=True, **event)

    async def end_call(self, call_id: str, *, ended_at: datetime) -> bool:
        """Mark the call ended, writing nothing else, unless it already ended."""
        return await end_call(self.database, call_id, ended_at=ended_at)

    async def add_traces(self, traces: Sequence[Trace]) -> None:
        """Store a batch of traces in one statement."""
        await add_traces(self.database, list(traces))

    async def call_at_first_sight(
        self, call_id: str, digest: str, *, now: datetime
    ) -> tuple[CallRecord | None, bool]:
        """The call and its request's first sight, in one statement (`replays`)."""
        return await call_at_first_sight(self.database, call_id, digest, now=now)

    async def ring_in(
        self,
        call_id: str | None,
        *,
        digest: str,
        now: datetime,
        tenant_id: int,
        agent_id: str | None,
        from_number: str | None,
        to_number: str | None,
        phone: str | None,
    ) -> RingIn:
        """call_inbound's three steps in one statement (`store.ring_in`)."""
        return await ring_in(
            self.database,
            digest=digest,
            now=now,
            retell_call_id=call_id,
            tenant_id=tenant_id,
            agent_id=agent_id,
            from_number=from_number,
            to_number=to_number,
            phone=phone,
        )
