"""Replies of writes, stored a moment after they are sent, many in one statement (PostgreSQL).

A write's reply (and what the call taught us) used to cost the function call its own statement
after the work: a pool checkout, a round trip and a commit, in the request's path, for a record
that only a retry or a concurrent duplicate ever reads. Here the replies of one process are queued
and stored every `INTERVAL` (50 ms) in one UPDATE of the idempotency records, with the call memory
merged in the same statement, committed without waiting for the disk, as the single reply was.

Why a reply may wait, and what a reader sees meanwhile:
- The key stays `running` under its owner's lease (3 s from the last renewal), so a concurrent
  duplicate waits for the reply as before (`IdempotencyStore.wait` polls; one in this process
  stores the batch first), and gets it byte for byte.
- A reply lost before it is stored (our process killed within the interval, or the database
  refusing the batch and then each reply alone) is a reply lost in a crash: a retry, when one
  comes, takes the key over when the lease runs out, and the use case replays its result by the
  same key (the booking, cancel or move itself was committed before). What the call learned with
  it is lost with it: the call's memory lacks it (the caller is asked again).
- Memory: a later function call of the same call *in this process* first stores what is queued
  for that call (`settle`, waiting at most `SETTLE_PATIENCE`), so it reads its own memory and no
  older fact is laid over a newer one. In another process (several workers behind a balancer) it
  may read the memory one interval old; a voice agent's next function call comes after the caller
  has heard this reply, seconds later.
- A batch stores memory only for the calls whose records it stored: a batch retried after its
  commit went through, or one that comes after an erasure deleted the call's records, does not
  lay its facts over the memory again.

A store runs in a task of its own: a request that waits for it (`settle`) and runs out of time
does not cancel it. A full queue (`LIMIT`) or a closed one stores the reply at once, in the request,
as a batch of one (the same statement, so the same guard: only a record still running).
Written here because no library batches writes into one asyncpg statement by key.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import structlog
from sqlalchemy import String, any_, bindparam, func, literal, select, update
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from rezeption.budget import within
from rezeption.store import direct
from rezeption.store.calls import CALLS
from rezeption.store.db import Database
from rezeption.store.tables import IdempotencyRecordRow, table

RECORDS = table(IdempotencyRecordRow)
INTERVAL = 0.05  # seconds a reply may wait for its batch
LIMIT = 2_000  # queued replies; beyond, a reply is stored in its request
ATTEMPTS = 3  # a batch the database refused is tried again this many times in all, then each alone
SETTLE_PATIENCE = 0.5  # seconds a request waits for its call's batch before it goes on without
log = structlog.get_logger("rezeption.idempotency")


def _nth(array: Any, items: Any, item: Any) -> Any:
    """The element of the JSON array `array` at `item`'s position in the SQL array `items`."""
    return array.op("->", return_type=JSONB)(func.array_position(items, item) - literal(1))


@cache
def store_replies() -> Any:
    """PostgreSQL: the replies `replies` (a JSON array) of the keys `keys`, on records still
    running, and the facts `facts` merged into the memories of the calls `call_ids` whose records
    it stored, in one statement committed without waiting for the disk (`direct.relaxed_commit`)."""
    keys = bindparam("keys", type_=ARRAY(String))
    call_ids = bindparam("call_ids", type_=ARRAY(String))
    facts = bindparam("facts", type_=JSONB)
    stored = (
        update(RECORDS)
        .where(RECORDS.c.key == any_(keys), RECORDS.c.state == "running")
        .values(state="done", reply=_nth(bindparam("replies", type_=JSONB), keys, RECORDS.c.key))
        .returning(RECORDS.c.call_id)
        .cte("stored")
    )
    merged = (
        update(CALLS)
        .where(CALLS.c.retell_call_id == any_(call_ids), CALLS.c.retell_call_id.in_(select(stored.c.call_id)))
        .values(memory=CALLS.c.memory.op("||")(_nth(facts, call_ids, CALLS.c.retell_call_id)))
        .add_cte(stored)
    )
    return direct.relaxed_commit(merged)


@dataclass(frozen=True)
class _Queued:
    key: str
    reply: dict[str, Any]
    call_id: str | None
    learned: dict[str, Any]


def _queued(
    key: str, reply: dict[str, Any], call_id: str | None, learned: Mapping[str, Any] | None
) -> _Queued:
    facts = {k: v for k, v in (learned or {}).items() if v is not None} if call_id else {}
    return _Queued(key, reply, call_id, facts)


class ReplyBatches:
    """One process's queue of replies to store, and the tasks that store them in batches."""

    def __init__(self, database: Database, interval: float = INTERVAL) -> None:
        self.database = database
        self.interval = interval
        self._queue: list[_Queued] = []
        self._calls: Counter[str] = Counter()  # calls with replies queued or being stored
        self._storing: asyncio.Task[None] | None = None  # the last store begun; each awaits the one before
        self._ticker: asyncio.Task[None] | None = None
        self._closed = False

    def pending_for(self, call_id: str) -> bool:
        """Whether a reply of call `call_id` waits in the queue or is being stored."""
        return self._calls[call_id] > 0

    async def add(
        self, key: str, reply: dict[str, Any], *, call_id: str | None, learned: Mapping[str, Any] | None
    ) -> None:
        """Queue the reply of `key` (and `learned`, for call `call_id`'s memory)."""
        queued = _queued(key, reply, call_id, learned)
        if self._closed or len(self._queue) >= LIMIT:
            await self._store([queued])  # a batch of one, in the request, under the same guard
            return
        self._queue.append(queued)
        if call_id is not None:
            self._calls[call_id] += 1
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.create_task(self._tick())

    async def settle(self, call_id: str, patience: float = SETTLE_PATIENCE) -> None:
        """Store the queue now when a reply of call `call_id` is in it (or being stored), waiting
        at most `patience` seconds: the store goes on without the request after that."""
        if self.pending_for(call_id):
            await self.flush(patience)

    async def flush(self, patience: float | None = None) -> None:
        """Store everything queued now, after the store already running, and wait for it (at
        most `patience` seconds when given)."""
        if self._queue:
            self._storing = asyncio.create_task(self._store_after(self._storing))
        storing = self._storing
        if storing is None or storing.done():
            return
        if patience is None:
            await asyncio.shield(storing)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(storing), patience)

    async def close(self) -> None:
        """From now on store replies at once; store what is queued, then stop the ticker."""
        self._closed = True
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await self.flush()

    async def store_now(
        self,
        key: str,
        reply: dict[str, Any],
        *,
        call_id: str,
        learned: Mapping[str, Any] | None,
        patience: float,
    ) -> None:
        """The reply of `key` stored in this request, as a batch of one (the same statement and
        guard: only a record still running, memory only with it), unless a reply of call `call_id`
        is queued or being stored (it joins the queue: one call's replies are stored in order) or
        the store takes longer than `patience` seconds (it is queued too; a cancelled store that
        still commits and the queued copy: whichever lands second finds the record done)."""
        if self._closed or self.pending_for(call_id):
            await self.add(key, reply, call_id=call_id, learned=learned)
            return
        try:
            await within(patience, self._store([_queued(key, reply, call_id, learned)]))
            return
        except Exception as error:  # refused, or slow: a late commit finds the record done
            log.warning("idempotency.reply_not_stored_now", error=type(error).__name__)
        await self.add(key, reply, call_id=call_id, learned=learned)

    async def _tick(self) -> None:
        """Store a batch every interval while replies come in; end when the queue is empty."""
        while self._queue:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def _store_after(self, before: asyncio.Task[None] | None) -> None:
        """The queue as it is when the store `before` has ended, stored."""
        if before is not None:
            await asyncio.wait([before])  # one store at a time, in the order they were begun
        batch, self._queue = self._queue, []
        try:
            await self._store_or_drop(batch)
        finally:
            self._calls.subtract(queued.call_id for queued in batch if queued.call_id is not None)
            self._calls += Counter()  # drops the calls counted down to nothing

    async def _store_or_drop(self, batch: list[_Queued]) -> None:
        """`batch` stored, tried `ATTEMPTS` times, then each reply alone (one the database
        refuses costs only itself); what is still refused is dropped, with a log line."""
        for attempt in range(1, ATTEMPTS + 1):
            if not batch:
                return
            try:
                await self._store(batch)
                return
            except Exception as error:
                log.warning(
                    "idempotency.batch_failed", count=len(batch), attempt=attempt, error=type(error).__name__
                )
                await asyncio.sleep(self.interval)
        dropped = 0
        for queued in batch:
            try:
                await self._store([queued])
            except Exception:
                dropped += 1
        if dropped:  # their keys' leases run out; a retry, if one comes, replays by key
            log.warning("idempotency.replies_dropped", count=dropped)

    async def _store(self, batch: list[_Queued]) -> None:
        facts: dict[str, dict[str, Any]] = {}
        for queued in batch:  # in order: a later fact of one call replaces an earlier one
            if queued.call_id is not None and queued.learned:
                facts.setdefault(queued.call_id, {}).update(queued.learned)
        values = {
            "keys": [queued.key for queued in batch],
            "replies": [queued.reply for queued in batch],
            "call_ids": list(facts),
            "facts": list(facts.values()),
        }
        async with self.database.statement(writes=True) as conn:
            await direct.rows(conn, store_replies(), values)
