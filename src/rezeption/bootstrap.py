"""Composition root: settings -> database -> unit of work -> calendar providers -> use cases, reconciler."""

from __future__ import annotations

from dataclasses import dataclass

from rezeption.booking.bookings import Bookings
from rezeption.booking.caller_id import CallerId
from rezeption.booking.calls import Calls
from rezeption.booking.lookup import AppointmentFinder
from rezeption.booking.reconcile import Reconciler
from rezeption.booking.references import References, reference_key
from rezeption.calendars.directory import CalendarDirectory
from rezeption.calendars.slot_cache import RedisSlotCache, slot_cache_from_url
from rezeption.domain.clock import Clock
from rezeption.domain.flags import FlagBook
from rezeption.settings import Settings
from rezeption.store.call_store import SqlCallStore
from rezeption.store.calls import TenantRoutes
from rezeption.store.db import Database
from rezeption.store.flags import flag_book
from rezeption.store.idempotency import IdempotencyStore
from rezeption.store.lookup import SqlLookupStore
from rezeption.store.uow import SqlUnitOfWork


@dataclass
class Services:
    """The wired application: what entrypoints (web, CLI, worker) call."""

    settings: Settings
    database: Database
    uow: SqlUnitOfWork
    bookings: Bookings
    clock: Clock
    calendars: CalendarDirectory
    reconciler: Reconciler
    finder: AppointmentFinder
    callers: CallerId
    routes: TenantRoutes
    calls: Calls
    flags: FlagBook

    async def close(self) -> None:
        """Store the replies still waiting for their batch; release connections (database,
        Cal.com clients, Redis)."""
        await self.calls.replies.close()
        await self.calendars.aclose()
        if isinstance(self.calendars.slot_cache, RedisSlotCache):
            await self.calendars.slot_cache.aclose()
        await self.database.dispose()


def build(settings: Settings, *, clock: Clock | None = None) -> Services:
    """Wire the real adapters from `settings`; tests pass their own clock."""
    clock = clock or settings.clock()
    database = Database.from_url(
        settings.database_url, pool_size=settings.db_pool_size, timeouts=settings.timeouts
    )
    uow = SqlUnitOfWork(database)
    flags = flag_book(database)
    calendars = CalendarDirectory(
        uow,
        clock=clock,
        slot_cache=slot_cache_from_url(settings.redis_url),
        redis_url=settings.redis_url,
        flags=flags,
    )
    bookings = Bookings(uow=uow, calendars=calendars, clock=clock)
    reconciler = Reconciler(uow=uow, calendars=calendars, clock=clock)
    lookups = SqlLookupStore(database)
    references = References(reference_key(settings.admin_secret.get_secret_value()))
    routes = TenantRoutes(database)
    return Services(
        settings=settings,
        database=database,
        uow=uow,
        bookings=bookings,
        clock=clock,
        calendars=calendars,
        reconciler=reconciler,
        # one catalog cache for every use case: each salon's catalog is loaded and re-checked once
        finder=AppointmentFinder(
            store=lookups, uow=uow, clock=clock, references=references, catalogs=bookings.catalogs
        ),
        callers=CallerId(store=lookups, uow=uow, clock=clock, flags=flags, catalogs=bookings.catalogs),
        routes=routes,
        calls=Calls(SqlCallStore(database, routes), IdempotencyStore(database, clock)),
        flags=flags,
    )
