"""The outbox worker: runs queued jobs (calendar cancellations, pending resolutions, webhook re-reads)
and, on schedules, the reconciler and housekeeping (transcripts past retention, old stored replies).

Owns the loop and the job handlers. `rezeption worker` runs it as its own process (any number of
them on PostgreSQL: jobs are claimed with `FOR UPDATE SKIP LOCKED`); on SQLite the web app runs it
inside `serve` (`embedded_worker` / `start_embedded_worker`). A failed job is retried with
exponential backoff and goes `dead` after `max_attempts`; `callback_request` jobs have no handler on
purpose: they wait for a person. The scheduled reconcile pass of a salon runs in one worker per
interval (the first to claim it; the claim lives with the calendar's shared state, in Redis when
configured), so adding workers adds no listing requests at Cal.com.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from rezeption.booking.ports import Clock, OutboxJob
from rezeption.booking.reconcile import Reconciler
from rezeption.booking.saga import JOB_CANCEL, JOB_REREAD, JOB_RESOLVE
from rezeption.domain.errors import BookingError, technical_cause
from rezeption.domain.model import Interval
from rezeption.ops.logging import safe_message
from rezeption.ops.metrics import COMPENSATION_REASONS, COMPENSATIONS, OUTBOX_RUNS
from rezeption.store import outbox, replays
from rezeption.store.db import Database
from rezeption.store.gdpr import purge_transcripts
from rezeption.store.idempotency import IdempotencyStore

log = logging.getLogger(__name__)

Handler = Callable[[Reconciler, OutboxJob], Awaitable[None]]


class WorkerDeps(Protocol):
    """What the worker needs from the wired application (`bootstrap.Services` has it)."""

    database: Database
    reconciler: Reconciler
    clock: Clock


async def _cancel(reconciler: Reconciler, job: OutboxJob) -> None:
    appointment_id = job.payload.get("appointment_id")
    await reconciler.cancel_uid(
        _tenant(job), str(job.payload["uid"]), int(appointment_id) if appointment_id is not None else None
    )


async def _resolve(reconciler: Reconciler, job: OutboxJob) -> None:
    claim = int(job.payload["appointment_id"])
    if "move_of" not in job.payload:
        await reconciler.resolve_pending(_tenant(job), claim)
        return
    start, end = (datetime.fromisoformat(at) for at in job.payload["block"])
    await reconciler.resolve_move(_tenant(job), int(job.payload["move_of"]), claim, Interval(start, end))


async def _reread(reconciler: Reconciler, job: OutboxJob) -> None:
    trigger = job.payload.get("trigger")
    await reconciler.reread(_tenant(job), str(job.payload["uid"]), str(trigger) if trigger else None)


def _tenant(job: OutboxJob) -> int:
    if job.tenant_id is None:
        raise ValueError(f"job {job.id} has no tenant")
    return job.tenant_id


HANDLERS: dict[str, Handler] = {JOB_CANCEL: _cancel, JOB_RESOLVE: _resolve, JOB_REREAD: _reread}


@dataclass(frozen=True)
class WorkerOptions:
    """Tuning of one worker."""

    worker_id: str = ""
    poll_seconds: float = 1.0
    reconcile_every: float = 60.0  # overdue pending rows: a database read, Cal.com only for those
    list_every: float = 600.0  # the reconciler's listing of Cal.com's bookings (its safety net)
    housekeeping_every: float = 3600.0
    batch: int = 10
    max_attempts: int = 8
    lease: timedelta = timedelta(seconds=120)


def _count(job: OutboxJob, outcome: str) -> None:
    """A job run in /metrics; a compensation (a cancel the saga could not send at once) also counts
    as a compensation that finally worked or failed."""
    OUTBOX_RUNS.labels(job.kind, outcome).inc()
    if job.kind == JOB_CANCEL and job.payload.get("why") in COMPENSATION_REASONS and outcome != "retry":
        COMPENSATIONS.labels("ok" if outcome == "ok" else "failed").inc()


async def run_once(deps: WorkerDeps, options: WorkerOptions | None = None) -> int:
    """Claim and run one batch of due jobs; return how many ran."""
    options = options or WorkerOptions()
    worker_id = options.worker_id or _default_id()
    jobs = await outbox.claim(
        deps.database,
        worker=worker_id,
        now=deps.clock.now(),
        kinds=list(HANDLERS),
        limit=options.batch,
        lease=options.lease,
    )
    for job in jobs:
        try:
            await HANDLERS[job.kind](deps.reconciler, job)
        except Exception as error:
            status = await outbox.fail(
                deps.database,
                job,
                _cause(error),  # technical, and no statement values in the row
                now=deps.clock.now(),
                max_attempts=options.max_attempts,
            )
            log.warning("worker: job %s (%s) failed, now %s", job.id, job.kind, status)
            _count(job, "dead" if status == "dead" else "retry")
        else:
            await outbox.complete(deps.database, job, now=deps.clock.now())
            _count(job, "ok")
    return len(jobs)


async def run_worker(deps: WorkerDeps, *, stop: asyncio.Event, options: WorkerOptions | None = None) -> None:
    """Run jobs and the scheduled reconcile until `stop` is set. With several workers, a salon's
    scheduled pass runs in whichever claims it first, once per `reconcile_every` between them, and
    lists the salon's Cal.com bookings once per `list_every`."""
    options = options or WorkerOptions()
    loop = asyncio.get_running_loop()
    next_reconcile = next_housekeeping = loop.time()
    while not stop.is_set():
        ran = 0
        try:
            ran = await run_once(deps, options)
            if loop.time() >= next_reconcile:
                report = await deps.reconciler.reconcile_all(
                    claim_for=options.reconcile_every, list_for=options.list_every
                )
                next_reconcile = loop.time() + options.reconcile_every
                if report.orphans_cancelled or report.pending_failed or report.errors:
                    log.warning("worker: reconcile %s", report)
            if loop.time() >= next_housekeeping:
                transcripts, replies = await housekeeping(deps.database, deps.clock)
                next_housekeeping = loop.time() + options.housekeeping_every
                log.info(
                    "worker: housekeeping blanked %s transcripts, dropped %s old replies",
                    transcripts,
                    replies,
                )
        except Exception as error:  # the database or a calendar is away: wait and try again
            log.error("worker: loop failed: %s", type(error).__name__)
        if ran < options.batch:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=options.poll_seconds)


async def housekeeping(database: Database, clock: Clock) -> tuple[int, int]:
    """Blank transcripts past each salon's retention; drop stored function replies past theirs (and
    request signatures past the replay window)."""
    now = clock.now()
    transcripts = await purge_transcripts(database, now=now)
    replies = await IdempotencyStore(database, clock).purge(now)
    await replays.purge(database, now=now)
    return transcripts, replies


def start_embedded_worker(
    deps: WorkerDeps, *, stop: asyncio.Event, options: WorkerOptions | None = None
) -> asyncio.Task[None]:
    """Start the worker inside the running event loop (the web app on SQLite); set `stop` to end it."""
    return asyncio.create_task(run_worker(deps, stop=stop, options=options), name="rezeption-worker")


@contextlib.asynccontextmanager
async def embedded_worker(deps: WorkerDeps, options: WorkerOptions | None = None) -> AsyncIterator[None]:
    """`async with embedded_worker(services):` runs the worker for the block's lifetime."""
    stop = asyncio.Event()
    task = start_embedded_worker(deps, stop=stop, options=options)
    try:
        yield
    finally:
        stop.set()
        await task


def _default_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _cause(error: BaseException) -> str:
    """What an outbox row keeps of a failure: the technical cause, never the caller's sentence."""
    if isinstance(error, BookingError):
        return technical_cause(error)
    return f"{type(error).__name__}: {safe_message(error)}"
