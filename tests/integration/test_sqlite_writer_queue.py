"""SQLite writers of one process queue on the database's writer turn (store.db) instead of sleeping
in SQLite's busy handler: in arrival order, for write sessions and Core write transactions alike;
a writer that waits past the patience gets a TimeoutError, never a silent hang."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from rezeption.store import db as db_module
from rezeption.store.db import Database


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path}/queue.db")
    async with database.transaction() as conn:
        await conn.execute(text("CREATE TABLE log (who TEXT)"))
    try:
        yield database
    finally:
        await database.dispose()


async def test_writers_take_turns_in_arrival_order(sqlite_db: Database) -> None:
    order: list[str] = []
    first_inside = asyncio.Event()
    release_first = asyncio.Event()

    async def first() -> None:
        async with sqlite_db.write() as session, session.begin():
            await session.execute(text("INSERT INTO log VALUES ('first')"))
            first_inside.set()
            await release_first.wait()
            order.append("first")

    async def later(name: str) -> None:
        async with sqlite_db.transaction() as conn:
            await conn.execute(text("INSERT INTO log VALUES (:n)"), {"n": name})
            order.append(name)

    holder = asyncio.create_task(first())
    await first_inside.wait()
    waiters = [asyncio.create_task(later(f"w{i}")) for i in range(5)]
    await asyncio.sleep(0.05)
    assert order == []  # nobody wrote while the first writer held its turn
    release_first.set()
    await asyncio.gather(holder, *waiters)
    assert order == ["first", "w0", "w1", "w2", "w3", "w4"]
    async with sqlite_db.read() as session:
        assert (await session.execute(text("SELECT count(*) FROM log"))).scalar_one() == 6


async def test_readers_do_not_wait_for_a_writer(sqlite_db: Database) -> None:
    release = asyncio.Event()
    inside = asyncio.Event()

    async def writer() -> None:
        async with sqlite_db.write() as session, session.begin():
            await session.execute(text("INSERT INTO log VALUES ('w')"))
            inside.set()
            await release.wait()

    task = asyncio.create_task(writer())
    await inside.wait()
    async with sqlite_db.read() as session:
        assert (await session.execute(text("SELECT count(*) FROM log"))).scalar_one() == 0
    release.set()
    await task


async def test_a_writer_waiting_past_its_patience_gets_a_timeout(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "WRITER_PATIENCE", 0.05)
    release = asyncio.Event()
    inside = asyncio.Event()

    async def stuck() -> None:
        async with sqlite_db.write() as session, session.begin():
            await session.execute(text("INSERT INTO log VALUES ('stuck')"))
            inside.set()
            await release.wait()

    task = asyncio.create_task(stuck())
    await inside.wait()
    with pytest.raises(TimeoutError):
        async with sqlite_db.statement(writes=True) as conn:
            await conn.execute(text("INSERT INTO log VALUES ('late')"))
    release.set()
    await task
    async with sqlite_db.read() as session:
        rows = [r[0] for r in await session.execute(text("SELECT who FROM log"))]
    assert rows == ["stuck"]
