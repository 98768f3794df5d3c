"""Replies stored in batches a moment after they are sent (PostgreSQL, `store.reply_batches`): what
waits is stored on shutdown, a full queue does not drop a reply, a late batch never replaces the
reply of an owner who took the key over, a refused batch is tried again, and a call's memory keeps
the order in which its facts were told."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select

from rezeption.domain.clock import FixedClock
from rezeption.store import reply_batches
from rezeption.store.calls import ensure_call, remember
from rezeption.store.db import Database
from rezeption.store.idempotency import LEASE, IdempotencyStore
from rezeption.store.tables import CallRow, IdempotencyRecordRow

pytestmark = pytest.mark.postgres
SCOPE = "book_appointment"


@pytest.fixture
def database_url(postgres_migrated: str) -> str:
    return postgres_migrated


async def _record(database: Database, key: str) -> tuple[str, dict[str, Any] | None]:
    async with database.read() as session:
        row = (
            await session.execute(
                select(IdempotencyRecordRow.state, IdempotencyRecordRow.reply).where(
                    IdempotencyRecordRow.key == key
                )
            )
        ).one()
    return row.state, row.reply


async def _memory(database: Database, call_id: str) -> dict[str, Any]:
    async with database.read() as session:
        memory = await session.scalar(select(CallRow.memory).where(CallRow.retell_call_id == call_id))
    return dict(memory or {})


def _slow(store: IdempotencyStore) -> None:
    """Batches that would wait a minute: only what the test does stores them."""
    store.batches.interval = 60.0


async def test_a_reply_waiting_for_its_batch_is_stored_when_the_server_stops(
    database: Database, clock: FixedClock, salon_id: int
) -> None:
    store = IdempotencyStore(database, clock)
    _slow(store)
    assert (await store.claim("k1", scope=SCOPE, tenant_id=salon_id)).owned
    await store.finish_soon("k1", {"ok": True, "message": "Gebucht."})
    assert await _record(database, "k1") == ("running", None)  # waiting for its batch
    await store.close()
    assert await _record(database, "k1") == ("done", {"ok": True, "message": "Gebucht."})


async def test_a_full_queue_stores_the_reply_in_its_request_instead_of_dropping_it(
    database: Database, clock: FixedClock, salon_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reply_batches, "LIMIT", 1)
    store = IdempotencyStore(database, clock)
    _slow(store)
    for key in ("k1", "k2"):
        assert (await store.claim(key, scope=SCOPE, tenant_id=salon_id)).owned
        await store.finish_soon(key, {"ok": True, "message": key})
    assert await _record(database, "k1") == ("running", None)  # queued
    assert await _record(database, "k2") == ("done", {"ok": True, "message": "k2"})  # queue full
    await store.close()
    assert await _record(database, "k1") == ("done", {"ok": True, "message": "k1"})


async def test_a_late_batch_never_replaces_the_reply_of_the_owner_who_took_the_key_over(
    database: Database, clock: FixedClock, salon_id: int
) -> None:
    """The first owner's batch is late (the database was slow past its lease): the retry took the
    key over and stored its own reply, which callers have already heard replayed."""
    first, taker = IdempotencyStore(database, clock), IdempotencyStore(database, clock)
    _slow(first)
    assert (await first.claim("k1", scope=SCOPE, tenant_id=salon_id)).owned
    await first.finish_soon("k1", {"ok": True, "message": "erste"})
    clock.advance(LEASE + timedelta(seconds=1))
    assert (await taker.claim("k1", scope=SCOPE, tenant_id=salon_id)).owned
    await taker.finish("k1", {"ok": True, "message": "übernommen"})
    await first.close()
    assert await _record(database, "k1") == ("done", {"ok": True, "message": "übernommen"})


async def test_a_batch_the_database_refused_is_tried_again(
    database: Database, clock: FixedClock, salon_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = IdempotencyStore(database, clock)  # the real interval: also the pause between attempts
    real_store = store.batches._store
    refusals = []

    async def refused_once(batch: Any) -> None:
        if not refusals:
            refusals.append(len(batch))
            raise ConnectionResetError("the database went away for a moment")
        await real_store(batch)

    monkeypatch.setattr(store.batches, "_store", refused_once)
    assert (await store.claim("k1", scope=SCOPE, tenant_id=salon_id)).owned
    await store.finish_soon("k1", {"ok": True, "message": "Gebucht."})
    await store.batches.flush()
    assert refusals == [1]
    assert await _record(database, "k1") == ("done", {"ok": True, "message": "Gebucht."})


async def test_a_fact_told_after_the_booking_is_not_overwritten_by_the_booking_s_batch(
    database: Database, clock: FixedClock, salon_id: int
) -> None:
    """The booking's facts wait for their batch; a next function call of the same call settles
    them before it reads and writes the memory, so its newer fact stays (store level: the
    runner's order, `settle` then `remember`)."""
    await ensure_call(database, "call_order", tenant_id=salon_id, at=clock.now())
    store = IdempotencyStore(database, clock)
    _slow(store)
    assert (await store.claim("k1", scope=SCOPE, tenant_id=salon_id, call_id="call_order")).owned
    await store.finish_soon(
        "k1", {"ok": True}, call_id="call_order", learned={"service": "bart", "name": "Peter Schuster"}
    )
    await store.settle("call_order")
    await remember(database, "call_order", {"service": "herren"})
    await store.close()
    assert await _memory(database, "call_order") == {"service": "herren", "name": "Peter Schuster"}
    assert await _record(database, "k1") == ("done", {"ok": True})


async def test_a_request_that_stops_waiting_for_its_batch_does_not_cancel_the_store(
    database: Database, clock: FixedClock, salon_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found in review: a request settling its call's batch runs under its time budget; cancelled
    there, it took every queued reply of the process with it."""
    await ensure_call(database, "call_budget", tenant_id=salon_id, at=clock.now())
    store = IdempotencyStore(database, clock)
    _slow(store)
    real_store = store.batches._store

    async def slow_database(batch: Any) -> None:
        await asyncio.sleep(0.3)
        await real_store(batch)

    monkeypatch.setattr(store.batches, "_store", slow_database)
    assert (await store.claim("k1", scope=SCOPE, tenant_id=salon_id, call_id="call_budget")).owned
    await store.finish_soon("k1", {"ok": True}, call_id="call_budget", learned={"name": "Peter Schuster"})
    request = asyncio.create_task(store.settle("call_budget"))
    await asyncio.sleep(0.05)
    request.cancel()  # the request's budget ran out while it waited
    with contextlib.suppress(asyncio.CancelledError):
        await request
    await store.close()
    assert await _record(database, "k1") == ("done", {"ok": True})
    assert await _memory(database, "call_budget") == {"name": "Peter Schuster"}


async def test_a_reply_the_database_refuses_costs_only_itself(
    database: Database, clock: FixedClock, salon_id: int
) -> None:
    store = IdempotencyStore(database, clock)  # the real interval: also the pause between attempts
    for key in ("good", "poison"):
        assert (await store.claim(key, scope=SCOPE, tenant_id=salon_id)).owned
    await store.finish_soon("good", {"ok": True, "message": "Gebucht."})
    await store.finish_soon("poison", {"ok": True, "message": "kaputt \u0000"})  # jsonb refuses NUL
    await store.close()
    assert await _record(database, "good") == ("done", {"ok": True, "message": "Gebucht."})
    assert await _record(database, "poison") == ("running", None)  # a retry replays it by key


async def test_a_batch_after_an_erasure_does_not_write_the_call_s_facts_again(
    database: Database, clock: FixedClock, salon_id: int
) -> None:
    """An erasure deletes the call's records and blanks its memory while a reply waits: the late
    batch finds no record of the call to store, and leaves the memory blank."""
    await ensure_call(database, "call_erased", tenant_id=salon_id, at=clock.now())
    store = IdempotencyStore(database, clock)
    _slow(store)
    assert (await store.claim("k1", scope=SCOPE, tenant_id=salon_id, call_id="call_erased")).owned
    await store.finish_soon("k1", {"ok": True}, call_id="call_erased", learned={"name": "Peter Schuster"})
    async with database.transaction() as conn:
        await conn.execute(delete(IdempotencyRecordRow).where(IdempotencyRecordRow.call_id == "call_erased"))
    await store.close()
    assert await _memory(database, "call_erased") == {}


async def test_after_the_stop_a_reply_is_stored_in_its_request(
    database: Database, clock: FixedClock, salon_id: int
) -> None:
    store = IdempotencyStore(database, clock)
    await store.close()
    assert (await store.claim("k1", scope=SCOPE, tenant_id=salon_id)).owned
    await store.finish_soon("k1", {"ok": True})
    assert await _record(database, "k1") == ("done", {"ok": True})


async def test_a_reply_stored_in_its_request_never_replaces_the_reply_of_the_owner_who_took_over(
    database: Database, clock: FixedClock, salon_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found in review: the full queue's way round the batch stored with `finish`, which has no
    guard, and so overwrote the reply a retry had stored after taking the key over."""
    monkeypatch.setattr(reply_batches, "LIMIT", 0)
    first, taker = IdempotencyStore(database, clock), IdempotencyStore(database, clock)
    assert (await first.claim("k1", scope=SCOPE, tenant_id=salon_id)).owned
    clock.advance(LEASE + timedelta(seconds=1))
    assert (await taker.claim("k1", scope=SCOPE, tenant_id=salon_id)).owned
    await taker.finish("k1", {"ok": True, "message": "übernommen"})
    await first.finish_soon("k1", {"ok": True, "message": "erste"})  # the queue is full
    assert await _record(database, "k1") == ("done", {"ok": True, "message": "übernommen"})


async def test_a_reply_stored_now_is_stored_in_the_request_and_only_on_a_running_record(
    database: Database, clock: FixedClock, salon_id: int
) -> None:
    store = IdempotencyStore(database, clock)
    _slow(store)
    await ensure_call(database, "call_now", tenant_id=salon_id, at=clock.now())
    assert (await store.claim("k1", scope=SCOPE, tenant_id=salon_id, call_id="call_now")).owned
    await store.finish_now("k1", {"ok": True, "message": "Storniert."}, call_id="call_now",
                           learned={"_changes": {"n": 2, "by": "c"}}, patience=5.0)  # fmt: skip
    assert await _record(database, "k1") == ("done", {"ok": True, "message": "Storniert."})  # no batch
    assert (await _memory(database, "call_now"))["_changes"] == {"n": 2, "by": "c"}
    # a key given back meanwhile (the budget ended) is not stored, and its memory not merged
    await store.finish_now(
        "gone", {"ok": True}, call_id="call_now", learned={"_changes": {"n": 9}}, patience=5.0
    )
    assert (await _memory(database, "call_now"))["_changes"] == {"n": 2, "by": "c"}
    await store.close()


async def test_a_reply_stored_now_waits_behind_a_reply_of_its_call_still_in_the_queue(
    database: Database, clock: FixedClock, salon_id: int
) -> None:
    """Found in review: a cancel's count stored at once, then the call's earlier batch (a booking's,
    stuck a moment) stored after it, laid the older count over the newer one."""
    store = IdempotencyStore(database, clock)
    _slow(store)
    await ensure_call(database, "call_order", tenant_id=salon_id, at=clock.now())
    for key in ("book", "cancel"):
        assert (await store.claim(key, scope=SCOPE, tenant_id=salon_id, call_id="call_order")).owned
    await store.finish_soon(
        "book", {"ok": True}, call_id="call_order", learned={"_changes": {"n": 1, "by": "b"}}
    )
    await store.finish_now("cancel", {"ok": True}, call_id="call_order",
                           learned={"_changes": {"n": 2, "by": "c"}}, patience=5.0)  # fmt: skip
    assert await _record(database, "cancel") == ("running", None)  # queued behind the booking's reply
    await store.close()
    assert (await _memory(database, "call_order"))["_changes"] == {"n": 2, "by": "c"}
    assert await _record(database, "book") == ("done", {"ok": True})
