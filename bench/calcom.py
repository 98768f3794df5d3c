"""Benchmark: 200 bookings through the Cal.com saga against the emulator under injected faults.

The emulator (127.0.0.1) answers slots and creates after 0.8-1.2 s, with the fault mix of calcom.md
10.3 on creates: 10% 5xx (JSON and HTML), 5% timeouts (the create commits after our 2 s timeout),
1% lost responses, 1% stolen slots. 200 booking calls run 50 at a time on distinct free slots.
Then the reconciler runs past the pending deadline. Measured:
- success_rate: confirmed bookings / requests the calendar could serve (not hit by 5xx or a thief);
- orphans: active Cal.com bookings with our token and no confirmed row of ours, after reconcile;
- double_bookings: overlapping active bookings per stylist at Cal.com plus overlapping rows here;
- availability_p95_s / _uncached_s: check_availability with cache + prefetch vs without.
Prints the figures and writes bench/results/calcom.json. Run: .venv/bin/python bench/calcom.py
"""

# ruff: noqa: ASYNC212  (admin calls to our own local emulator, between measured phases)
from __future__ import annotations

import asyncio
import itertools
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import uvicorn
from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from saga.emulator_salon import calcom_salon, emulator_config  # noqa: E402

from rezeption.booking.bookings import BookingRequest, Bookings  # noqa: E402
from rezeption.booking.ports import CalendarUnavailable  # noqa: E402
from rezeption.booking.prefetch import prefetch  # noqa: E402
from rezeption.booking.reconcile import Reconciler  # noqa: E402
from rezeption.calendars.calcom_breaker import CircuitBreaker  # noqa: E402
from rezeption.calendars.directory import CalendarDirectory  # noqa: E402
from rezeption.domain.clock import FixedClock  # noqa: E402
from rezeption.domain.errors import BookingError  # noqa: E402
from rezeption.domain.model import Interval  # noqa: E402
from rezeption.emulators.calcom import create_app  # noqa: E402
from rezeption.store import migrate  # noqa: E402
from rezeption.store.db import Database  # noqa: E402
from rezeption.store.salon_import import import_salon  # noqa: E402
from rezeption.store.tables import AppointmentRow  # noqa: E402
from rezeption.store.uow import SqlUnitOfWork  # noqa: E402

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2025, 11, 3, 8, 0, tzinfo=BERLIN)
CALLS, CONCURRENCY = 200, 50
LATENCY = {"min": 0.8, "max": 1.2}
FAULTS = [
    {"mode": "latency", "method": "GET", "path": "/v2/slots", "params": LATENCY},
    {"mode": "latency", "method": "POST", "path": "/v2/bookings", "params": LATENCY},
    {
        "mode": "server_error",
        "method": "POST",
        "path": "/v2/bookings",
        "probability": 0.05,
        "params": {"kind": "json", "status": 500},
    },
    {
        "mode": "server_error",
        "method": "POST",
        "path": "/v2/bookings",
        "probability": 0.05,
        "params": {"kind": "html", "status": 503},
    },
    {
        "mode": "latency",
        "method": "POST",
        "path": "/v2/bookings",
        "probability": 0.05,
        "params": {"seconds": 2.5},
    },
    {"mode": "lost_response", "method": "POST", "path": "/v2/bookings", "probability": 0.01},
    {"mode": "slot_stolen", "method": "POST", "path": "/v2/bookings", "probability": 0.01},
]


def start_emulator(config: dict[str, Any], sock: socket.socket) -> uvicorn.Server:
    server = uvicorn.Server(uvicorn.Config(create_app(config), log_level="critical", lifespan="off"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return server


def p95(values: list[float]) -> float:
    return round(statistics.quantiles(values, n=20)[18], 3)


async def main() -> dict[str, Any]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    salon = calcom_salon(url)
    salon.calendar.settings["write_timeout"] = 2.0
    server = start_emulator(emulator_config(salon, NOW, seed=11), sock)
    admin = httpx.Client(base_url=url, timeout=10)
    db_url = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    await asyncio.to_thread(migrate.upgrade, db_url)
    database = Database.from_url(db_url)
    clock = FixedClock(NOW)
    tenant_id = (await import_salon(database, salon, now=clock.now())).tenant_id
    uow = SqlUnitOfWork(database)
    options = {
        "read_attempts": 3,
        "backoff_initial": 0.05,
        "backoff_max": 0.2,
        "readback_delay": 1.0,
        "breaker": CircuitBreaker(failure_threshold=1000, cooldown=timedelta(seconds=1), clock=clock.now),
    }
    calendars = CalendarDirectory(uow, clock=clock, client_options=options)
    bookings = Bookings(uow=uow, calendars=calendars, clock=clock)

    # Distinct free slots (no fault yet): Herrenhaarschnitt with Anna and Ben, 45 minutes apart per stylist.
    _, service, slots = await bookings.free_slots(
        tenant_id=tenant_id, service="Herrenhaarschnitt", first_day=NOW.date(), days=21
    )
    last: dict[int, datetime] = {}
    chosen = []
    for slot in slots:
        if slot.staff_id not in last or slot.start >= last[slot.staff_id] + timedelta(minutes=45):
            last[slot.staff_id] = slot.start
            chosen.append(slot)
    usable = []
    for slot in chosen:  # keep the starts our own rules accept too
        answer = await bookings.availability(
            tenant_id=tenant_id, service=service.id, start=slot.start, staff=slot.staff_id
        )
        if answer.free:
            usable.append(slot)
    chosen = usable[:CALLS]
    async with uow.reading() as tx:
        catalog = await tx.load_catalog(tenant_id)
    calendars.calcom(catalog).forget_slots(catalog)
    admin.post("/_emulator/faults", json={"rules": FAULTS, "replace": True}).raise_for_status()

    gate = asyncio.Semaphore(CONCURRENCY)
    outcomes: list[str] = []

    async def one(n: int, slot: Any) -> None:
        async with gate:
            staff = catalog.staff_by_id(slot.staff_id).key
            try:
                await bookings.book(
                    BookingRequest(
                        tenant_id=tenant_id,
                        service=service.id,
                        start=slot.start,
                        staff=staff,
                        idempotency_key=f"bench-{n}",
                    )
                )
                outcomes.append("ok")
            except CalendarUnavailable:
                outcomes.append("unavailable")
            except BookingError as error:
                outcomes.append(error.code)

    started = time.perf_counter()
    await asyncio.gather(*(one(n, s) for n, s in enumerate(chosen)))
    booking_seconds = time.perf_counter() - started
    fired = {
        r["mode"] + ":" + str(r["params"].get("kind", r["params"].get("seconds", ""))): r["fired"]
        for r in admin.get("/_emulator/faults").json()
    }
    served_against = (
        fired.get("server_error:json", 0) + fired.get("server_error:html", 0) + fired.get("slot_stolen:", 0)
    )
    servable = len(chosen) - served_against
    success = outcomes.count("ok")

    await asyncio.sleep(3)  # late commits of timed-out creates land
    admin.delete("/_emulator/faults").raise_for_status()
    clock.advance(timedelta(minutes=3))
    reconciler = Reconciler(uow=uow, calendars=calendars, clock=clock)
    report = await reconciler.reconcile_tenant(tenant_id)
    remote = admin.get("/_emulator/state").json()["bookings"]
    async with database.read() as session:
        rows = (await session.scalars(select(AppointmentRow))).all()
    confirmed_uids = {r.external_uid for r in rows if r.status == "confirmed"}
    active = [b for b in remote if b["status"] in ("accepted", "pending")]
    orphans = sum(
        1 for b in active if b["metadata"].get("rezeption_token") and b["uid"] not in confirmed_uids
    )
    doubles = 0
    by_host: dict[Any, list[Interval]] = {}
    for b in active:
        host = b["hosts"][0]["id"] if b.get("hosts") else b["eventTypeId"]
        by_host.setdefault(host, []).append(
            Interval(datetime.fromisoformat(b["start"]), datetime.fromisoformat(b["end"]))
        )
    for row in (r for r in rows if r.status in ("pending", "confirmed")):
        by_host.setdefault(("local", row.staff_id), []).append(
            Interval(row.block_starts_at, row.block_ends_at)
        )
    for spans in by_host.values():
        spans.sort()
        doubles += sum(1 for a, b in itertools.pairwise(spans) if a.overlaps(b))

    # Availability: with cache + prefetch, and uncached (every check asks Cal.com).
    admin.post("/_emulator/faults", json={"rules": FAULTS[:1], "replace": True}).raise_for_status()
    checks = [chosen[n % len(chosen)].start + timedelta(minutes=15) for n in range(CALLS)]

    async def timed(b: Bookings, start: datetime) -> float:
        async with gate:
            t0 = time.perf_counter()
            await b.availability(tenant_id=tenant_id, service="Herrenhaarschnitt", start=start)
            return time.perf_counter() - t0

    await prefetch(uow=uow, calendars=calendars, clock=clock, tenant_id=tenant_id, days=40)
    cached = await asyncio.gather(*(timed(bookings, s) for s in checks))
    cold_dir = CalendarDirectory(uow, clock=clock, client_options=options)
    cold = Bookings(uow=uow, calendars=cold_dir, clock=clock)
    cold_provider = cold_dir.calcom(catalog)
    cold_provider.settings = type(cold_provider.settings)(
        **{**cold_provider.settings.__dict__, "slot_cache_seconds": 0.0}
    )
    uncached = await asyncio.gather(*(timed(cold, s) for s in checks))

    await calendars.aclose()
    await cold_dir.aclose()
    await database.dispose()
    server.should_exit = True
    return {
        "calls": len(chosen),
        "servable": servable,
        "succeeded": success,
        "outcomes": {k: outcomes.count(k) for k in sorted(set(outcomes))},
        "faults_fired": fired,
        "success_rate": round(success / servable, 4) if servable else 0.0,
        "orphans": orphans,
        "orphans_cancelled_by_reconcile": report.orphans_cancelled,
        "pending_resolved_by_reconcile": report.pending_failed,
        "double_bookings": doubles,
        "availability_p95_s": p95(cached),
        "availability_p95_uncached_s": p95(uncached),
        "availability_speedup": round(p95(uncached) / max(p95(cached), 1e-4), 1),
        "booking_wall_s": round(booking_seconds, 1),
        "database": "sqlite",
    }


if __name__ == "__main__":
    result = asyncio.run(main())
    out = ROOT / "bench" / "results" / "calcom.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
