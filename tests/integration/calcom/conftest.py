"""Fixtures: a real Cal.com emulator under uvicorn on 127.0.0.1, and our real client against it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from calcom_harness import API_KEY, EMULATOR_NOW, FakeClock, RunningEmulator

from rezeption.calendars.calcom.breaker import CircuitBreaker
from rezeption.calendars.calcom.client import CalcomClient
from rezeption.emulators.calcom import create_app


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
def start_emulator() -> Iterator[Callable[..., RunningEmulator]]:
    """Start emulators (config overrides as keyword arguments); all are stopped after the test."""
    running: list[tuple[uvicorn.Server, threading.Thread, httpx.Client]] = []

    def start(**overrides: Any) -> RunningEmulator:
        config: dict[str, Any] = {"now": EMULATOR_NOW.isoformat(), "seed": 7, **overrides}
        sock = _free_socket()
        port = sock.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(config), host="127.0.0.1", port=port, log_level="critical", lifespan="off"
            )
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("emulator did not start within 10 s")
            time.sleep(0.01)
        url = f"http://127.0.0.1:{port}"
        admin = httpx.Client(base_url=url, timeout=5.0)
        running.append((server, thread, admin))
        return RunningEmulator(url=url, admin=admin)

    yield start
    for server, thread, admin in running:
        admin.close()
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def emulator(start_emulator: Callable[..., RunningEmulator]) -> RunningEmulator:
    """An emulator with the default salon (event types 42 and 43, host 7, Mon-Sat hours in Berlin)."""
    return start_emulator()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_client(clock: FakeClock) -> AsyncIterator[Callable[..., CalcomClient]]:
    """Build clients with fast backoff and the fake clock; all are closed after the test."""
    clients: list[CalcomClient] = []

    def make(emulator: RunningEmulator, **overrides: Any) -> CalcomClient:
        options: dict[str, Any] = {
            "timeout": 2.0,
            "read_attempts": 3,
            "backoff_initial": 0.01,
            "backoff_max": 0.02,
            "clock": clock,
            "breaker": CircuitBreaker(failure_threshold=5, cooldown=timedelta(seconds=30), clock=clock),
            **overrides,
        }
        api_key = options.pop("api_key", API_KEY)
        created = CalcomClient(emulator.url, api_key, **options)
        clients.append(created)
        return created

    yield make
    for created in clients:
        await created.aclose()


@pytest.fixture
async def client(
    emulator: RunningEmulator, make_client: Callable[..., CalcomClient]
) -> AsyncIterator[CalcomClient]:
    """The real client against the default emulator."""
    yield make_client(emulator)
