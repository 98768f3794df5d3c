"""Benchmark: SIGKILL the server at random moments while phone calls run, and count what is left.

For each calendar — the local one (our PostgreSQL database) and Cal.com (the emulator with the fault
profile `slow`, every request 0.8-1.2 s so that kills land inside sagas, Cal.com's real rate limit,
plus `rezeption worker` and Redis; bench/_stack.py) — `rezeption loadtest`'s calls run against
`rezeption serve` while it is killed (SIGKILL) 20 times, each after 0.5-4 s (Cal.com: 1.5-6 s) of
being ready, and started again on the same port at once (ops.crashload). A call in flight at a kill
hears a dropped connection; one that rings while the server is down is delivered again, as Retell
does (3 times, 1 s apart), and connects if the server is back in time. What each caller heard
decides what must hold for it: "gebucht" (and not cancelled) -> exactly one confirmed
appointment, here and live at Cal.com; a cancellation heard -> none; a write whose answer never
came -> none or one, never two. Afterwards the worker is stopped and the reconciler runs as it would after the
pending deadline; then the separate checker (ops.loadcheck) reads our database and the emulator.

Writes bench/results/crash.json, per calendar and as totals: kills, orphans (live at Cal.com with
our token, no confirmed appointment here), lost_confirmed (heard "gebucht", not exactly one
confirmed appointment on both sides), pending_left, double_bookings (ours and at Cal.com),
mismatched_calls, wrong_time_calls, missing_at_calcom (confirmed here, not live there: each one's
history in "problems"), calcom_time_differs, and more detail. BENCH=full: 60 kills per calendar and
more calls at once; BENCH_CALENDARS=calcom runs one calendar, BENCH_OUT writes elsewhere.

Run: .venv/bin/python bench/crash.py
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from _pg import throwaway_database  # noqa: E402
from _stack import KEY, Stack, stack  # noqa: E402
from rezeption.ops.crashload import kill_during_load  # noqa: E402
from rezeption.ops.loadcheck import check, check_calcom, emulator_state, reconcile_after_run  # noqa: E402
from rezeption.ops.loadtest import CALCOM_FAULT_PROFILES, LoadTest, Plan, Scenarios  # noqa: E402
from rezeption.store import migrate  # noqa: E402
from rezeption.store.tables import AppointmentEventRow, AppointmentRow, OutboxJobRow  # noqa: E402

FULL = os.environ.get("BENCH") == "full"
KILLS = int(os.environ.get("BENCH_KILLS", 60 if FULL else 20))
# seconds a server lives after it is ready, uniform (a Cal.com call needs ~2 s of it to book)
UPTIME = {"local": (0.5, 4.0), "calcom": (1.5, 6.0)}
CALLS_PER_ROUND = {"local": 60, "calcom": 40}  # short rounds: the last one ends soon after the last kill
CONCURRENCY = {"local": 30 if FULL else 15, "calcom": 8 if FULL else 6}  # Cal.com: under 120 requests/min
THINK = {"local": 0.5, "calcom": 1.0}
PROFILE = "slow"
OUT = Path(os.environ.get("BENCH_OUT", ROOT / "bench" / "results" / "crash.json"))


async def crash(running: Stack) -> dict[str, Any]:
    salon = running.salon
    scenarios = Scenarios.load(ROOT / "bench" / "loadtest_scenarios.yaml")
    calendar = running.calendar
    if running.emulator is not None:
        await running.put_faults(CALCOM_FAULT_PROFILES[PROFILE])

    def make_load(round_: int) -> LoadTest:
        plan = Plan(
            calls=CALLS_PER_ROUND[calendar], concurrency=CONCURRENCY[calendar], think=THINK[calendar],
            deadline=900, seed=100 + round_, to_number=salon.phone_numbers[0],
            agent_id=salon.retell_agent_ids[0], first_caller=round_ * CALLS_PER_ROUND[calendar],
        )  # fmt: skip
        return LoadTest(running.server.url, KEY, plan, scenarios)

    load_before = os.getloadavg()[0]
    run = await kill_during_load(
        running.server, make_load, kills=KILLS, uptime=UPTIME[calendar], seed=5, max_rounds=60
    )
    await asyncio.sleep(3)  # replies nobody waited for any more land
    if running.worker is not None:
        running.worker.stop()
    expected = run.expected_active()
    calls = run.all_calls  # the earlier calls too: a kill may land while they book
    async with running.services() as services:
        mended = await reconcile_after_run(services.uow, services.calendars, services.clock)
        found = await check(services.database, expected, call_prefix="load-", starts=run.expected_starts())
        async with services.database.read() as session:
            open_jobs = int(
                await session.scalar(
                    select(func.count()).where(
                        OutboxJobRow.status.in_(("pending", "running")),
                        OutboxJobRow.kind != "callback_request",
                    )
                )
                or 0
            )
        remote = None
        traced: list[dict[str, Any]] = []
        if running.emulator is not None:
            remote = await check_calcom(
                services.database, running.emulator, expected, call_prefix="load-", calls=len(calls)
            )
            traced = await _histories(services.database, running.emulator, remote.missing_at_calcom)
    lost = set(found.lost_confirmed) | set(remote.lost_confirmed if remote else ())
    return {
        "calendar": calendar,
        "kills": run.kills,
        "orphans": len(remote.orphans) if remote else 0,
        "lost_confirmed": len(lost),
        "pending_left": found.pending_left,
        "double_bookings": found.double_bookings + (remote.double_bookings if remote else 0),
        "mismatched_calls": len(found.mismatched_calls),
        "wrong_time_calls": len(found.wrong_time),
        "missing_at_calcom": len(remote.missing_at_calcom) if remote else 0,
        "calcom_time_differs": len(remote.time_differs) if remote else 0,
        "calls": len(calls),
        "load_rounds": len(run.rounds),
        "heard_booked": sum(c.booked for c in calls),
        "heard_booked_and_kept": sum(1 for n in expected.values() if n == 1),
        "uncertain_calls": found.uncertain_calls,
        "failure_reasons": _reasons(calls),
        "outbox_jobs_open": open_jobs,
        "reconciled": {
            "pending_failed": mended.pending_failed,
            "orphans_cancelled": mended.orphans_cancelled,
            "moves_completed": mended.moves_completed,
            "errors": len(mended.errors),
        },
        "kill_after_seconds_median": statistics.median(run.kill_after_seconds) if run.kills else None,
        "restart_seconds_median": statistics.median(run.restart_seconds) if run.kills else None,
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # 2 cores; >2: contended
        "reconcile_errors": mended.errors[:5],
        "concurrency": CONCURRENCY[calendar],
        "think_seconds": THINK[calendar],
        **(
            {
                "fault_profile": PROFILE,
                "calcom_requests": remote.requests,
                "calcom_rate_limited": remote.rate_limited,
                "calcom_requests_by_kind": remote.requests_by_kind,
            }
            if remote
            else {}
        ),
        "problems": {
            "lost_confirmed_calls": sorted(lost)[:10],
            "mismatched_calls": found.mismatched_calls[:10],
            "orphan_uids": remote.orphans[:10] if remote else [],
            # appointments confirmed here but not live at Cal.com: each one's steps here and its
            # booking there (ids, statuses and event kinds; no names or numbers)
            "missing_at_calcom": traced,
        },
    }


async def _histories(database: Any, emulator: str, ids: list[int]) -> list[dict[str, Any]]:
    """What happened to each appointment in `ids`, here and at the emulator, for the report."""
    if not ids:
        return []
    state = await emulator_state(emulator)
    there = {b["uid"]: b for b in state["bookings"]}
    kept = ("uid", "to", "from", "reconciled", "source")
    out = []
    async with database.read() as session:
        rows = await session.scalars(select(AppointmentRow).where(AppointmentRow.id.in_(ids)))
        for appointment in rows.all():
            events = await session.scalars(
                select(AppointmentEventRow)
                .where(AppointmentEventRow.appointment_id == appointment.id)
                .order_by(AppointmentEventRow.id)
            )
            booking = there.get(appointment.external_uid or "", {})
            steps = [
                {"kind": e.kind, "point": e.recovery_point, "at": e.at.isoformat(),
                 "data": {k: v for k, v in e.data.items() if k in kept}}
                for e in events.all()
            ]  # fmt: skip
            out.append(
                {
                    "id": appointment.id,
                    "status": appointment.status,
                    "uid": appointment.external_uid,
                    "call": appointment.call_id,
                    "rescheduled_from": appointment.rescheduled_from_id,
                    "events": steps,
                    "at_calcom": {
                        k: booking.get(k) for k in ("status", "rescheduledToUid", "rescheduledFromUid")
                    },
                }
            )
    return out


def _reasons(calls: list[Any]) -> dict[str, int]:
    counted: dict[str, int] = {}
    for call in calls:
        for reason in call.failures:
            counted[reason] = counted.get(reason, 0) + 1
    return dict(sorted(counted.items()))


async def one(url: str, calendar: str) -> dict[str, Any]:
    async with stack(url, calendar, redis_db=13) as running:
        return await crash(running)


def main() -> None:
    calendars: dict[str, Any] = {}
    for calendar in os.environ.get("BENCH_CALENDARS", "local,calcom").split(","):
        with throwaway_database(f"rezeption_bench_crash_{calendar}") as url:
            migrate.upgrade(url)
            calendars[calendar] = asyncio.run(one(url, calendar))
        print(json.dumps(calendars[calendar], indent=2), flush=True)
    totals = {
        key: sum(c[key] for c in calendars.values())
        for key in (
            "kills",
            "orphans",
            "lost_confirmed",
            "pending_left",
            "double_bookings",
            "mismatched_calls",
            "wrong_time_calls",
            "missing_at_calcom",
            "calcom_time_differs",
        )
    }
    report = {
        "benchmark": "crash",
        "database": "postgresql (Cal.com: + redis, the worker, the emulator)",
        **totals,
        "calendars": calendars,
        "machine": "2 cores (this sandbox), every process on one machine",
    }
    OUT.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(totals, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
