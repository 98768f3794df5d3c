"""Replies of writes, stored a moment after they are sent, many in one statement (PostgreSQL).

A write's reply (and what the call taught us) used to cost the function call its own statement
after the work: a pool checkout, a round trip and a commit, in the request's path, for a record
that only a retry or a concurrent duplicate ever reads. Here the replies of one process are queued
and stored every `INTERVAL` (50 ms) in one UPDATE of the idempotency records with the call memory
merged in a data-modifying CTE, committed without waiting for the disk, as the single reply was.

Why a reply may wait, and what a reader sees meanwhile:
- The key stays `running` under its owner's lease (3 s from the last renewal), so a concurrent
  duplicate waits for the reply as before (`IdempotencyStore.wait` polls), and gets it byte for byte.
- A reply lost before it is stored (our process killed within the interval, or PostgreSQL down)
  is a reply lost in a crash: the key's lease runs out, the retry takes it over, and the use case
  replays its result by the same key (the booking, cancel or move itself was committed before).
- Memory: a later function call of the same call in this process first stores what is queued for
  that call (`settle`), so it reads its own memory and never has an older fact laid over a newer
  one. Another process could read the memory up to one interval old; a voice agent's next function
  call comes after the caller has heard this reply, seconds later.

A full queue (`LIMIT`) is not dropped: the reply is then stored at once, in the request.
Written here because no library batches writes into one asyncpg statement by key.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import structlog
from sqlalchemy import String, any_, bindparam, func, literal, update
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from rezeption.store import direct
from rezeption.store.calls import CALLS
from rezeption.store.db import Database
from rezeption.store.tables import IdempotencyRecordRow, table

RECORDS = table(IdempotencyRecordRow)
INTERVAL = 0.05  # seconds a reply may wait for its batch
LIMIT = 2_000  # queued replies; beyond, a reply is stored in its request
ATTEMPTS = 3  # a batch the database refused is tried again this many times in all
log = structlog.get_logger("rezeption.idempotency")


def _nth(array: Any, items: Any, item: Any) -> Any:
    """The element of the JSON array `array` at `item`'s position in the SQL array `items`."""
    return array.op("->", return_type=JSONB)(func.array_position(items, item) - literal(1))


@cache
def store_replies() -> Any:
    """PostgreSQL: the replies `replies` (a JSON array) of the keys `keys`, on records still
    running, and the facts `facts` merged into the memories of the calls `call_ids`, in one
    statement committed without waiting for the disk (`direct.relaxed_commit`)."""
    keys = bindparam("keys", type_=ARRAY(String))
    call_ids = bindparam("call_ids", type_=ARRAY(String))
    facts = bindparam("facts", type_=JSONB)
    merged = (
        update(CALLS)
        .where(CALLS.c.retell_call_id == any_(call_ids))
        .values(memory=CALLS.c.memory.op("||")(_nth(facts, call_ids, CALLS.c.retell_call_id)))
    )
    stored = (
        update(RECORDS)
        .where(RECORDS.c.key == any_(keys), RECORDS.c.state == "running")
        .values(state="done", reply=_nth(bindparam("replies", type_=JSONB), keys, RECORDS.c.key))
        .add_cte(merged.cte("also"))
    )
    return direct.relaxed_commit(stored)


@dataclass(frozen=True)
class _Queued:
    key: str
    reply: dict[str, Any]
    call_id: str | None
    learned: dict[str, Any]


Finish = Callable[[str, dict[str, Any], str | None, Mapping[str, Any] | None], Awaitable[None]]


class ReplyBatches:
    """One process's queue of replies to store, and the task that stores them in batches."""

    def __init__(self, database: Database, finish_now: Finish, interval: float = INTERVAL) -> None:
        self.database = database
        self.finish_now = finish_now  # the single statement, for a full queue
        self.interval = interval
        self._queue: list[_Queued] = []
        self._storing: list[_Queued] = []  # the batch being stored now
        self._calls: Counter[str] = Counter()  # the calls of both, for `pending_for`
        self._lock = asyncio.Lock()  # one batch at a time, in the order they were queued
        self._task: asyncio.Task[None] | None = None

    def pending_for(self, call_id: str) -> bool:
        """Whether a reply of call `call_id` waits in the queue or is being stored."""
        return self._calls[call_id] > 0

    async def add(
        self, key: str, reply: dict[str, Any], *, call_id: str | None, learned: Mapping[str, Any] | None
    ) -> None:
        """Queue the reply of `key` (and `learned`, for call `call_id`'s memory)."""
        facts = {k: v for k, v in (learned or {}).items() if v is not None} if call_id else {}
        if len(self._queue) >= LIMIT:
            await self.finish_now(key, reply, call_id, facts)
            return
        self._queue.append(_Queued(key, reply, call_id, facts))
        if call_id is not None:
            self._calls[call_id] += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())

    async def settle(self, call_id: str) -> None:
        """Store the queue now when a reply of call `call_id` is in it."""
        if self.pending_for(call_id):
            await self.flush()

    async def flush(self) -> None:
        """Store everything queued now, after a batch already being stored (each batch is tried
        `ATTEMPTS` times in all before it is given up)."""
        async with self._lock:
            batch, self._queue = self._queue, []
            self._storing = batch
            try:
                for attempt in range(1, ATTEMPTS + 1):
                    if not batch:
                        return
                    try:
                        await self._store(batch)
                        return
                    except Exception as error:  # the keys' leases run out; a retry replays by key
                        log.warning(
                            "idempotency.batch_failed",
                            count=len(batch),
                            attempt=attempt,
                            error=type(error).__name__,
                        )
                        if attempt < ATTEMPTS:
                            await asyncio.sleep(self.interval)
            finally:
                self._storing = []
                self._calls.subtract(queued.call_id for queued in batch if queued.call_id is not None)
                self._calls += Counter()  # drops the calls counted down to nothing

    async def close(self) -> None:
        """Store what is queued (after the batch in flight), then stop the task."""
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        """Store a batch every interval while replies come in; end when the queue is empty."""
        while self._queue:
            await asyncio.sleep(self.interval)
            await self.flush()

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
