"""A booking process that dies by SIGKILL right after Cal.com booked and before our confirm.

Run as `python crash_between_create_and_confirm.py DATABASE_URL TENANT_ID START_ISO NOW_ISO`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import datetime
from typing import Any

from rezeption.booking.bookings import BookingRequest, Bookings
from rezeption.calendars.calcom import CalcomCalendar
from rezeption.calendars.directory import CalendarDirectory
from rezeption.domain.clock import FixedClock
from rezeption.store.db import Database
from rezeption.store.uow import SqlUnitOfWork

_create = CalcomCalendar.create


async def create_then_die(self: CalcomCalendar, *args: Any, **kwargs: Any) -> Any:
    booked = await _create(self, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
    return booked


async def main(url: str, tenant_id: int, start: datetime, now: datetime) -> None:
    CalcomCalendar.create = create_then_die  # type: ignore[method-assign]
    database = Database.from_url(url, pool_size=2)
    uow = SqlUnitOfWork(database)
    clock = FixedClock(now)
    bookings = Bookings(uow=uow, calendars=CalendarDirectory(uow, clock=clock), clock=clock)
    await bookings.book(
        BookingRequest(
            tenant_id=tenant_id,
            service="Herrenhaarschnitt",
            start=start,
            staff="Anna",
            idempotency_key="kill-1",
        )
    )


if __name__ == "__main__":
    asyncio.run(
        main(
            sys.argv[1],
            int(sys.argv[2]),
            datetime.fromisoformat(sys.argv[3]),
            datetime.fromisoformat(sys.argv[4]),
        )
    )
