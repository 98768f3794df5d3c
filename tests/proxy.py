"""A TCP proxy on 127.0.0.1 in front of a real server, whose link a test can cut or freeze.

`TcpProxy("127.0.0.1", 5432)` forwards to PostgreSQL until the test says otherwise: `refuse()`
drops every open connection and answers new ones with an immediate close (a database that went
away), `hang()` keeps accepting but forwards nothing more, in either direction (a database that
stopped answering), `heal()` forwards again. It runs its own event loop in a thread, so the
server under test shares nothing with it; `close()` (or the context manager) stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType
from typing import Literal

Mode = Literal["pass", "refuse", "hang"]


class TcpProxy:
    """Forward 127.0.0.1:<port> to target; switchable (see the module docstring)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode: Mode = "pass"
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> TcpProxy:
        """Listen on a free port of 127.0.0.1 (self.port) and start forwarding."""
        self._thread.start()
        self._loop.call_soon_threadsafe(self._flowing.set)
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._accept, "127.0.0.1", 0), self._loop
        ).result(timeout=5)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url_for(self, url: str) -> str:
        """`url` (a database URL) pointed at this proxy instead of its own host and port."""
        from sqlalchemy.engine import make_url

        return make_url(url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def refuse(self) -> None:
        """The server is gone: open connections drop, new ones close at once."""
        self.mode = "refuse"
        self._loop.call_soon_threadsafe(self._flowing.set)  # stuck pipes wake up and stop
        self._call(self._drop_all)

    def hang(self) -> None:
        """The server stops answering: connections stay open, nothing flows."""
        self.mode = "hang"
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def heal(self) -> None:
        """Forward again (connections dropped meanwhile stay dropped)."""
        self.mode = "pass"
        self._loop.call_soon_threadsafe(self._flowing.set)

    def close(self) -> None:
        """Stop listening, drop everything, stop the thread."""

        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            await self._drop_all()

        with contextlib.suppress(Exception):
            self._call(stop)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def _call(self, work: object) -> None:
        asyncio.run_coroutine_threadsafe(work(), self._loop).result(timeout=5)  # type: ignore[operator]

    async def _drop_all(self) -> None:
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "refuse":
            writer.close()
            return
        self._writers.add(writer)
        if self.mode == "hang":
            return  # accepted, and never a byte back
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.add(upstream_writer)
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                await self._flowing.wait()
                if self.mode == "refuse":
                    break
                writer.write(chunk)
                await writer.drain()
        finally:
            writer.close()
