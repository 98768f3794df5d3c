"""Read sessions (`Database.read`, `SqlUnitOfWork.reading`) on SQLite and PostgreSQL.

On PostgreSQL a read runs its statements without BEGIN and ROLLBACK: under READ COMMITTED each
statement takes its own snapshot inside a transaction as well, so the transaction only cost two
round trips per read (a refused time's check and its alternatives are two reads). SQLite keeps its
read transaction: a snapshot for the whole read, and no network between.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from rezeption.store.db import Database


async def _driver(session: object) -> object:
    connection = await session.connection()  # type: ignore[attr-defined]
    raw = await connection.get_raw_connection()
    return raw.driver_connection


async def test_a_read_on_postgresql_holds_no_transaction(database: Database) -> None:
    async with database.read() as session:
        assert await session.scalar(text("SELECT 41 + 1")) == 42
        driver = await _driver(session)
        if database.is_sqlite:
            assert driver.in_transaction  # type: ignore[attr-defined]
        else:
            assert not driver.is_in_transaction()  # type: ignore[attr-defined]


async def test_a_failed_read_leaves_the_next_read_working(database: Database) -> None:
    with pytest.raises(DBAPIError):
        async with database.read() as session:
            await session.execute(text("SELECT * FROM no_such_table"))
    for _ in range(3):  # whichever pooled connection comes next
        async with database.read() as session:
            assert await session.scalar(text("SELECT 7")) == 7
