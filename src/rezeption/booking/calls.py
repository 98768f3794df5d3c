"""The calls the receptionist takes: which salon a call belongs to, whether a request really names
it, what the caller told us during it (call memory), the replies of writes already made
(idempotency) and the function-call traces.

One service for both ways a call reaches us: the HTTP functions Retell calls (`retell.functions`)
and our own dialog engine behind the custom-LLM socket (`retell.llm_socket`). The SQL lives in
`store` behind the `CallStore` and `ReplyStore` ports (`booking.ports`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rezeption.booking.ports import CallRecord, CallStore, ReplyStore, RingIn, Trace


class Calls:
    """Calls, their memory, idempotent replies and traces."""

    def __init__(self, store: CallStore, replies: ReplyStore) -> None:
        self.store = store
        self.replies = replies

    async def get(self, call_id: str) -> CallRecord | None:
        """The call with this Retell id, if we have seen it."""
        return await self.store.get_call(call_id)

    async def get_at_first_sight(
        self, call_id: str, digest: str, *, now: datetime
    ) -> tuple[CallRecord | None, bool]:
        """The call (None: unknown) and whether the signed request `digest` is new (False: this
        exact request came before), recorded with the read where the store can."""
        return await self.store.call_at_first_sight(call_id, digest, now=now)

    async def open(
        self,
        call_id: str,
        *,
        tenant_id: int,
        at: datetime,
        agent_id: str | None = None,
        from_number: str | None = None,
        to_number: str | None = None,
    ) -> CallRecord:
        """The call, recorded now if it was not (call_inbound, or a first function call)."""
        return await self.store.ensure_call(
            call_id,
            tenant_id=tenant_id,
            at=at,
            agent_id=agent_id,
            from_number=from_number,
            to_number=to_number,
        )

    async def tenant_for(self, *, agent_id: str | None, to_number: str | None) -> int | None:
        """The salon an agent id or a called number belongs to."""
        return await self.store.tenant_for(agent_id=agent_id, to_number=to_number)

    async def agrees(
        self,
        call: CallRecord,
        *,
        agent_id: str | None,
        to_number: str | None,
        from_number: str | None,
        check_caller: bool = True,
    ) -> bool:
        """Whether a request names the call we stored, not another salon's: the agent id and the
        called number it gives equal what the call recorded, lead to no other salon, and at least one
        leads to the call's salon; and (`check_caller`) the caller's number is the one the call came
        from."""
        for value, stored in ((agent_id, call.agent_id), (to_number, call.to_number)):
            if value and stored is not None and value != stored:
                return False
        routed = await self._routes(agent_id, to_number)
        if any(r is not None and r != call.tenant_id for r in routed):
            return False
        return call.tenant_id in routed and (not check_caller or from_number == call.from_number)

    async def leads_elsewhere(self, tenant_id: int, *, agent_id: str | None, to_number: str | None) -> bool:
        """Whether the agent id or the called number leads to another salon than `tenant_id` (an
        envelope mixing two salons' agent and number)."""
        return any(r is not None and r != tenant_id for r in await self._routes(agent_id, to_number))

    async def _routes(self, agent_id: str | None, to_number: str | None) -> list[int | None]:
        """The salon each given value leads to on its own (the agent id, the called number)."""
        routed = []
        if agent_id:
            routed.append(await self.tenant_for(agent_id=agent_id, to_number=None))
        if to_number:
            routed.append(await self.tenant_for(agent_id=None, to_number=to_number))
        return routed

    async def remember(self, call_id: str, facts: Mapping[str, Any]) -> None:
        """Merge what the caller told us into the call's memory."""
        await self.store.remember(call_id, facts)

    async def record_event(self, call_id: str, **event: Any) -> None:
        """Apply a call event (call_started, call_ended, call_analyzed) once."""
        await self.store.record_event(call_id, **event)

    async def record_if_agrees(
        self,
        call_id: str,
        *,
        tenant_id: int,
        agent_id: str | None,
        to_number: str | None,
        from_number: str | None,
        **event: Any,
    ) -> bool:
        """Apply a call event in one step when the call stored under `call_id` (if any) agrees with
        the envelope as `agrees` would say: the routes here, the stored fields by the store in the
        same statement. False when it was not applied (a duplicate, an erased call, one that does
        not agree, a store that cannot check so): then read the call and decide (`get`, `agrees`)."""
        routed = await self._routes(agent_id, to_number)
        if tenant_id not in routed or any(r is not None and r != tenant_id for r in routed):
            return False
        return await self.store.record_agreeing_event(
            call_id,
            tenant_id=tenant_id,
            agent_id=agent_id or None,
            to_number=to_number or None,
            from_number=from_number,
            **event,
        )

    async def end_erased(self, call_id: str, *, ended_at: datetime) -> bool:
        """End a call someone was erased from (its events write nothing else), unless it ended."""
        return await self.store.end_call(call_id, ended_at=ended_at)

    async def add_traces(self, traces: Sequence[Trace]) -> None:
        """Store function-call traces."""
        await self.store.add_traces(traces)

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
        """A call's ring-in: its signature's first sight, the call opened, the customers at `phone`
        (one round trip where the store can; `CallStore.ring_in`)."""
        return await self.store.ring_in(
            call_id,
            digest=digest,
            now=now,
            tenant_id=tenant_id,
            agent_id=agent_id,
            from_number=from_number,
            to_number=to_number,
            phone=phone,
        )
