"""Benchmark: `rezeption loadtest` against `rezeption serve` on PostgreSQL with the local calendar.

200 phone calls at once (400 in all, one function call every ~8 s per call on average, the mix of
bench/loadtest_scenarios.yaml: book 70 %, reschedule 15 %, cancel 10 %, ask 5 %, callers competing
for few days and times), then the separate checker reads the database. Prints the figures and writes
bench/results/loadtest.json: concurrent_calls, calls, success_rate (of bookable requests: booked /
booked + our failures), double_bookings, orphans (the local calendar is the database: none can
exist; the Cal.com run counts them at the emulator), p99_ms (worst function), pending_left,
mismatched_calls, per function p50/p95/p99, floor_ratio (from bench/capacity.py's last run, which
`make bench` runs first). BENCH=full: 1,000 calls at once.

Run: .venv/bin/python bench/loadtest.py
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from _pg import throwaway_database  # noqa: E402
from _results import floor_ratio  # noqa: E402
from functions import KEY, Server, free_port  # noqa: E402, F401
from rezeption.cli.loadtest import summary  # noqa: E402
from rezeption.ops.loadcheck import check  # noqa: E402
from rezeption.ops.loadtest import LoadTest, Plan, Scenarios  # noqa: E402
from rezeption.store import migrate  # noqa: E402
from rezeption.store.db import Database  # noqa: E402
from rezeption.store.salon_file import read_salon  # noqa: E402
from rezeption.store.salon_import import import_salon  # noqa: E402

FULL = os.environ.get("BENCH") == "full"
CONCURRENCY = 1000 if FULL else 200
CALLS = 2 * CONCURRENCY
THINK = float(os.environ.get("BENCH_THINK", "8.0"))  # seconds between two function calls of a call


async def load(url: str) -> None:
    database = Database.from_url(url)
    try:
        await import_salon(database, read_salon(ROOT / "salons" / "friseur1.yaml"), now=datetime.now(UTC))
    finally:
        await database.dispose()


async def measure(base: str, url: str) -> dict[str, object]:
    plan = Plan(calls=CALLS, concurrency=CONCURRENCY, think=THINK, deadline=900, seed=11)
    test = LoadTest(base, KEY, plan, Scenarios.load(ROOT / "bench" / "loadtest_scenarios.yaml"))
    result = await test.run()
    database = Database.from_url(url)
    try:
        found = await check(
            database, result.expected_active(), call_prefix=f"load-{test.run_id}-",
            starts=result.expected_starts(),
        )  # fmt: skip
    finally:
        await database.dispose()
    return {
        "benchmark": "loadtest",
        "calendar": "local",
        "database": "postgresql",
        **summary(result, plan),  # the figures `rezeption loadtest` prints
        "double_bookings": found.double_bookings,
        "orphans": 0,
        "floor_ratio": floor_ratio()[0],
        "floor_ratio_source": floor_ratio()[1],
        "pending_left": found.pending_left,
        "mismatched_calls": len(found.mismatched_calls),
        "wrong_time_calls": len(found.wrong_time),
        "think_seconds": THINK,
        "server_processes": 1,
        "machine": "2 cores (this sandbox), server and load generator on the same machine",
    }


def main() -> None:
    with throwaway_database("rezeption_bench_load") as url:
        migrate.upgrade(url)
        asyncio.run(load(url))
        with Server(url, 1) as base:
            report = asyncio.run(measure(base, url))
    print(json.dumps({k: v for k, v in report.items() if k != "per_function"}, indent=2))
    for name, figures in report["per_function"].items():  # type: ignore[union-attr]
        p50, p99 = figures["p50_ms"], figures["p99_ms"]
        print(f"  {name:24} n={figures['count']:5}  p50 {p50:8.2f}  p99 {p99:8.2f} ms")
    out = ROOT / "bench" / "results" / "loadtest.json"
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
