"""GDPR at Friseur 1: export all we hold on a customer, erase them (statistics stay), purge transcripts."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from tests.conftest import DEMO_SALON, berlin
from tests.integration.lookup.world import World, build_world, import_second_salon
from typer.testing import CliRunner

from rezeption.booking.caller_id import CallerId
from rezeption.booking.lookup import AppointmentFinder, LookupQuery
from rezeption.domain.clock import FixedClock
from rezeption.ops.customers_cli import customers_app
from rezeption.store import migrate
from rezeption.store.db import Database
from rezeption.store.gdpr import CustomerRefError, erase_customer, export_customer, purge_transcripts
from rezeption.store.lookup import SqlLookupStore
from rezeption.store.salon_file import SalonFileError, parse_salon, read_salon
from rezeption.store.salon_import import import_salon
from rezeption.store.tables import AppointmentRow, CallRow, CustomerRow, FunctionCallTraceRow, TenantRow
from rezeption.store.uow import SqlUnitOfWork

PEOPLE: list[dict[str, Any]] = [
    {"key": "peter", "name": "Peter Schuster", "phone": "+4915110000001", "call": "call_1", "appointments": [
        {"key": "tue", "at": "2025-11-04 10:00", "service": "herrenhaarschnitt"},
        {"key": "thu", "at": "2025-11-06 15:00", "service": "bartpflege", "status": "cancelled"},
    ]},
    {"key": "eva", "name": "Eva Weiß", "phone": "+4915110000009", "call": "call_2", "appointments": [
        {"key": "wed", "at": "2025-11-05 10:00", "service": "damenhaarschnitt"},
    ]},
    {"key": "b_peter", "tenant": "b", "name": "Peter Schuster", "phone": "+4915110000001", "appointments": [
        {"key": "b_tue", "at": "2025-11-04 10:00", "service": "herrenhaarschnitt"},
    ]},
]  # fmt: skip


async def seed(database: Database, clock: FixedClock, tenants: dict[str, int]) -> World:
    world = await build_world(database, tenants, PEOPLE, clock.now())
    now = clock.now()
    async with database.write() as session, session.begin():
        for call, number, customer in (
            ("call_1", "+4915110000001", None),
            ("call_2", "+4915110000009", None),
        ):
            session.add(
                CallRow(
                    retell_call_id=call,
                    tenant_id=tenants["a"],
                    from_number=number,
                    to_number="+493012345670",
                    customer_id=customer,
                    memory={"name": "said in the call"},
                    transcript=f"Agent: Hallo. Anrufer: Hier ist jemand, Nummer {number}.",
                    started_at=now - timedelta(days=1),
                    ended_at=now - timedelta(days=1) + timedelta(minutes=3),
                    created_at=now - timedelta(days=1),
                )
            )
            session.add(
                FunctionCallTraceRow(
                    tenant_id=tenants["a"],
                    retell_call_id=call,
                    function="book_appointment",
                    args={"name": "the caller's name"},
                    reply={"message": "gebucht"},
                    ok=True,
                    latency_ms=12,
                    at=now,
                )
            )
    return world


@pytest.fixture
async def world(database: Database, clock: FixedClock, salon_id: int, other_salon_id: int) -> World:
    return await seed(database, clock, {"a": salon_id, "b": other_salon_id})


async def test_export_holds_everything_about_the_customer_and_nothing_else(
    database: Database, clock: FixedClock, world: World
) -> None:
    doc = await export_customer(database, "0151 10000001", now=clock.now(), tenant_slug="friseur1")
    json.dumps(doc)
    assert [c["name"] for c in doc["customers"]] == ["Peter Schuster"]
    assert doc["customers"][0]["salon"] == "friseur1" and doc["customers"][0]["phone"] == "+4915110000001"
    assert {a["id"] for a in doc["appointments"]} == {
        world.appointment_ids["tue"],
        world.appointment_ids["thu"],
    }
    assert [c["call_id"] for c in doc["calls"]] == ["call_1"]
    assert "Hier ist jemand" in doc["calls"][0]["transcript"]
    assert [t["call_id"] for t in doc["function_calls"]] == ["call_1"]
    everywhere = await export_customer(database, "+4915110000001", now=clock.now())
    assert {c["salon"] for c in everywhere["customers"]} == {"friseur1", "friseur2"}
    by_id = await export_customer(database, str(world.customer_ids["eva"]), now=clock.now())
    assert [c["name"] for c in by_id["customers"]] == ["Eva Weiß"] and by_id["calls"][0][
        "call_id"
    ] == "call_2"


async def test_erase_anonymizes_person_and_calls_but_keeps_appointment_statistics(
    database: Database, clock: FixedClock, world: World, finder: AppointmentFinder, salon_id: int
) -> None:
    counts = await erase_customer(database, "+4915110000001", now=clock.now(), tenant_slug="friseur1")
    assert counts == {"customers": 1, "appointments": 2, "calls": 1, "function_calls": 1}
    async with database.read() as session:
        peter = await session.get(CustomerRow, world.customer_ids["peter"])
        assert peter is not None and (peter.name, peter.phone_e164, peter.name_phonetic) == (None, None, None)
        kept = (
            await session.scalars(select(AppointmentRow).where(AppointmentRow.customer_id == peter.id))
        ).all()
        assert sorted(a.status for a in kept) == ["cancelled", "confirmed"]
        assert all(a.spoken_name is None for a in kept)
        call = (await session.scalars(select(CallRow).where(CallRow.retell_call_id == "call_1"))).one()
        assert (call.transcript, call.from_number, call.memory) == (None, None, {})
        trace = (
            await session.scalars(
                select(FunctionCallTraceRow).where(FunctionCallTraceRow.retell_call_id == "call_1")
            )
        ).one()
        assert trace.args == {} and trace.reply == {}
        eva_call = (await session.scalars(select(CallRow).where(CallRow.retell_call_id == "call_2"))).one()
        assert eva_call.transcript is not None and eva_call.from_number == "+4915110000009"
        other_salon = await session.get(CustomerRow, world.customer_ids["b_peter"])
        assert other_salon is not None and other_salon.name == "Peter Schuster"
    gone = await finder.find_appointments(LookupQuery(tenant_id=salon_id, name="Peter Schuster"))
    assert gone.kind == "none"
    caller = CallerId(store=SqlLookupStore(database), uow=SqlUnitOfWork(database), clock=clock)
    assert (await caller.find_caller(salon_id, "+4915110000001")).status == "unknown"


async def test_unknown_refs_are_refused_or_find_nobody(
    database: Database, clock: FixedClock, world: World
) -> None:
    with pytest.raises(CustomerRefError):
        await export_customer(database, "Peter", now=clock.now())
    assert (await export_customer(database, "999999", now=clock.now()))["customers"] == []
    assert (await erase_customer(database, "+4915199999999", now=clock.now()))["customers"] == 0


async def test_transcripts_are_purged_after_each_salons_retention(
    database: Database, clock: FixedClock, world: World, other_salon_id: int
) -> None:
    now = clock.now()
    async with database.write() as session, session.begin():
        settings = (await session.get(TenantRow, other_salon_id)).settings  # type: ignore[union-attr]
        await session.execute(
            update(TenantRow)
            .where(TenantRow.id == other_salon_id)
            .values(settings={**settings, "transcript_retention_days": 5})
        )
        for call, tenant, age in (
            ("old_a", None, 100),
            ("young_b", other_salon_id, 10),
            ("young_a", None, 89),
        ):
            session.add(
                CallRow(
                    retell_call_id=call,
                    tenant_id=tenant or world.tenants["a"],
                    memory={},
                    transcript="Anrufer: ...",
                    started_at=now - timedelta(days=age),
                    ended_at=None,
                    created_at=now - timedelta(days=age),
                )
            )
    assert await purge_transcripts(database, now=now) == 2
    async with database.read() as session:
        left = dict((await session.execute(select(CallRow.retell_call_id, CallRow.transcript))).all())
    assert left["old_a"] is None and left["young_b"] is None
    assert left["young_a"] is not None and left["call_1"] is not None
    assert await purge_transcripts(database, now=now) == 0


def test_the_salon_file_carries_the_retention_with_a_default() -> None:
    assert read_salon(DEMO_SALON).booking.transcript_retention_days == 90
    text = DEMO_SALON.read_text(encoding="utf-8")
    changed = text.replace(
        "  change_min_notice_hours: 2", "  transcript_retention_days: 30\n  change_min_notice_hours: 2"
    )
    assert parse_salon(changed).booking.transcript_retention_days == 30
    with pytest.raises(SalonFileError, match="transcript_retention_days"):
        parse_salon(
            text.replace(
                "  change_min_notice_hours: 2", "  transcript_retention_days: 0\n  change_min_notice_hours: 2"
            )
        )


def test_the_cli_exports_and_erases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    migrate.upgrade(url)
    clock = FixedClock(berlin(2025, 11, 3, 8, 0))

    async def prepare() -> World:
        database = Database.from_url(url)
        try:
            a = (await import_salon(database, read_salon(DEMO_SALON), now=clock.now())).tenant_id
            b = await import_second_salon(database, clock.now())
            return await seed(database, clock, {"a": a, "b": b})
        finally:
            await database.dispose()

    asyncio.run(prepare())
    monkeypatch.setenv("REZEPTION_DATABASE_URL", url)
    runner = CliRunner()
    out = tmp_path / "export.json"
    exported = runner.invoke(
        customers_app, ["export", "0151 10000001", "--tenant", "friseur1", "--out", str(out)]
    )
    assert exported.exit_code == 0, exported.output
    assert json.loads(out.read_text(encoding="utf-8"))["customers"][0]["name"] == "Peter Schuster"
    refused = runner.invoke(customers_app, ["erase", "+4915110000001"], input="n\n")
    assert refused.exit_code == 1
    erased = runner.invoke(customers_app, ["erase", "+4915110000001", "--tenant", "friseur1", "--yes"])
    assert erased.exit_code == 0 and "erased: 1 customer(s)" in erased.output
    assert "Schuster" not in erased.output and "4915110000001" not in erased.output
    again = runner.invoke(customers_app, ["export", "+4915110000001", "--tenant", "friseur1"])
    assert again.exit_code == 1
    bad = runner.invoke(customers_app, ["export", "nobody"])
    assert bad.exit_code == 2
