"""Caller ID at call_inbound: a name only for one consenting person, never for a shared number; a kill switch.

Friseur 1, Monday 3 November 2025, 08:00.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from tests.integration.lookup.world import World, build_world

from rezeption.booking.caller_id import CallerId
from rezeption.domain.clock import FixedClock
from rezeption.domain.flags import CALLER_ID, Rule, recording
from rezeption.store.db import Database
from rezeption.store.flags import clear_rule, flag_book, set_rule
from rezeption.store.lookup import SqlLookupStore
from rezeption.store.tables import CallRow, CustomerRow
from rezeption.store.uow import SqlUnitOfWork

PEOPLE: list[dict[str, Any]] = [
    {"key": "peter", "name": "Peter Schuster", "phone": "+4915110000001", "appointments": [
        {"key": "tue", "at": "2025-11-04 10:00", "service": "herrenhaarschnitt"},
        {"key": "thu", "at": "2025-11-06 15:00", "service": "bartpflege"},
        {"key": "later", "at": "2025-11-14 15:00", "service": "bartpflege"},
    ]},
    {"key": "anna", "name": "Anna Meier", "phone": "+493011111111", "appointments": []},
    {"key": "paul", "name": "Paul Meier", "phone": "+493011111111", "appointments": []},
    {"key": "nameless", "name": None, "phone": "+4915110000001", "appointments": []},
    {"key": "b_peter", "tenant": "b", "name": "Peter Schuster", "phone": "+4915110000002",
     "appointments": []},
]  # fmt: skip


@pytest.fixture
async def world(database: Database, clock: FixedClock, salon_id: int, other_salon_id: int) -> World:
    return await build_world(database, {"a": salon_id, "b": other_salon_id}, PEOPLE, clock.now())


@pytest.fixture
def caller_id(database: Database, clock: FixedClock) -> CallerId:
    return CallerId(
        store=SqlLookupStore(database),
        uow=SqlUnitOfWork(database),
        clock=clock,
        flags=flag_book(database, ttl=0),
    )


async def test_a_consenting_customer_is_greeted_with_name_and_next_appointments(
    caller_id: CallerId, database: Database, clock: FixedClock, world: World, salon_id: int
) -> None:
    before = await caller_id.find_caller(salon_id, "0151 10000001")
    assert before.status == "unknown" and before.dynamic_variables()["customer_known"] == "false"
    assert before.dynamic_variables()["customer_name"] == ""
    ids = await caller_id.record_consent(
        salon_id, call_id="call_1", phone="0151 10000001", name="Peter Schuster"
    )
    assert ids == [world.customer_ids["peter"]]
    match = await caller_id.find_caller(salon_id, "+4915110000001")
    assert match.status == "known" and match.name == "Peter Schuster"
    assert match.dynamic_variables() == {
        "customer_known": "true",
        "shared_number": "false",
        "customer_name": "Peter Schuster",
        "next_appointments": "Herrenhaarschnitt morgen um 10 Uhr und Bartpflege am Donnerstag um 15 Uhr",
    }
    async with database.read() as session:
        row = await session.get(CustomerRow, ids[0])
        assert row is not None and row.caller_id_consent_at == clock.now() and row.consent_call_id == "call_1"


async def test_a_shared_number_never_gets_a_name_even_with_consent(
    caller_id: CallerId, world: World, salon_id: int
) -> None:
    await caller_id.record_consent(salon_id, call_id="c1", customer_id=world.customer_ids["anna"])
    await caller_id.record_consent(salon_id, call_id="c2", customer_id=world.customer_ids["paul"])
    match = await caller_id.find_caller(salon_id, "+493011111111")
    assert match.status == "shared" and match.name is None
    assert match.dynamic_variables()["shared_number"] == "true"
    assert match.dynamic_variables()["customer_known"] == "false"
    assert match.dynamic_variables()["customer_name"] == ""


async def test_one_consent_on_a_shared_number_still_greets_nobody(
    caller_id: CallerId, world: World, salon_id: int
) -> None:
    await caller_id.record_consent(salon_id, call_id="c1", customer_id=world.customer_ids["anna"])
    assert (await caller_id.find_caller(salon_id, "+493011111111")).status == "shared"


@pytest.mark.parametrize(
    "raw", [None, "", "anonymous", "unterdrückt", "+266696687", "15110000001", "030 FRISEUR"]
)
async def test_withheld_or_invalid_numbers_are_unknown(
    raw: str | None, caller_id: CallerId, world: World, salon_id: int
) -> None:
    await caller_id.record_consent(salon_id, call_id="c1", customer_id=world.customer_ids["peter"])
    assert (await caller_id.find_caller(salon_id, raw)).status == "unknown"


async def test_consent_at_another_salon_does_not_count_here(
    caller_id: CallerId, world: World, salon_id: int, other_salon_id: int
) -> None:
    await caller_id.record_consent(other_salon_id, call_id="c1", customer_id=world.customer_ids["b_peter"])
    assert (await caller_id.find_caller(salon_id, "+4915110000002")).status == "unknown"
    assert (await caller_id.find_caller(other_salon_id, "+4915110000002")).status == "known"
    # another salon's customer id is not this salon's to consent for
    assert (
        await caller_id.record_consent(salon_id, call_id="c9", customer_id=world.customer_ids["b_peter"])
        == []
    )


async def test_the_caller_id_flag_turns_greetings_off_globally_or_per_salon(
    caller_id: CallerId,
    database: Database,
    clock: FixedClock,
    world: World,
    salon_id: int,
    other_salon_id: int,
) -> None:
    await caller_id.record_consent(salon_id, call_id="c1", customer_id=world.customer_ids["peter"])
    steps: list[tuple[str, Rule | None, str]] = [
        ("friseur2", Rule(False), "known"),  # another salon's rule never reaches this one
        ("friseur1", Rule(False), "disabled"),
        ("friseur1", Rule(True), "known"),
        ("global", Rule(False), "known"),  # the salon's own rule wins: an allow-list
        ("friseur1", None, "disabled"),  # without it, the global rule decides
        ("global", Rule(True, percent=0), "disabled"),
        ("global", Rule(True, percent=100), "known"),
        ("global", Rule(True), "known"),
    ]
    for scope, rule, expected in steps:
        if rule is None:
            await clear_rule(database, CALLER_ID, scope=scope)
        else:
            await set_rule(database, CALLER_ID, rule, scope=scope, at=clock.now())
        with recording("call-flag-test"):
            found = await caller_id.find_caller(salon_id, "+4915110000001")
        assert found.status == expected, (scope, rule)


async def test_consent_by_number_and_name_creates_the_person_and_links_the_call(
    caller_id: CallerId, database: Database, clock: FixedClock, world: World, salon_id: int
) -> None:
    async with database.write() as session, session.begin():
        session.add(
            CallRow(
                retell_call_id="call_new",
                tenant_id=salon_id,
                from_number="+4915110000009",
                memory={},
                created_at=clock.now(),
            )
        )
    ids = await caller_id.record_consent(
        salon_id, call_id="call_new", phone="+4915110000009", name="Eva Weiß"
    )
    assert len(ids) == 1
    async with database.read() as session:
        call = (await session.scalars(select(CallRow).where(CallRow.retell_call_id == "call_new"))).one()
        assert call.customer_id == ids[0]
    match = await caller_id.find_caller(salon_id, "+4915110000009")
    assert match.status == "known" and match.name == "Eva Weiß" and match.next_appointments == ""
