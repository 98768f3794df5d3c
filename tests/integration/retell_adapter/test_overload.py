"""Overload against our server under uvicorn: with no turn free, a function call hears at once that it
is busy and that nothing changed (and nothing is written), call_inbound and webhooks get 503 with
Retry-After (Retell retries them), probes and metrics still answer; with the turn free again the
same booking goes through. A client that sends its body slowly does not hold a turn meanwhile."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from tests.integration.retell_adapter.conftest import AGENT, API_KEY, CALLER, SALON_NUMBER, RetellClient
from tests.metrics import sample

from rezeption.app import create_app
from rezeption.domain.clock import FixedClock
from rezeption.ops.admission import BODY_CAP, BULK_BODY_SECONDS, BULK_CONCURRENCY, FairGate
from rezeption.settings import Settings
from rezeption.store.db import Database
from rezeption.store.tables import AppointmentRow

BOOKING = {"name": "Erika Muster", "dienstleistung": "Bartpflege", "datum": "Donnerstag", "uhrzeit": "13 Uhr"}


@pytest.fixture
def app(database_url: str, salon_id: int, clock: FixedClock) -> FastAPI:
    """One turn and no line: while the turn is taken, every request is turned away at once."""
    settings = Settings(
        database_url=database_url,
        retell_api_key=API_KEY,
        environment="test",
        admission_concurrency=1,
        admission_max_waiting=0,
    )
    return create_app(settings, clock=clock)


@pytest.fixture
def turn_taken(app: FastAPI, server: str) -> Iterator[FairGate]:
    """The only turn held, as by a request at work (an int store: safe across the server thread)."""
    gate: FairGate = app.state.admission
    gate.busy = 1
    try:
        yield gate
    finally:
        gate.busy = 0


async def appointments(database: Database) -> int:
    async with database.read() as session:
        return int(await session.scalar(select(func.count()).select_from(AppointmentRow)) or 0)


def envelope(call_id: str) -> dict[str, Any]:
    return {"call_id": call_id, "agent_id": AGENT, "from_number": CALLER, "to_number": SALON_NUMBER}


async def test_with_no_turn_free_a_booking_hears_it_is_busy_and_nothing_is_written(
    retell: RetellClient, database: Database, turn_taken: FairGate
) -> None:
    shed_before = sample("rezeption_admission_shed_total", route="function", reason="full")
    reply = await retell.function("book_appointment", BOOKING, call_id="call_busy")
    assert reply["ok"] is False and reply["reason"] == "server_busy"
    assert "viel los" in reply["message"] and reply["ergebnis"] == "nichts_geaendert"
    assert await appointments(database) == 0
    assert sample("rezeption_admission_shed_total", route="function", reason="full") == shed_before + 1

    inbound = await retell.post("/retell/inbound", {"event": "call_inbound", "call_inbound": envelope("c2")})
    assert inbound.status_code == 503 and inbound.headers["retry-after"] == "1"
    ended = await retell.post("/retell/webhook", {"event": "call_ended", "call": envelope("c2")})
    assert ended.status_code == 503
    for probe in ("/health", "/ready", "/metrics"):  # the operator still sees an overloaded server
        assert (await retell.http.get(probe)).status_code == 200, probe

    turn_taken.busy = 0
    booked = await retell.function("book_appointment", BOOKING, call_id="call_busy")
    assert booked.get("gebucht") is True, booked
    assert await appointments(database) == 1


async def test_a_client_sending_its_body_slowly_holds_no_turn(
    app: FastAPI, server: str, retell: RetellClient, database: Database
) -> None:
    address = urlparse(server)
    body = json.dumps({"name": "book_appointment", "call": envelope("call_slow"), "args": BOOKING}).encode()
    slow = socket.create_connection((address.hostname, address.port))
    try:
        head = (
            f"POST /retell/functions/book_appointment HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        slow.sendall(head.encode() + body[:10])  # and then it dawdles
        await asyncio.sleep(0.2)
        reply = await retell.function("book_appointment", BOOKING, call_id="call_quick")
        assert reply.get("gebucht") is True, reply
        assert app.state.admission.busy == 0
    finally:
        slow.close()
    assert await appointments(database) == 1


async def bulk_turns_all_taken(app: FastAPI) -> None:
    """Wait (at most 2 s) until the slow bodies hold every bulk turn."""
    for _ in range(200):
        if app.state.admission_bulk.busy == BULK_CONCURRENCY:
            break
        await asyncio.sleep(0.01)
    assert app.state.admission_bulk.busy == BULK_CONCURRENCY, "the slow bodies are in bulk turns"


def _dawdling_large_body(server: str, path: str = "/retell/webhook") -> socket.socket:
    """A client that declares a body over the read-ahead cap (before any signature could be
    checked), sends 10 bytes of it and then dawdles."""
    address = urlparse(server)
    slow = socket.create_connection((address.hostname, address.port))
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/json\r\nContent-Length: {BODY_CAP * 8}\r\n\r\n"
    )
    slow.sendall(head.encode() + b'{"event": ')
    return slow


async def test_clients_sending_large_bodies_slowly_hold_none_of_the_calls_turns(
    app: FastAPI, server: str, retell: RetellClient, database: Database
) -> None:
    """Found in review: a body declared over the read-ahead cap was read by its route during a turn,
    so a few slow, unsigned clients held every turn and callers heard "viel los". They now take
    turns of the bulk gate, and a full bulk gate turns the next one away."""
    slow = [_dawdling_large_body(server) for _ in range(BULK_CONCURRENCY)]
    try:
        await bulk_turns_all_taken(app)
        reply = await retell.function("book_appointment", BOOKING, call_id="call_quick")
        assert reply.get("gebucht") is True, reply
        assert app.state.admission.busy == 0
        another = _dawdling_large_body(server)
        slow.append(another)
        another.settimeout(10)
        answer = another.recv(4096).decode()
        assert answer.startswith("HTTP/1.1 503"), answer[:80]
    finally:
        for client in slow:
            client.close()
    assert await appointments(database) == 1


async def test_a_large_body_that_never_arrives_gives_its_bulk_turn_back_when_retell_would_give_up(
    app: FastAPI, server: str
) -> None:
    """Found in review: a large body read during its bulk turn had no deadline, so two dawdling
    clients held both bulk turns for as long as they liked and every large webhook was turned away.
    Retell gives up on a webhook after 10 s: a body that takes longer serves nobody, so it gets 408
    and the turn is free again."""
    slow = [_dawdling_large_body(server) for _ in range(BULK_CONCURRENCY)]
    try:
        await bulk_turns_all_taken(app)
        for client in slow:
            client.settimeout(BULK_BODY_SECONDS + 10)
        answers = [(await asyncio.to_thread(client.recv, 4096)).decode() for client in slow]
    finally:
        for client in slow:
            client.close()
    assert all(a.startswith("HTTP/1.1 408") for a in answers), [a[:40] for a in answers]
    assert app.state.admission_bulk.busy == 0
