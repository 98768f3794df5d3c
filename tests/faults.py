"""Broken databases and servers for failure tests, all on 127.0.0.1.

- `HangingServer`: a TCP server that accepts every connection, reads and discards what it is sent,
  and never answers (a PostgreSQL that accepts and hangs: the server is wedged, a firewall eats
  the replies, a load balancer has no backend).
- `refusing_port()`: a port with nothing listening (a PostgreSQL that is down: connection refused).
- `postgres_url_at(port)`: an asyncpg URL for either.
- `sqlite_write_lock(path)`: another connection holding SQLite's write lock (a second process, a
  backup tool or a stuck operator shell).
- `serve_app(app)`: an app under uvicorn in a thread on a free port (like the Retell adapter
  tests), with how long its start-up took.

The fixtures in tests/conftest.py (`hanging_postgres_url`, `refusing_postgres_url`) wrap the first
three for tests that only need a URL.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raw_exchange(port: int, pieces: list[bytes], *, pause: float = 0.0, wait: float = 5.0) -> bytes:
    """Send `pieces` on a fresh connection to 127.0.0.1 (pausing between them, so each is its own
    read), then everything that came back until the server closed (or `wait` passed quietly)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as conn:
        for piece in pieces:
            try:
                conn.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(pause)
        received = b""
        try:
            while chunk := conn.recv(65536):
                received += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        return received


def refusing_port() -> int:
    """A port on 127.0.0.1 with nothing listening: every connect is refused at once."""
    return free_port()


def postgres_url_at(port: int, database: str = "rezeption") -> str:
    """An asyncpg URL for a (fake) PostgreSQL on 127.0.0.1:`port`."""
    return f"postgresql+asyncpg://postgres@127.0.0.1:{port}/{database}"


class HangingServer:
    """Accepts on 127.0.0.1 and never answers; `connections` counts what it accepted.

    Runs its own event loop in a daemon thread, so the test's loop (or a uvicorn thread) can talk
    to it. `close()` drops every connection (their clients then see a reset or EOF).
    """

    def __init__(self) -> None:
        self.port = 0
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._thread = threading.Thread(target=self._run, name="hanging-server", daemon=True)

    def start(self) -> HangingServer:
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("the hanging server did not start")
        return self

    def close(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(5)

    def __enter__(self) -> HangingServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._swallow, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
            server.close()
            for writer in self._writers:
                writer.transport.abort()
        await asyncio.sleep(0)

    async def _swallow(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        while await reader.read(65536):  # read and drop, never write: the client waits forever
            pass


@contextmanager
def sqlite_write_lock(path: Path | str) -> Iterator[sqlite3.Connection]:
    """Hold SQLite's write lock on `path` from another connection until the block ends.

    The same as another process holding it: SQLite locks by file, and a second connection in this
    process meets the same lock (and the same busy timeout) as one in another process.
    """
    holder = sqlite3.connect(str(path), isolation_level=None, timeout=5)
    try:
        holder.execute("BEGIN IMMEDIATE")
        yield holder
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@dataclass
class ServedApp:
    """An app running under uvicorn: its base URL and how long its start-up (lifespan) took."""

    url: str
    started_in: float
    server: uvicorn.Server


@contextmanager
def serve_app(app: FastAPI, *, start_within: float = 15.0, **options: Any) -> Iterator[ServedApp]:
    """Run `app` under uvicorn on a free port of 127.0.0.1 in a thread, until the block ends
    (`options` go to uvicorn.Config).

    AssertionError when the server has not started (lifespan done, socket bound) within
    `start_within` seconds; the measured start-up time is `started_in`.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    began = time.monotonic()
    thread.start()
    while not server.started:
        if time.monotonic() - began > start_within or not thread.is_alive():
            server.should_exit = True
            thread.join(timeout=30)
            sock.close()
            raise AssertionError(f"the server did not start within {start_within} s")
        time.sleep(0.01)
    try:
        yield ServedApp(f"http://127.0.0.1:{port}", time.monotonic() - began, server)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
