"""Benchmark: what a phone call's ring-in and webhooks cost the server, request by request.

A call reaches us before its first function as a signed call_inbound (the phone rings until it is
answered) and a call_started webhook, and ends with call_ended; 1,000 calls ringing in within a few
seconds are most of the 1,000-call point's burst (bench/capacity.py). Here each kind is sent
alone, `REQUESTS` of them by 10 clients at once (closed loop, `functions.drive`), against
`rezeption serve` (1 process) on a fresh PostgreSQL database, in the order a call sends them (the
call_started of a call that call_inbound opened, its call_ended after). Per kind: requests/s, p50
and p99 at the client, and CPU seconds per request of the server process and of PostgreSQL, read
from /proc before and after. A POST to /health (405: the middleware, no route) gives the fixed cost
of any request. `ROUNDS` rounds, figures per round and their medians.

Prints the figures and writes bench/results/ringin.json.

Run: .venv/bin/python bench/ringin.py
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from _pg import throwaway_database  # noqa: E402
from capacity import cpu_by_pid, cpu_since, postgres_pids, process_tree, server_pid  # noqa: E402
from functions import AGENT, NUMBER, Server, caller_number, drive, prepare, signed  # noqa: E402

REQUESTS = int(os.environ.get("BENCH_REQUESTS", "1000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CLIENTS = 10
KINDS = ("any_request", "call_inbound", "call_started", "call_ended")
OUT = ROOT / "bench" / "results" / "ringin.json"
TRANSCRIPT = "Agent: Friseur 1, guten Tag!\nUser: Ich möchte einen Termin am Donnerstag um halb drei.\n" * 8

Prepared = tuple[str, bytes, dict[str, str]]


def requests_of(kind: str, round_: int) -> list[Prepared]:
    """`REQUESTS` signed requests of one kind, for calls `ring_{round_}_{k}` (the same calls in each
    kind of a round, so call_started finds the call call_inbound opened)."""
    prepared: list[Prepared] = []
    started_ms = int(time.time() * 1000)
    for k in range(REQUESTS):
        call_id = f"ring_{round_}_{k}"
        call = {
            "call_id": call_id,
            "agent_id": AGENT,
            "from_number": caller_number(call_id),
            "to_number": NUMBER,
        }
        if kind == "any_request":
            prepared.append(("/health", b"{}", {"Content-Type": "application/json"}))
            continue
        if kind == "call_inbound":
            path, body = "/retell/inbound", {"event": "call_inbound", "call_inbound": call}
        elif kind == "call_started":
            event = {**call, "start_timestamp": started_ms, "call_status": "ongoing", "direction": "inbound"}
            path, body = "/retell/webhook", {"event": "call_started", "call": event}
        else:
            event = {
                **call,
                "start_timestamp": started_ms,
                "end_timestamp": started_ms + 90_000,
                "call_status": "ended",
                "direction": "inbound",
                "transcript": TRANSCRIPT,
            }
            path, body = "/retell/webhook", {"event": "call_ended", "call": event}
        raw, headers = signed(body)
        prepared.append((path, raw, headers))
    return prepared


def answered(kind: str) -> Any:
    if kind == "any_request":
        return lambda status, _: status == 405  # refused by routing, after the middleware
    return lambda status, _: 200 <= status < 300


def measure(base: str, server: list[int]) -> list[dict[str, Any]]:
    postgres = postgres_pids()
    rounds = []
    for round_ in range(ROUNDS):
        figures: dict[str, Any] = {"round": round_ + 1}
        for kind in KINDS:
            prepared = requests_of(kind, round_)
            before, before_pg = cpu_by_pid(server), cpu_by_pid(postgres)
            result = asyncio.run(drive(base, prepared, answered(kind), CLIENTS))
            time.sleep(0.6)  # the route's work after its answer (a call opened, traces written)
            figures[kind] = {
                "requests_per_s": result["requests_per_s"],
                "p50_ms": result["p50_ms"],
                "p99_ms": result["p99_ms"],
                "failed": result["failed"],
                "server_cpu_ms": round(cpu_since(before, server) / REQUESTS * 1000, 2),
                "postgres_cpu_ms": round(cpu_since(before_pg, postgres) / REQUESTS * 1000, 2),
            }
            print(
                f"  round {round_ + 1} {kind:12} {result['requests_per_s']:7.1f}/s "
                f"p50 {result['p50_ms']:6.2f} p99 {result['p99_ms']:7.2f} ms; "
                f"CPU ms/request server {figures[kind]['server_cpu_ms']}, "
                f"PostgreSQL {figures[kind]['postgres_cpu_ms']}; failed {result['failed']}",
                flush=True,
            )
        rounds.append(figures)
    return rounds


def medians(rounds: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    return {
        kind: {
            key: round(statistics.median(r[kind][key] for r in rounds), 2)
            for key in ("requests_per_s", "p50_ms", "p99_ms", "server_cpu_ms", "postgres_cpu_ms")
        }
        for kind in KINDS
    }


def main() -> None:
    print(f"== ring-in: {REQUESTS} requests per kind, {CLIENTS} clients, {ROUNDS} rounds", flush=True)
    with throwaway_database("rezeption_bench_ringin") as url:
        prepare(url)
        server = Server(url, 1)
        with server as base:
            rounds = measure(base, process_tree(server_pid(server)))
    median = medians(rounds)
    report = {
        "benchmark": "ringin",
        "database": "postgresql",
        "requests_per_kind": REQUESTS,
        "clients": CLIENTS,
        "server_processes": 1,
        "ring_in_server_cpu_ms_per_call": round(
            median["call_inbound"]["server_cpu_ms"] + median["call_started"]["server_cpu_ms"], 2
        ),
        "webhooks_server_cpu_ms_per_call": round(
            median["call_started"]["server_cpu_ms"] + median["call_ended"]["server_cpu_ms"], 2
        ),
        "median": median,
        "rounds": rounds,
        "machine": "2 cores (this sandbox), server and load generator on the same machine",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    OUT.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in report.items() if k != "rounds"}, indent=2, ensure_ascii=False))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
