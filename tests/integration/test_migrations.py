"""Migrations go up and down cleanly on both databases, and the schema they build is the models'."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from tests.conftest import create_postgres_database, drop_postgres_database

from rezeption.store import migrate
from rezeption.store.db import Database
from rezeption.store.tables import Base

TABLES = {t.name for t in Base.metadata.sorted_tables}


def _schema_diff(connection: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


async def _inspect(url: str) -> tuple[set[str], list[object], str | None]:
    database = Database.from_url(url)
    try:
        async with database.engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            diff = await conn.run_sync(_schema_diff)
        return tables, diff, await migrate.current_revision(database.engine)
    finally:
        await database.dispose()


async def _has_no_overlap_guard(url: str) -> bool:
    database = Database.from_url(url)
    try:
        async with database.engine.connect() as conn:
            if database.is_sqlite:
                sql = (
                    "SELECT count(*) FROM sqlite_master "
                    "WHERE type = 'trigger' AND name LIKE 'appointments_no_overlap%'"
                )
                return (await conn.execute(text(sql))).scalar_one() == 2
            sql = (
                "SELECT count(*) FROM pg_constraint WHERE contype = 'x' AND conname = "
                "'appointments_no_overlap'"
            )
            return (await conn.execute(text(sql))).scalar_one() == 1
    finally:
        await database.dispose()


def _round_trip(url: str) -> None:
    migrate.upgrade(url)
    tables, diff, revision = asyncio.run(_inspect(url))
    assert tables >= TABLES
    assert diff == [], f"migrations and models disagree: {diff}"
    assert revision == migrate.head_revision()
    assert asyncio.run(_has_no_overlap_guard(url))

    migrate.downgrade(url, "base")
    tables, _, revision = asyncio.run(_inspect(url))
    assert tables & TABLES == set()
    assert revision is None

    migrate.upgrade(url)
    tables, diff, revision = asyncio.run(_inspect(url))
    assert tables >= TABLES and diff == [] and revision == migrate.head_revision()
    assert asyncio.run(_has_no_overlap_guard(url))


def test_sqlite_migrates_head_base_head(tmp_path: Path) -> None:
    _round_trip(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
def test_postgres_migrates_head_base_head() -> None:
    url = create_postgres_database()
    try:
        _round_trip(url)
    finally:
        drop_postgres_database(url)
