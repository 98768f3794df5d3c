"""Keeping a Cal.com salon's slot picture current from what we learn, without reading Cal.com.

Owns the translation of one booking into the picture's terms (`slot_cache`): the key a booking is
held under (its stylist, start and end, so our own booking, Cal.com's webhook about it and the
reconciler's finding of it all name the same hold), which event types' starts it blocks (every
event type of that stylist, each widened by its own service's buffers: a start s is blocked when
[s - before, s + duration + after) meets the booking's block), and the order of the updates: they
run in the background (a reply never waits for the picture) but one after the other, in the order
this process learned them, so a cancel never overtakes the booking it cancels.

- `hold`: a booking holds its time (our create succeeded, was refused as taken, or may have
  happened; a webhook or the reconciler saw one made in Cal.com);
- `release`: it is gone (cancelled or moved, by us or in Cal.com): what its hold took comes back;
- `forget`: we cannot know what changed that day (every day when no time is known): the next
  caller asking for it reads it again.

A failing cache costs freshness, never an answer or a booking: failures are logged by type only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any

from rezeption.calendars.slot_cache import SlotCache
from rezeption.domain.model import Catalog, Service, Staff

log = logging.getLogger(__name__)

__all__ = ["SlotPicture", "hold_key"]


def hold_key(staff_id: int, start: datetime, end: datetime) -> str:
    """The name a booking is held under in the picture."""
    return f"{staff_id}:{start.timestamp():.0f}:{end.timestamp():.0f}"


class SlotPicture:
    """One salon's picture updates, applied in order in the background."""

    def __init__(
        self, cache: SlotCache, scope: str, event_type_for: Callable[[Service, Staff], int | None]
    ) -> None:
        self.cache = cache
        self.scope = scope
        self.event_type_for = event_type_for
        self._order = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()

    def _day(self, catalog: Catalog, start: datetime) -> date:
        return start.astimezone(catalog.tenant.zone).date()

    def _reaches(
        self, catalog: Catalog, staff: Staff, block_start: datetime, block_end: datetime
    ) -> dict[int, tuple[datetime, datetime]]:
        reaches: dict[int, tuple[datetime, datetime]] = {}
        for service in catalog.services:
            event_type = self.event_type_for(service, staff)
            if event_type is None:
                continue
            start, end = block_start - service.buffer_after, block_end + service.buffer_before
            if event_type in reaches:  # two services on one event type: the wider reach
                start, end = min(start, reaches[event_type][0]), max(end, reaches[event_type][1])
            reaches[event_type] = (start, end)
        return reaches

    def hold(
        self,
        catalog: Catalog,
        staff_id: int,
        start: datetime,
        end: datetime,
        block: tuple[datetime, datetime] | None = None,
    ) -> None:
        """The stylist's booking [start, end) (its `block`, buffers included, when known) holds its
        time: every start of theirs it would touch leaves the picture."""
        staff = catalog.staff_by_id(staff_id)
        block_start, block_end = block or (start, end)
        reaches = self._reaches(catalog, staff, block_start, block_end)
        day = self._day(catalog, start)
        self._spawn(self.cache.hold(self.scope, day, reaches, hold_key(staff_id, start, end)))

    def release(self, catalog: Catalog, staff_id: int, start: datetime, end: datetime) -> None:
        """The stylist's booking [start, end) is gone: what its hold took comes back."""
        staff = catalog.staff_by_id(staff_id)
        types = {t for s in catalog.services if (t := self.event_type_for(s, staff)) is not None}
        day = self._day(catalog, start)
        self._spawn(self.cache.release(self.scope, day, types, hold_key(staff_id, start, end)))

    def forget(self, catalog: Catalog, start: datetime | None = None) -> None:
        """Mark `start`'s local day (all days when None) stale."""
        days = None if start is None else [self._day(catalog, start)]
        self._spawn(self.cache.invalidate(self.scope, days))

    async def settled(self) -> None:
        """Wait until every update learned so far is applied (tests, shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    def _spawn(self, work: Awaitable[Any]) -> None:
        async def run() -> None:
            async with self._order:
                try:
                    await work
                except Exception as error:  # a cache outage must never fail a booking
                    log.warning("slot picture update failed: %s", type(error).__name__)

        task = asyncio.ensure_future(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
