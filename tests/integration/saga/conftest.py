"""Fixtures for the saga tests: a Cal.com emulator on 127.0.0.1 mirroring the Cal.com demo salon,
PostgreSQL with that salon loaded, and the booking use cases, reconciler and worker wired to both."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import uvicorn
from sqlalchemy import select, text

from rezeption.booking.bookings import BookingRequest, Bookings
from rezeption.booking.reconcile import Reconciler
from rezeption.calendars.calcom.breaker import CircuitBreaker
from rezeption.calendars.directory import CalendarDirectory
from rezeption.domain.clock import FixedClock
from rezeption.emulators.calcom import create_app
from rezeption.store.db import Database
from rezeption.store.salon_file import SalonFile
from rezeption.store.salon_import import import_salon
from rezeption.store.tables import AppointmentEventRow, AppointmentRow, Base, OutboxJobRow
from rezeption.store.uow import SqlUnitOfWork

from .emulator_salon import calcom_salon, emulator_config

BERLIN = ZoneInfo("Europe/Berlin")
# Monday 3 November 2025, 08:00 in Berlin: the salon opens Tuesday.
NOW = datetime(2025, 11, 3, 8, 0, tzinfo=BERLIN)
TUESDAY_10 = datetime(2025, 11, 4, 10, 0, tzinfo=BERLIN)


@dataclass
class Emulator:
    """A live emulator with sync helpers for its admin API."""

    url: str
    admin: httpx.Client = field(repr=False)
    server: uvicorn.Server = field(repr=False)

    def faults(self, *rules: dict[str, Any]) -> None:
        self.admin.post("/_emulator/faults", json={"rules": list(rules), "replace": True}).raise_for_status()

    def clear_faults(self) -> None:
        self.admin.delete("/_emulator/faults").raise_for_status()

    def bookings(self) -> list[dict[str, Any]]:
        state: dict[str, Any] = self.admin.get("/_emulator/state").raise_for_status().json()
        result: list[dict[str, Any]] = state["bookings"]
        return result

    def active(self) -> list[dict[str, Any]]:
        return [b for b in self.bookings() if b["status"] in ("accepted", "pending")]

    def requests(self, method: str, path_prefix: str) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.admin.get("/_emulator/requests").raise_for_status().json()
        return [e for e in entries if e["method"] == method and e["path"].startswith(path_prefix)]

    def walk_in(self, event_type_id: int, start: datetime) -> dict[str, Any]:
        body = {"eventTypeId": event_type_id, "start": start.isoformat()}
        result: dict[str, Any] = self.admin.post("/_emulator/bookings", json=body).raise_for_status().json()
        return result


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
def salon_for() -> Callable[[str], SalonFile]:
    """The salon file for an emulator at a URL (a module may override it: a team salon, say)."""
    return calcom_salon


@pytest.fixture
def emulator(salon_for: Callable[[str], SalonFile]) -> Iterator[Emulator]:
    """The emulator, frozen at NOW, with the Cal.com demo salon's users and event types."""
    sock = _free_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = emulator_config(salon_for(url), NOW)
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), host="127.0.0.1", log_level="critical", lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("emulator did not start within 10 s")
        time.sleep(0.01)
    admin = httpx.Client(base_url=url, timeout=5.0)
    yield Emulator(url=url, admin=admin, server=server)
    admin.close()
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
async def pg(postgres_migrated: str) -> AsyncIterator[Database]:
    """The run's PostgreSQL database, emptied."""
    db = Database.from_url(postgres_migrated, pool_size=10)
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with db.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
async def tenant_id(
    pg: Database, emulator: Emulator, clock: FixedClock, salon_for: Callable[[str], SalonFile]
) -> int:
    report = await import_salon(pg, salon_for(emulator.url), now=clock.now())
    return report.tenant_id


FAST_CLIENT: dict[str, Any] = {"read_attempts": 2, "backoff_initial": 0.01, "backoff_max": 0.02}


@dataclass
class World:
    """Everything a saga test touches."""

    db: Database
    uow: SqlUnitOfWork
    calendars: CalendarDirectory
    bookings: Bookings
    reconciler: Reconciler
    clock: FixedClock
    tenant_id: int
    emulator: Emulator

    async def appointments(self) -> list[AppointmentRow]:
        async with self.db.read() as session:
            return list((await session.scalars(select(AppointmentRow).order_by(AppointmentRow.id))).all())

    async def events(self, appointment_id: int) -> list[tuple[str, str | None]]:
        async with self.db.read() as session:
            rows = await session.scalars(
                select(AppointmentEventRow)
                .where(AppointmentEventRow.appointment_id == appointment_id)
                .order_by(AppointmentEventRow.id)
            )
            return [(r.kind, r.recovery_point) for r in rows]

    async def jobs(self, kind: str | None = None) -> list[OutboxJobRow]:
        async with self.db.read() as session:
            query = select(OutboxJobRow).order_by(OutboxJobRow.id)
            if kind:
                query = query.where(OutboxJobRow.kind == kind)
            return list((await session.scalars(query)).all())


@pytest.fixture
async def make_world(
    pg: Database, emulator: Emulator, clock: FixedClock, tenant_id: int
) -> AsyncIterator[Callable[..., World]]:
    """Build worlds (client options as keyword arguments); their Cal.com clients are closed after."""
    built: list[CalendarDirectory] = []

    def make(**client_options: Any) -> World:
        uow = SqlUnitOfWork(pg)
        options = {
            **FAST_CLIENT,
            "breaker": CircuitBreaker(failure_threshold=50, cooldown=timedelta(seconds=30), clock=clock.now),
            **client_options,
        }
        calendars = CalendarDirectory(uow, clock=clock, client_options=options)
        built.append(calendars)
        return World(
            db=pg,
            uow=uow,
            calendars=calendars,
            bookings=Bookings(uow=uow, calendars=calendars, clock=clock),
            reconciler=Reconciler(uow=uow, calendars=calendars, clock=clock),
            clock=clock,
            tenant_id=tenant_id,
            emulator=emulator,
        )

    yield make
    for calendars in built:
        await calendars.aclose()


@pytest.fixture
def world(make_world: Callable[..., World]) -> World:
    return make_world()


def herren(world: World, key: str, start: datetime = TUESDAY_10) -> BookingRequest:
    """A Herrenhaarschnitt with Anna for Eva Muster in call-1, under `key`."""
    return BookingRequest(
        tenant_id=world.tenant_id,
        service="Herrenhaarschnitt",
        start=start,
        staff="Anna",
        customer_name="Eva Muster",
        call_id="call-1",
        idempotency_key=key,
    )


HeldRequest = tuple[str, str, dict[str, Any]]


@contextmanager
def first_request_times_out(
    http: httpx.AsyncClient, matches: Callable[[str, str], bool]
) -> Iterator[list[HeldRequest]]:
    """The first request through `http` that `matches(method, path)` raises httpx's ReadTimeout on
    our side without reaching Cal.com; the block gets the held request (method, url, options), which
    a test may deliver late (Cal.com applying it after we gave up) or never."""
    send = http.request
    held: list[HeldRequest] = []

    async def request(method: str, url: str, **options: Any) -> httpx.Response:
        if not held and matches(method, httpx.URL(url).path):
            held.append((method, url, options))
            raise httpx.ReadTimeout("timed out", request=httpx.Request(method, url))
        return await send(method, url, **options)

    http.request = request  # type: ignore[method-assign,assignment]
    try:
        yield held
    finally:
        del http.request
