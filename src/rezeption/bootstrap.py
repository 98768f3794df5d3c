"""Composition root: settings -> database -> unit of work -> calendar provider -> use cases."""

from __future__ import annotations

from dataclasses import dataclass

from rezeption.booking.bookings import Bookings
from rezeption.calendars.directory import CalendarDirectory
from rezeption.domain.clock import Clock, SystemClock
from rezeption.settings import Settings
from rezeption.store.db import Database
from rezeption.store.uow import SqlUnitOfWork


@dataclass
class Services:
    """The wired application: what entrypoints (web, CLI, worker) call."""

    settings: Settings
    database: Database
    uow: SqlUnitOfWork
    bookings: Bookings
    clock: Clock

    async def close(self) -> None:
        """Release connections."""
        await self.database.dispose()


def build(settings: Settings, *, clock: Clock | None = None) -> Services:
    """Wire the real adapters from `settings`; tests pass their own clock."""
    clock = clock or SystemClock()
    database = Database.from_url(settings.database_url, pool_size=settings.db_pool_size)
    uow = SqlUnitOfWork(database)
    bookings = Bookings(uow=uow, calendars=CalendarDirectory(uow), clock=clock)
    return Services(settings=settings, database=database, uow=uow, bookings=bookings, clock=clock)
