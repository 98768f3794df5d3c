"""Feature flags in real calls: a caller-ID rollout decided per call id at call_inbound, stable for
the call, and its decision in the call's trace; a salon's rule over the global one."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import FastAPI
from sqlalchemy import text
from tests.integration.retell_adapter.conftest import CALLER, SALON_NUMBER, RetellClient

from rezeption.domain.clock import FixedClock
from rezeption.domain.flags import CALLER_ID, Rule, bucket
from rezeption.store.db import Database
from rezeption.store.flags import set_rule


async def inbound_trace(database: Database, call_id: str) -> dict[str, Any]:
    for _ in range(60):
        async with database.statement() as conn:
            row = (
                await conn.execute(
                    text("SELECT flags FROM function_call_traces WHERE retell_call_id = :c"), {"c": call_id}
                )
            ).first()
        if row is not None:
            return json.loads(row[0]) if isinstance(row[0], str) else dict(row[0])
        await asyncio.sleep(0.05)
    raise AssertionError(f"no trace for {call_id}")


async def test_a_caller_id_rollout_decides_by_call_id_and_is_traced(
    app: FastAPI, retell: RetellClient, database: Database, clock: FixedClock
) -> None:
    booked = await retell.function(
        "book_appointment",
        {
            "name": "Peter Schuster",
            "dienstleistung": "Bartpflege",
            "datum": "Donnerstag",
            "uhrzeit": "13 Uhr",
        },
    )
    assert booked["gebucht"] is True
    assert (await retell.function("record_consent", {}))["gespeichert"] is True
    await set_rule(database, CALLER_ID, Rule(True, percent=30), at=clock.now())
    app.state.services.flags.forget()
    ids = [f"call_rollout_{n}" for n in range(12)]
    expected = {c: bucket(CALLER_ID, c) < 30 for c in ids}
    assert set(expected.values()) == {True, False}, "the sample holds calls on both sides"
    for call_id in ids:
        for _ in range(2):  # the same call asks twice: the same answer
            response = await retell.post(
                "/retell/inbound",
                {"event": "call_inbound",
                 "call_inbound": {"call_id": call_id, "from_number": CALLER, "to_number": SALON_NUMBER}},
            )  # fmt: skip
            known = response.json()["call_inbound"]["dynamic_variables"]["customer_known"] == "true"
            assert known is expected[call_id], call_id
    for call_id in ids[:4]:
        flags = await inbound_trace(database, call_id)
        assert flags == {CALLER_ID: {"on": expected[call_id], "why": "global 30 %"}}

    await set_rule(database, CALLER_ID, Rule(True), scope="friseur1", at=clock.now())
    app.state.services.flags.forget()
    response = await retell.post(
        "/retell/inbound",
        {"event": "call_inbound",
         "call_inbound": {"call_id": "call_salon_rule", "from_number": CALLER, "to_number": SALON_NUMBER}},
    )  # fmt: skip
    assert response.json()["call_inbound"]["dynamic_variables"]["customer_name"] == "Peter Schuster"
    assert await inbound_trace(database, "call_salon_rule") == {CALLER_ID: {"on": True, "why": "salon"}}
