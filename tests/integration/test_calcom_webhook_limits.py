"""The Cal.com webhook bounds a body before reading it and checks the signature before database work,
under a real uvicorn on 127.0.0.1.

Before (issue 11): an unsigned 200 MiB chunked body was read in full before the signature check
(the process peaked at 540 MB). Here 20 MiB bodies are refused while the process allocates at most
a few MB (tracemalloc, which sees the server thread's allocations too).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import tracemalloc
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, select
from tests.conftest import ROOT
from tests.faults import ServedApp, serve_app

from rezeption.app import create_app
from rezeption.calendars.calcom.webhook import MAX_BODY, signature_for
from rezeption.domain.clock import FixedClock
from rezeption.settings import Settings
from rezeption.store.db import Database
from rezeption.store.salon_file import read_salon
from rezeption.store.salon_import import import_salon
from rezeption.store.tables import OutboxJobRow

SALON = ROOT / "salons" / "friseur1-calcom.yaml"
SECRET = "whsec_friseur1_demo"
PATH = "/calcom/webhooks/friseur1-calcom"
MIB = 1024 * 1024


@pytest.fixture
async def calcom_salon(database: Database, clock: FixedClock) -> int:
    report = await import_salon(database, read_salon(SALON), now=clock.now())
    return report.tenant_id


@pytest.fixture
def app(database_url: str, calcom_salon: int, clock: FixedClock) -> FastAPI:
    settings = Settings(
        database_url=database_url,
        environment="test",
        embedded_worker="off",
        warmup=False,
        slot_refresher=False,
    )  # nothing in the background: the statements seen are the webhook's own
    return create_app(settings, clock=clock)


@pytest.fixture
def served(app: FastAPI) -> Iterator[ServedApp]:
    with serve_app(app) as running:
        yield running


def booking(uid: str = "bk_4f2a9c") -> bytes:
    return json.dumps(
        {"triggerEvent": "BOOKING_CREATED", "createdAt": "2025-11-03T07:00:00Z", "payload": {"uid": uid}}
    ).encode()


async def post_chunked(
    url: str, headers: dict[str, str], total: int, chunk: int = 64 * 1024
) -> tuple[int, int]:
    """POST `total` bytes with Transfer-Encoding: chunked, as fast as the server takes them; the
    response status, and how many bytes went out before the server stopped taking them.

    Plain sockets in threads (not asyncio streams, whose failed write hides a response that
    already arrived): one thread sends, this one reads the status line."""
    return await asyncio.to_thread(_post_chunked, httpx.URL(url), headers, total, chunk)


def _post_chunked(url: httpx.URL, headers: dict[str, str], total: int, chunk: int) -> tuple[int, int]:
    head = [f"POST {url.raw_path.decode()} HTTP/1.1", f"Host: {url.host}", "Transfer-Encoding: chunked"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    piece = f"{chunk:x}\r\n".encode() + b"{" * chunk + b"\r\n"
    sent = 0
    with socket.create_connection((url.host, url.port), timeout=60) as conn:
        conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode())

        def send() -> None:
            nonlocal sent
            try:
                while sent < total:
                    conn.sendall(piece)
                    sent += chunk
                conn.sendall(b"0\r\n\r\n")
            except OSError:  # the server closed: it stopped reading
                pass

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        received = b""
        while b"\r\n" not in received:
            more = conn.recv(4096)
            if not more:
                break
            received += more
        sender.join(timeout=60)
    assert received.startswith(b"HTTP/1.1 "), received
    return int(received.split()[1]), sent


async def peak_growth(work: Any) -> tuple[Any, int]:
    """Run `work` and return its result and the peak of memory allocated meanwhile (all threads)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        baseline = tracemalloc.get_traced_memory()[0]
        result = await work
        return result, tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    "signature",
    ["", signature_for(SECRET, b"something else")],
    ids=["unsigned", "well-formed-but-wrong"],
)
async def test_a_20_mib_chunked_body_is_refused_without_being_held_in_memory(
    served: ServedApp, signature: str
) -> None:
    headers = {"X-Cal-Signature-256": signature} if signature else {}
    (status, sent), grew = await peak_growth(post_chunked(served.url + PATH, headers, 20 * MIB))
    assert status == (401 if not signature else 413)
    assert grew < 4 * MIB, f"the process allocated {grew / MIB:.1f} MiB for a refused body"
    assert sent < 20 * MIB, "the server answered before the whole body had arrived"


async def test_an_unsigned_body_over_the_read_ahead_cap_is_401_before_a_byte_of_it(served: ServedApp) -> None:
    """Found in review: admission read a body between 64 KB and the route's limit during its bulk
    turn before the route could look at the signature, so an unsigned one was read whole (and one
    that never came held the turn 10 s) instead of being refused unread."""
    reader, writer = await asyncio.open_connection("127.0.0.1", httpx.URL(served.url).port)
    writer.write(f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY // 2}\r\n\r\n".encode())
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), timeout=5)  # no body is ever sent
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 401")


async def test_a_declared_length_over_the_limit_is_413_before_a_byte_of_body(served: ServedApp) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", httpx.URL(served.url).port)
    body = booking()
    writer.write(
        (
            f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {200 * MIB}\r\n"
            f"X-Cal-Signature-256: {signature_for(SECRET, body)}\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), timeout=5)  # no body is ever sent
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 413")


async def test_a_signed_body_over_the_limit_is_refused_too(served: ServedApp) -> None:
    """A well-formed signature does not buy a bigger body. The server answers 413 and closes while
    the client may still be sending, so the answer is read from plain sockets (an HTTP client
    whose upload is cut off may report the reset instead of the answer that arrived)."""
    big = json.dumps({"triggerEvent": "BOOKING_CREATED", "payload": {"uid": "x", "pad": "a" * MAX_BODY}})
    raw = big.encode()
    signed = {"X-Cal-Signature-256": signature_for(SECRET, raw)}
    reader, writer = await asyncio.open_connection("127.0.0.1", httpx.URL(served.url).port)
    head = f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(raw)}\r\n"
    writer.write((head + "".join(f"{k}: {v}\r\n" for k, v in signed.items()) + "\r\n").encode())
    await writer.drain()
    with_length = await asyncio.wait_for(reader.readline(), timeout=5)  # refused before the body
    writer.close()
    chunked, _ = await post_chunked(served.url + PATH, signed, len(raw) + 64 * 1024)
    assert with_length.startswith(b"HTTP/1.1 413")
    assert chunked == 413


async def test_a_signed_delivery_queues_one_re_read(served: ServedApp, database: Database) -> None:
    body = booking()
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
        good = await http.post(
            PATH, content=body, headers={"X-Cal-Signature-256": signature_for(SECRET, body)}
        )
        upper = await http.post(
            PATH, content=body, headers={"X-Cal-Signature-256": signature_for(SECRET, body).upper()}
        )
    assert (good.status_code, good.json()) == (200, {"ok": True, "queued": True})
    assert upper.status_code == 200, "hex is hex, in either case"
    async with database.read() as session:
        jobs = (await session.execute(select(OutboxJobRow.kind, OutboxJobRow.payload))).all()
    assert [(kind, payload) for kind, payload in jobs] == [
        ("calcom_reread", {"uid": "bk_4f2a9c", "trigger": "BOOKING_CREATED"})  # the worker skips echoes
    ]


async def test_forged_and_unsigned_deliveries_cost_no_database_work(served: ServedApp, app: FastAPI) -> None:
    statements: list[str] = []
    engine = app.state.services.database.engine.sync_engine

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    body = booking()
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
        event.listen(engine, "before_cursor_execute", seen)
        try:
            unsigned = await http.post(PATH, content=body)
            malformed = await http.post(PATH, content=body, headers={"X-Cal-Signature-256": "sha256=nope"})
            assert statements == [], "refused on the header alone"
            good = await http.post(
                PATH, content=body, headers={"X-Cal-Signature-256": signature_for(SECRET, body)}
            )
            statements.clear()
            forged = await http.post(
                PATH, content=body, headers={"X-Cal-Signature-256": signature_for("guessed", body)}
            )
            forged_again = await http.post(
                PATH, content=body, headers={"X-Cal-Signature-256": signature_for("guessed-2", body)}
            )
        finally:
            event.remove(engine, "before_cursor_execute", seen)
    assert (unsigned.status_code, malformed.status_code, good.status_code) == (401, 401, 200)
    assert forged.status_code == forged_again.status_code == 401
    # At most one re-read of the salon's secret (it may have been rotated), then none.
    assert len([s for s in statements if "tenants" in s]) <= 1, statements
    assert not any("outbox" in s.lower() for s in statements), "nothing was written"


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper than the parser goes"),
        (b"not json", "not JSON"),
        (b'{"payload": "a string"}', "a payload that is no object"),
        (json.dumps({"payload": {"uid": "bk\u0000nul"}}).encode(), "a NUL in the uid"),
        (json.dumps({"payload": {"uid": "x" * 300}}).encode(), "an absurdly long uid"),
        (json.dumps({"payload": {"uid": 12}}).encode(), "a uid that is no string"),
    ],
    ids=["deep", "garbage", "payload-string", "nul", "long", "number"],
)
async def test_signed_nonsense_is_a_400_never_a_500(served: ServedApp, body: bytes, why: str) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
        response = await http.post(
            PATH, content=body, headers={"X-Cal-Signature-256": signature_for(SECRET, body)}
        )
    assert response.status_code == 400, why
