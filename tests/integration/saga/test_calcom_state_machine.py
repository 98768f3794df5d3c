"""A model-based test of the booking use cases on a Cal.com salon (hypothesis' RuleBasedStateMachine):
the Cal.com variant of `tests/integration/test_booking_state_machine.py`. Our real store (PostgreSQL)
and the real saga, reconciler and Cal.com client against our Cal.com emulator (a real HTTP server on
127.0.0.1, `conftest.emulator`), driven by these rules in random order:

- book (by phone or by the salon, a named stylist or anyone), cancel, move (reschedule), each with
  or without a fault of Cal.com's during its own writes: the emulator's own fault injection — a 5xx,
  a dropped connection (nothing done), a lost answer (done there, the answer never arrives), a lost
  answer whose read-back fails too (the outcome unknown), a walk-in taking the time the moment we
  ask — or a timeout after which Cal.com still applies the write (see MAYBE_FAULT);
- a retry of an earlier booking or move under its idempotency key (recent ones more often);
- a provider fault armed for the next Cal.com write of a kind (create, cancel, reschedule), whichever
  step sends it (a booking, a retry, a compensation, the reconciler);
- a crash and recovery: the process's caches, unit of work and Cal.com providers thrown away and
  built again, the clocks moved past the pending deadline and the reconciler run (as the crash tests
  do); also with the process killed right after Cal.com answered a create or a reschedule and before
  our own confirm (as `crash_between_*_and_confirm.py` do).

After every step:

- no stylist has two active appointments whose blocks overlap (checked from the rows);
- every appointment confirmed here is live at Cal.com exactly once: its uid is a live booking there,
  at its start, with its stylist as host; no two confirmed rows share a uid, no token of ours is live
  twice there;
- every reply matches the state: "booked" is confirmed at that start and live at Cal.com; a retry
  under the same key gets the first answer and no second row; a refused move leaves the appointment
  where it was; a cancelled appointment is cancelled, and at Cal.com too unless a job still waits to;
- the appointments the model believes active are exactly the active rows (besides walk-ins the
  reconciler imported and claims whose outcome only a retry or the reconciler settles).

After each recovery (reconciled): no pending row is left, and every live booking at Cal.com is a
confirmed appointment here (but for a walk-in over one of our blocks, which the emulator's "slot
stolen" lets in past its buffer check: the reconciler reports it as a conflict and leaves it out).

The salon is the Cal.com demo salon cut to the three services the rules book (five event types: a
reconcile lists five instead of twelve, and an example stays far below Cal.com's 120 requests a
minute), with a caller limit of two future appointments so that limit meets the other rules; the
emulator is reset for every example. The machine runs in a worker thread and hands its coroutines
to the test's event loop, where the fixtures' database pool lives. REZEPTION_MODEL_EXAMPLES sets the
example count (default 20), REZEPTION_MODEL_SHRINK=1 shrinks a failure to a minimal sequence,
REZEPTION_MODEL_RANDOM=1 draws new examples instead of the same ones on every run.

BUGS this machine found (the `test_known_bug_*` replays at the end hold hypothesis' minimal
sequences):

1. (fixed) A retry of a move that Cal.com refused or could not do (or that a kill interrupted) was
   answered "moved": `reschedule` replayed the move's failed claim row as the result. Now it repeats
   the refusal, or answers with the appointment the reconciler completed the move to.
2. (fixed) A move whose outcome at Cal.com is unknown (the answer lost and the read-back failing, or
   a timeout after which Cal.com still moves it) was answered "not moved" and undone here, while
   Cal.com moved it: the row stayed confirmed at the old time with a uid Cal.com had cancelled. Now
   the saga keeps both times held, the caller hears that it is being checked (`move_in_doubt`), and
   a job (or the reconciler's pass) completes or undoes the move from what Cal.com shows.
3. (fixed) A retry of a phone booking whose appointment was since cancelled or moved met the caller
   limit before it was replayed and was refused (too_many_appointments).
4. (fixed) A kill mid-move of an appointment that was moved before lost it on both sides: Cal.com's
   reschedule copied the token of the appointment as first booked, so the reconciler cancelled the
   moved booking as an orphan and the appointment here. The reconciler now knows a moved booking by
   the booking it was rescheduled from, whatever token it carries.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from fnmatch import fnmatchcase
from types import SimpleNamespace
from typing import Any, ClassVar, TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from tests.conftest import empty_tables

from rezeption.booking.bookings import BookingRequest, BookingResult
from rezeption.booking.ports import CalendarOutcomeUnknown, MoveInDoubt
from rezeption.calendars.calcom import CalcomCalendar
from rezeption.domain.clock import FixedClock
from rezeption.domain.errors import BookingError
from rezeption.domain.model import Catalog
from rezeption.domain.schedule import block_of
from rezeption.ops.worker import WorkerOptions, run_once
from rezeption.store.db import Database
from rezeption.store.salon_file import SalonFile
from rezeption.store.salon_import import import_salon
from rezeption.store.tables import AppointmentRow

from .conftest import BERLIN, NOW, Emulator, HeldRequest, World, first_request_times_out
from .emulator_salon import calcom_salon

pytestmark = pytest.mark.postgres

T = TypeVar("T")
Offer = tuple[str, str | None]  # a service, and a stylist or anyone
HourMinute = tuple[int, int]

KEPT = ("herrenhaarschnitt", "damenhaarschnitt", "bartpflege")
OFFERS = [  # what the salon offers, with anyone or a stylist who does it
    (service, staff)
    for service, staff_list in (
        ("Herrenhaarschnitt", ["Anna", "Ben"]),
        ("Bartpflege", ["Ben"]),
        ("Damenhaarschnitt", ["Anna", "Clara"]),
    )
    for staff in [None, *staff_list]
]
NAMES = ["Hans Schuster", "Eva Engel", "Otto Eins"]
DAYS = [date(2025, 11, 4), date(2025, 11, 7)]  # Tuesday (Anna; Ben from 12:00), Friday (all three)
TIMES = [(h, m) for h in range(9, 17) for m in (0, 30)]
ACTIVE = ("pending", "confirmed")
LIVE = ("accepted", "pending")  # Cal.com's statuses that hold a time
RECOVERY = timedelta(minutes=3)  # past the saga's pending deadline (2 minutes)
# Shrinking a failure runs examples for up to five minutes (too long for the suite): by default a
# failure shows the steps as found; REZEPTION_MODEL_SHRINK=1 shrinks them to a minimal sequence.
PHASES = tuple(Phase) if os.environ.get("REZEPTION_MODEL_SHRINK") else (Phase.reuse, Phase.generate)
BACK = st.integers(0, 5)  # which earlier key or appointment: 0 the latest, 1 the one before, ...
OFFER, DAY, TIME = st.sampled_from(OFFERS), st.sampled_from(DAYS), st.sampled_from(TIMES)

WRITES = {
    "create": ("POST", "/v2/bookings"),
    "cancel": ("POST", "/v2/bookings/*/cancel"),
    "reschedule": ("POST", "/v2/bookings/*/reschedule"),
}
FAULTS = ["5xx", "reset", "lost", "lost_unreadable", "slot_stolen"]
# "timeout": our request times out and Cal.com applies it only afterwards, once we have read back and
# given up. The emulator's `latency` mode does that in wall-clock seconds (client timeout against
# server delay); here our HTTP client raises its ReadTimeout at once and the very request is sent to
# the emulator after the step, so it is deterministic and instant. Only on a step's own writes.
MAYBE_FAULT = st.none() | st.sampled_from([*FAULTS, "timeout"])
UNKNOWN_OUTCOMES = ("lost_unreadable", "timeout")


def fault_rules(kind: str, *writes: str) -> list[dict[str, Any]]:
    """The emulator's rules for one fault on the next Cal.com write of each of these kinds."""
    rules: list[dict[str, Any]] = []
    for write in writes:
        method, path = WRITES[write]
        at: dict[str, Any] = {"method": method, "path": path, "count": 1}
        if kind == "5xx":
            rules.append({"mode": "server_error", **at, "params": {"kind": "html", "status": 502}})
        elif kind == "reset":  # the connection drops before Cal.com does anything
            rules.append({"mode": "reset", **at})
        elif kind in ("lost", "lost_unreadable"):  # done at Cal.com, the answer never arrives
            rules.append({"mode": "lost_response", **at})
        else:  # a walk-in takes the time just before ours
            rules.append({"mode": "slot_stolen", **at})
    if kind == "lost_unreadable":  # ... and reading it back fails too (both read attempts)
        rules.append({"mode": "server_error", "method": "GET", "path": "/v2/bookings*", "count": 2})
    return rules


def small_salon(url: str) -> SalonFile:
    """The Cal.com demo salon with only the services the rules book, two appointments per caller."""
    salon = calcom_salon(url)
    salon.services = [s for s in salon.services if s.key in KEPT]
    types = salon.calendar.settings["event_types"]
    salon.calendar.settings["event_types"] = {k: v for k, v in types.items() if k in KEPT}
    salon.booking.max_active_per_caller = 2
    return salon


@pytest.fixture
def salon_for() -> Callable[[str], SalonFile]:
    return small_salon


@dataclass
class Booked:
    """What the model knows of one appointment the use cases said they booked (or moved to)."""

    id: int
    start: datetime
    staff_id: int
    active: bool = True


@dataclass(frozen=True)
class Move:
    """A move request, kept to be retried under its key."""

    appointment_id: int
    start: datetime


class ProcessKilled(BaseException):
    """The process dies (SIGKILL): nothing after this point runs, no handler sees it."""


@dataclass
class Env:
    """What the pytest fixtures give the machine. The machine runs in a thread and hands its
    coroutines to the test's event loop, where the database pool and the fixtures live."""

    loop: asyncio.AbstractEventLoop
    emulator: Emulator
    database: Database
    make_world: Callable[..., World]
    clock: FixedClock
    salon_for: Callable[[str], SalonFile]


def _at(day: date, at: HourMinute) -> datetime:
    return datetime(day.year, day.month, day.day, *at, tzinfo=BERLIN)


class CalcomMachine(RuleBasedStateMachine):
    """One Cal.com salon driven by random use-case calls, faults and crashes."""

    env: ClassVar[Env]

    def __init__(self) -> None:
        super().__init__()
        env = type(self).env
        self.emulator = env.emulator
        self.clock = env.clock
        self.emulator.admin.post("/_emulator/reset").raise_for_status()  # no bookings, faults, limits
        self.clock.set(NOW)
        self.tenant_id = self.run(self._fresh())
        self.world = env.make_world()
        self.catalog = self.run(self._catalog())
        calendar = env.salon_for(self.emulator.url).calendar.settings
        hosts: dict[str, int] = calendar["hosts"]
        self.host_of = {s.id: hosts[s.key] for s in self.catalog.staff}
        staff_by_key = {s.key: s for s in self.catalog.staff}
        self.event_types = {  # Cal.com event type -> (service, stylist)
            type_id: (service, staff_by_key[staff_key].id)
            for service in self.catalog.services
            for staff_key, type_id in calendar["event_types"][service.key].items()
        }
        self.model: dict[int, Booked] = {}  # in the order they were booked or moved to
        self.requests: dict[str, BookingRequest | Move] = {}
        # key -> ("booked" | "moved" | "completed" (by the reconciler, after a kill), id) | ("refused", code)
        self.answers: dict[str, tuple[str, int | str]] = {}
        self.in_doubt: set[int] = set()  # pending claims that only a retry or the reconciler settles

    # --- plumbing -------------------------------------------------------------------------------

    def run(self, work: Awaitable[T]) -> T:
        async def wrapped() -> T:
            return await work

        return asyncio.run_coroutine_threadsafe(wrapped(), type(self).env.loop).result(timeout=120)

    async def _fresh(self) -> int:
        env = type(self).env
        await empty_tables(env.database)
        report = await import_salon(env.database, env.salon_for(self.emulator.url), now=NOW)
        return report.tenant_id

    async def _catalog(self) -> Catalog:
        async with self.world.uow.reading() as tx:
            return await self.world.bookings.catalogs.get(tx, self.tenant_id, NOW.date())

    def _rows(self) -> list[AppointmentRow]:
        return self.run(self.world.appointments())

    def _row(self, appointment_id: int) -> AppointmentRow:
        return next(r for r in self._rows() if r.id == appointment_id)

    def _row_by_key(self, key: str) -> AppointmentRow | None:
        return next((r for r in self._rows() if r.idempotency_key == key), None)

    def _live(self) -> dict[str, dict[str, Any]]:
        return {b["uid"]: b for b in self.emulator.bookings() if b["status"] in LIVE}

    def _earlier_key(self, back: int) -> str:
        keys = list(self.requests)
        return keys[-1 - back % len(keys)]

    def _earlier_appointment(self, back: int, *, active: bool = False) -> int:
        ids = [i for i, known in self.model.items() if known.active or not active]
        return ids[-1 - back % len(ids)]

    @contextmanager
    def _fault(self, kind: str | None, *writes: str) -> Iterator[None]:
        """Cal.com meets `kind` on this step's own writes (and on nothing after it)."""
        if kind is None:
            yield
        elif kind == "timeout":
            with self._timing_out(*writes):
                yield
        else:
            self.emulator.faults(*fault_rules(kind, *writes))
            try:
                yield
            finally:
                self.emulator.clear_faults()

    @contextmanager
    def _timing_out(self, *writes: str) -> Iterator[None]:
        """The first of these writes times out on our side; Cal.com receives it after the step."""
        http: httpx.AsyncClient = self.world.calendars.calcom(self.catalog).client._transport._http

        def matches(method: str, path: str) -> bool:
            return any(method == WRITES[w][0] and fnmatchcase(path, WRITES[w][1]) for w in writes)

        late: list[HeldRequest] = []
        try:
            with first_request_times_out(http, matches) as late:
                yield
        finally:
            for method, url, options in late:  # Cal.com gets to it late; its answer goes nowhere
                with suppress(httpx.TransportError):  # a fault armed for it may drop it
                    self.emulator.admin.request(method, url, json=options["json"], headers=options["headers"])

    def teardown(self) -> None:
        self.run(self.world.calendars.aclose())

    # --- book -----------------------------------------------------------------------------------

    @initialize(ahead=st.lists(st.tuples(OFFER, DAY, TIME), min_size=1, max_size=3))
    def the_salon_booked_ahead(self, ahead: list[tuple[Offer, date, HourMinute]]) -> None:
        """A few appointments booked by the salon before the calls begin (moves and cancels need some)."""
        for n, (offer, day, at) in enumerate(ahead):
            self._book(offer, day, at, NAMES[n % len(NAMES)], "admin", None)

    @rule(offer=OFFER, day=DAY, at=TIME, name=st.sampled_from(NAMES), fault=MAYBE_FAULT)
    def book_by_phone(self, offer: Offer, day: date, at: HourMinute, name: str, fault: str | None) -> None:
        self._book(offer, day, at, name, "phone", fault)

    @rule(offer=OFFER, day=DAY, at=TIME, name=st.sampled_from(NAMES), fault=MAYBE_FAULT)
    def book_by_salon(self, offer: Offer, day: date, at: HourMinute, name: str, fault: str | None) -> None:
        self._book(offer, day, at, name, "admin", fault)

    def _book(
        self,
        offer: Offer,
        day: date,
        at: HourMinute,
        name: str,
        source: str,
        fault: str | None,
    ) -> None:
        service, staff = offer
        key = f"b{len(self.requests)}"
        request = BookingRequest(
            tenant_id=self.tenant_id,
            service=service,
            start=_at(day, at),
            staff=staff,
            customer_name=name,
            phone_e164=f"+4915100000{NAMES.index(name):02d}",
            source=source,
            idempotency_key=key,
        )
        self.requests[key] = request
        with self._fault(fault, "create"):
            try:
                result = self.run(self.world.bookings.book(request))
            except BookingError as error:
                self.answers[key] = self._refused(request, key, error)
                return
        self.answers[key] = ("booked", self._booked(request, result))

    def _refused(self, request: BookingRequest, key: str, error: BookingError) -> tuple[str, str]:
        if isinstance(error, CalendarOutcomeUnknown):
            row = self._row_by_key(key)
            assert row is not None and row.status == "pending", "an unknown outcome keeps its claim"
            self.in_doubt.add(row.id)
        elif error.code == "slot_taken" and request.staff is not None:
            assert self._busy(request), "refused as taken, yet the stylist has nothing then"
        return ("refused", error.code)

    def _booked(self, request: BookingRequest, result: BookingResult) -> int:
        appointment = result.appointment
        assert appointment.status.value == "confirmed", (
            f"answered booked (replayed: {result.replayed}), yet appointment {appointment.id} is "
            f"{appointment.status.value}"
        )
        assert appointment.starts_at == request.start
        if request.staff is not None:
            assert self.catalog.staff_by_id(appointment.staff_id).name == request.staff
        live = self._live()
        assert appointment.external_uid in live, "answered booked, yet Cal.com does not hold it"
        assert _start(live[appointment.external_uid]) == request.start
        assert appointment.id not in self.model, "a new booking reused an id"
        self.model[appointment.id] = Booked(appointment.id, appointment.starts_at, appointment.staff_id)
        self.in_doubt.discard(appointment.id)
        return appointment.id

    def _busy(self, request: BookingRequest) -> bool:
        """Whether the named stylist holds the requested block here or at Cal.com."""
        staff = next(s for s in self.catalog.staff if s.name == request.staff)
        wanted = block_of(next(s for s in self.catalog.services if s.name == request.service), request.start)
        here = any(
            r.staff_id == staff.id and r.block_starts_at < wanted.end and r.block_ends_at > wanted.start
            for r in self._rows()
            if r.status in ACTIVE
        )
        there = any(
            b["hosts"][0]["id"] == self.host_of[staff.id]
            and _start(b) < wanted.end
            and _end(b) > wanted.start
            for b in self._live().values()
        )
        return here or there

    # --- retry ----------------------------------------------------------------------------------

    @precondition(lambda self: self.requests)
    @rule(back=BACK)
    def retry(self, back: int) -> None:
        """An earlier request again under its key: the first answer, and no second row."""
        key = self._earlier_key(back)
        request = self.requests[key]
        if isinstance(request, Move):
            self._retry_move(key, request)
            return
        first = self.answers[key]
        rows_before = len(self._rows())
        holder = self._row_by_key(key)
        try:
            result = self.run(self.world.bookings.book(request))
        except CalendarOutcomeUnknown:
            assert holder is not None and holder.id in self.in_doubt, f"retry of {key}: a new unknown claim"
            return
        except BookingError as error:
            # KNOWN BUG 3: a phone booking's retry after its appointment was cancelled or moved is
            # refused by the caller limit (too_many_appointments) before it is replayed.
            assert first[0] == "refused", f"retry of {key} refused ({error.code}), first answer {first}" + (
                " (KNOWN BUG 3)" if error.code == "too_many_appointments" else ""
            )
            return
        appointment = result.appointment
        if first[0] == "booked":
            assert result.replayed and appointment.id == first[1], (
                f"retry of {key}: {appointment.id}, {first}"
            )
            assert len(self._rows()) == rows_before, "a retry made a second row"
            known = self.model[appointment.id]
            assert appointment.status.value == ("confirmed" if known.active else "cancelled")
            return
        if holder is not None:  # a claim under this key exists: only its own outcome may come back
            assert holder.id in self.in_doubt, f"retry of {key}, first refused, answered booked {holder.id}"
            assert result.replayed and appointment.id == holder.id, "a retry made a second row"
        self.answers[key] = ("booked", self._booked(request, result))

    def _retry_move(self, key: str, move: Move) -> None:
        first = self.answers[key]
        if move.appointment_id not in self.model:
            return
        rows_before = len(self._rows())
        holder = self._row_by_key(key)
        try:
            result = self._reschedule(move, key)
        except BookingError as error:
            # A move nobody heard of (its process was killed) that the reconciler completed: "not
            # active" is true of the appointment it moved away from.
            unheard = first[0] == "completed" and error.code == "appointment_not_active"
            assert first[0] == "refused" or unheard, (
                f"retry of move {key} refused ({error.code}), first {first}"
            )
            return
        appointment = result.appointment
        if first[0] in ("moved", "completed"):
            # KNOWN BUG 1 also fails here after a kill mid-move that the reconciler completed: the
            # retry replays the move's failed claim row, not the appointment at its new time.
            assert result.replayed and appointment.id == first[1], (
                f"retry of move {key} answered 'moved' with appointment {appointment.id} "
                f"({appointment.status.value}), the move's appointment is {first[1]}"
            )
            assert len(self._rows()) == rows_before, "a retry made a second row"
            return
        # The first answer was a refusal. A claim kept under the key (Cal.com refused the time or
        # was away) is that refusal, and the retry must repeat it; only with nothing stored under
        # the key is the retry asked afresh.
        # KNOWN BUG 1: `reschedule` replays the failed claim row as a result ("verlegt").
        assert holder is None, (
            f"KNOWN BUG 1: retry of move {key} (first answer {first}) was answered 'moved' with "
            f"appointment {appointment.id} in status {appointment.status.value}"
        )
        self.answers[key] = ("moved", self._moved(move, result))

    # --- cancel ---------------------------------------------------------------------------------

    @precondition(lambda self: self.model)
    @rule(back=BACK, fault=MAYBE_FAULT)
    def cancel(self, back: int, fault: str | None) -> None:
        appointment = self._earlier_appointment(back)
        with self._fault(fault, "cancel"):
            try:
                result = self.run(
                    self.world.bookings.cancel(
                        tenant_id=self.tenant_id,
                        appointment_id=appointment,
                        source="admin",
                        respect_notice=False,
                    )
                )
            except BookingError as error:
                assert not self.model[appointment].active, f"cancel refused: {error.code}"
                assert error.code == "appointment_not_active", error.code
                return
        assert self.model[appointment].active, "a cancelled appointment was cancelled again"
        assert result.appointment.status.value == "cancelled"
        self.model[appointment].active = False
        uid = result.appointment.external_uid or ""
        if uid in self._live():  # only while its cancellation waits as a job for the worker
            queued = [j for j in self.run(self.world.jobs("calendar_cancel")) if j.payload["uid"] == uid]
            assert [j.status for j in queued] == ["pending"], f"cancelled here, live at Cal.com: {queued}"

    # --- move -----------------------------------------------------------------------------------

    @precondition(lambda self: self.model)
    @rule(back=BACK, day=DAY, at=TIME, fault=MAYBE_FAULT)
    def move(self, back: int, day: date, at: HourMinute, fault: str | None) -> None:
        appointment = self._earlier_appointment(back)
        key = f"m{len(self.requests)}"
        move = Move(appointment, _at(day, at))
        self.requests[key] = move
        in_doubt = False
        with self._fault(fault, "reschedule", "create"):  # the same stylist moves, another books
            try:
                result = self._reschedule(move, key)
            except MoveInDoubt:
                in_doubt = True
            except BookingError as error:
                if error.code == "appointment_not_active":
                    assert not self.model[appointment].active, "an active appointment was called inactive"
                self.answers[key] = ("refused", error.code)  # the invariants check it stayed
                return
        if in_doubt:  # both times held here until the job or the reconciler reads Cal.com back
            assert fault in UNKNOWN_OUTCOMES, f"move in doubt after {fault}"
            self.answers[key] = ("refused", "move_in_doubt")
            self._settle_after_recovery(appointment, key, move)
            return
        self.answers[key] = ("moved", self._moved(move, result))

    def _reschedule(self, move: Move, key: str) -> BookingResult:
        return self.run(
            self.world.bookings.reschedule(
                tenant_id=self.tenant_id,
                appointment_id=move.appointment_id,
                start=move.start,
                idempotency_key=key,
                source="admin",
            )
        )

    def _moved(self, move: Move, result: BookingResult) -> int:
        old = self.model[move.appointment_id]
        moved = result.appointment
        assert old.active, "an inactive appointment was moved"
        assert moved.starts_at == move.start and moved.status.value == "confirmed", moved
        live = self._live()
        assert moved.external_uid in live and _start(live[moved.external_uid]) == move.start
        if moved.id != old.id:
            old.active = False
            self.model[moved.id] = Booked(moved.id, moved.starts_at, moved.staff_id)
        else:
            old.start, old.staff_id = moved.starts_at, moved.staff_id
        return moved.id

    # --- faults ---------------------------------------------------------------------------------

    @rule(
        kind=st.sampled_from([f for f in FAULTS if f not in UNKNOWN_OUTCOMES]),
        write=st.sampled_from(sorted(WRITES)),
    )
    def provider_fault(self, kind: str, write: str) -> None:
        """The next Cal.com write of this kind meets the fault, whichever step sends it (a booking,
        a retry, a compensation, the reconciler)."""
        self.emulator.faults(*fault_rules(kind, write))

    # --- crashes --------------------------------------------------------------------------------

    @rule()
    def crash_and_recover(self) -> None:
        self._recover()

    @rule(offer=OFFER, day=DAY, at=TIME)
    def killed_after_calcom_booked(self, offer: Offer, day: date, at: HourMinute) -> None:
        """The process dies right after Cal.com booked and before our confirm: the caller heard
        nothing; after recovery the booking is neither here nor there."""
        service, staff = offer
        key = f"k{len(self.requests)}"
        request = BookingRequest(
            tenant_id=self.tenant_id,
            service=service,
            start=_at(day, at),
            staff=staff,
            customer_name="Vera Voll",
            source="admin",
            idempotency_key=key,
        )
        self.requests[key] = request
        self.answers[key] = ("refused", "killed")
        with self._dying_after("create"):
            try:
                self.run(self.world.bookings.book(request))
            except ProcessKilled:
                pass
            except BookingError as error:  # refused before Cal.com booked anything
                self.answers[key] = self._refused(request, key, error)
                return
            else:
                raise AssertionError("the kill did not happen")
        row = self._row_by_key(key)
        assert row is not None and row.status == "pending", "the claim survived the kill"
        self.in_doubt.add(row.id)
        self._recover()
        assert self._row(row.id).status == "failed"

    @precondition(lambda self: any(b.active for b in self.model.values()))
    @rule(back=BACK, day=DAY, at=TIME)
    def killed_after_calcom_moved(self, back: int, day: date, at: HourMinute) -> None:
        """The process dies right after Cal.com moved (or booked the new time with another stylist)
        and before our confirm: after recovery the appointment is at its old time or at the new
        one, once, here and at Cal.com alike."""
        appointment = self._earlier_appointment(back, active=True)
        key = f"k{len(self.requests)}"
        move = Move(appointment, _at(day, at))
        self.requests[key] = move
        self.answers[key] = ("refused", "killed")
        with self._dying_after("reschedule", "create"):
            try:
                self._reschedule(move, key)
            except ProcessKilled:
                pass
            except BookingError as error:  # refused before Cal.com changed anything
                self.answers[key] = ("refused", error.code)
                return
            else:
                raise AssertionError("the kill did not happen")
        self._settle_after_recovery(appointment, key, move)

    def _settle_after_recovery(self, appointment: int, key: str, move: Move) -> None:
        """A move nobody heard the end of (killed, or in doubt): after recovery the appointment is
        at its old time, or at the new one under a successor, once, here and at Cal.com alike."""
        before = {r.id for r in self._rows()}
        self._recover()
        successors = [
            r
            for r in self._rows()
            if r.rescheduled_from_id == appointment and r.status == "confirmed" and r.id not in before
        ]
        status = self._row(appointment).status
        if status == "confirmed":  # not moved: what Cal.com made is gone
            assert successors == [], successors
            return
        # Moved at Cal.com: the reconciler completes the move here (bug 4, fixed: also when the
        # appointment had been moved before and its booking carries an older token).
        assert len(successors) == 1, (
            f"after a move in doubt and a recovery appointment {appointment} is {status} here, with "
            f"no successor, and Cal.com holds nothing live for it"
        )
        (moved,) = successors
        assert moved.starts_at == move.start, (moved.starts_at, move.start)
        self.model[appointment].active = False
        self.model[moved.id] = Booked(moved.id, moved.starts_at, moved.staff_id)
        self.answers[key] = ("completed", moved.id)  # unheard, but a retry must not deny it

    @contextmanager
    def _dying_after(self, *methods: str) -> Iterator[None]:
        """This process's Cal.com provider dies right after Cal.com answers any of `methods`."""
        calendar = self.world.calendars.calcom(self.catalog)
        for name in methods:
            real = getattr(CalcomCalendar, name)

            async def then_die(*args: Any, _real: Any = real) -> Any:
                await _real(calendar, *args)
                raise ProcessKilled()

            setattr(calendar, name, then_die)
        try:
            yield
        finally:
            for name in methods:
                vars(calendar).pop(name, None)

    def _recover(self) -> None:
        """A new process (caches, unit of work, Cal.com clients) started after the pending deadline
        runs the due jobs (a worker) and the reconciler; then Cal.com and we tell the same story."""
        self.run(self.world.calendars.aclose())
        self.world = type(self).env.make_world()
        self.clock.advance(RECOVERY)
        self.emulator.admin.post(
            "/_emulator/clock", json={"advance_seconds": RECOVERY.total_seconds()}
        ).raise_for_status()
        worker = SimpleNamespace(database=self.world.db, reconciler=self.world.reconciler, clock=self.clock)
        for _ in range(3):  # a batch, and what a failed job left due
            if not self.run(run_once(worker, WorkerOptions(worker_id="model"))):
                break
        report = self.run(self.world.reconciler.reconcile_tenant(self.tenant_id))
        if report.errors:  # a fault still armed met the reconciler: Cal.com recovers, run again
            self.emulator.clear_faults()
            report = self.run(self.world.reconciler.reconcile_tenant(self.tenant_id))
        assert report.errors == [], report.errors
        rows = self._rows()
        assert [r.id for r in rows if r.status == "pending"] == [], "a pending row outlived the reconciler"
        self.in_doubt = {i for i in self.in_doubt if any(r.id == i and r.status in ACTIVE for r in rows)}
        confirmed = {r.external_uid for r in rows if r.status == "confirmed"}
        strays = [b for uid, b in self._live().items() if uid not in confirmed]
        # A walk-in Cal.com let in over one of our blocks (the emulator's "slot stolen" skips its
        # buffer check) cannot be imported: the reconciler reports it as a conflict for the salon.
        conflicts = [b for b in strays if not b["metadata"].get("rezeption_token") and self._clashes(b, rows)]
        assert report.conflicts >= len(conflicts), (report, conflicts)
        unexplained = {b["uid"]: b.get("source") for b in strays if b not in conflicts}
        assert unexplained == {}, f"live at Cal.com without a confirmed appointment here: {unexplained}"

    def _clashes(self, booking: dict[str, Any], rows: list[AppointmentRow]) -> bool:
        """Whether a Cal.com booking's block (its service's buffers included) overlaps an active
        appointment of its stylist here."""
        service, staff_id = self.event_types[booking["eventTypeId"]]
        block = block_of(service, _start(booking))
        mine = [r for r in rows if r.staff_id == staff_id and r.status in ACTIVE]
        return any(r.block_starts_at < block.end and r.block_ends_at > block.start for r in mine)

    # --- invariants -----------------------------------------------------------------------------

    @invariant()
    def no_stylist_is_booked_twice(self) -> None:
        by_staff: dict[int, list[AppointmentRow]] = {}
        for row in self._rows():
            if row.status in ACTIVE:
                by_staff.setdefault(row.staff_id, []).append(row)
        for blocks in by_staff.values():
            blocks.sort(key=lambda r: r.block_starts_at)
            for before, after in itertools.pairwise(blocks):
                assert before.block_ends_at <= after.block_starts_at, f"overlap: {before.id} and {after.id}"

    @invariant()
    def every_confirmed_appointment_is_live_at_calcom_once(self) -> None:
        rows = [r for r in self._rows() if r.status == "confirmed"]
        uids = [r.external_uid for r in rows]
        assert None not in uids and len(set(uids)) == len(uids), f"confirmed rows share uids: {uids}"
        live = self._live()
        for row in rows:
            booking = live.get(row.external_uid or "")
            assert booking is not None, (
                f"appointment {row.id} is confirmed here at {_local(row.starts_at)}, but its Cal.com "
                f"booking {row.external_uid} is not live there"
            )
            assert _start(booking) == row.starts_at, f"appointment {row.id}: another time at Cal.com"
            assert booking["hosts"][0]["id"] == self.host_of[row.staff_id], f"{row.id}: another host"
        ours = [t for b in live.values() if (t := b["metadata"].get("rezeption_token"))]
        assert len(set(ours)) == len(ours), f"one of our tokens is live twice at Cal.com: {ours}"

    @invariant()
    def the_rows_are_what_the_replies_said(self) -> None:
        rows = {r.id: r for r in self._rows()}
        active = {i for i, r in rows.items() if r.status in ACTIVE}
        believed = {b.id for b in self.model.values() if b.active}
        missing = believed - active
        assert not missing, f"answered booked or moved, but not active here: {sorted(missing)}"
        for known in believed:
            row, model = rows[known], self.model[known]
            assert row.status == "confirmed", f"{known} is {row.status}"
            assert (row.starts_at, row.staff_id) == (model.start, model.staff_id), (
                f"appointment {known} is at {_local(row.starts_at)} with stylist {row.staff_id}, the "
                f"replies said {_local(model.start)} with stylist {model.staff_id}"
            )
        for extra in active - believed:
            row = rows[extra]
            walk_in = row.source == "calendar" and row.status == "confirmed"
            unsettled = extra in self.in_doubt and row.status == "pending"
            assert walk_in or unsettled, f"active here, yet never answered booked: {extra} ({row.status})"
        keys = [r.idempotency_key for r in rows.values() if r.idempotency_key]
        assert len(set(keys)) == len(keys), "two rows under one key"


def _local(moment: datetime) -> str:
    return f"{moment.astimezone(BERLIN):%a %H:%M}"


def _start(booking: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(booking["start"]).astimezone(UTC)


def _end(booking: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(booking["end"]).astimezone(UTC)


@pytest.fixture
def machine_env(
    emulator: Emulator,
    pg: Database,
    make_world: Callable[..., World],
    clock: FixedClock,
    salon_for: Callable[[str], SalonFile],
) -> Callable[[], Env]:
    """The machine's fixtures, for a test running in the event loop (called there)."""
    return lambda: Env(asyncio.get_running_loop(), emulator, pg, make_world, clock, salon_for)


async def test_random_bookings_moves_retries_faults_and_crashes_keep_cal_com_and_us_in_step(
    machine_env: Callable[[], Env],
) -> None:
    CalcomMachine.env = machine_env()
    runner = CalcomMachine.TestCase
    runner.settings = settings(
        max_examples=int(os.environ.get("REZEPTION_MODEL_EXAMPLES", "20")),
        stateful_step_count=15,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=PHASES,
        # the same examples on every run of one code (CI stays stable); REZEPTION_MODEL_RANDOM=1
        # draws new ones (how this machine found the bugs above)
        derandomize=os.environ.get("REZEPTION_MODEL_RANDOM") != "1",
    )
    await asyncio.to_thread(lambda: runner().runTest())


# --- the known bugs, replayed -------------------------------------------------------------------
# The shortest failing sequences, replayed step by step with the invariants checked after each (as
# the machine does): hypothesis' minimal ones (REZEPTION_MODEL_SHRINK=1), and for bugs 1 and 3 one as
# short without a kill. Each fails until its bug is fixed, then guards the fix.

TUE, FRI = DAYS


async def replay(machine_env: Callable[[], Env], steps: Callable[[CalcomMachine], None]) -> None:
    CalcomMachine.env = machine_env()

    def run() -> None:
        machine = CalcomMachine()
        try:
            steps(machine)
        finally:
            machine.teardown()

    await asyncio.to_thread(run)


def checked(machine: CalcomMachine) -> None:
    machine.no_stylist_is_booked_twice()
    machine.every_confirmed_appointment_is_live_at_calcom_once()
    machine.the_rows_are_what_the_replies_said()


async def test_known_bug_1_a_retry_of_a_move_cal_com_refused_is_answered_moved(
    machine_env: Callable[[], Env],
) -> None:
    """The move's claim row is kept, failed, under its key; `reschedule` finds it under the retried
    key and replays it as the result, so the caller hears "Ich habe Ihren Termin verlegt"."""

    def steps(m: CalcomMachine) -> None:
        m.the_salon_booked_ahead(ahead=[(("Herrenhaarschnitt", None), TUE, (9, 0))])
        checked(m)
        m.move(back=0, day=TUE, at=(10, 0), fault="5xx")  # not moved: Cal.com answered 502
        checked(m)
        m.retry(back=0)  # KNOWN BUG 1

    await replay(machine_env, steps)


async def test_known_bug_1_a_retry_of_a_move_a_kill_interrupted_is_answered_with_its_failed_claim(
    machine_env: Callable[[], Env],
) -> None:
    """Hypothesis' minimal sequence for bug 1: the move was killed after Cal.com moved it and the
    reconciler completed it (a new row at Friday 09:00); the retry is answered with the move's
    failed claim row instead of that appointment."""

    def steps(m: CalcomMachine) -> None:
        m.the_salon_booked_ahead(ahead=[(("Herrenhaarschnitt", None), TUE, (9, 0))])
        checked(m)
        m.killed_after_calcom_moved(back=0, day=FRI, at=(9, 0))
        checked(m)
        m.retry(back=0)  # KNOWN BUG 1

    await replay(machine_env, steps)


async def test_known_bug_2_a_move_whose_answer_is_lost_is_kept_in_doubt_and_completed(
    machine_env: Callable[[], Env],
) -> None:
    """Cal.com moved the booking (a new uid; the old one cancelled), its answer was lost and reading
    it back failed. It was taken for "not moved" and undone here, while Cal.com had moved it. Now the
    caller hears it is being checked, the widened block keeps both times, and the recovery completes
    the move to 09:00 here."""

    def steps(m: CalcomMachine) -> None:
        m.the_salon_booked_ahead(ahead=[(("Herrenhaarschnitt", None), TUE, (9, 30))])
        checked(m)
        m.move(back=0, day=TUE, at=(9, 0), fault="lost_unreadable")
        checked(m)
        (answer,) = [a for key, a in m.answers.items() if key.startswith("m")]
        assert answer[0] == "completed" and m.model[int(answer[1])].start == _at(TUE, (9, 0)), answer

    await replay(machine_env, steps)


async def test_known_bug_3_a_retried_phone_booking_since_moved_meets_the_caller_limit(
    machine_env: Callable[[], Env],
) -> None:
    """On an external calendar a retry whose appointment is no longer confirmed goes through the
    caller limit before it is replayed, and is refused (too_many_appointments)."""

    def steps(m: CalcomMachine) -> None:
        m.the_salon_booked_ahead(ahead=[(("Herrenhaarschnitt", None), TUE, (9, 0))])  # Hans Schuster
        checked(m)
        m.book_by_phone(
            offer=("Herrenhaarschnitt", None), day=TUE, at=(10, 0), name="Hans Schuster", fault=None
        )
        checked(m)
        m.move(back=0, day=TUE, at=(11, 0), fault=None)
        checked(m)
        m.retry(back=1)  # KNOWN BUG 3: the phone booking's key

    await replay(machine_env, steps)


async def test_known_bug_4_a_kill_mid_move_of_a_moved_appointment_is_completed_not_lost(
    machine_env: Callable[[], Env],
) -> None:
    """Cal.com's reschedule copies our token: after one move the booking carries the token of the
    appointment as first booked. A process killed in the next move left Cal.com's new booking with
    that old token; the reconciler took it for an orphan, cancelled it there and the appointment
    here. Now it knows the booking by the one it was rescheduled from and completes the move."""

    def steps(m: CalcomMachine) -> None:
        m.the_salon_booked_ahead(ahead=[(("Herrenhaarschnitt", None), TUE, (9, 0))])
        checked(m)
        m.killed_after_calcom_moved(back=0, day=FRI, at=(9, 0))  # completed by the reconciler
        checked(m)
        m.killed_after_calcom_moved(back=0, day=TUE, at=(9, 0))
        checked(m)
        assert [b.start for b in m.model.values() if b.active] == [_at(TUE, (9, 0))], m.model

    await replay(machine_env, steps)


async def test_a_booking_cal_com_refuses_is_answered_refused(machine_env: Callable[[], Env]) -> None:
    """Cal.com refuses the time (a walk-in took it a moment before): the caller hears "taken", never
    "booked" (the failed claim row under the request's key is no earlier answer to replay)."""

    def steps(m: CalcomMachine) -> None:
        m.book_by_salon(
            offer=("Herrenhaarschnitt", "Anna"), day=TUE, at=(10, 0), name="Eva Engel", fault="slot_stolen"
        )
        checked(m)
        assert m.answers["b0"] == ("refused", "slot_taken"), m.answers

    await replay(machine_env, steps)
