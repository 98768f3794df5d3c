"""rezeption.store.direct, on the real databases: the same Core statement gives the same rows
through asyncpg itself (PostgreSQL) as through SQLAlchemy (SQLite), inside the caller's transaction
(rolled back with it, committed with it), committed at once on an autocommit connection, with
SQLAlchemy's bind checks (a naive datetime is refused) and SQLAlchemy's errors (a unique violation
is an IntegrityError, a transaction's connection the server dropped is invalidated and the next one works, one
closed while it waited in the pool is replaced)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, delete, exc, func, insert, select, text

from rezeption.store import direct
from rezeption.store.db import Database
from rezeption.store.tables import IdempotencyRecordRow, table

RECORDS = table(IdempotencyRecordRow)
NOW = datetime(2025, 11, 3, 9, 0, tzinfo=UTC)
INSERT = insert(RECORDS).returning(RECORDS.c.key, RECORDS.c.reply, RECORDS.c.created_at)
COUNT = select(func.count()).select_from(RECORDS).where(RECORDS.c.key.like(bindparam("prefix")))


def record(key: str, **values: object) -> dict[str, object]:
    return {
        "key": key,
        "call_id": None,
        "tenant_id": None,
        "scope": "test",
        "state": "done",
        "reply": {"ok": True, "text": "Grüße"},
        "locked_until": NOW,
        "created_at": NOW,
        "expires_at": NOW,
        **values,
    }


async def count(database: Database, prefix: str) -> int:
    async with database.read() as session:
        return int((await session.execute(COUNT, {"prefix": prefix + "%"})).scalar_one())


async def test_rows_read_like_sqlalchemy_rows(database: Database) -> None:
    async with database.transaction() as conn:
        row = await direct.first(conn, INSERT, record("direct-row"))
    assert row is not None
    assert (row.key, row[0], row.reply) == ("direct-row", "direct-row", {"ok": True, "text": "Grüße"})
    assert row.created_at == NOW and row.created_at.utcoffset() is not None
    async with database.statement() as conn:
        assert await direct.scalar(conn, COUNT, {"prefix": "direct-row%"}) == 1
        assert await direct.first(conn, COUNT.where(RECORDS.c.key == "nobody"), {"prefix": "%"}) is not None
        with pytest.raises(AttributeError):
            _ = row.no_such_column


async def test_a_statement_belongs_to_the_callers_transaction(database: Database) -> None:
    with pytest.raises(RuntimeError):
        async with database.transaction() as conn:
            await direct.rows(conn, INSERT, record("direct-undone"))
            raise RuntimeError("the use case gives up")
    assert await count(database, "direct-undone") == 0
    async with database.transaction() as conn:
        await direct.rows(conn, INSERT, record("direct-kept-1"))
        await conn.execute(insert(RECORDS), record("direct-kept-2"))  # SQLAlchemy's path, same tx
    assert await count(database, "direct-kept") == 2
    async with database.write() as session:
        conn = await session.connection()
        await direct.rows(conn, INSERT, record("direct-session"))
        await session.rollback()
    assert await count(database, "direct-session") == 0


async def test_a_lone_statement_is_committed(database: Database) -> None:
    async with database.statement(writes=True) as conn:
        await direct.rows(conn, INSERT, record("direct-auto"))
        if not database.is_sqlite:  # PostgreSQL: autocommit; SQLite: one short transaction
            assert await count(database, "direct-auto") == 1  # seen from another connection at once
    assert await count(database, "direct-auto") == 1


async def test_bind_checks_and_errors_are_sqlalchemys(database: Database) -> None:
    async with database.statement(writes=True) as conn:
        await direct.rows(conn, INSERT, record("direct-twice"))
        with pytest.raises(exc.IntegrityError):
            await direct.rows(conn, INSERT, record("direct-twice"))
        with pytest.raises((ValueError, exc.StatementError), match="naive"):
            await direct.rows(conn, INSERT, record("direct-naive", created_at=NOW.replace(tzinfo=None)))
        # the connection is still good after both
        assert await direct.scalar(conn, COUNT, {"prefix": "direct-twice%"}) == 1
    async with database.transaction() as conn:
        await conn.execute(delete(RECORDS).where(RECORDS.c.key.like("direct-%")))


def test_a_bound_list_is_refused_for_the_direct_path() -> None:
    from sqlalchemy.dialects.postgresql.asyncpg import dialect

    listed = select(RECORDS.c.key).where(RECORDS.c.key.in_(bindparam("keys", expanding=True)))
    with pytest.raises(ValueError, match="may not bind a list"):
        direct._compile(listed, dialect())  # type: ignore[no-untyped-call]


@pytest.mark.postgres
async def test_a_transactions_connection_the_server_dropped_is_invalidated_and_the_next_one_works(
    postgres_migrated: str,
) -> None:
    database = Database.from_url(postgres_migrated, pool_size=1)
    admin = Database.from_url(postgres_migrated, pool_size=1)
    try:
        with pytest.raises(exc.DBAPIError) as lost:
            async with database.transaction() as conn:  # in a transaction: no silent replacement
                pid = await direct.scalar(conn, select(func.pg_backend_pid()), {})
                async with admin.statement() as other:
                    await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                await direct.rows(conn, select(func.pg_backend_pid()), {})
        assert lost.value.connection_invalidated
        async with database.statement() as conn:
            assert await direct.scalar(conn, select(func.pg_backend_pid()), {}) not in (None, pid)
    finally:
        await database.dispose()
        await admin.dispose()


@pytest.mark.postgres
async def test_a_pooled_connection_closed_while_it_waited_is_replaced_outside_a_transaction(
    postgres_migrated: str,
) -> None:
    database = Database.from_url(postgres_migrated, pool_size=1)
    try:
        async with database.statement() as conn:
            pid = await direct.scalar(conn, select(func.pg_backend_pid()), {})
            driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        driver.terminate()  # as asyncpg does when the cancel of a timed-out statement fails
        async with database.statement() as conn:
            assert await direct.scalar(conn, select(func.pg_backend_pid()), {}) not in (None, pid)
    finally:
        await database.dispose()
