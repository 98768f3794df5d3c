"""Benchmark: availability over 14 days and sequential booking throughput, on SQLite and PostgreSQL.

A salon with 5 stylists (Mon-Sat 09:00-19:00) and 3,000 existing appointments spread over the next
60 days. Measured through the real use cases and the local calendar:
- `free_slots_14d`: every free start of a 30-minute service with any stylist over 14 days;
- `check`: is one requested start free (plus 3 alternatives when it is not);
- `bookings_per_s`: 500 sequential bookings through `Bookings.book`;
- `alternatives_cpu_ms`: in-process, no database: `availability.alternatives`, the slot search
  behind a refusal (20 stylists, 08:00-20:00, a 15-minute grid), CPU ms each, when the asked day
  is full (`day_full`, the figure `median_ms`) and when only the asked start is taken (`slot_taken`).
Prints the figures and writes bench/results/availability.json. Target: availability p99 < 25 ms.

Run: .venv/bin/python bench/availability.py [--queries N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as datetime_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _pg import throwaway_database  # noqa: E402
from rezeption.booking.availability import alternatives  # noqa: E402
from rezeption.booking.bookings import BookingRequest, Bookings  # noqa: E402
from rezeption.calendars.directory import CalendarDirectory  # noqa: E402
from rezeption.domain.clock import FixedClock  # noqa: E402
from rezeption.domain.errors import BookingError  # noqa: E402
from rezeption.domain.model import (  # noqa: E402
    BookingPolicy,
    Catalog,
    Interval,
    Service,
    Staff,
    Tenant,
    TimeRange,
)
from rezeption.domain.schedule import FreeStarts  # noqa: E402
from rezeption.store import migrate  # noqa: E402
from rezeption.store.db import Database  # noqa: E402
from rezeption.store.salon_file import parse_salon  # noqa: E402
from rezeption.store.salon_import import import_salon  # noqa: E402
from rezeption.store.tables import AppointmentRow  # noqa: E402
from rezeption.store.uow import SqlUnitOfWork  # noqa: E402

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 1, 5, 7, 0, tzinfo=BERLIN)  # a Monday morning
STAFF = 5
APPOINTMENTS = 3000
SPREAD_DAYS = 60
RESULTS = ROOT / "bench" / "results" / "availability.json"

SALON = """
slug: bench
name: Bench Salon
opening_hours: {mon: [["09:00","19:00"]], tue: [["09:00","19:00"]], wed: [["09:00","19:00"]],
                thu: [["09:00","19:00"]], fri: [["09:00","19:00"]], sat: [["09:00","19:00"]]}
booking: {min_notice_minutes: 60, horizon_days: 120, slot_grid_minutes: 15}
staff:
%s
services:
  - {key: schnitt, name: Schnitt, duration: 30, buffer_after: 5, staff: [%s]}
  - {key: farbe, name: Farbe, duration: 90, buffer_before: 5, buffer_after: 15, staff: [%s]}
"""


def salon_text() -> str:
    keys = [f"s{i}" for i in range(STAFF)]
    hours = ", ".join(f'{d}: [["09:00","19:00"]]' for d in ("mon", "tue", "wed", "thu", "fri", "sat"))
    staff = "\n".join(
        f'  - {{key: {k}, name: Stylist {k}, hours: {{{hours}}}, breaks: {{tue: [["13:00","13:30"]]}}}}'
        for k in keys
    )
    return SALON % (staff, ", ".join(keys), ", ".join(keys))


def existing_appointments(tenant_id: int, staff_ids: list[int], service_id: int) -> list[dict[str, Any]]:
    """3,000 non-overlapping 30-minute appointments on open days, spread over 60 days."""
    rng = random.Random(7)
    open_days = [
        NOW.date() + timedelta(days=d)
        for d in range(1, SPREAD_DAYS + 1)
        if (NOW.date() + timedelta(days=d)).weekday() < 6
    ]
    cells = [
        (day, staff_id, quarter)
        for day in open_days
        for staff_id in staff_ids
        for quarter in range(0, 36, 3)  # 45-minute cells: 12 per stylist-day
    ]
    chosen = rng.sample(cells, APPOINTMENTS)
    rows = []
    stamp = NOW.astimezone(UTC)
    for day, staff_id, quarter in chosen:
        start = datetime(day.year, day.month, day.day, 9, 0, tzinfo=BERLIN) + timedelta(minutes=15 * quarter)
        start = start.astimezone(UTC)
        rows.append(
            {
                "tenant_id": tenant_id,
                "service_id": service_id,
                "staff_id": staff_id,
                "starts_at": start,
                "ends_at": start + timedelta(minutes=30),
                "block_starts_at": start,
                "block_ends_at": start + timedelta(minutes=35),
                "status": "confirmed",
                "source": "bench",
                "provider": "local",
                "version": 1,
                "created_at": stamp,
                "updated_at": stamp,
            }
        )
    return rows


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50_ms": round(q[49], 3), "p99_ms": round(q[98], 3), "max_ms": round(ordered[-1], 3)}


async def run_backend(url: str, queries: int) -> dict[str, Any]:
    migrate_in_thread = asyncio.to_thread(migrate.upgrade, url)
    await migrate_in_thread
    database = Database.from_url(url)
    clock = FixedClock(NOW)
    try:
        report = await import_salon(database, parse_salon(salon_text()), now=clock.now())
        uow = SqlUnitOfWork(database)
        bookings = Bookings(uow=uow, calendars=CalendarDirectory(uow), clock=clock)
        async with uow.reading() as tx:
            catalog = await tx.load_catalog(report.tenant_id)
        staff_ids = [s.id for s in catalog.staff]
        schnitt = next(s for s in catalog.services if s.key == "schnitt")
        async with database.write() as session, session.begin():
            await session.execute(
                insert(AppointmentRow), existing_appointments(report.tenant_id, staff_ids, schnitt.id)
            )

        rng = random.Random(11)
        for _ in range(10):  # warm-up: connections, caches, code paths
            await bookings.free_slots(
                tenant_id=report.tenant_id, service="schnitt", first_day=date(2026, 1, 6), days=14
            )
        spans, slot_counts = [], []
        for _ in range(queries):
            first = NOW.date() + timedelta(days=rng.randint(1, 40))
            t0 = time.perf_counter()
            _, _, slots = await bookings.free_slots(
                tenant_id=report.tenant_id, service="schnitt", first_day=first, days=14
            )
            spans.append((time.perf_counter() - t0) * 1000)
            slot_counts.append(len(slots))

        checks = []
        for _ in range(queries):
            day = NOW.date() + timedelta(days=rng.randint(1, 40))
            start = datetime(day.year, day.month, day.day, 9, 0, tzinfo=BERLIN) + timedelta(
                minutes=15 * rng.randint(0, 36)
            )
            t0 = time.perf_counter()
            await bookings.availability(tenant_id=report.tenant_id, service="schnitt", start=start)
            checks.append((time.perf_counter() - t0) * 1000)

        later_open_days = [
            d
            for d in (NOW.date() + timedelta(days=SPREAD_DAYS + 1 + k) for k in range(40))
            if d.weekday() < 6
        ]
        booked = refused = 0
        t0 = time.perf_counter()
        for i in range(500):
            day = later_open_days[i // 40]
            start = datetime(day.year, day.month, day.day, 9, 0, tzinfo=BERLIN) + timedelta(
                minutes=45 * (i % 8)
            )
            try:
                await bookings.book(
                    BookingRequest(
                        tenant_id=report.tenant_id,
                        service="schnitt",
                        start=start,
                        customer_name=f"Kunde {i}",
                        phone_e164=f"+4915100{i:06d}",
                        idempotency_key=f"bench-{i}",
                    )
                )
                booked += 1
            except BookingError:
                refused += 1
        elapsed = time.perf_counter() - t0
        return {
            "free_slots_14d": {**percentiles(spans), "mean_slots": round(statistics.mean(slot_counts), 1)},
            "check": percentiles(checks),
            "bookings": {"booked": booked, "refused": refused, "seconds": round(elapsed, 3)},
            "bookings_per_s": round(booked / elapsed, 1),
        }
    finally:
        await database.dispose()


class _InMemoryCalendar:
    """Our calendar's slot search over bookings held in memory (no database in the timing)."""

    name, external = "memory", False

    def __init__(self, busy: dict[int, list[Interval]]) -> None:
        self.busy = busy

    async def free_starts(
        self, catalog: Catalog, service: Service, staff: Any, window: Interval
    ) -> FreeStarts:
        return FreeStarts(catalog, service, staff, self.busy)


def _run(coroutine: Any) -> Any:
    """Drive a coroutine that never waits (no event loop's own cost in the timing)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("the slot search waited for something")


def alternatives_cpu(rounds: int = 200) -> dict[str, Any]:
    """CPU ms of `availability.alternatives`, the slot search behind a refusal, for 20 stylists
    (08:00-20:00, a 15-minute grid), two shapes: the asked day fully booked (the alternatives come
    from the next 3 days), and the asked 15:00 taken by everyone with the rest of the day free."""
    day_hours = {d: (TimeRange(datetime_time(8), datetime_time(20)),) for d in range(7)}
    tenant = Tenant(1, "t", "Salon", "Europe/Berlin", "BE", day_hours, BookingPolicy(min_notice=timedelta(0)))
    staff = tuple(Staff(i, f"s{i}", f"Stylist {i}", day_hours, {}, ()) for i in range(1, 21))
    service = Service(1, "herren", "Herrenschnitt", (), timedelta(minutes=30), timedelta(0), timedelta(0))
    catalog = Catalog(tenant=tenant, services=(service,), staff=staff, holidays=frozenset())
    asked = datetime(2027, 3, 9, 15, 0, tzinfo=BERLIN)
    now = asked - timedelta(days=1)
    whole_day = Interval(datetime.combine(asked.date(), datetime_time(0), BERLIN), asked + timedelta(hours=9))
    taken = Interval(asked, asked + timedelta(minutes=30))
    shapes = {
        "day_full": _InMemoryCalendar({m.id: [whole_day] for m in staff}),
        "slot_taken": _InMemoryCalendar({m.id: [taken] for m in staff}),
    }
    out: dict[str, Any] = {"rounds": rounds}
    for shape, calendar in shapes.items():
        samples = []
        for _ in range(rounds):
            t0 = time.process_time()
            picked = _run(alternatives(calendar, catalog, service, staff, asked, now))  # type: ignore[arg-type]
            samples.append((time.process_time() - t0) * 1000)
        assert len(picked) == 3, picked
        out[shape] = {
            "median_ms": round(statistics.median(samples), 3),
            "picked": [s.start.astimezone(UTC).isoformat() for s in picked],
        }
    out["median_ms"] = out["day_full"]["median_ms"]
    return out


def main(queries: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = asyncio.run(run_backend(f"sqlite+aiosqlite:///{tmp}/bench.db", queries))
    with throwaway_database("rezeption_bench") as url:
        results["postgresql"] = asyncio.run(run_backend(url, queries))
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    backends = main(args.queries)
    worst = max(b["free_slots_14d"]["p99_ms"] for b in backends.values())
    out = {
        "benchmark": "availability",
        "setup": {
            "stylists": STAFF,
            "appointments": APPOINTMENTS,
            "spread_days": SPREAD_DAYS,
            "queries": args.queries,
        },
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "target_p99_ms": 25,
        "p99_ms": worst,
        **backends,
        "alternatives_cpu_ms": alternatives_cpu(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    for backend, figures in backends.items():
        fs, ck = figures["free_slots_14d"], figures["check"]
        print(
            f"{backend:10s} 14-day availability p50 {fs['p50_ms']:.2f} ms  p99 {fs['p99_ms']:.2f} ms "
            f"({fs['mean_slots']:.0f} free starts) | single check p50 {ck['p50_ms']:.2f} ms "
            f"p99 {ck['p99_ms']:.2f} ms "
            f"| {figures['bookings_per_s']:.0f} bookings/s ({figures['bookings']['booked']} booked)"
        )
    cpu = out["alternatives_cpu_ms"]
    print(
        f"a refusal's alternatives, 20 stylists: asked day full {cpu['day_full']['median_ms']} ms CPU, "
        f"asked start taken {cpu['slot_taken']['median_ms']} ms CPU (medians)"
    )
    print(f"worst availability p99: {worst:.2f} ms (target < 25 ms) -> {RESULTS.relative_to(ROOT)}")
