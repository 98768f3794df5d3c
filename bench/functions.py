"""Benchmark: the Retell functions through the real HTTP stack (uvicorn), SQLite and PostgreSQL.

(a) open loop, as real traffic arrives: 200 concurrent simulated calls, each starting with
    call_inbound and then making a function call every ~8 s on average (exponential gaps, about
    25 calls/s in all) — p50/p99 per function, measured at the client;
(b) closed loop, to find the ceiling: requests/s per function with 1 and 2 server workers, and p99
    at 10 concurrent clients.
The server is `rezeption serve` in a subprocess on 127.0.0.1; every request is signed like Retell's.
Prints the figures and writes bench/results/functions.json. Targets on PostgreSQL: (a) function
p99 < 50 ms, call_inbound p99 < 30 ms; (b) book_appointment >= 100 bookings/s with one worker.

Run: .venv/bin/python bench/functions.py [--seconds 40] [--requests 600]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from _pg import throwaway_database  # noqa: E402
from rezeption.ops.loadtest import collector_paused  # noqa: E402
from rezeption.retell.signature import sign  # noqa: E402
from rezeption.store import migrate  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "functions.json"
KEY = "bench_key_0123456789abcdef"
AGENT = "agent_bench"
NUMBER = "+493099999999"
STYLISTS = 20
BERLIN = ZoneInfo("Europe/Berlin")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat")


def salon_file() -> str:
    hours = ", ".join(f'{d}: [["08:00","20:00"]]' for d in DAYS)
    staff = "\n".join(f"  - {{key: s{i}, name: Stylist {i}, hours: {{{hours}}}}}" for i in range(STYLISTS))
    keys = ", ".join(f"s{i}" for i in range(STYLISTS))
    return f"""
slug: bench
name: Bench Salon
phone_numbers: ["{NUMBER}"]
retell_agent_ids: ["{AGENT}"]
booking: {{min_notice_minutes: 60, horizon_days: 365, slot_grid_minutes: 15, change_min_notice_hours: 1}}
opening_hours: {{{hours}}}
staff:
{staff}
services:
  - {{key: herren, name: Herrenhaarschnitt, aliases: [Herrenschnitt], duration: 30, staff: [{keys}]}}
  - {{key: damen, name: Damenhaarschnitt, aliases: [Damenschnitt], duration: 60, staff: [{keys}]}}
  - {{key: bart, name: Bartpflege, aliases: [Bart], duration: 15, staff: [{keys}]}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def signed(body: dict[str, Any], extra: dict[str, str] | None = None) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body, ensure_ascii=False).encode()
    stamp = int(time.time() * 1000)
    return raw, {
        "X-Retell-Signature": sign(raw, KEY, stamp),
        "Content-Type": "application/json",
        **(extra or {}),
    }


class Server:
    """`rezeption serve` in a subprocess against one database."""

    def __init__(self, url: str, workers: int) -> None:
        self.url, self.workers, self.port = url, workers, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str:
        env = {
            **os.environ,
            "REZEPTION_DATABASE_URL": self.url,
            "REZEPTION_RETELL_API_KEY": KEY,
            "REZEPTION_LOG_LEVEL": "warning",
            "REZEPTION_DB_POOL_SIZE": "20",
        }
        cmd = [
            sys.executable,
            "-m",
            "rezeption.cli",
            "serve",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{self.port}"
        for _ in range(300):
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    return base
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not become ready")

    def __exit__(self, *_: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(timeout=20)


def caller_number(call_id: str) -> str:
    """A caller's own number per call: one number for all would meet the per-caller booking limit
    (`max_active_per_caller`) after four bookings and measure refusals instead of bookings."""
    return f"+49151{zlib.crc32(call_id.encode()) % 10**8:08d}"


def envelope(name: str, call_id: str, args: dict[str, Any]) -> dict[str, Any]:
    call = {"call_id": call_id, "agent_id": AGENT, "from_number": caller_number(call_id), "to_number": NUMBER}
    return {"name": name, "call": call, "args": args}


class Slots:
    """Distinct bookable (day, time) pairs; each pair can take STYLISTS bookings."""

    def __init__(self, first: date, seed: int) -> None:
        self.rng = random.Random(seed)
        self.first = first
        self.used: dict[tuple[str, str], int] = defaultdict(int)

    def random(self) -> tuple[str, str]:
        while True:
            day = self.first + timedelta(days=self.rng.randint(0, 300))
            if day.weekday() == 6:
                continue
            minutes = 8 * 60 + 15 * self.rng.randint(0, 46)
            return day.isoformat(), f"{minutes // 60:02d}:{minutes % 60:02d}"

    def sequential(self, k: int) -> tuple[str, str]:
        """The k-th booking of a run that never collides: 24 half-hour starts a day, STYLISTS each."""
        per_day = 24 * STYLISTS
        open_days = [d for d in (self.first + timedelta(days=i) for i in range(400)) if d.weekday() != 6]
        day = open_days[k // per_day]
        minutes = 8 * 60 + 30 * ((k % per_day) // STYLISTS)
        return day.isoformat(), f"{minutes // 60:02d}:{minutes % 60:02d}"


def args_for(name: str, slots: Slots, rng: random.Random, counter: int) -> dict[str, Any]:
    if name == "check_availability":
        day, at = slots.random()
        return {
            "dienstleistung": rng.choice(["Herrenschnitt", "Damenschnitt", "Bart"]),
            "datum": day,
            "uhrzeit": at,
        }
    if name == "book_appointment":
        day, at = slots.random()
        return {"name": f"Kunde {counter}", "dienstleistung": "Herrenschnitt", "datum": day, "uhrzeit": at}
    return {}


async def timed(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], extra: dict[str, str] | None = None
) -> float:
    raw, headers = signed(body, extra)
    t0 = time.perf_counter()
    response = await client.post(path, content=raw, headers=headers)
    elapsed = (time.perf_counter() - t0) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{path}: HTTP {response.status_code} {response.text[:200]}")
    return elapsed


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    q = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else [ordered[0]] * 99
    return {
        "count": len(ordered),
        "p50_ms": round(q[49], 2),
        "p99_ms": round(q[98], 2),
        "max_ms": round(ordered[-1], 2),
    }


MIX = [
    ("check_availability", 0.55),
    ("book_appointment", 0.25),
    ("find_appointments", 0.1),
    ("list_services", 0.05),
    ("get_opening_hours", 0.05),
]


async def open_loop(base: str, seconds: float, calls: int = 200, gap: float = 8.0) -> dict[str, Any]:
    rng = random.Random(3)
    slots = Slots(datetime.now(BERLIN).date() + timedelta(days=2), 5)
    latencies: dict[str, list[float]] = defaultdict(list)
    limits = httpx.Limits(max_connections=250, max_keepalive_connections=250)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:

        async def one_call(index: int) -> None:
            call_id = f"open_{index}_{uuid.uuid4().hex[:6]}"
            await asyncio.sleep(rng.uniform(0, gap))
            inbound = {
                "event": "call_inbound",
                "call_inbound": {
                    "from_number": caller_number(call_id),
                    "to_number": NUMBER,
                    "agent_id": AGENT,
                    "call_id": call_id,
                },
            }
            latencies["call_inbound"].append(await timed(client, "/retell/inbound", inbound))
            deadline = time.perf_counter() + seconds
            counter = 0
            while True:
                pause = rng.expovariate(1 / gap)
                if time.perf_counter() + pause > deadline:
                    return  # the call ends rather than idling past its deadline
                await asyncio.sleep(pause)
                name = rng.choices([m for m, _ in MIX], weights=[w for _, w in MIX])[0]
                counter += 1
                body = envelope(name, call_id, args_for(name, slots, rng, counter))
                latencies[name].append(await timed(client, f"/retell/functions/{name}", body))

        started = time.perf_counter()
        with collector_paused():
            await asyncio.gather(*(one_call(i) for i in range(calls)))
        wall = time.perf_counter() - started
    total = sum(len(v) for k, v in latencies.items() if k != "call_inbound")
    return {
        "calls": calls,
        "seconds": round(wall, 1),
        "function_calls_per_s": round(total / wall, 1),
        "per_function": {k: summary(v) for k, v in sorted(latencies.items())},
    }


Prepared = tuple[str, bytes, dict[str, str]]
"""One request of a closed loop, built before the clock starts: path, body, headers."""


async def drive(
    base: str, requests: list[Prepared], ok: Callable[[int, bytes], bool], clients: int = 10
) -> dict[str, float]:
    """`clients` at once send `requests` in order, each the next as soon as its answer is in: the
    one closed loop of this file and of bench/capacity.py's floor, so ours and the floor meet the
    same generator. Requests are built (and signed) beforehand, and the generator's collector is
    paused: the generator shares the cores with the server, and its own work would otherwise be
    counted against whichever server it drives. `ok` says whether an answer (its status and body)
    succeeded.

    The client is aiohttp's, for the same reason: in the floor's bursts it costs 0.5-0.9 ms of CPU
    per request (`client_cpu_ms_per_request`); httpx cost 1.25-1.40 ms, about as much as the
    server it measured (a session harness of 2026-12-07, docs/performance.md)."""
    pending = iter(requests)
    samples: list[float] = []
    failed = 0
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(base, connector=connector, timeout=timeout) as client:

        async def worker() -> None:
            nonlocal failed
            for path, raw, headers in pending:
                t0 = time.perf_counter()
                async with client.post(path, data=raw, headers=headers) as response:
                    body = await response.read()
                samples.append((time.perf_counter() - t0) * 1000)
                failed += not ok(response.status, body)

        started = time.perf_counter()
        with collector_paused():
            cpu = os.times()  # after the pause's full collection: that is not the client's work
            await asyncio.gather(*(worker() for _ in range(clients)))
            spent = os.times()
        wall = time.perf_counter() - started
    return {
        "requests_per_s": round(len(requests) / wall, 1),
        "succeeded_per_s": round((len(requests) - failed) / wall, 1),
        "failed": failed,
        "client_cpu_ms_per_request": round(
            (spent.user + spent.system - cpu.user - cpu.system) * 1000 / len(requests), 3
        ),
        **summary(samples),
    }


async def closed_loop(
    base: str, name: str, requests: int, run: int, clients: int = 10, skip: int = 0
) -> dict[str, float]:
    """`requests` calls of `name` from `clients` at once (`drive`); bookings take run `run`'s own
    days in order, from its `skip`-th slot on (a run driven in bursts skips what it has booked)."""
    rng = random.Random(9)
    slots = Slots(datetime.now(BERLIN).date() + timedelta(days=2), 11)
    booking_offset = (run * 40 + 10) * 24 * STYLISTS  # each run books its own days, clear of the open loop's
    prepared: list[Prepared] = []
    for k in range(skip, skip + requests):
        if name == "book_appointment":
            day, at = slots.sequential(booking_offset + k)
            args = {"name": f"Kunde {k}", "dienstleistung": "Herrenschnitt", "datum": day, "uhrzeit": at}
        else:
            args = args_for(name, slots, rng, k)
        raw, headers = signed(envelope(name, f"closed_{name}_{k}_{uuid.uuid4().hex[:6]}", args))
        prepared.append((f"/retell/functions/{name}", raw, headers))
    booking = name == "book_appointment"
    result = await drive(
        base,
        prepared,
        lambda status, body: status == 200 and (not booking or bool(json.loads(body).get("ok"))),
        clients,
    )
    out = {
        k: result[k]
        for k in ("requests_per_s", "count", "p50_ms", "p99_ms", "max_ms", "client_cpu_ms_per_request")
    }
    if booking:
        out["bookings_per_s"] = result["succeeded_per_s"]
        out["refused"] = result["failed"]
    return out


def prepare(url: str) -> None:
    migrate.upgrade(url)
    path = Path(tempfile.mkdtemp()) / "bench.yaml"
    path.write_text(salon_file(), encoding="utf-8")
    env = {**os.environ, "REZEPTION_DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "-m", "rezeption.cli", "tenants", "load", str(path)],
        env=env,
        check=True,
        capture_output=True,
    )


def run_backend(url: str, seconds: float, requests: int) -> dict[str, Any]:
    prepare(url)
    out: dict[str, Any] = {}
    with Server(url, 1) as base:
        out["open_loop"] = asyncio.run(open_loop(base, seconds))
        out["closed_loop_1_worker"] = {
            name: asyncio.run(closed_loop(base, name, requests, run=0))
            for name in ("check_availability", "book_appointment", "list_services")
        }
    with Server(url, 2) as base:
        out["closed_loop_2_workers"] = {
            name: asyncio.run(closed_loop(base, name, requests, run=1))
            for name in ("check_availability", "book_appointment", "list_services")
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0, help="open-loop duration per simulated call")
    parser.add_argument("--requests", type=int, default=600, help="closed-loop requests per function")
    args = parser.parse_args()
    backends: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        backends["sqlite"] = run_backend(f"sqlite+aiosqlite:///{tmp}/bench.db", args.seconds, args.requests)
    with throwaway_database("rezeption_bench_fn") as url:
        backends["postgresql"] = run_backend(url, args.seconds, args.requests)
    pg = backends["postgresql"]
    functions_p99 = max(
        v["p99_ms"] for k, v in pg["open_loop"]["per_function"].items() if k != "call_inbound"
    )
    out = {
        "benchmark": "functions",
        "targets": {"function_p99_ms": 50, "call_inbound_p99_ms": 30, "bookings_per_s_1_worker": 100},
        "function_p99_ms": functions_p99,
        "call_inbound_p99_ms": pg["open_loop"]["per_function"]["call_inbound"]["p99_ms"],
        "bookings_per_s_1_worker": pg["closed_loop_1_worker"]["book_appointment"]["bookings_per_s"],
        **backends,
    }
    RESULTS.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    for backend, figures in backends.items():
        print(f"== {backend}: open loop, {figures['open_loop']['function_calls_per_s']} function calls/s")
        for fn, s in figures["open_loop"]["per_function"].items():
            print(f"   {fn:24s} n={s['count']:5d}  p50 {s['p50_ms']:7.2f} ms  p99 {s['p99_ms']:7.2f} ms")
        for label in ("closed_loop_1_worker", "closed_loop_2_workers"):
            for fn, s in figures[label].items():
                extra = f"  {s['bookings_per_s']} bookings/s" if "bookings_per_s" in s else ""
                print(
                    f"   {label:22s} {fn:20s} {s['requests_per_s']:7.1f} req/s  "
                    f"p99 {s['p99_ms']:7.2f} ms{extra}"
                )
    print(
        f"PostgreSQL: function p99 {out['function_p99_ms']} ms (target < 50), call_inbound p99 "
        f"{out['call_inbound_p99_ms']} ms (target < 30), "
        f"{out['bookings_per_s_1_worker']} bookings/s (target >= 100)"
    )


if __name__ == "__main__":
    main()
