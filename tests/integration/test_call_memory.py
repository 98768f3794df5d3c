"""A call's record and memory (store.calls): merges by the database never lose a concurrent fact, the
first request's upsert keeps what is known, and duplicate call events apply once."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from rezeption.domain.clock import FixedClock
from rezeption.store import calls
from rezeption.store.db import Database
from rezeption.store.tables import CallRow


async def test_concurrent_merges_into_one_call_keep_every_fact(
    database: Database, salon_id: int, clock: FixedClock
) -> None:
    await calls.ensure_call(database, "call_m", tenant_id=salon_id, at=clock.now())
    await asyncio.gather(
        *(calls.remember(database, "call_m", {f"fact_{i}": i, "name": "Peter Schuster"}) for i in range(12))
    )
    record = await calls.get_call(database, "call_m")
    assert record is not None
    assert {f"fact_{i}": i for i in range(12)}.items() <= record.memory.items()
    assert record.memory["name"] == "Peter Schuster"


async def test_a_merge_replaces_top_level_facts_and_ignores_none(
    database: Database, salon_id: int, clock: FixedClock
) -> None:
    await calls.ensure_call(database, "call_r", tenant_id=salon_id, at=clock.now())
    await calls.remember(database, "call_r", {"name": "Anna Meier", "booked": [1], "service": "Bart"})
    await calls.remember(database, "call_r", {"name": "Anna Mayer", "booked": [1, 2], "service": None})
    record = await calls.get_call(database, "call_r")
    assert record is not None
    assert record.memory == {"name": "Anna Mayer", "booked": [1, 2], "service": "Bart"}


async def test_upsert_fills_what_is_missing_and_keeps_what_is_known(
    database: Database, salon_id: int, clock: FixedClock
) -> None:
    first = await calls.ensure_call(
        database, "call_u", tenant_id=None, at=clock.now(), from_number="+4915100000001"
    )
    assert first.tenant_id is None and first.from_number == "+4915100000001"
    second = await calls.ensure_call(
        database, "call_u", tenant_id=salon_id, at=clock.now(), from_number="+4915100000999"
    )
    assert second.tenant_id == salon_id
    assert second.from_number == "+4915100000001"  # the first number stays


async def test_concurrent_duplicate_events_apply_once(
    database: Database, salon_id: int, clock: FixedClock
) -> None:
    applied = await asyncio.gather(
        *(
            calls.record_event(database, "call_e", event="call_ended", tenant_id=salon_id, at=clock.now())
            for _ in range(6)
        )
    )
    assert sorted(applied) == [False] * 5 + [True]
    record = await calls.get_call(database, "call_e")
    assert record is not None and record.memory["_events"] == ["call_ended"]


async def test_call_events_keep_what_the_call_learned_and_a_late_start_does_not_reopen_an_ended_call(
    database: Database, salon_id: int, clock: FixedClock
) -> None:
    """Retell retries a webhook it could not deliver (our 503 under load), so call_started may come
    after call_ended; and the call's memory holds what the caller told us by then."""
    await calls.ensure_call(database, "call_o", tenant_id=salon_id, at=clock.now())
    await calls.remember(database, "call_o", {"name": "Anna Meier", "booked": [7]})
    ended, started = clock.now(), clock.now()
    assert await calls.record_event(
        database,
        "call_o",
        event="call_ended",
        tenant_id=salon_id,
        at=ended,
        ended_at=ended,
        transcript="Hallo",
    )
    assert await calls.record_event(
        database, "call_o", event="call_analyzed", tenant_id=salon_id, at=ended, analysis={"ok": True}
    )
    assert await calls.record_event(
        database, "call_o", event="call_started", tenant_id=salon_id, at=ended, started_at=started
    )
    assert not await calls.record_event(
        database, "call_o", event="call_analyzed", tenant_id=salon_id, at=ended, analysis={"ok": False}
    )
    async with database.read() as session:
        row = (await session.scalars(select(CallRow).where(CallRow.retell_call_id == "call_o"))).one()
    assert row.status == "ended" and row.ended_at == ended and row.started_at == started
    assert row.transcript == "Hallo"
    assert row.memory == {
        "name": "Anna Meier",
        "booked": [7],
        "analysis": {"ok": True},
        "_events": ["call_ended", "call_analyzed", "call_started"],
    }


async def test_a_call_first_heard_of_by_its_call_ended_is_stored_ended_and_stays_so(
    database: Database, salon_id: int, clock: FixedClock
) -> None:
    """call_inbound and call_started shed under load: the call's row is made by call_ended."""
    ended = clock.now()
    assert await calls.record_event(
        database, "call_n", event="call_ended", tenant_id=salon_id, at=ended, ended_at=ended,
        from_number="+4915100000007", transcript="Tschüss",
    )  # fmt: skip
    assert await calls.record_event(
        database, "call_n", event="call_started", tenant_id=salon_id, at=ended, started_at=ended,
        from_number="+4915100000008",
    )  # fmt: skip
    async with database.read() as session:
        row = (await session.scalars(select(CallRow).where(CallRow.retell_call_id == "call_n"))).one()
    assert (row.status, row.transcript, row.from_number, row.tenant_id) == (
        "ended",
        "Tschüss",
        "+4915100000007",
        salon_id,
    )
    assert row.ended_at == ended and row.started_at == ended
    assert row.memory == {"_events": ["call_ended", "call_started"]}
