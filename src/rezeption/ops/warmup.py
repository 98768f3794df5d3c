"""Warm-up at start-up, so the first callers of a fresh server do not pay for its cold caches.

Before the server takes traffic it opens the database pool's connections and, for every salon on
the embedded calendar, loads the catalog (with its holidays) and runs one read of each hot kind:
an availability check, caller ID, an appointment lookup and a call record. That compiles their SQL
and prepares the statements on the connections. Reads only: nothing is written, no external
calendar is asked. A failure is logged and never stops the server (it only costs time later), and
the whole warm-up ends after `patience` seconds (5 s by default) whatever the database does: a
database that refuses fails it at once, one that accepts and never answers is given up on after
the connect timeout, and the server starts and answers /health (and /ready: 503) either way.

Last, everything alive after start-up (modules, compiled SQL, catalogs) is frozen out of the
garbage collector's generations (`gc.freeze`): full collections that walked those objects paused
the event loop for 50-115 ms every few seconds under load, and set the p99 of every function.

Measured (bench/functions.py, PostgreSQL, open loop): without it a new server's first seconds set
the p99 of call_inbound (99 vs 20 ms warm) and of book_appointment (72 vs 36 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from datetime import datetime, time, timedelta
from time import perf_counter
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import select, text

from rezeption.booking.lookup_model import LookupQuery
from rezeption.domain.errors import BookingError
from rezeption.store.tables import TenantRow, table

if TYPE_CHECKING:
    from rezeption.bootstrap import Services

log = structlog.get_logger("rezeption.warmup")
PROBE_NUMBER = "+4930000000000"  # a number no customer has: the reads find nothing
PATIENCE = 5.0  # seconds: start-up never waits longer for the warm-up


async def warm_up(services: Services, *, connections: int, patience: float = PATIENCE) -> float:
    """Warm the pool and the salons' hot reads, for at most `patience` s; returns the seconds it took."""
    started = perf_counter()
    budget = asyncio.timeout(patience)
    try:
        async with budget:
            await _open_connections(services, connections)
            async with services.database.statement() as conn:
                tenant_ids = list(await conn.scalars(select(table(TenantRow).c.id)))
            for tenant_id in tenant_ids:
                await _warm_salon(services, tenant_id)
    except Exception as error:
        if budget.expired():
            log.warning("warmup.gave_up", after_s=patience)
        else:
            # The type only: a database error's text may carry the values of the statement it ran.
            log.warning("warmup.failed", error=type(error).__name__)
    gc.collect()
    gc.freeze()
    seconds = perf_counter() - started
    log.info("warmup.done", seconds=round(seconds, 3))
    return seconds


async def _open_connections(services: Services, count: int) -> None:
    """Hold `count` connections at once, so the pool really opens that many."""
    everyone_in, gate = asyncio.Event(), asyncio.Event()
    opened = 0

    async def hold() -> None:
        nonlocal opened
        try:
            async with services.database.statement() as conn:
                await conn.execute(text("SELECT 1"))
                opened += 1
                if opened == count:
                    everyone_in.set()
                await gate.wait()
        finally:
            everyone_in.set()  # a failed holder ends the wait; its error surfaces from gather

    holders = [asyncio.create_task(hold()) for _ in range(count)]
    try:
        await asyncio.wait_for(everyone_in.wait(), timeout=10)
    except BaseException:  # given up on (the warm-up's patience): stop the holders still connecting
        for holder in holders:
            holder.cancel()
        await asyncio.gather(*holders, return_exceptions=True)
        raise
    gate.set()
    await asyncio.gather(*holders)


async def _warm_salon(services: Services, tenant_id: int) -> None:
    now = services.clock.now()
    catalog = await services.bookings.current_catalog(tenant_id, now)
    await services.calls.get("warmup-probe")
    await services.callers.customers_at(tenant_id, PROBE_NUMBER)  # not recognized: a probe is no caller
    await services.finder.find_appointments(
        # A full name and a day: the call, the line and the name search all run once.
        LookupQuery(
            tenant_id=tenant_id,
            call_id="warmup-probe",
            caller_number=PROBE_NUMBER,
            name="Probe Aufwärmen",
            date_words="morgen",
        )
    )
    services_offered = [s for s in catalog.services if s.active]
    if catalog.tenant.calendar_provider != "local" or not services_offered:
        return
    tomorrow = now.astimezone(catalog.tenant.zone).date() + timedelta(days=1)
    noon = datetime.combine(tomorrow, time(12), tzinfo=catalog.tenant.zone)
    # Closed tomorrow, say: a refusal still ran the query and the rules.
    with contextlib.suppress(BookingError):
        await services.bookings.availability(tenant_id=tenant_id, service=services_offered[0].id, start=noon)
