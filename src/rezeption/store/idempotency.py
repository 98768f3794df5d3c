"""Idempotency records, like Stripe's keys: the first request with a key does the work and stores
its reply; a retry or a concurrent duplicate waits for that reply and gets it byte for byte.

A record is `running` while its owner works and `done` with the reply afterwards. The owner holds
a short lease (`LEASE`, 3 s) and renews it while it works (`holding`), so the key of a process that
died (SIGKILL, OOM) is free again within seconds, and Retell's retry takes it over and gets the real
outcome inside its time budget: the use cases behind it are idempotent by the same key, so the
retry resumes the write instead of doing it twice. Replies are kept for `RETENTION` (>= 24 h).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import structlog
from sqlalchemy import String, bindparam, delete, exists, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from rezeption.booking.ports import CallRecord, Claim
from rezeption.domain.clock import Clock
from rezeption.store import direct
from rezeption.store.calls import CALLS, GET_CALL, RECORD_COLUMNS, ensure_call, get_call, memory_merge, record
from rezeption.store.db import Database
from rezeption.store.reply_batches import ReplyBatches
from rezeption.store.tables import IdempotencyRecordRow, table

RECORDS = table(IdempotencyRecordRow)
log = structlog.get_logger("rezeption.idempotency")
# Built once: a statement built per request spends more CPU on its cache key than PostgreSQL on it.
READ_RECORD = select(RECORDS.c.state, RECORDS.c.reply).where(RECORDS.c.key == bindparam("k"))
TAKE_OVER = (
    update(RECORDS)
    .where(RECORDS.c.key == bindparam("k"), RECORDS.c.locked_until < bindparam("now"))
    .values(locked_until=bindparam("until"))
)
FINISH = update(RECORDS).where(RECORDS.c.key == bindparam("k")).values(state="done", reply=bindparam("reply"))


FINISH_RELAXED = direct.relaxed_commit(FINISH)
"""PostgreSQL: FINISH without waiting for the disk. A reply lost in a crash of PostgreSQL leaves
the key running: the retry takes it over when the lease ends and the use case replays its result
by the same key (the booking, cancel or move itself was committed durably before)."""


@cache
def _finish_with(statement: Any) -> Any:
    """FINISH_RELAXED with `statement` (the call's memory) as a data-modifying CTE (PostgreSQL),
    built once per statement: memory lost with the reply is asked again, nothing is wrong."""
    return FINISH_RELAXED.add_cte(statement.cte("also"))


_CLAIMED = (
    "key",
    "call_id",
    "tenant_id",
    "scope",
    "state",
    "reply",
    "locked_until",
    "created_at",
    "expires_at",
)
CLAIM = direct.insert_once(RECORDS, _CLAIMED, RECORDS.c.key)

_OPENED = ("retell_call_id", "tenant_id", "agent_id", "from_number", "to_number", "memory", "created_at")


@cache
def _call_and_claim() -> Any:
    """PostgreSQL: the call (found, or opened when `open_tenant` is set and it is new) and, when it
    belongs to salon `tenant_id`, the claim of `key`, in one statement: a write's first round trip.

    No row: the call is unknown and was not opened (no salon for it, or another request opened it
    a moment ago). `claimed` is true only for a key this statement inserted. Nothing is claimed
    when the found call's memory holds `unless_remembered` (the request's own key depends on it)."""
    found = GET_CALL.cte("found")
    opening = direct.placeholders(CALLS, _OPENED)
    opening["retell_call_id"] = bindparam("call_id", type_=CALLS.c.retell_call_id.type)
    opening["tenant_id"] = bindparam("open_tenant", type_=CALLS.c.tenant_id.type)
    opened = (
        pg_insert(CALLS)
        .from_select(
            [*_OPENED, "status"],
            select(*opening.values(), literal("inbound")).where(
                opening["tenant_id"].is_not(None), ~exists(select(found.c.retell_call_id))
            ),
        )
        .on_conflict_do_nothing(index_elements=["retell_call_id"])
        .returning(*RECORD_COLUMNS)
        .cte("opened")
    )
    call = select(found).union_all(select(opened)).cte("call")
    claim = direct.placeholders(RECORDS, _CLAIMED)
    claimed = (
        pg_insert(RECORDS)
        .from_select(
            list(_CLAIMED),
            select(*claim.values()).where(
                exists(
                    select(call.c.tenant_id).where(
                        call.c.tenant_id == claim["tenant_id"],
                        call.c.memory.op("->")(bindparam("unless_remembered", type_=String)).is_(None),
                    )
                )
            ),
        )
        .on_conflict_do_nothing()
        .returning(RECORDS.c.key)
        .cte("claimed")
    )
    # committed without waiting for the disk: lost in a crash of PostgreSQL, the call is opened and
    # the key claimed again by the retry; the durable write that follows flushes both
    return direct.relaxed_commit(select(call, exists(select(claimed.c.key)).label("claimed")))


RETENTION = timedelta(hours=48)
LEASE = timedelta(seconds=3)
RENEW_EVERY = 1.0  # seconds between lease renewals while the owner works
RENEW = (
    update(RECORDS)
    .where(RECORDS.c.key.in_(bindparam("keys", expanding=True)), RECORDS.c.state == "running")
    .values(locked_until=bindparam("until"))
)
"""The leases of every key this process holds, renewed in one statement."""


class IdempotencyStore:
    """Records in the database, so every replica and worker sees the same keys."""

    def __init__(self, database: Database, clock: Clock) -> None:
        self.database = database
        self.clock = clock
        self.batches = ReplyBatches(database)
        self._held: Counter[str] = Counter()  # keys whose owners in this process work (`holding`)
        self._renewer: asyncio.Task[None] | None = None

    def _claim_values(
        self,
        key: str,
        *,
        scope: str,
        tenant_id: int | None,
        call_id: str | None,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """A new record of `key`: running, leased to its owner for `LEASE`."""
        now = now or self.clock.now()
        return {
            "key": key,
            "call_id": call_id,
            "tenant_id": tenant_id,
            "scope": scope,
            "state": "running",
            "reply": None,
            "locked_until": now + LEASE,
            "created_at": now,
            "expires_at": now + RETENTION,
        }

    async def claim(
        self, key: str, *, scope: str, tenant_id: int | None, call_id: str | None = None
    ) -> Claim:
        """Own `key` if nobody has it (or its owner's lease ran out); else report its state.

        `call_id` is the call the reply belongs to: erasing a customer erases their calls' replies."""
        now = self.clock.now()
        values = self._claim_values(key, scope=scope, tenant_id=tenant_id, call_id=call_id, now=now)
        # Each statement is atomic on its own (autocommit on PostgreSQL, one write transaction on
        # SQLite): the insert claims, the conditional update takes over only an expired lease.
        async with self.database.statement(writes=True) as conn:
            inserted = await direct.scalar(conn, CLAIM[conn.dialect.name], values)
            if inserted is not None:
                return Claim(owned=True)
            row = (await conn.execute(READ_RECORD, {"k": key})).first()
            if row is None:  # purged between the two statements: try again later
                return Claim(owned=False)
            if row.state == "done":
                return Claim(owned=False, reply=dict(row.reply or {}))
            taken = await conn.execute(TAKE_OVER, {"k": key, "now": now, "until": now + LEASE})
            return Claim(owned=taken.rowcount == 1)

    async def claim_in_call(
        self,
        key: str | None,
        *,
        scope: str,
        call_id: str,
        tenant_id: int | None,
        agent_id: str | None,
        from_number: str | None,
        to_number: str | None,
        unless_remembered: str | None = None,
    ) -> tuple[CallRecord | None, bool]:
        """A function call's first step: the call (found, or opened for salon `tenant_id` when new)
        and, when it is that salon's call, the claim of `key`. Returns the call (None: unknown and
        not opened) and whether `key` is now ours. On PostgreSQL one round trip (`_call_and_claim`).
        No claim when the call's memory holds `unless_remembered`: the caller's key depends on what
        is remembered there (a request after a change in the call: `request_keys`), and a claim of
        `key` would only be given back.

        A key owned here is released by the caller if the request turns out not to name the call."""
        now = self.clock.now()
        if self.database.is_sqlite:
            call = await get_call(self.database, call_id)
            if call is None and tenant_id is not None:
                call = await ensure_call(
                    self.database,
                    call_id,
                    tenant_id=tenant_id,
                    at=now,
                    agent_id=agent_id,
                    from_number=from_number,
                    to_number=to_number,
                )
            if call is None or key is None or tenant_id is None or call.tenant_id != tenant_id:
                return call, False
            if unless_remembered is not None and unless_remembered in call.memory:
                return call, False
            return call, (await self.claim(key, scope=scope, tenant_id=tenant_id, call_id=call_id)).owned
        values = self._claim_values(
            key or "", scope=scope, tenant_id=tenant_id if key else None, call_id=call_id
        )
        values.update(
            open_tenant=tenant_id,
            agent_id=agent_id,
            from_number=from_number,
            to_number=to_number,
            memory={},
            unless_remembered=unless_remembered,
        )
        async with self.database.statement(writes=True) as conn:
            row = await direct.first(conn, _call_and_claim(), values)
        return (None, False) if row is None else (record(row), bool(row.claimed))

    async def finish(
        self,
        key: str,
        reply: dict[str, Any],
        *,
        call_id: str | None = None,
        learned: Mapping[str, Any] | None = None,
    ) -> None:
        """Store the reply, and merge `learned` into call `call_id`'s memory atomically with it;
        later claims get the reply. On PostgreSQL both go in one statement (the memory UPDATE as a
        data-modifying CTE), so it costs one round trip and one commit."""
        also = memory_merge(self.database.engine.dialect.name, call_id, learned or {}) if call_id else None
        if also is None:
            async with self.database.statement(writes=True) as conn:
                relaxed = conn.dialect.name == "postgresql"
                await direct.rows(conn, FINISH_RELAXED if relaxed else FINISH, {"k": key, "reply": reply})
            return
        values = {**also.values, "k": key, "reply": reply}
        if self.database.is_sqlite:
            async with self.database.transaction() as conn:
                await conn.execute(also.statement, also.values)
                await conn.execute(FINISH, {"k": key, "reply": reply})
            return
        async with self.database.statement(writes=True) as conn:
            await direct.rows(conn, _finish_with(also.statement), values)

    async def finish_soon(
        self,
        key: str,
        reply: dict[str, Any],
        *,
        call_id: str | None = None,
        learned: Mapping[str, Any] | None = None,
    ) -> None:
        """`finish` in the next batch on PostgreSQL (`reply_batches`: one statement for the
        replies of 50 ms instead of one per request); at once on SQLite, whose single writer takes
        a batch's turn as long as one reply's."""
        if self.database.is_sqlite:
            await self.finish(key, reply, call_id=call_id, learned=learned)
            return
        await self.batches.add(key, reply, call_id=call_id, learned=learned)

    async def finish_now(
        self,
        key: str,
        reply: dict[str, Any],
        *,
        call_id: str,
        learned: Mapping[str, Any] | None = None,
        patience: float,
    ) -> None:
        """On PostgreSQL the reply stored in this request by the batch's own guarded statement
        (`ReplyBatches.store_now`); on SQLite as `finish_soon`, which stores at once there."""
        if self.database.is_sqlite:
            await self.finish_soon(key, reply, call_id=call_id, learned=learned)
            return
        await self.batches.store_now(key, reply, call_id=call_id, learned=learned, patience=patience)

    async def settle(self, call_id: str) -> None:
        """Store the batch now when it holds a reply of call `call_id`."""
        await self.batches.settle(call_id)

    async def close(self) -> None:
        """Store the replies still waiting for their batch; stop renewing leases."""
        renewer, self._renewer = self._renewer, None
        if renewer is not None and renewer.get_loop() is asyncio.get_running_loop():
            renewer.cancel()  # one of another loop ends with its loop
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        await self.batches.close()

    @asynccontextmanager
    async def holding(self, key: str) -> AsyncIterator[None]:
        """Keep renewing the lease on `key` while the block runs (the owner is alive and working).

        One task per process renews every key held here, every `RENEW_EVERY`, in one statement:
        a task of its own per write (created, then cancelled after a few milliseconds, never
        having run) cost a booking 2.7 % of its server CPU. A key's first renewal comes within
        `RENEW_EVERY` of the claim, well inside its `LEASE`, as before."""
        self._held[key] += 1
        renewer = self._renewer
        if renewer is None or renewer.done() or renewer.get_loop() is not asyncio.get_running_loop():
            # the first, or one for this loop; in a context of its own, not the first request's
            self._renewer = asyncio.create_task(self._renew_held(), context=contextvars.Context())
        try:
            yield
        finally:
            self._held[key] -= 1
            if self._held[key] <= 0:
                del self._held[key]

    async def _renew_held(self) -> None:
        """Renew the leases of the keys held in this process at a steady RENEW_EVERY (a slow
        renewal does not push the next one back); a tick with no key held writes nothing."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due = max(due + RENEW_EVERY, loop.time())
            await asyncio.sleep(due - loop.time())
            if not self._held:
                continue
            keys = list(self._held)
            try:
                async with self.database.statement(writes=True) as conn:
                    await conn.execute(RENEW, {"keys": keys, "until": self.clock.now() + LEASE})
            except Exception as error:  # a missed renewal only shortens the leases
                log.warning("idempotency.renew_failed", error=type(error).__name__, keys=len(keys))

    async def release(self, key: str) -> None:
        """Give up the key without a reply (the work failed before any effect, or must be retried)."""
        async with self.database.statement(writes=True) as conn:
            await conn.execute(delete(RECORDS).where(RECORDS.c.key == key, RECORDS.c.state == "running"))

    async def wait(
        self,
        key: str,
        *,
        scope: str,
        tenant_id: int | None,
        call_id: str | None = None,
        patience: float = 15.0,
    ) -> Claim:
        """Poll until the owner stores its reply, or until the key is ours to take over."""
        delay, waited = 0.02, 0.0
        while True:
            if call_id is not None:  # an owner in this process may have queued the reply
                await self.settle(call_id)
            claim = await self.claim(key, scope=scope, tenant_id=tenant_id, call_id=call_id)
            if claim.owned or claim.reply is not None or waited >= patience:
                return claim
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 0.25)

    async def purge(self, now: datetime | None = None) -> int:
        """Delete records past their retention; return how many."""
        cutoff = now or self.clock.now()
        async with self.database.write() as session, session.begin():
            result = await session.execute(
                delete(IdempotencyRecordRow).where(IdempotencyRecordRow.expires_at < cutoff)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    async def count(self) -> int:
        """How many records exist (operators, tests)."""
        async with self.database.read() as session:
            return len((await session.scalars(select(IdempotencyRecordRow.key))).all())
