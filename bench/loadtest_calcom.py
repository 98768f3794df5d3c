"""Benchmark: `rezeption loadtest` against a server whose salon books into the Cal.com emulator.

The stack (bench/_stack.py): `rezeption serve` on a throwaway PostgreSQL database with the Cal.com
demo salon (salons/friseur1-calcom.yaml) pointed at `rezeption calcom-emulator --salon` on
127.0.0.1, `rezeption worker`, and Redis shared by both, as in production. The emulator keeps
Cal.com's real limit (120 requests a minute per API key, nothing lifted) and gets the fault profile
`faulty` (ops.loadtest.CALCOM_FAULT_PROFILES): every request 0.8-1.2 s; creates 5 % JSON 500, 5 %
HTML 503, 5 % answers after 2.5 s, 1 % lost answers, 1 % stolen slots; cancels and reschedules 5 %
JSON 500. No timeout is shortened.

The period's first call warms the slot picture first (a call_inbound before the run: its prefetch
reads every event type's slots; those requests are not counted, `cold_start_requests`);
then the earlier calls book what the run's cancel and reschedule callers will change (one per such
caller, same number and name; their requests are counted apart, `calcom_requests_earlier`), then
the calls run (the mix of bench/loadtest_scenarios.yaml, ~8 s between two functions of a call, as a
caller speaks; a cancel or reschedule caller finds their earlier appointment by number and name),
the worker is stopped, the reconciler runs as the worker would after the pending deadline (the
faults still on), and the separate checker (ops.loadcheck) reads our database and the emulator's
state and request log. Prints the figures and writes
bench/results/loadtest-calcom.json:
- concurrent_calls, calls, success_rate: booked / calls that tried to book, leaving out those whose
  only failures Cal.com caused (5xx on every try, unreachable, its rate limit: it could not serve
  them); success_rate_all counts those as failures too;
- double_bookings (ours and at Cal.com), orphans (live at Cal.com with our token, no confirmed
  appointment here, after reconcile), missing_at_calcom, calcom_time_differs (live there at another
  time than here), pending_left, mismatched_calls,
  wrong_time_calls (the one appointment starts at another time than its caller heard), lost_confirmed
  (heard "gebucht", not exactly one confirmed appointment on both sides);
- p99_ms (worst function), check_availability_p95_ms, calcom_requests_per_call (Cal.com requests
  the emulator received during the run's calls / the run's calls, the slot picture's background
  refreshes and the worker's reconcile passes included), calcom_requests_per_call_with_earlier
  (the earlier calls' requests and calls counted in too), calcom_requests_per_booked_call (the
  run's requests / the run's calls that booked: a cancel's or move's requests count, the earlier
  booking they change does not), calcom_reads (lists: the reconciler's pass and read-backs by
  token; by_uid: read-backs of a cancel or move and webhook re-reads);
- floor_ratio: our booking throughput / the bare floor's, from bench/capacity.py's last run (the
  server's own speed, measured on the local calendar; null when never measured).
BENCH=full: 40 calls at once, 200 in all (short: 20 and 60). BENCH_SEED draws another run of the
same mix (default 23); BENCH_OUT writes elsewhere (a draw that is not the committed one).

Run: .venv/bin/python bench/loadtest_calcom.py
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from _pg import throwaway_database  # noqa: E402
from _results import floor_ratio  # noqa: E402
from _stack import KEY, stack  # noqa: E402
from rezeption.cli.loadtest import calcom_report, summary  # noqa: E402
from rezeption.emulators.retell.caller import RetellPhone  # noqa: E402
from rezeption.ops.loadcheck import (  # noqa: E402
    check,
    check_calcom,
    emulator_requests_seen,
    reconcile_after_run,
)
from rezeption.ops.loadtest import CALCOM_FAULT_PROFILES, LoadTest, Plan, Scenarios  # noqa: E402
from rezeption.store import migrate  # noqa: E402

FULL = os.environ.get("BENCH") == "full"
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", 40 if FULL else 20))
CALLS = int(os.environ.get("BENCH_CALLS", 200 if FULL else 60))
THINK = float(os.environ.get("BENCH_THINK", "8.0"))
SEED = int(os.environ.get("BENCH_SEED", "23"))  # another seed: another draw of the same mix
PROFILE = "faulty"
OUT = Path(os.environ.get("BENCH_OUT", ROOT / "bench" / "results" / "loadtest-calcom.json"))


async def warm(emulator: str, event_types: int, server: str, salon: Any, seconds: float = 60.0) -> int:
    """The period's first call rings (a signed call_inbound: its prefetch reads every event type's
    slots, as after a quiet night; the refresher reads nothing for a salon nobody called); wait
    until the server has read them all once. Returns the log's length."""
    envelope = {"call_id": "warm-up", "agent_id": salon.retell_agent_ids[0],
                "from_number": "+4915100000000", "to_number": salon.phone_numbers[0]}  # fmt: skip
    answer = await RetellPhone(server, KEY).post(
        "/retell/inbound", {"event": "call_inbound", "call_inbound": envelope}
    )
    answer.raise_for_status()
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=emulator, timeout=10) as http:
        while time.monotonic() < deadline:
            log = (await http.get("/_emulator/requests")).json()
            if sum(1 for e in log if e["path"] == "/v2/slots" and e["status"] == 200) >= event_types:
                return len(log)
            await asyncio.sleep(0.5)
    raise RuntimeError("the server did not warm its slot picture")


async def measure(url: str) -> dict[str, Any]:
    async with stack(url, "calcom", redis_db=12) as running:
        assert running.emulator is not None and running.worker is not None
        salon = running.salon
        await running.put_faults(CALCOM_FAULT_PROFILES[PROFILE])
        types = {v for m in salon.calendar.settings["event_types"].values() for v in dict(m).values()}
        cold_start = await warm(running.emulator, len(types), running.server.url, salon)
        plan = Plan(
            calls=CALLS, concurrency=CONCURRENCY, think=THINK, deadline=1800, seed=SEED,
            to_number=salon.phone_numbers[0], agent_id=salon.retell_agent_ids[0],
        )  # fmt: skip
        test = LoadTest(
            running.server.url, KEY, plan, Scenarios.load(ROOT / "bench" / "loadtest_scenarios.yaml")
        )
        # the appointments the run's cancel and reschedule callers change, booked in earlier calls
        # (their Cal.com requests are counted apart: calcom_requests_earlier)
        before_earlier = await emulator_requests_seen(running.emulator)
        await test.book_earlier()
        began = await emulator_requests_seen(running.emulator)
        load_before = os.getloadavg()[0]
        result = await test.run()
        load_after = os.getloadavg()[0]
        ended = await emulator_requests_seen(running.emulator)
        await asyncio.sleep(3)  # replies nobody waited for any more land
        running.worker.stop()
        prefix = f"load-{test.run_id}-"
        expected = result.expected_active()
        async with running.services() as services:
            mended = await reconcile_after_run(services.uow, services.calendars, services.clock)
            found = await check(
                services.database, expected, call_prefix=prefix, starts=result.expected_starts()
            )
            remote = await check_calcom(
                services.database, running.emulator, expected, call_prefix=prefix,
                calls=len(result.calls), requests_from=began, requests_until=ended,
                booked_calls=sum(c.booked for c in result.calls),
            )  # fmt: skip
    figures = summary(result, plan)
    per_function = figures.pop("per_function")
    remote_figures = calcom_report(remote)
    return {
        "benchmark": "loadtest-calcom",
        "calendar": "calcom (emulator, fault profile faulty, real rate limit 120/min)",
        "database": "postgresql + redis, one server process, one worker",
        **figures,
        "success_rate": figures["servable_success_rate"],
        "success_rate_all": figures["success_rate"],
        "double_bookings": found.double_bookings + remote.double_bookings,
        "double_bookings_here": found.double_bookings,
        **remote_figures,
        "pending_left": found.pending_left,
        "mismatched_calls": len(found.mismatched_calls),
        "wrong_time_calls": len(found.wrong_time),
        "lost_confirmed": len(set(found.lost_confirmed) | set(remote.lost_confirmed)),
        "check_availability_p95_ms": per_function.get("check_availability", {}).get("p95_ms"),
        "reconciled": {
            "pending_failed": mended.pending_failed,
            "orphans_cancelled": mended.orphans_cancelled,
            "moves_completed": mended.moves_completed,
            "errors": len(mended.errors),
        },
        "cold_start_requests": cold_start,
        "calcom_requests_earlier": began - before_earlier,
        # all in: the earlier calls' requests and calls too (each books once, as a book call does)
        "calcom_requests_per_call_with_earlier": round(
            (began - before_earlier + remote.requests) / (len(result.all_calls) or 1), 3
        ),
        "floor_ratio": floor_ratio()[0],
        "floor_ratio_source": floor_ratio()[1],
        "think_seconds": THINK,
        "seed": SEED,
        # the machine's 1-minute load average as the calls began and ended (2 cores: above ~2, other
        # work competed for them and the latencies include its queueing)
        "load_average": [round(load_before, 2), round(load_after, 2)],
        "fault_profile": CALCOM_FAULT_PROFILES[PROFILE],
        "per_function": per_function,
        "machine": "2 cores (this sandbox), server, worker, emulator and load generator on one machine",
    }


def main() -> None:
    with throwaway_database("rezeption_bench_loadcalcom") as url:
        migrate.upgrade(url)
        report = asyncio.run(measure(url))
    shown = {k: v for k, v in report.items() if k not in ("per_function", "fault_profile")}
    print(json.dumps(shown, indent=2))
    for name, figures in report["per_function"].items():
        p50, p95, p99 = figures["p50_ms"], figures["p95_ms"], figures["p99_ms"]
        print(f"  {name:24} n={figures['count']:5}  p50 {p50:8.2f}  p95 {p95:8.2f}  p99 {p99:8.2f} ms")
    OUT.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
