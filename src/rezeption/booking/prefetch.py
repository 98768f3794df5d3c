"""Prefetch: warm the external calendar's slot cache when a call comes in, before anyone asks.

Owns `prefetch(...)`: for a salon on Cal.com it refreshes the picture of free slots of every mapped
event type over the provider's horizon (three weeks by default; one request per event type, and
none while the picture is younger than its refresh interval), so check_availability answers from
memory. The local
calendar needs nothing. Call it without awaiting the caller's reply (`asyncio.create_task`).
"""

from __future__ import annotations

import logging

from rezeption.booking.catalog import CatalogCache
from rezeption.booking.ports import CalendarDirectory, Clock, UnitOfWork

log = logging.getLogger(__name__)


async def prefetch(
    *,
    uow: UnitOfWork,
    calendars: CalendarDirectory,
    clock: Clock,
    tenant_id: int,
    days: int | None = None,
    catalogs: CatalogCache | None = None,
    background: bool = False,
) -> int:
    """Refresh the next `days` days (default: the provider's horizon); returns how many event types
    were fetched. A call's prefetch marks the salon as being called; a `background` one (the slot
    refresher) reads nothing for a salon nobody called lately.

    Pass the application's `catalogs` to share its cache; without one the catalog is read afresh
    (a module-level cache would outlive the database it was filled from).
    """
    async with uow.reading() as tx:
        catalog = await (catalogs or CatalogCache()).get(tx, tenant_id, clock.now().date())
    warm = getattr(calendars.for_tenant(catalog), "prefetch", None)
    if warm is None:
        return 0
    try:
        quiet = {"only_while_called": True} if background else {}
        fetched: int = await warm(catalog, days, **quiet)
    except Exception as error:  # a prefetch is a favour, never a failure
        log.warning("prefetch failed for tenant %s: %s", tenant_id, type(error).__name__)
        return 0
    return fetched
