"""A real rezeption server under uvicorn on 127.0.0.1 (in a thread, sharing the test's clock), the demo
salon loaded, and a client that signs like Retell (with retell-sdk's own `sign`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from retell.lib.webhook_auth import symmetric
from sqlalchemy import event

from rezeption.app import create_app
from rezeption.domain.clock import FixedClock
from rezeption.settings import Settings
from rezeption.store.db import Database

API_KEY = "key_test_0123456789abcdef"
AGENT = "agent_friseur1"
SALON_NUMBER = "+493012345670"
CALLER = "+4915123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RetellClient:
    """Sends what Retell sends: signed JSON bodies, at the test clock's time."""

    http: httpx.AsyncClient
    clock: FixedClock
    database: Database

    sent: int = 0

    def sign(self, raw: bytes) -> str:
        """Sign as Retell does at the moment of sending: each request a millisecond later than the
        last (the test clock stands still, Retell's does not), so two sends are never one replay."""
        self.sent += 1
        stamp = int(self.clock.now().timestamp() * 1000) + self.sent
        return str(symmetric["sign"](raw.decode("utf-8"), API_KEY, stamp))

    def sign_at(self, raw: bytes, stamp: int) -> str:
        """A signature with a chosen timestamp (to replay a request exactly)."""
        return str(symmetric["sign"](raw.decode("utf-8"), API_KEY, stamp))

    async def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        signed = {"X-Retell-Signature": self.sign(raw), "Content-Type": "application/json", **(headers or {})}
        return await self.http.post(path, content=raw, headers=signed)

    async def function(
        self, name: str, args: dict[str, Any], call_id: str = "call_1", **call: Any
    ) -> dict[str, Any]:
        envelope = {
            "name": name,
            "call": {
                "call_id": call_id,
                "agent_id": AGENT,
                "from_number": CALLER,
                "to_number": SALON_NUMBER,
                **call,
            },
            "args": args,
        }
        response = await self.post(f"/retell/functions/{name}", envelope)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def app(database_url: str, salon_id: int, clock: FixedClock) -> FastAPI:
    """The application (its services appear on `app.state` once the server has started)."""
    settings = Settings(database_url=database_url, retell_api_key=API_KEY, environment="test")
    return create_app(settings, clock=clock)


@pytest.fixture
def server(app: FastAPI) -> Iterator[str]:
    """The app under uvicorn, in a thread, on a free port of 127.0.0.1."""
    with running(app) as url:
        yield url


@contextlib.contextmanager
def recorded_statements(app: FastAPI) -> Iterator[list[str]]:
    """The SQL the running app sends while the block runs (its statements take SQLAlchemy's path
    while anything listens: the same statements, seen)."""
    engine = app.state.services.database.engine.sync_engine
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", seen)


@contextlib.contextmanager
def running(app: FastAPI) -> Iterator[str]:
    """Serve `app` under uvicorn in a thread on a free port of 127.0.0.1; its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):  # at most ~10 s
        if server.started:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("server did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def bare_args(app: FastAPI, server: str) -> None:
    """Turn on the bare-arguments form (REZEPTION_RETELL_BARE_ARGS=true) in the running server."""
    app.state.bare_args = True


@pytest.fixture
async def retell(server: str, clock: FixedClock, database: Database) -> AsyncIterator[RetellClient]:
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        yield RetellClient(http, clock, database)
    await asyncio.sleep(0)
