"""Start-up warm-up (ops.warmup): it opens the pool, warms the salons' hot reads, writes nothing, and a
broken database never stops the server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import event, func, select
from tests.metrics import sample

from rezeption.bootstrap import Services, build
from rezeption.domain.clock import FixedClock
from rezeption.ops.warmup import warm_up
from rezeption.settings import Settings
from rezeption.store.db import Database
from rezeption.store.tables import Base

BERLIN_NOON_TUESDAY = datetime.fromisoformat("2025-11-04T12:00:00+01:00")


@pytest.fixture
async def services(database_url: str, salon_id: int, clock: FixedClock) -> AsyncIterator[Services]:
    built = build(Settings(database_url=database_url, db_pool_size=4, environment="test"), clock=clock)
    try:
        yield built
    finally:
        await built.close()


async def row_counts(database: Database) -> dict[str, int]:
    async with database.engine.connect() as conn:
        return {
            t.name: int(await conn.scalar(select(func.count()).select_from(t)) or 0)
            for t in Base.metadata.sorted_tables
        }


async def test_warm_up_opens_the_pool_and_writes_nothing(services: Services, database: Database) -> None:
    before = await row_counts(database)
    await warm_up(services, connections=4)
    assert services.database.engine.pool.checkedin() >= 4  # type: ignore[attr-defined]
    assert await row_counts(database) == before


async def test_after_warm_up_a_first_availability_check_reads_no_catalog(
    services: Services, salon_id: int
) -> None:
    await warm_up(services, connections=2)
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(services.database.engine.sync_engine, "before_cursor_execute", seen)
    try:
        await services.bookings.availability(
            tenant_id=salon_id, service="herrenhaarschnitt", start=BERLIN_NOON_TUESDAY
        )
    finally:
        event.remove(services.database.engine.sync_engine, "before_cursor_execute", seen)
    assert statements, "the availability check ran no statement at all"
    assert not [s for s in statements if "FROM staff" in s or "FROM services" in s], statements


async def test_a_broken_database_only_logs(clock: FixedClock, tmp_path: Any) -> None:
    broken = build(
        Settings(database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none", environment="test"), clock=clock
    )
    try:
        seconds = await warm_up(broken, connections=2)
    finally:
        await broken.close()
    assert seconds >= 0


async def test_the_warm_up_probe_counts_no_caller(services: Services, salon_id: int) -> None:
    """The probe's caller-ID read is no call: the operator's caller-ID counts (an alert's input)
    stay where they were, whatever the probe finds."""
    outcomes = ("unknown", "no_consent", "shared", "disabled", "no_number", "matched")
    before = {o: sample("rezeption_caller_id_total", outcome=o) for o in outcomes}
    await warm_up(services, connections=2)
    assert {o: sample("rezeption_caller_id_total", outcome=o) for o in outcomes} == before
