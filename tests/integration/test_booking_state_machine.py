"""A model-based test of the booking use cases (hypothesis' RuleBasedStateMachine) on the real store,
SQLite and PostgreSQL: book (by phone and by the salon, a named stylist or anyone), cancel, move, a
retry of an earlier request under the same key, and a "crash" (the process's caches and unit of
work thrown away and built again) in random order. After every step:

- no stylist has two active appointments whose blocks overlap (the database's rule, checked from
  the rows, not from what the code said);
- every reply matches the rows: a booking that was answered "booked" is confirmed at that start with
  that stylist; a retry under the same key gets the first answer and no second row; a refused move
  leaves the appointment where it was; a cancelled appointment is cancelled;
- the appointments the model believes active are exactly the active rows.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule
from sqlalchemy import text
from tests.conftest import DEMO_SALON, empty_tables

from rezeption.booking.bookings import BookingRequest, Bookings
from rezeption.booking.catalog import find_service
from rezeption.calendars.directory import CalendarDirectory
from rezeption.domain.clock import FixedClock
from rezeption.domain.errors import BookingError
from rezeption.domain.schedule import block_of
from rezeption.store.db import Database
from rezeption.store.salon_file import read_salon
from rezeption.store.salon_import import import_salon
from rezeption.store.uow import SqlUnitOfWork

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2025, 11, 3, 8, 0, tzinfo=BERLIN)  # Monday; the salon opens Tuesday
DAYS = [NOW.date() + timedelta(days=n) for n in (1, 2, 3, 4)]  # Tue-Fri
TIMES = [(h, m) for h in range(9, 18) for m in (0, 30)]
SERVICES = ["Herrenhaarschnitt", "Bartpflege", "Damenhaarschnitt"]
STAFF = [None, "Anna", "Ben", "Clara"]
NAMES = ["Hans Schuster", "Eva Engel", "Otto Eins", "Lena Vogel", "Karl Bart", "Vera Voll"]


@dataclass
class Booked:
    """What the model knows of one appointment the use cases said they booked."""

    id: int
    start: datetime
    staff_id: int
    active: bool = True


class BookingMachine(RuleBasedStateMachine):
    """One salon's calendar driven by random use-case calls; `url` is set per backend."""

    new_url: Callable[[], str] = staticmethod(lambda: "")  # a fresh database per example

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.database = Database.from_url(type(self).new_url())
        self.run(self._fresh())
        self.clock = FixedClock(NOW)
        self._wire()
        self.model: dict[int, Booked] = {}
        self.answers: dict[str, tuple[str, Any]] = {}  # idempotency key -> ("booked", id) | ("refused", code)
        self.requests: dict[str, BookingRequest] = {}

    def run(self, work: Any) -> Any:
        return self.loop.run_until_complete(work)

    async def _fresh(self) -> None:
        await empty_tables(self.database)
        self.tenant_id = (await import_salon(self.database, read_salon(DEMO_SALON), now=NOW)).tenant_id

    def _wire(self) -> None:
        uow = SqlUnitOfWork(self.database)
        self.bookings = Bookings(uow=uow, calendars=CalendarDirectory(uow), clock=self.clock)

    def teardown(self) -> None:
        self.run(self.database.dispose())
        self.loop.close()

    keys = Bundle("keys")
    appointments = Bundle("appointments")

    @rule(
        target=keys,
        service=st.sampled_from(SERVICES),
        day=st.sampled_from(DAYS),
        at=st.sampled_from(TIMES),
        staff=st.sampled_from(STAFF),
        name=st.sampled_from(NAMES),
        by_salon=st.booleans(),
    )
    def book(
        self, service: str, day: Any, at: tuple[int, int], staff: str | None, name: str, by_salon: bool
    ) -> str:
        key = f"k{len(self.requests)}"
        request = BookingRequest(
            tenant_id=self.tenant_id,
            service=service,
            start=datetime(day.year, day.month, day.day, *at, tzinfo=BERLIN),
            staff=staff,
            customer_name=name,
            phone_e164=f"+4915100000{NAMES.index(name):02d}",
            source="admin" if by_salon else "phone",
            idempotency_key=key,
        )
        self.requests[key] = request
        self.answers[key] = self._book(request)
        return key

    def _book(self, request: BookingRequest) -> tuple[str, Any]:
        try:
            result = self.run(self.bookings.book(request))
        except BookingError as error:
            if error.code == "slot_taken" and request.staff is not None:
                assert self._busy(request), "refused as taken, yet the stylist has nothing then"
            return ("refused", error.code)
        appointment = result.appointment
        if result.replayed:  # the first booking's appointment, as it is now (maybe cancelled or moved since)
            known = self.model[appointment.id]
            assert (
                appointment.status.value == ("confirmed" if known.active else "cancelled") or not known.active
            )
            return ("booked", appointment.id)
        assert appointment.status.value == "confirmed" and appointment.starts_at == request.start
        if not result.replayed:
            assert appointment.id not in self.model, "a new booking reused an id"
            self.model[appointment.id] = Booked(appointment.id, appointment.starts_at, appointment.staff_id)
        return ("booked", appointment.id)

    def _busy(self, request: BookingRequest) -> bool:
        """Whether the named stylist has an active appointment whose block overlaps the requested one."""
        catalog = self._catalog()
        staff_id = next(s for s in catalog.staff if s.name == request.staff).id
        wanted = block_of(find_service(catalog, request.service), request.start)
        start, end = _naive(wanted.start), _naive(wanted.end)
        rows = self.run(self._rows())
        return any(
            r[1] == staff_id and r[2] < end and r[3] > start for r in rows if r[4] in ("confirmed", "pending")
        )

    def _catalog(self) -> Any:
        async def load() -> Any:
            async with self.bookings.uow.reading() as tx:
                return await self.bookings.catalogs.get(tx, self.tenant_id, NOW.date())

        return self.run(load())

    @rule(key=keys)
    def retry(self, key: str) -> None:
        """A booked request retried gets the same appointment and no second row; a refused one is
        asked again (nothing was stored for it: the slot may be free by now)."""
        first = self.answers[key]
        again = self._book(self.requests[key])
        if first[0] == "booked":
            assert again == first, f"a retry under {key} got {again}, first {first}"
        elif again[0] == "booked":
            self.answers[key] = again

    @rule(target=appointments, key=keys)
    def booked_one(self, key: str) -> int:
        kind, value = self.answers[key]
        return int(value) if kind == "booked" else -1

    @rule(appointment=appointments)
    def cancel(self, appointment: int) -> None:
        if appointment not in self.model:
            return
        try:
            cancelling = self.bookings.cancel(
                tenant_id=self.tenant_id, appointment_id=appointment, source="admin", respect_notice=False
            )
            self.run(cancelling)
        except BookingError as error:
            assert not self.model[appointment].active and error.code == "appointment_not_active", error.code
            return
        assert self.model[appointment].active, "a cancelled appointment was cancelled again"
        self.model[appointment].active = False

    @rule(appointment=appointments, day=st.sampled_from(DAYS), at=st.sampled_from(TIMES))
    def move(self, appointment: int, day: Any, at: tuple[int, int]) -> None:
        if appointment not in self.model:
            return
        old = self.model[appointment]
        start = datetime(day.year, day.month, day.day, *at, tzinfo=BERLIN)
        try:
            result = self.run(
                self.bookings.reschedule(
                    tenant_id=self.tenant_id, appointment_id=appointment, start=start, source="admin"
                )
            )
        except BookingError:
            return  # checked by the invariants: it stays as it was
        moved = result.appointment
        assert old.active and moved.starts_at == start and moved.status.value == "confirmed"
        if moved.id != old.id:
            old.active = False
            self.model[moved.id] = Booked(moved.id, moved.starts_at, moved.staff_id)
        else:
            old.start, old.staff_id = moved.starts_at, moved.staff_id

    @rule()
    def crash_and_recover(self) -> None:
        self._wire()  # the caches and the unit of work of a new process; the database stays

    async def _rows(self) -> list[Any]:
        async with self.database.statement() as conn:
            result = await conn.execute(
                text(
                    "SELECT id, staff_id, block_starts_at, block_ends_at, status, starts_at FROM appointments"
                )
            )
            return [(r[0], r[1], _naive(r[2]), _naive(r[3]), r[4], _naive(r[5])) for r in result]

    @invariant()
    def no_stylist_is_booked_twice_and_the_rows_are_what_the_model_says(self) -> None:
        rows = self.run(self._rows())
        active = [r for r in rows if r[4] in ("confirmed", "pending")]
        by_staff: dict[int, list[Any]] = {}
        for row in active:
            by_staff.setdefault(row[1], []).append(row)
        for blocks in by_staff.values():
            blocks.sort(key=lambda r: r[2])
            for before, after in itertools.pairwise(blocks):
                assert before[3] <= after[2], f"overlap: {before} and {after}"
        believed = {b.id for b in self.model.values() if b.active}
        assert {r[0] for r in active} == believed
        for row in active:
            assert _naive(self.model[row[0]].start) == row[5] and self.model[row[0]].staff_id == row[1]


def _naive(value: Any) -> datetime:
    """UTC without zone, whatever the backend returned (SQLite: text or naive; PostgreSQL: aware)."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.astimezone(ZoneInfo("UTC")).replace(tzinfo=None) if moment.tzinfo else moment


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_random_bookings_cancellations_moves_retries_and_crashes_keep_the_calendar_true(
    backend: str, sqlite_template: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        made = iter(range(10_000))

        def new_sqlite() -> str:
            path = tmp_path / f"machine-{next(made)}.db"
            shutil.copy(sqlite_template, path)
            return f"sqlite+aiosqlite:///{path}"

        BookingMachine.new_url = staticmethod(new_sqlite)
    else:
        url = request.getfixturevalue("postgres_migrated")
        BookingMachine.new_url = staticmethod(lambda: url)  # emptied by each machine
    runner = BookingMachine.TestCase
    runner.settings = settings(
        max_examples=int(os.environ.get("REZEPTION_MODEL_EXAMPLES", "10")),
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    runner().runTest()
