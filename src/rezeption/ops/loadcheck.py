"""After a load run, count from the database what really happened — not from the server's counters
nor from what the callers heard: double bookings (two active appointments of one stylist whose
blocks overlap), pending rows left behind, and for every call how many active appointments were made
in it against what its caller heard (one after "gebucht" or a move, none after a cancellation; zero
or one when a write's answer never came), whether that one starts when its caller heard
(`wrong_time`), and which calls heard "gebucht" but hold no confirmed appointment
(`lost_confirmed`).

For a salon on Cal.com the emulator's side is read too (`check_calcom`, from its admin API
`/_emulator/state` and request log): orphans (bookings live there with our token and no confirmed
appointment here), appointments confirmed here but not live there, or live there at another time
(a move done on one side only), double bookings there (two live
bookings of one host overlapping), and how many Cal.com requests the run sent per phone call (the
target's measure: at most one on average) and per call that booked (the requests a booking
really costs, its cancel or move, slot reads and the reconciler's share included). Run
`reconcile_after_run` first: it resolves what a run leaves in flight, as the worker would once the
pending deadline has passed.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import and_, func, select
from sqlalchemy.orm import aliased

from rezeption.booking.ports import CalendarDirectory, Clock, UnitOfWork
from rezeption.booking.reconcile import Reconciler, ReconcileReport
from rezeption.booking.saga import PENDING_DEADLINE
from rezeption.store.db import Database
from rezeption.store.tables import AppointmentRow, TenantRow

ACTIVE = ("pending", "confirmed")
LIVE_AT_CALCOM = ("accepted", "pending")
TOKEN_KEY = "rezeption_token"


@dataclass(frozen=True)
class Check:
    """What the database holds after the run."""

    double_bookings: int
    pending_left: int
    mismatched_calls: list[str]  # calls whose active appointments are not what the caller heard
    appointments: int
    lost_confirmed: list[str] = field(default_factory=list)  # heard "gebucht", hold no confirmed one
    uncertain_calls: int = 0  # calls where a write went unanswered (0 or 1 allowed)
    wrong_time: list[str] = field(default_factory=list)  # the one appointment is not when the caller heard


def _allowed(expected: int | None) -> tuple[int, ...]:
    return (0, 1) if expected is None else (expected,)


async def check(
    database: Database,
    expected: Mapping[str, int | None],
    *,
    call_prefix: str = "",
    starts: Mapping[str, str] | None = None,
) -> Check:
    """Count doubles and pending rows (of calls starting with `call_prefix`), and which calls do not
    hold the active appointments `expected` says their callers were told of (call id -> 0 or 1, or
    None: 0 or 1, the answer never came), and, of the calls in `starts` (call id -> the salon's
    local time their caller heard, "2026-12-08T10:30") told they hold one and holding exactly one,
    which one starts at another time (`wrong_time`: a move of someone else's appointment keeps
    every count right)."""
    a, b = aliased(AppointmentRow), aliased(AppointmentRow)
    overlap = (
        select(func.count())
        .select_from(a)
        .join(
            b,
            and_(
                a.staff_id == b.staff_id,
                a.tenant_id == b.tenant_id,
                a.id < b.id,
                a.block_starts_at < b.block_ends_at,
                b.block_starts_at < a.block_ends_at,
            ),
        )
        .where(a.status.in_(ACTIVE), b.status.in_(ACTIVE))
    )
    ours = AppointmentRow.call_id.like(f"{call_prefix}%")
    async with database.read() as session:
        doubles = int(await session.scalar(overlap) or 0)
        pending = int(
            await session.scalar(select(func.count()).where(AppointmentRow.status == "pending", ours)) or 0
        )
        rows = (
            await session.execute(
                select(AppointmentRow.call_id, AppointmentRow.status, func.count())
                .where(ours, AppointmentRow.status.in_(ACTIVE))
                .group_by(AppointmentRow.call_id, AppointmentRow.status)
            )
        ).all()
        total = int(await session.scalar(select(func.count()).select_from(AppointmentRow)) or 0)
        begins = (
            await session.execute(
                select(AppointmentRow.call_id, AppointmentRow.starts_at, TenantRow.timezone)
                .join(TenantRow, TenantRow.id == AppointmentRow.tenant_id)
                .where(ours, AppointmentRow.status.in_(ACTIVE))
            )
        ).all()
    made: dict[str | None, int] = {}
    confirmed: dict[str | None, int] = {}
    for call_id, status, count in rows:
        made[call_id] = made.get(call_id, 0) + int(count)
        if status == "confirmed":
            confirmed[call_id] = int(count)
    mismatched = sorted(c for c, n in expected.items() if made.get(c, 0) not in _allowed(n))
    mismatched += sorted(c for c in made if c is not None and c not in expected)
    lost = sorted(c for c, n in expected.items() if n == 1 and confirmed.get(c, 0) != 1)
    uncertain = sum(1 for n in expected.values() if n is None)
    local = {c: f"{at.astimezone(ZoneInfo(zone)):%Y-%m-%dT%H:%M}" for c, at, zone in begins}
    wrong = sorted(
        c for c, at in (starts or {}).items() if expected.get(c) == made.get(c) == 1 and local.get(c) != at
    )
    return Check(doubles, pending, mismatched, total, lost, uncertain, wrong)


@dataclass(frozen=True)
class CalcomCheck:
    """What the Cal.com emulator holds after the run, against our database."""

    orphans: list[str]  # uids live there with our token, without a confirmed appointment here
    missing_at_calcom: list[int]  # appointment ids confirmed here (this run) but not live there
    double_bookings: int  # pairs of live bookings of one host that overlap there
    lost_confirmed: list[str]  # calls told "gebucht" whose appointment is not live there (or not 1)
    requests: int  # Cal.com API requests the emulator received in the run's window
    requests_per_call: float
    booked_calls: int  # calls whose caller heard "gebucht" (a cancel or move after it included)
    requests_per_booked_call: float
    rate_limited: int  # of them answered 429
    requests_by_kind: dict[str, int]
    faults_fired: dict[str, int]  # injected faults by mode (the emulator's own counters)
    reads: dict[str, int] = field(default_factory=dict)  # "list" (GET /v2/bookings), "by_uid"
    time_differs: list[int] = field(default_factory=list)  # appointment ids live there at another time


async def emulator_state(emulator: str) -> dict[str, Any]:
    """The emulator's `/_emulator/state` (bookings, fault counters, request log)."""
    from rezeption.ops.loadtest import require_local

    require_local(emulator)
    async with httpx.AsyncClient(base_url=emulator, timeout=30) as http:
        response = await http.get("/_emulator/state")
        response.raise_for_status()
        state: dict[str, Any] = response.json()
        return state


async def emulator_requests_seen(emulator: str) -> int:
    """How many requests the emulator has logged so far (a mark to count a run's requests from)."""
    from rezeption.ops.loadtest import require_local

    require_local(emulator)
    async with httpx.AsyncClient(base_url=emulator, timeout=30) as http:
        response = await http.get("/_emulator/requests")
        response.raise_for_status()
        return len(response.json())


def _kind(entry: Mapping[str, Any]) -> str:
    method, path = entry["method"], str(entry["path"])
    if path.startswith("/v2/slots"):
        return "slots"
    if method == "POST" and path == "/v2/bookings":
        return "create"
    if method == "POST" and path.endswith("/cancel"):
        return "cancel"
    if method == "POST" and path.endswith("/reschedule"):
        return "reschedule"
    return "read" if method == "GET" else "other"


def _overlapping_pairs(spans: list[tuple[datetime, datetime]]) -> int:
    return sum(1 for (s1, e1), (s2, e2) in itertools.combinations(spans, 2) if s1 < e2 and s2 < e1)


async def check_calcom(
    database: Database,
    emulator: str,
    expected: Mapping[str, int | None],
    *,
    call_prefix: str,
    calls: int,
    requests_from: int = 0,
    requests_until: int | None = None,
    booked_calls: int | None = None,
) -> CalcomCheck:
    """Compare the emulator at `emulator` with our database. Requests are counted from the log's
    entries `requests_from` to `requests_until` (the run's window: marks taken with
    `emulator_requests_seen` before and after it), per phone call of the `calls` made and per call
    that booked (`booked_calls`; by default the calls `expected` to hold one appointment)."""
    state = await emulator_state(emulator)
    live = [b for b in state["bookings"] if b["status"] in LIVE_AT_CALCOM]
    live_uids = {b["uid"] for b in live}
    async with database.read() as session:
        confirmed_uids = set(
            await session.scalars(
                select(AppointmentRow.external_uid).where(
                    AppointmentRow.status == "confirmed", AppointmentRow.external_uid.is_not(None)
                )
            )
        )
        run_rows = (
            await session.execute(
                select(
                    AppointmentRow.id,
                    AppointmentRow.call_id,
                    AppointmentRow.external_uid,
                    AppointmentRow.starts_at,
                ).where(
                    AppointmentRow.status == "confirmed",
                    AppointmentRow.call_id.like(f"{call_prefix}%"),
                    AppointmentRow.provider != "local",
                )
            )
        ).all()
    orphans = sorted(
        b["uid"] for b in live if (b.get("metadata") or {}).get(TOKEN_KEY) and b["uid"] not in confirmed_uids
    )
    missing = sorted(row.id for row in run_rows if row.external_uid not in live_uids)
    live_start = {b["uid"]: datetime.fromisoformat(b["start"]) for b in live}
    differs = sorted(
        row.id
        for row in run_rows
        if row.external_uid in live_start and live_start[row.external_uid] != row.starts_at
    )
    live_by_call: dict[str, int] = {}
    for row in run_rows:
        if row.external_uid in live_uids and row.call_id is not None:
            live_by_call[row.call_id] = live_by_call.get(row.call_id, 0) + 1
    lost = sorted(c for c, n in expected.items() if n == 1 and live_by_call.get(c, 0) != 1)
    by_host: dict[Any, list[tuple[datetime, datetime]]] = {}
    for booking in live:
        hosts = booking.get("hosts") or [{"id": ("event type", booking["eventTypeId"])}]
        span = (datetime.fromisoformat(booking["start"]), datetime.fromisoformat(booking["end"]))
        by_host.setdefault(hosts[0]["id"], []).append(span)
    doubles = sum(_overlapping_pairs(spans) for spans in by_host.values())
    window = [e for e in state["requests"][requests_from:requests_until] if str(e["path"]).startswith("/v2/")]
    by_kind: dict[str, int] = {}
    for entry in window:
        by_kind[_kind(entry)] = by_kind.get(_kind(entry), 0) + 1
    fired: dict[str, int] = {}
    for rule in state.get("faults", []):
        if rule.get("fired"):
            fired[rule["mode"]] = fired.get(rule["mode"], 0) + int(rule["fired"])
    booked = sum(1 for n in expected.values() if n == 1) if booked_calls is None else booked_calls
    reads: dict[str, int] = {}
    for entry in window:
        if _kind(entry) == "read":
            name = "list" if entry["path"] == "/v2/bookings" else "by_uid"
            reads[name] = reads.get(name, 0) + 1
    return CalcomCheck(
        orphans=orphans,
        missing_at_calcom=missing,
        double_bookings=doubles,
        lost_confirmed=lost,
        requests=len(window),
        requests_per_call=round(len(window) / calls, 3) if calls else 0.0,
        booked_calls=booked,
        requests_per_booked_call=round(len(window) / booked, 3) if booked else 0.0,
        reads=dict(sorted(reads.items())),
        rate_limited=sum(1 for e in window if e.get("status") == 429),
        requests_by_kind=dict(sorted(by_kind.items())),
        faults_fired=dict(sorted(fired.items())),
        time_differs=differs,
    )


class _Later:
    """A clock `shift` ahead of another: the reconciler's view once the pending deadline has passed."""

    def __init__(self, clock: Clock, shift: timedelta) -> None:
        self.clock, self.shift = clock, shift

    def now(self) -> datetime:
        return self.clock.now() + self.shift


async def reconcile_after_run(
    uow: UnitOfWork, calendars: CalendarDirectory, clock: Clock, *, passes: int = 3
) -> ReconcileReport:
    """Reconcile every external salon as the worker does once the run's last pending claims are past
    their deadline (the clock is moved past `PENDING_DEADLINE` rather than waited out: call it after
    the run's requests have ended). Passes repeat, at most `passes`, while a pass reports errors (a
    fault the calendar injected into one of its requests); the reports are summed."""
    reconciler = Reconciler(
        uow=uow, calendars=calendars, clock=_Later(clock, PENDING_DEADLINE + timedelta(minutes=1))
    )
    total = ReconcileReport()
    for _ in range(max(1, passes)):
        report = await reconciler.reconcile_all()
        total.add(report)
        if not report.errors:
            break
    return total
