"""Signed webhooks end to end: call_inbound context, call events applied once, refusals before parsing."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy import select
from tests.integration.lookup.world import import_second_salon
from tests.integration.retell_adapter.conftest import (
    AGENT,
    CALLER,
    SALON_NUMBER,
    RetellClient,
    recorded_statements,
)

from rezeption.domain.clock import FixedClock
from rezeption.store.db import Database
from rezeption.store.gdpr import erase_customer
from rezeption.store.tables import CallRow


async def test_call_inbound_gives_todays_context_within_the_salons_zone(retell: RetellClient) -> None:
    response = await retell.post(
        "/retell/inbound",
        {
            "event": "call_inbound",
            "call_inbound": {"from_number": CALLER, "to_number": SALON_NUMBER, "call_id": "c1"},
        },
    )
    assert response.status_code == 200
    variables = response.json()["call_inbound"]["dynamic_variables"]
    assert variables["heute"] == "Montag, 3. November 2025"
    assert variables["salon_name"] == "Friseur 1"
    assert variables["oeffnungszeiten"].startswith("Dienstag und Mittwoch von 9 bis 18 Uhr")


async def test_call_inbound_reads_no_catalog_once_the_server_is_warm(
    retell: RetellClient, app: FastAPI
) -> None:
    """The background prefetch shares the server's catalog cache: a call_inbound loads no catalog."""
    with recorded_statements(app) as statements:
        for call_id in ("warm_1", "warm_2"):
            inbound = {"from_number": CALLER, "to_number": SALON_NUMBER, "call_id": call_id}
            response = await retell.post(
                "/retell/inbound", {"event": "call_inbound", "call_inbound": inbound}
            )
            assert response.status_code == 200
        for _ in range(100):  # the call record is written in the background, after the reply
            if sum("INSERT INTO calls" in s for s in statements) >= 2:
                break
            await asyncio.sleep(0.05)
    assert sum("INSERT INTO calls" in s for s in statements) >= 2, statements
    assert not [s for s in statements if "FROM staff" in s or "FROM services" in s], statements


async def test_call_inbound_for_an_unknown_number_is_refused_without_a_crash(retell: RetellClient) -> None:
    response = await retell.post(
        "/retell/inbound",
        {"event": "call_inbound", "call_inbound": {"from_number": CALLER, "to_number": "+4940111"}},
    )
    assert response.status_code == 200 and response.json() == {"call_inbound": {}}


async def test_call_events_are_stored_once_even_when_delivered_twice(
    retell: RetellClient, database: Database
) -> None:
    call = {
        "call_id": "call_w",
        "agent_id": AGENT,
        "from_number": CALLER,
        "to_number": SALON_NUMBER,
        "start_timestamp": 1762153200000,
        "end_timestamp": 1762153500000,
        "transcript": "Agent: Friseur 1, guten Tag!\nUser: Ich möchte einen Termin für Färben.",
        "call_analysis": {"call_successful": True},
    }
    for event in (
        "call_started",
        "call_ended",
        "call_ended",
        "call_analyzed",
        "transcript_updated",
        "transfer_started",
    ):
        response = await retell.post("/retell/webhook", {"event": event, "call": call})
        assert response.status_code == 204
    legacy = await retell.post("/retell/webhook", {"event": "call_analyzed", "data": call})
    assert legacy.status_code == 204
    async with database.read() as session:
        row = (await session.scalars(select(CallRow))).one()
    assert row.status == "ended" and row.transcript is not None and "Färben" in row.transcript
    assert row.from_number == CALLER
    assert row.started_at is not None and row.started_at.isoformat() == "2025-11-03T07:00:00+00:00"
    assert row.memory["_events"] == ["call_started", "call_ended", "call_analyzed"]
    assert row.memory["analysis"] == {"call_successful": True}


async def test_unsigned_forged_and_stale_requests_are_refused_before_anything_is_stored(
    retell: RetellClient, database: Database
) -> None:
    body = json.dumps({"event": "call_started", "call": {"call_id": "x", "agent_id": AGENT}}).encode()
    unsigned = await retell.http.post("/retell/webhook", content=body)
    forged = await retell.http.post(
        "/retell/webhook", content=body, headers={"X-Retell-Signature": retell.sign(b"{}")}
    )
    header = retell.sign(body)
    retell.clock.advance(timedelta(minutes=6))
    stale = await retell.http.post("/retell/webhook", content=body, headers={"X-Retell-Signature": header})
    for path in ("/retell/functions/list_services", "/retell/inbound"):
        assert (await retell.http.post(path, content=body)).status_code == 401
    assert [unsigned.status_code, forged.status_code, stale.status_code] == [401, 401, 401]
    async with database.read() as session:
        assert (await session.scalars(select(CallRow))).all() == []


async def test_bodies_over_two_megabytes_are_refused(retell: RetellClient) -> None:
    transcript = "User: ja " * 300_000
    response = await retell.post(
        "/retell/webhook", {"event": "call_ended", "call": {"call_id": "big", "transcript": transcript}}
    )
    assert response.status_code == 413
    fits = await retell.post(
        "/retell/webhook",
        {"event": "call_ended", "call": {"call_id": "ok", "agent_id": AGENT, "transcript": "Ä" * 500_000}},
    )
    assert fits.status_code == 204


async def test_a_call_event_after_the_callers_erasure_is_taken_quietly_and_writes_nothing(
    retell: RetellClient, database: Database, clock: FixedClock
) -> None:
    """Retell sends call_analyzed after call_ended, and a webhook again when it got no 2xx: after
    the erasure such an event gets 204 (not a 403 that Retell delivers three times more, as the
    erased call's number no longer agrees) and brings nothing back. call_ended still ends the call
    (at its end, once: a redelivery does not move it), or it would count as ongoing for ever; from
    another salon's agent it ends nothing."""
    booked = await retell.function(
        "book_appointment",
        {"name": "Peter Schuster", "dienstleistung": "Bartpflege", "datum": "Donnerstag", "uhrzeit": "12:00"},
        call_id="call_gone",
    )
    assert booked["ok"] is True, booked
    call = {"call_id": "call_gone", "agent_id": AGENT, "from_number": CALLER, "to_number": SALON_NUMBER}
    assert (await retell.post("/retell/webhook", {"event": "call_started", "call": call})).status_code == 204
    await erase_customer(database, CALLER, now=clock.now(), tenant_slug="friseur1")
    await import_second_salon(database, clock.now())  # its agent is "agent_friseur2"
    end = int(clock.now().timestamp() * 1000) + 90_000
    ended = {**call, "transcript": "Anrufer: Peter Schuster hier.", "call_analysis": {"summary": "Peter"},
             "end_timestamp": end}  # fmt: skip
    elsewhere = {**ended, "agent_id": "agent_friseur2", "to_number": None, "end_timestamp": end - 60_000}
    answer = await retell.post("/retell/webhook", {"event": "call_ended", "call": elsewhere})
    assert answer.status_code == 204, answer.text
    async with database.read() as session:
        row = (await session.scalars(select(CallRow).where(CallRow.retell_call_id == "call_gone"))).one()
    assert row.status != "ended" and row.ended_at is None, "another salon's agent ends nothing"
    for event, later in (("call_ended", 0), ("call_analyzed", 0), ("call_ended", 30_000)):
        # the second call_ended (a redelivery) says a later end: the call's end stays the first
        delivered = {**ended, "end_timestamp": end + later}
        answer = await retell.post("/retell/webhook", {"event": event, "call": delivered})
        assert answer.status_code == 204, answer.text
    async with database.read() as session:
        row = (await session.scalars(select(CallRow).where(CallRow.retell_call_id == "call_gone"))).one()
    assert (row.transcript, row.from_number) == (None, None)
    assert "Peter" not in json.dumps(row.memory)
    assert row.status == "ended" and row.ended_at is not None
    assert int(row.ended_at.timestamp() * 1000) == end


async def test_exact_replays_of_a_calls_webhooks_change_nothing(
    retell: RetellClient, database: Database
) -> None:
    """Webhooks keep no record of signatures seen (it cost each a committed write): a replay of the
    same signed bytes, within the signature's five minutes, must change nothing, whatever it
    replays and in whatever order (a call_started replayed after the end does not reopen it)."""
    call = {
        "call_id": "call_replayed",
        "agent_id": AGENT,
        "from_number": CALLER,
        "to_number": SALON_NUMBER,
        "start_timestamp": 1762153200000,
        "end_timestamp": 1762153500000,
        "transcript": "Agent: Friseur 1, guten Tag!",
        "call_analysis": {"call_successful": True},
    }
    sent: list[tuple[bytes, str]] = []
    for event in ("call_started", "call_ended", "call_analyzed"):
        raw = json.dumps({"event": event, "call": call}).encode()
        signature = retell.sign(raw)
        sent.append((raw, signature))
        response = await retell.http.post(
            "/retell/webhook", content=raw, headers={"X-Retell-Signature": signature}
        )
        assert response.status_code == 204

    async def stored() -> tuple[object, ...]:
        async with database.read() as session:
            row = (await session.scalars(select(CallRow))).one()
        return (row.status, row.started_at, row.ended_at, row.transcript, dict(row.memory))

    before = await stored()
    assert before[0] == "ended" and before[4]["_events"] == ["call_started", "call_ended", "call_analyzed"]
    for raw, signature in [*sent, *reversed(sent)]:
        again = await retell.http.post(
            "/retell/webhook", content=raw, headers={"X-Retell-Signature": signature}
        )
        assert again.status_code == 204
    assert await stored() == before


async def test_a_call_event_from_another_number_for_a_stored_call_is_refused_and_changes_nothing(
    retell: RetellClient, database: Database
) -> None:
    """The nearest different person: the same salon, its own agent and number, a call id we stored,
    but another caller's number. Their call_ended must not end the call, nor leave a transcript in
    it; the caller's own call_ended then does."""
    call = {"call_id": "call_owned", "agent_id": AGENT, "from_number": CALLER, "to_number": SALON_NUMBER}
    started = {**call, "start_timestamp": 1762153200000}
    assert (
        await retell.post("/retell/webhook", {"event": "call_started", "call": started})
    ).status_code == 204
    ended = {**started, "end_timestamp": 1762153500000, "transcript": "Agent: Friseur 1, guten Tag!"}
    stranger = {**ended, "from_number": "+4917699999999", "transcript": "User: nicht mein Anruf"}

    refused = await retell.post("/retell/webhook", {"event": "call_ended", "call": stranger})
    assert refused.status_code == 403
    no_number = await retell.post(
        "/retell/webhook", {"event": "call_ended", "call": {**stranger, "from_number": None}}
    )
    assert no_number.status_code == 403
    async with database.read() as session:
        row = (await session.scalars(select(CallRow))).one()
    assert (row.status, row.ended_at, row.transcript) == ("ongoing", None, None)
    assert row.memory["_events"] == ["call_started"]

    assert (await retell.post("/retell/webhook", {"event": "call_ended", "call": ended})).status_code == 204
    async with database.read() as session:
        row = (await session.scalars(select(CallRow))).one()
    assert row.status == "ended" and row.transcript == "Agent: Friseur 1, guten Tag!"


async def test_call_events_naming_another_agent_number_or_salon_for_a_stored_call_change_nothing(
    retell: RetellClient, database: Database, clock: FixedClock
) -> None:
    """Each field the agreement checks, alone: an agent id we do not know with our number and the
    caller's; our agent with a number no salon owns; and, for a call stored without its called
    number, our agent with the second salon's number (only the salons' routes tell that apart)."""
    await import_second_salon(database, clock.now())
    full = {"call_id": "call_full", "agent_id": AGENT, "from_number": CALLER, "to_number": SALON_NUMBER}
    bare = {"call_id": "call_bare", "agent_id": AGENT, "from_number": CALLER}  # no called number
    for call in (full, bare):
        started = {**call, "start_timestamp": 1762153200000}
        assert (
            await retell.post("/retell/webhook", {"event": "call_started", "call": started})
        ).status_code == 204
    end = {"end_timestamp": 1762153500000, "transcript": "User: fremd"}
    for envelope in (
        {**full, **end, "agent_id": "agent_unknown"},
        {**full, **end, "to_number": "+493099999999"},
        {**bare, **end, "to_number": "+493012345679"},  # the second salon's number
    ):
        response = await retell.post("/retell/webhook", {"event": "call_ended", "call": envelope})
        assert response.status_code == 403, envelope
    async with database.read() as session:
        rows = (await session.scalars(select(CallRow).order_by(CallRow.retell_call_id))).all()
    assert [(r.status, r.ended_at, r.transcript) for r in rows] == [("ongoing", None, None)] * 2
