"""A process that books, then dies by SIGKILL right after Cal.com moved the booking (its reschedule:
a new uid, the old one cancelled there) and before our own confirm of the move; or, with `before`,
after our claim of the move and before its request left for Cal.com.

Run as `python crash_between_move_and_confirm.py DATABASE_URL TENANT_ID START_ISO NEW_START_ISO NOW_ISO
[before]`.
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

_reschedule = CalcomCalendar.reschedule


async def reschedule_then_die(self: CalcomCalendar, *args: Any, **kwargs: Any) -> Any:
    moved = await _reschedule(self, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
    return moved


async def die_before_sending(self: CalcomCalendar, *args: Any, **kwargs: Any) -> Any:
    os.kill(os.getpid(), signal.SIGKILL)


async def main(
    url: str, tenant_id: int, start: datetime, new_start: datetime, now: datetime, before: bool
) -> None:
    database = Database.from_url(url, pool_size=2)
    uow = SqlUnitOfWork(database)
    clock = FixedClock(now)
    bookings = Bookings(uow=uow, calendars=CalendarDirectory(uow, clock=clock), clock=clock)
    booked = await bookings.book(
        BookingRequest(
            tenant_id=tenant_id,
            service="Herrenhaarschnitt",
            start=start,
            staff="Anna",
            customer_name="Eva Muster",
            call_id="call-move",
            idempotency_key="call-move:book",
        )
    )
    CalcomCalendar.reschedule = die_before_sending if before else reschedule_then_die  # type: ignore[method-assign]
    await bookings.reschedule(
        tenant_id=tenant_id,
        appointment_id=booked.appointment.id,
        start=new_start,
        idempotency_key="call-move:move",
    )


if __name__ == "__main__":
    start, new_start, now = (datetime.fromisoformat(a) for a in sys.argv[3:6])
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), start, new_start, now, sys.argv[6:] == ["before"]))
