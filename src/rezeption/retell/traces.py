"""Function-call traces, written after the reply and in batches, so they never slow a caller down."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from rezeption.store.calls import Trace, add_traces
from rezeption.store.db import Database

log = structlog.get_logger("rezeption.retell")


class TraceWriter:
    """Collects traces and stores them every `interval` seconds (and on close)."""

    def __init__(self, database: Database, interval: float = 0.5, limit: int = 10_000) -> None:
        self.database = database
        self.interval = interval
        self.limit = limit
        self._pending: list[Trace] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, trace: Trace) -> None:
        """Queue a trace (dropped, with a log line, when the queue is full: traces never block calls)."""
        if len(self._pending) >= self.limit:
            log.warning("retell.trace_dropped", function=trace.function)
            return
        self._pending.append(trace)

    async def flush(self) -> int:
        """Store what is queued now; return how many."""
        batch, self._pending = self._pending, []
        try:
            await add_traces(self.database, batch)
        except Exception:
            log.exception("retell.trace_write_failed", count=len(batch))
            return 0
        return len(batch)

    def start(self) -> None:
        """Flush periodically in the background."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(self.interval)
                await self.flush()

        self._task = asyncio.create_task(loop())

    async def close(self) -> None:
        """Stop the loop and store what is left."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
