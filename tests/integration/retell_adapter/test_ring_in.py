"""A call's ring-in through the route (`store.ring_in`: one statement on PostgreSQL): who is
recognized from the customers read with the call's opening, and what the opening writes.

Friseur 1, Monday 3 November 2025, 08:00.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import select, update
from tests.integration.lookup.world import build_world
from tests.integration.retell_adapter.conftest import AGENT, SALON_NUMBER, RetellClient

from rezeption.domain.clock import FixedClock
from rezeption.store.db import Database
from rezeption.store.tables import CallRow, CustomerRow

SHARED = "+493011111111"
PETER = "+4915110000001"
PEOPLE: list[dict[str, Any]] = [
    {"key": "peter", "name": "Peter Schuster", "phone": PETER, "appointments": [
        {"key": "tue", "at": "2025-11-04 10:00", "service": "herrenhaarschnitt"},
    ]},
    {"key": "nameless", "name": None, "phone": PETER, "appointments": []},
    {"key": "anna", "name": "Anna Meier", "phone": SHARED, "appointments": []},
    {"key": "paul", "name": "Paul Meier", "phone": SHARED, "appointments": []},
]  # fmt: skip


async def ring(retell: RetellClient, call_id: str | None, caller: str) -> dict[str, str]:
    call = {"from_number": caller, "to_number": SALON_NUMBER, "agent_id": AGENT}
    if call_id:
        call["call_id"] = call_id
    response = await retell.post("/retell/inbound", {"event": "call_inbound", "call_inbound": call})
    assert response.status_code == 200, response.text
    variables: dict[str, str] = response.json()["call_inbound"]["dynamic_variables"]
    return variables


async def consent_all(database: Database, clock: FixedClock) -> None:
    async with database.write() as session, session.begin():
        await session.execute(update(CustomerRow).values(caller_id_consent_at=clock.now()))


async def test_one_consenting_person_is_greeted_and_a_shared_number_never_is(
    retell: RetellClient, database: Database, clock: FixedClock, salon_id: int
) -> None:
    await build_world(database, {"a": salon_id}, PEOPLE, clock.now())
    await consent_all(database, clock)
    peter = await ring(retell, "call_peter", PETER)  # his row and a nameless one at his number
    assert peter["customer_known"] == "true" and peter["customer_name"] == "Peter Schuster"
    assert peter["next_appointments"].startswith("Herrenhaarschnitt morgen"), peter
    shared = await ring(retell, "call_shared", SHARED)  # two people, both consented
    assert shared["customer_known"] == "false" and shared["customer_name"] == ""
    assert shared["shared_number"] == "true"
    stranger = await ring(retell, "call_new", "+4915199999999")
    assert stranger["customer_known"] == "false" and stranger["shared_number"] == "false"


async def test_the_opening_fills_only_what_the_call_lacks_and_keeps_its_memory(
    retell: RetellClient, database: Database, clock: FixedClock, salon_id: int
) -> None:
    """A call stored before its call_inbound (a function call came first, without the caller's
    number) gets the number filled in; what it stored stays, and a second delivery with another
    number changes nothing."""
    async with database.write() as session, session.begin():
        session.add(
            CallRow(
                retell_call_id="call_early",
                tenant_id=salon_id,
                agent_id=AGENT,
                memory={"name": "Peter Schuster"},
                created_at=clock.now(),
                status="inbound",
            )
        )
    await ring(retell, "call_early", PETER)
    await ring(retell, "call_early", "+4915199999999")
    await ring(retell, None, PETER)  # no call id: nothing is opened
    async with database.read() as session:
        rows = (await session.scalars(select(CallRow))).all()
    assert [(r.retell_call_id, r.from_number, r.to_number, r.memory) for r in rows] == [
        ("call_early", PETER, SALON_NUMBER, {"name": "Peter Schuster"})
    ]


async def test_a_ring_in_the_database_cannot_answer_still_connects_and_opens_the_call(
    retell: RetellClient, database: Database, app: FastAPI, salon_id: int
) -> None:
    """The ring-in's statement fails (a saturated pool, a lock): the caller hears the salon's
    variables from memory, and the call is still opened after the answer, or the custom-LLM socket
    would refuse it."""
    await ring(retell, "call_warm", PETER)  # this process knows the salon's catalog

    async def unavailable(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("the database is away")

    app.state.services.calls.ring_in = unavailable
    variables = await ring(retell, "call_fallback", PETER)
    assert variables["salon_name"] == "Friseur 1" and variables["customer_known"] == "false"
    for _ in range(200):
        async with database.read() as session:
            opened = (
                await session.scalars(select(CallRow).where(CallRow.retell_call_id == "call_fallback"))
            ).first()
        if opened is not None:
            break
        await asyncio.sleep(0.01)
    assert opened is not None and opened.tenant_id == salon_id and opened.from_number == PETER


async def test_a_reads_exact_replay_is_refused_even_as_the_calls_first_request(
    retell: RetellClient, database: Database, clock: FixedClock, salon_id: int
) -> None:
    """A read's signature is recorded with its call's read, in the same statement: a replay is
    refused before it runs, whether the first delivery found the call or opened it, and whichever
    read it is (find_appointments would disclose appointments; the others are refused alike)."""
    await build_world(database, {"a": salon_id}, PEOPLE, clock.now())
    stamp = int(clock.now().timestamp() * 1000) + 50_000
    for k, (name, args) in enumerate(
        [
            ("find_appointments", {"name": "Peter Schuster"}),
            (
                "check_availability",
                {"dienstleistung": "Herrenhaarschnitt", "datum": "morgen", "uhrzeit": "11 Uhr"},
            ),
            ("list_services", {}),
        ]
    ):
        call = {
            "call_id": f"call_read_{k}",
            "agent_id": AGENT,
            "from_number": PETER,
            "to_number": SALON_NUMBER,
        }
        raw = json.dumps({"name": name, "call": call, "args": args}).encode()
        headers = {"X-Retell-Signature": retell.sign_at(raw, stamp + k), "Content-Type": "application/json"}
        first = await retell.http.post(f"/retell/functions/{name}", content=raw, headers=headers)
        again = await retell.http.post(f"/retell/functions/{name}", content=raw, headers=headers)
        assert first.status_code == 200, first.text
        assert again.status_code == 409 and again.json()["reason"] == "refused", again.text
        assert "Peter" not in again.text and "Herrenhaarschnitt" not in again.text
    found = await retell.http.post(
        "/retell/functions/find_appointments",
        content=(raw := json.dumps({"name": "find_appointments", "call": {**call, "call_id": "call_read_0"},
                                    "args": {"name": "Peter Schuster"}}).encode()),
        headers={"X-Retell-Signature": retell.sign_at(raw, stamp + 99), "Content-Type": "application/json"},
    )  # fmt: skip
    assert found.status_code == 200 and found.json()["ok"] is True, found.text  # a new request runs


async def test_a_replayed_ring_in_is_not_counted_again(retell: RetellClient) -> None:
    """Caller ID's outcomes count calls: the exact replay of a call_inbound without a number is
    answered (the salon's variables) but not counted a second time."""

    def counted() -> float:
        return REGISTRY.get_sample_value("rezeption_caller_id_total", {"outcome": "no_number"}) or 0.0

    call = {"call_id": "call_hidden", "to_number": SALON_NUMBER, "agent_id": AGENT}
    raw = json.dumps({"event": "call_inbound", "call_inbound": call}).encode()
    headers = {"X-Retell-Signature": retell.sign(raw), "Content-Type": "application/json"}
    before = counted()
    first = await retell.http.post("/retell/inbound", content=raw, headers=headers)
    again = await retell.http.post("/retell/inbound", content=raw, headers=headers)
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert again.json()["call_inbound"]["dynamic_variables"]["customer_known"] == "false"
    assert counted() - before == 1
