"""Benchmark: the capacity curve on PostgreSQL, and the floor our booking is measured against.

(a) Curve: `rezeption loadtest` (the scenario mix of bench/loadtest_scenarios.yaml, signed like
    Retell, phones ringing spread over the first think period, one function call every ~8 s per call
    on average) at 50, 200, 500 and 1,000 concurrent calls, with one and two server processes, each
    on a fresh database: p50/p99 per function, errors, the server's CPU seconds per call and its
    memory (resident, all processes), from /proc. p99_ms counts every request; steady_p99_ms those
    sent after the ring-in (the first wave of calls rings within one think period, so 1,000 calls
    start at 125 a second: a flash crowd, not the steady state of 1,000 calls at once), and the
    generator's own event-loop lateness (generator_lag_*: it shares the cores, and a request it sends
    or reads late counts that as latency).
(b) Floor: a bare FastAPI + SQLAlchemy endpoint doing a booking's four statements
    (bench/_floor_app.py) against ours (`book_appointment`, signed), same database, same server
    processes, same closed-loop client (`functions.drive`: aiohttp, 10 at once; its CPU per request
    is measured too, as `client_cpu_ms_per_booking`), each time booked once per stylist: the floor
    names its stylist, ours asks for anyone and picks one itself (two processes' picks can
    collide, and the refused claim is made again): bookings/s and p99,
    and floor_ratio = ours / floor, the median of 4 pairs of bursts of 200 bookings each (10 with
    BENCH=full), both servers up (each on a fresh database of its own), the order alternating: the
    machine's speed drifts by up to 2x within minutes, so each pair is run seconds apart.

Short by default (curve: 50 and 200 calls, one process; floor: one process); BENCH=full for all of
it. Writes bench/results/capacity.json (`BENCH_CURVE=1000`: capacity-curve-1000.json; with
`BENCH_PROCESSES=2` too: capacity-curve-1000-2p.json). The load
generator runs on the same two cores as the server.

Run: .venv/bin/python bench/capacity.py
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from _pg import throwaway_database  # noqa: E402
from functions import BERLIN, KEY, Prepared, Server, Slots, closed_loop, drive, free_port, prepare  # noqa: E402
from loadtest import load  # noqa: E402
from rezeption.cli.loadtest import summary  # noqa: E402
from rezeption.ops.loadcheck import check  # noqa: E402
from rezeption.ops.loadtest import LoadTest, Plan, Scenarios  # noqa: E402
from rezeption.store import migrate  # noqa: E402
from rezeption.store.db import Database  # noqa: E402

FULL = os.environ.get("BENCH") == "full"
CURVE = (
    [int(n) for n in os.environ["BENCH_CURVE"].split(",")]
    if os.environ.get("BENCH_CURVE")
    else ([50, 200, 500, 1000] if FULL else [50, 200])
)  # BENCH_CURVE=1000 runs one point
PROCESSES = (
    [int(n) for n in os.environ["BENCH_PROCESSES"].split(",")]
    if os.environ.get("BENCH_PROCESSES")
    else ([1, 2] if FULL else [1])
)  # BENCH_CURVE=1000 BENCH_PROCESSES=2: the 1,000-call point with two server processes
THINK = 8.0
FLOOR_BURST = 200  # bookings per burst, each side
FLOOR_PAIRS = 10 if FULL else 4
AFTER_BURST = 1.5  # seconds: more than the trace writer's interval (0.5 s) and a WAL flush
# 2,000 (800) bookings on each side in all, as in one run: the floor's busy read walks each stylist's
# appointments from the first one on, so more bookings would make the floor slower than before
PROCESSES_SUFFIX = (
    f"-{os.environ['BENCH_PROCESSES'].replace(',', '-')}p" if os.environ.get("BENCH_PROCESSES") else ""
)
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
OUT = (
    ROOT
    / "bench"
    / "results"
    / (
        f"capacity-curve-{os.environ['BENCH_CURVE'].replace(',', '-')}{PROCESSES_SUFFIX}.json"
        if os.environ.get("BENCH_CURVE")
        else "capacity.json"
    )
)  # a run of chosen points keeps the full curve's file


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (uvicorn's workers), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    tree, frontier = [pid], [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        tree += children
        frontier = children
    return tree


def cpu_seconds(pids: list[int]) -> float:
    return sum(cpu_by_pid(pids).values())


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """Each live process's CPU seconds so far (utime + stime, in clock ticks of 10 ms)."""
    seconds = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / TICK
    return seconds


def cpu_since(before: dict[int, float], pids: list[int]) -> float:
    """CPU seconds `pids` spent since `before` was read: a process that started meanwhile counts
    whole, one that ended meanwhile is left out (a list read again would count its whole life)."""
    return sum(now - before.get(pid, 0.0) for pid, now in cpu_by_pid(pids).items())


def resident_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except OSError:
            continue
    return total * PAGE / 2**20


class MemoryWatch:
    """The highest resident memory of a process tree, sampled every 0.5 s in a thread."""

    def __init__(self, pids: list[int]) -> None:
        self.pids, self.peak, self._stop = pids, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.peak = max(self.peak, resident_mb(self.pids))

    def __enter__(self) -> MemoryWatch:
        self.peak = resident_mb(self.pids)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def server_pid(server: Server) -> int:
    assert server.proc is not None
    return server.proc.pid


def postgres_pids() -> list[int]:
    """The local PostgreSQL server's processes (the postmaster and its backends), or none."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if command and command[0].endswith(b"postgres") and b"-D" in command:
                return process_tree(int(entry.name))
    return []


def own_cpu_seconds() -> float:
    """This process's CPU seconds so far: the load generator runs in it."""
    spent = os.times()
    return spent.user + spent.system


async def curve_point(base: str, url: str, concurrency: int, pids: list[int]) -> dict[str, Any]:
    plan = Plan(calls=concurrency, concurrency=concurrency, think=THINK, deadline=900, seed=concurrency)
    test = LoadTest(base, KEY, plan, Scenarios.load(ROOT / "bench" / "loadtest_scenarios.yaml"))
    await test.book_earlier()  # what the cancel and reschedule callers change: before the measured run
    database_pids = postgres_pids()
    cpu_before, generator_before = cpu_seconds(pids), own_cpu_seconds()
    database_before, wall_before = cpu_seconds(database_pids), time.perf_counter()
    with MemoryWatch(pids) as memory:
        result = await test.run()
    cpu = cpu_seconds(pids) - cpu_before
    generator = own_cpu_seconds() - generator_before
    database_cpu = cpu_seconds(database_pids) - database_before
    wall = time.perf_counter() - wall_before
    database = Database.from_url(url)
    try:
        found = await check(
            database, result.expected_active(), call_prefix=f"load-{test.run_id}-",
            starts=result.expected_starts(),
        )  # fmt: skip
    finally:
        await database.dispose()
    figures = summary(result, plan)
    return {
        **figures,
        "server_cpu_seconds": round(cpu, 2),
        "cpu_ms_per_call": round(cpu * 1000 / concurrency, 1),
        # where the two cores went during the run (the generator and PostgreSQL share them)
        "generator_cpu_seconds": round(generator, 2),
        "postgres_cpu_seconds": round(database_cpu, 2),
        "wall_seconds": round(wall, 1),
        "cores_busy": round((cpu + generator + database_cpu) / wall, 2),
        "server_memory_peak_mb": round(memory.peak, 1),
        "double_bookings": found.double_bookings,
        "pending_left": found.pending_left,
        "mismatched_calls": len(found.mismatched_calls),
        "wrong_time_calls": len(found.wrong_time),
    }


def run_curve() -> list[dict[str, Any]]:
    points = []
    for processes in PROCESSES:
        for concurrency in CURVE:
            with throwaway_database("rezeption_bench_capacity") as url:
                migrate.upgrade(url)
                asyncio.run(load(url))
                server = Server(url, processes)
                with server as base:
                    pids = process_tree(server_pid(server))
                    point = asyncio.run(curve_point(base, url, concurrency, pids))
            point = {"concurrent_calls": concurrency, "server_processes": processes, **point}
            points.append(point)
            print(
                f"  {processes} process(es), {concurrency:5} calls: p99 {point['p99_ms']:8.1f} ms "
                f"(after the ring-in {point['steady_p99_ms']:.1f}), "
                f"success {point['success_rate']:.3f}, failures {point['failures']}, "
                f"{point['cpu_ms_per_call']} ms CPU/call, {point['server_memory_peak_mb']} MB; CPU s "
                f"server {point['server_cpu_seconds']}, generator {point['generator_cpu_seconds']}, "
                f"PostgreSQL {point['postgres_cpu_seconds']} in {point['wall_seconds']} s; generator lag "
                f"p99 {point['generator_lag_p99_ms']} ms, max {point['generator_lag_max_ms']} ms",
                flush=True,
            )
    return points


class FloorServer:
    """bench/_floor_app.py under uvicorn in a subprocess."""

    def __init__(self, url: str, workers: int) -> None:
        self.url, self.workers, self.port = url, workers, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str:
        env = {**os.environ, "REZEPTION_DATABASE_URL": self.url, "REZEPTION_DB_POOL_SIZE": "20"}
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "_floor_app:app",
            "--app-dir",
            str(ROOT / "bench"),
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--log-level",
            "warning",
        ]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{self.port}"
        for _ in range(300):
            try:
                httpx.get(f"{base}/docs", timeout=1)
                return base
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("floor server did not start")

    def __exit__(self, *_: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(timeout=20)


async def floor_loop(
    base: str, tenant_id: int, requests: int, run: int, clients: int = 10, skip: int = 0
) -> dict[str, Any]:
    """The closed loop of `functions.closed_loop` (the same driver, requests built beforehand),
    against the floor's /book: a named stylist per slot, so no two requests collide; from run `run`'s
    `skip`-th slot on, as `closed_loop`."""
    slots = Slots(datetime.now(BERLIN).date() + timedelta(days=2), 11)
    offset = (run * 40 + 10) * 24 * 20
    prepared: list[Prepared] = []
    for k in range(skip, skip + requests):
        day, at = slots.sequential(offset + k)
        start = datetime.fromisoformat(f"{day}T{at}").replace(tzinfo=BERLIN).astimezone(UTC)
        body = {
            "tenant_id": tenant_id,
            "service": "herren",
            "staff": f"s{k % 20}",
            "start": start.isoformat(),
            "name": f"Kunde {k}",
            "phone": f"+49151{k:08d}",
        }
        prepared.append(("/book", json.dumps(body).encode(), {"Content-Type": "application/json"}))
    result = await drive(
        base, prepared, lambda status, body: status == 200 and bool(json.loads(body).get("ok")), clients
    )
    return {
        "bookings_per_s": result["succeeded_per_s"],
        "refused": result["failed"],
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "client_cpu_ms_per_booking": result["client_cpu_ms_per_request"],
    }


async def _tenant_id(url: str) -> int:
    database = Database.from_url(url)
    try:
        async with database.statement() as conn:
            found = await conn.execute(text("SELECT id FROM tenants WHERE slug = 'bench'"))
            return int(found.scalar_one())
    finally:
        await database.dispose()


def _burst(kind: str, base: str, tenant_id: int, skip: int, pids: list[int]) -> dict[str, Any]:
    """One burst of FLOOR_BURST bookings, the floor's (`kind` "floor") or ours, from slot `skip` on,
    after a pause in which the work a burst leaves behind is done: our traces (written every
    0.5 s) and reply batches, PostgreSQL's WAL writer. Without it, that work ran in the next burst
    and was counted against the floor. Also the CPU per booking of the server (`pids`) and of
    PostgreSQL during the burst and the same pause after it: the work our server leaves for later
    (traces every 0.5 s, reply batches) counts, as the floor's, which leaves none. Unlike bookings
    per second, CPU per booking barely moves with the machine's speed."""
    time.sleep(AFTER_BURST)
    server, postgres = cpu_by_pid(pids), cpu_by_pid(postgres_pids())
    if kind == "floor":
        burst = asyncio.run(floor_loop(base, tenant_id, FLOOR_BURST, run=0, skip=skip))
    else:
        ours = asyncio.run(closed_loop(base, "book_appointment", FLOOR_BURST, run=1, skip=skip))
        burst = {k: ours[k] for k in ("bookings_per_s", "refused", "p50_ms", "p99_ms")}
        burst["client_cpu_ms_per_booking"] = ours["client_cpu_ms_per_request"]
    time.sleep(AFTER_BURST)
    server_cpu, postgres_cpu = cpu_since(server, pids), cpu_since(postgres, postgres_pids())
    burst["server_cpu_ms_per_booking"] = round(server_cpu * 1000 / FLOOR_BURST, 3)
    burst["postgres_cpu_ms_per_booking"] = round(postgres_cpu * 1000 / FLOOR_BURST, 3)
    return burst


def floor_pid(server: FloorServer) -> int:
    assert server.proc is not None
    return server.proc.pid


def _cpu_per_booking(burst: dict[str, Any]) -> float:
    """Server and PostgreSQL CPU (ms) one booking of a burst cost."""
    return float(burst["server_cpu_ms_per_booking"] + burst["postgres_cpu_ms_per_booking"])


def _cpu_text(burst: dict[str, Any]) -> str:
    return (
        f"{burst['server_cpu_ms_per_booking']} + {burst['postgres_cpu_ms_per_booking']}"
        f" (client {burst['client_cpu_ms_per_booking']})"
    )


def floor_pairs(processes: int) -> list[dict[str, Any]]:
    """FLOOR_PAIRS pairs of bursts, the floor's server and ours both up and warmed, the order
    alternating (floor-ours, ours-floor, ...): this machine's speed drifts by up to 2x within
    minutes, and a pair run seconds apart, in both orders, meets the same machine. Each side has a
    fresh database of its own on the one PostgreSQL: the floor's busy read walks every appointment
    of the stylist (its plain comparisons use the no-overlap index by stylist only), so our rows in
    its table would slow it down."""
    with (
        throwaway_database("rezeption_bench_floor") as floor_url,
        throwaway_database("rezeption_bench_ours") as ours_url,
    ):
        prepare(floor_url)
        prepare(ours_url)
        tenant_id = asyncio.run(_tenant_id(floor_url))
        floor_server, ours_server = FloorServer(floor_url, processes), Server(ours_url, processes)
        with floor_server as floor_base, ours_server as ours_base:
            asyncio.run(floor_loop(floor_base, tenant_id, 200, run=5))  # warm: connections, compiled SQL
            asyncio.run(closed_loop(ours_base, "book_appointment", 200, run=6))
            bases = {"floor": floor_base, "ours": ours_base}
            trees = {
                "floor": process_tree(floor_pid(floor_server)),
                "ours": process_tree(server_pid(ours_server)),
            }
            pairs = []
            for n in range(FLOOR_PAIRS):
                order = ("floor", "ours") if n % 2 == 0 else ("ours", "floor")
                got = {
                    kind: _burst(kind, bases[kind], tenant_id, n * FLOOR_BURST, trees[kind]) for kind in order
                }
                floor, ours = got["floor"], got["ours"]
                pairs.append(
                    {
                        "first": order[0],
                        "floor": floor,
                        "ours": ours,
                        "floor_ratio": round(ours["bookings_per_s"] / floor["bookings_per_s"], 2),
                        "p99_ratio": round(ours["p99_ms"] / floor["p99_ms"], 2),
                        "cpu_ratio": round(_cpu_per_booking(floor) / _cpu_per_booking(ours), 2),
                    }
                )
    return pairs


def run_floor() -> list[dict[str, Any]]:
    """Per process count, FLOOR_PAIRS pairs of bursts (`floor_pairs`); the median pair counts."""
    rows = []
    for processes in PROCESSES:
        pairs = floor_pairs(processes)
        for n, one in enumerate(pairs, 1):
            print(
                f"  floor, {processes} process(es), pair {n} ({one['first']} first): "
                f"floor {one['floor']['bookings_per_s']}/s p99 {one['floor']['p99_ms']} ms; "
                f"ours {one['ours']['bookings_per_s']}/s p99 {one['ours']['p99_ms']} ms; "
                f"ratio {one['floor_ratio']}; CPU ms/booking (server + PostgreSQL): "
                f"floor {_cpu_text(one['floor'])}, ours {_cpu_text(one['ours'])}",
                flush=True,
            )
        row = {
            "server_processes": processes,
            "floor_ratio": round(statistics.median(p["floor_ratio"] for p in pairs), 2),
            "p99_ratio": round(statistics.median(p["p99_ratio"] for p in pairs), 2),
            # the floor's server and PostgreSQL CPU per booking over ours (above 1: ours costs less)
            "cpu_ratio": round(statistics.median(p["cpu_ratio"] for p in pairs), 2),
            "refused": sum(p["ours"]["refused"] + p["floor"]["refused"] for p in pairs),
            "pairs": pairs,
        }
        rows.append(row)
        print(
            f"  floor, {processes} process(es): median floor_ratio {row['floor_ratio']}, "
            f"cpu_ratio {row['cpu_ratio']}",
            flush=True,
        )
    return rows


def main() -> None:
    print("== floor: a bare FastAPI + SQLAlchemy booking vs our book_appointment", flush=True)
    floor = run_floor()
    print("== capacity curve (rezeption loadtest, PostgreSQL, local calendar)", flush=True)
    curve = run_curve()
    report = {
        "benchmark": "capacity",
        "database": "postgresql",
        "calendar": "local",
        "think_seconds": THINK,
        "floor_ratio": floor[0]["floor_ratio"],
        "floor": floor,
        "curve": curve,
        "machine": "2 cores (this sandbox), server and load generator on the same machine",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    OUT.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in report.items() if k != "curve"}, indent=2))


if __name__ == "__main__":
    main()
