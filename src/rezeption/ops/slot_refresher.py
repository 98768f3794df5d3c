"""Keeps the external calendars' slot pictures warm while the server runs.

Every `interval` seconds it asks each salon on an external calendar (Cal.com) to refresh the event
types whose picture is older than the provider's refresh interval (`CalcomCalendar.prefetch`: one
request per due event type, as background reads that wait behind callers in the request budget),
while the salon is being called (a call within `refresh_while_called_seconds`, 30 min): a quiet
salon's picture is brought up to date by the next call's own prefetch at call_inbound instead.
With Redis the picture and its fetch times are shared, so several server processes refresh it
about once per interval between them, not once each. Failures are logged by type and never stop
the loop; the loop ends with the server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import select

from rezeption.booking.prefetch import prefetch
from rezeption.store.tables import TenantRow, table

if TYPE_CHECKING:
    from rezeption.bootstrap import Services

log = structlog.get_logger("rezeption.slot_refresher")
INTERVAL = 30.0


async def refresh_once(services: Services) -> int:
    """One pass over the salons on an external calendar; returns how many event types were fetched."""
    rows = table(TenantRow)
    async with services.database.statement() as conn:
        tenant_ids = list(await conn.scalars(select(rows.c.id).where(rows.c.calendar_provider != "local")))
    fetched = 0
    for tenant_id in tenant_ids:
        fetched += await prefetch(
            uow=services.uow,
            calendars=services.calendars,
            clock=services.clock,
            tenant_id=tenant_id,
            catalogs=services.bookings.catalogs,
            background=True,
        )
    return fetched


@asynccontextmanager
async def slot_refresher(services: Services, interval: float = INTERVAL) -> AsyncIterator[None]:
    """`async with slot_refresher(services):` refreshes the pictures for the block's lifetime."""

    async def loop() -> None:
        while True:
            try:
                await refresh_once(services)
            except Exception as error:  # the database or a calendar away: try again next round
                log.warning("slot_refresher.failed", error=type(error).__name__)
            await asyncio.sleep(interval)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
