"""PostgreSQL plans at 100,000 appointments: every lookup shape walks the 0003/0004 indexes, never a
sequential scan of appointments; without those indexes the same queries do scan (so the test can tell).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text
from tests.conftest import berlin, create_postgres_database, drop_postgres_database
from tests.integration.lookup.bulk import Explain, Scale, generate

from rezeption.language.names import said_keys
from rezeption.store import migrate
from rezeption.store.db import Database
from rezeption.store.lookup import (
    call_query,
    callers_query,
    customers_query,
    name_query,
    phone_query,
)

pytestmark = pytest.mark.postgres
NOW = berlin(2025, 11, 3, 8, 0)
SCALE = Scale(tenants=10, staff_per_tenant=10, customers=20_000, appointments=100_000)
NEW_INDEXES = (
    "ix_customer_name_keys_tenant_key",
    "ix_appointments_customer_start",
    "ix_appointments_tenant_start_status",
    "ix_appointments_call",
)


@pytest.fixture(scope="module")
def bulk_url() -> Iterator[str]:
    url = create_postgres_database()
    try:
        migrate.upgrade(url)

        async def fill() -> None:
            database = Database.from_url(url)
            try:
                async with database.engine.begin() as conn:
                    await generate(conn, SCALE, NOW)
            finally:
                await database.dispose()

        asyncio.run(fill())
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture
async def bulk(bulk_url: str) -> AsyncIterator[Database]:
    database = Database.from_url(bulk_url)
    try:
        yield database
    finally:
        await database.dispose()


def shapes(tenant: int, customer: int) -> dict[str, object]:
    day = (NOW + timedelta(days=2)).replace(hour=0)
    window = ((day, day + timedelta(days=1)),)
    phone = "+4915100000123"
    keys = said_keys("Peter Schuster")
    return {
        "phone": phone_query(tenant, phone, after=NOW),
        "phone_day": phone_query(tenant, phone, after=NOW, windows=window),
        "name": name_query(tenant, keys, after=NOW),
        "name_day": name_query(tenant, keys, after=NOW, windows=window),
        "call": call_query(tenant, "call_4242", after=NOW),
        "caller_next": customers_query(tenant, [customer, customer + 10], after=NOW),
    }


async def plan(database: Database, statement: object) -> str:
    async with database.read() as session:
        return "\n".join(row[0] for row in await session.execute(Explain(statement)))


async def bases(database: Database) -> tuple[int, int]:
    async with database.read() as session:
        tenant = (await session.execute(text("SELECT min(id) FROM tenants"))).scalar_one()
        customer = (
            await session.execute(text("SELECT min(id) FROM customers WHERE tenant_id = :t"), {"t": tenant})
        ).scalar_one()
        return int(tenant), int(customer)


async def test_the_bulk_data_is_there(bulk: Database) -> None:
    async with bulk.read() as session:
        count = (await session.execute(text("SELECT count(*) FROM appointments"))).scalar_one()
        future = (
            await session.execute(text("SELECT count(*) FROM appointments WHERE starts_at > :n"), {"n": NOW})
        ).scalar_one()
    assert count == 100_000 and 0 < future < count


@pytest.mark.parametrize("shape", ["phone", "phone_day", "name", "name_day", "call", "caller_next"])
async def test_every_lookup_shape_uses_indexes_and_never_scans_appointments(
    bulk: Database, shape: str
) -> None:
    tenant, customer = await bases(bulk)
    shown = await plan(bulk, shapes(tenant, customer)[shape])
    assert "Seq Scan on appointments" not in shown, shown
    assert "ix_appointments_" in shown, shown
    expected = {
        "phone": "ix_customers_tenant_phone",
        "phone_day": "ix_customers_tenant_phone",
        "name": "ix_customer_name_keys_tenant_key",
        "name_day": "ix_customer_name_keys_tenant_key",
        "call": "ix_appointments_call",
        "caller_next": "ix_appointments_customer_start",
    }[shape]
    assert expected in shown, shown


async def test_caller_id_reads_customers_by_index(bulk: Database) -> None:
    tenant, _ = await bases(bulk)
    shown = await plan(bulk, callers_query(tenant, "+4915100000123"))
    assert "ix_customers_tenant_phone" in shown and "Seq Scan" not in shown, shown


async def test_without_the_new_indexes_the_planner_has_to_scan(bulk: Database) -> None:
    tenant, customer = await bases(bulk)
    async with bulk.write() as session:
        for name in NEW_INDEXES:
            await session.execute(text(f"DROP INDEX {name}"))
        shown = "\n".join(row[0] for row in await session.execute(Explain(shapes(tenant, customer)["call"])))
        await session.rollback()  # DDL is transactional in PostgreSQL: the indexes come back
    assert "ix_appointments_call" not in shown
    assert "Seq Scan on appointments" in shown or "ix_appointments_tenant_staff_block" in shown, shown
    assert "ix_appointments_call" in await plan(bulk, shapes(tenant, customer)["call"])


def test_the_scale_is_what_the_issue_asks() -> None:
    assert SCALE.appointments == 100_000
    assert isinstance(NOW, datetime) and NOW.tzinfo is not None
