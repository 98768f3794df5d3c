"""Function-call traces, written after the reply and in batches, so they never slow a caller down."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from rezeption.booking.calls import Calls
from rezeption.booking.ports import Trace
from rezeption.domain.clock import Clock
from rezeption.ops.metrics import observe_function
from rezeption.retell.functions import Outcome

log = structlog.get_logger("rezeption.retell")


class TraceWriter:
    """Collects traces and stores them every `interval` seconds (and on close)."""

    def __init__(self, calls: Calls, interval: float = 0.5, limit: int = 10_000) -> None:
        self.calls = calls
        self.interval = interval
        self.limit = limit
        self._pending: list[Trace] = []
        self.dropped = 0  # traces that could not be stored (queue full, or refused by the database)
        self._task: asyncio.Task[None] | None = None

    def add(self, trace: Trace) -> None:
        """Queue a trace (dropped, with a log line, when the queue is full: traces never block calls)."""
        if len(self._pending) >= self.limit:
            self.dropped += 1
            log.warning("retell.trace_dropped", function=trace.function, why="queue full")
            return
        self._pending.append(trace)

    async def flush(self) -> int:
        """Store what is queued now; return how many. When the batch is refused, each trace is tried
        alone, so one bad row costs only itself (counted in `dropped`)."""
        batch, self._pending = self._pending, []
        if not batch:
            return 0
        try:
            await self.calls.add_traces(batch)
            return len(batch)
        except Exception as error:
            log.warning("retell.trace_batch_failed", count=len(batch), error=type(error).__name__)
        stored = 0
        for trace in batch:
            try:
                await self.calls.add_traces([trace])
                stored += 1
            except Exception as error:
                self.dropped += 1
                log.warning("retell.trace_dropped", function=trace.function, error=type(error).__name__)
        return stored

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


def trace_function(
    writer: TraceWriter,
    clock: Clock,
    name: str,
    call_id: str,
    outcome: Outcome,
    latency_ms: int,
    **logged: str,
) -> None:
    """Log one function call (no personal data), count it, and queue its trace (arguments, reply,
    latency)."""
    observe_function(name, logged.get("channel", "http"), outcome.reply, latency_ms / 1000)
    log.info(
        "retell.function",
        function=name,
        call_id=call_id,
        ok=outcome.reply.get("ok"),
        reason=outcome.reply.get("reason"),
        replayed=outcome.replayed,
        latency_ms=latency_ms,
        **logged,
    )
    if outcome.tenant_id is not None:
        writer.add(
            Trace(
                tenant_id=outcome.tenant_id,
                retell_call_id=call_id,
                function=name,
                args=outcome.args,
                reply=outcome.reply,
                latency_ms=latency_ms,
                at=clock.now(),
                flags=outcome.flags,
            )
        )
