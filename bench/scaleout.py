"""Benchmark: two server processes and two outbox workers against one PostgreSQL and one Redis, as
production runs behind a load balancer, with the salon on the Cal.com emulator (its fault profile,
its real limit of 120 requests a minute per key).

The load (`rezeption loadtest`, the scenario mix, ~8 s between two functions of a call) goes to
both servers in turn, request by request, as a load balancer without sticky sessions sends it: one
call's functions land on both, so the call's memory, the idempotency keys, the replay guard and the
slot picture must be shared through the database and Redis. Afterwards the workers stop, the
reconciler runs, and the separate checker reads our database and the emulator:

- double bookings (ours and at Cal.com), orphans, pending rows left, calls whose appointments differ
  from what they heard, lost confirmed bookings;
- the outbox: jobs by status, and job runs counted by the two workers themselves (their /metrics)
  against the jobs done (a job run twice would count more runs than jobs). After the calls, a
  signed Cal.com delivery for each booking it holds (to both servers in turn) queues one re-read
  each, which only the workers run: the two compete for those jobs;
- Cal.com requests per phone call, and slot requests among them (one shared picture: two servers
  must not read the slots twice as often as one);
- requests per server (the split).

Writes bench/results/scaleout.json. BENCH=full: more calls.

Run: .venv/bin/python bench/scaleout.py
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from sqlalchemy import func, select  # noqa: E402

from _pg import throwaway_database  # noqa: E402
from _stack import KEY, free_port, stack  # noqa: E402
from loadtest_calcom import warm  # noqa: E402
from rezeption.calendars.calcom.webhook import signature_for  # noqa: E402
from rezeption.cli.loadtest import calcom_report, summary  # noqa: E402
from rezeption.emulators.retell.caller import RetellPhone  # noqa: E402
from rezeption.ops.crashload import ServerProcess  # noqa: E402
from rezeption.ops.loadcheck import check, check_calcom, emulator_requests_seen, reconcile_after_run  # noqa: E402
from rezeption.ops.loadtest import CALCOM_FAULT_PROFILES, LoadTest, Plan, Scenarios  # noqa: E402
from rezeption.store import migrate  # noqa: E402
from rezeption.store.tables import AppointmentRow, OutboxJobRow  # noqa: E402

FULL = os.environ.get("BENCH") == "full"
CONCURRENCY = 40 if FULL else 20
CALLS = 200 if FULL else 60
THINK = 8.0
PROFILE = "faulty"
OUT = ROOT / "bench" / "results" / "scaleout.json"


class Balancer:
    """Sends each request to the next server in turn (a load balancer without sticky sessions)."""

    def __init__(self, phones: list[RetellPhone]) -> None:
        self.phones, self.turn = phones, 0
        self.sent = [0] * len(phones)

    async def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        k = self.turn % len(self.phones)
        self.turn += 1
        self.sent[k] += 1
        return await self.phones[k].post(path, body)


def job_runs(metrics_url: str) -> dict[str, float]:
    """A worker's own count of job runs by outcome (its /metrics)."""
    runs: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(metrics_url, timeout=10).text):
        for sample in family.samples:
            if sample.name == "rezeption_outbox_job_runs_total":
                outcome = sample.labels["outcome"]
                runs[outcome] = runs.get(outcome, 0.0) + sample.value
    return runs


async def deliver_webhooks(servers: list[str], slug: str, secret: str, uids: list[str]) -> int:
    """One signed BOOKING_CREATED delivery per Cal.com booking, to the servers in turn, as Cal.com
    sends them; how many were queued (each queues one re-read job)."""
    queued = 0
    async with httpx.AsyncClient(timeout=10) as http:
        for k, uid in enumerate(uids):
            body = json.dumps(
                {"triggerEvent": "BOOKING_CREATED", "createdAt": f"scaleout-{k}", "payload": {"uid": uid}}
            ).encode()
            answer = await http.post(
                f"{servers[k % len(servers)]}/calcom/webhooks/{slug}",
                content=body,
                headers={
                    "X-Cal-Signature-256": signature_for(secret, body),
                    "Content-Type": "application/json",
                },
            )
            queued += answer.status_code == 200 and bool(answer.json().get("queued"))
    return queued


async def jobs_waiting(services: Any, seconds: float) -> int:
    """Wait (bounded) until no outbox job is pending or running; how many still are."""
    waiting = 0
    for _ in range(int(seconds)):
        async with services.database.read() as session:
            waiting = int(
                await session.scalar(
                    select(func.count())
                    .select_from(OutboxJobRow)
                    .where(OutboxJobRow.status.in_(("pending", "running")))
                )
                or 0
            )
        if waiting == 0:
            break
        await asyncio.sleep(1)
    return waiting


async def measure(url: str) -> dict[str, Any]:
    async with stack(url, "calcom", redis_db=13) as running:
        assert running.emulator is not None and running.worker is not None
        running.worker.stop()  # replaced by two workers that report their runs
        salon = running.salon
        second = ServerProcess(free_port(), running.env)
        await second.start()
        running.others.append(second)
        metrics_ports = [free_port(), free_port()]
        workers = [
            ServerProcess(0, running.env, command=("worker", "--metrics-port", str(port)))
            for port in metrics_ports
        ]
        for worker in workers:
            await worker.start()
            running.others.append(worker)
        await running.put_faults(CALCOM_FAULT_PROFILES[PROFILE])
        types = {v for m in salon.calendar.settings["event_types"].values() for v in dict(m).values()}
        await warm(running.emulator, len(types), running.server.url, salon)
        plan = Plan(
            calls=CALLS, concurrency=CONCURRENCY, think=THINK, deadline=1800, seed=29,
            to_number=salon.phone_numbers[0], agent_id=salon.retell_agent_ids[0],
        )  # fmt: skip
        test = LoadTest(
            running.server.url, KEY, plan, Scenarios.load(ROOT / "bench" / "loadtest_scenarios.yaml")
        )
        balancers = [  # one per line of the generator (each with its own HTTP client)
            Balancer([RetellPhone(s.url, KEY, http=client) for s in (running.server, second)])
            for client in test.clients
        ]
        test.phones = balancers  # type: ignore[assignment]
        # the appointments the run's cancel and reschedule callers change, booked in earlier calls
        # (their Cal.com requests are counted apart: calcom_requests_earlier)
        before_earlier = await emulator_requests_seen(running.emulator)
        await test.book_earlier()
        sent_earlier = [sum(b.sent[k] for b in balancers) for k in range(2)]
        began = await emulator_requests_seen(running.emulator)
        result = await test.run()
        ended = await emulator_requests_seen(running.emulator)
        # Cal.com tells us of each booking it holds (a signed delivery, to both servers in turn):
        # each queues a re-read that only the workers run, so the two workers compete for jobs
        async with running.services() as services, services.database.read() as session:
            uids = list(
                await session.scalars(
                    select(AppointmentRow.external_uid).where(AppointmentRow.external_uid.is_not(None))
                )
            )
        delivered = await deliver_webhooks(
            [running.server.url, second.url], salon.slug, salon.calendar.settings["webhook_secret"], uids
        )
        async with running.services() as services:
            waiting = await jobs_waiting(services, seconds=120)  # the workers finish what was queued
        runs = [job_runs(f"http://127.0.0.1:{port}/metrics") for port in metrics_ports]
        for worker in workers:
            worker.stop()
        prefix = f"load-{test.run_id}-"
        expected = result.expected_active()
        async with running.services() as services:
            async with services.database.read() as session:
                jobs = {
                    str(status): int(count)
                    for status, count in await session.execute(
                        select(OutboxJobRow.status, func.count()).group_by(OutboxJobRow.status)
                    )
                }
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
    runs_ok = sum(r.get("ok", 0.0) for r in runs)
    return {
        "benchmark": "scaleout",
        "setup": "2 server processes + 2 outbox workers, one PostgreSQL, one Redis, Cal.com emulator "
        f"(fault profile {PROFILE}, real rate limit 120/min), requests alternating between the servers",
        **figures,
        "success_rate": figures["servable_success_rate"],
        "requests_per_server": [sum(b.sent[k] for b in balancers) - sent_earlier[k] for k in range(2)],
        "double_bookings": found.double_bookings + remote.double_bookings,
        **calcom_report(remote),
        "calcom_requests_earlier": began - before_earlier,
        # all in: the earlier calls' requests and calls too (each books once, as a book call does)
        "calcom_requests_per_call_with_earlier": round(
            (began - before_earlier + remote.requests) / (len(result.all_calls) or 1), 3
        ),
        "pending_left": found.pending_left,
        "mismatched_calls": len(found.mismatched_calls),
        "wrong_time_calls": len(found.wrong_time),
        "lost_confirmed": len(set(found.lost_confirmed) | set(remote.lost_confirmed)),
        "webhook_deliveries": delivered,
        "outbox_jobs_waiting_at_the_end": waiting,
        "outbox_jobs_by_status": jobs,
        "outbox_runs_by_worker": runs,
        "outbox_jobs_run_twice": max(0, int(runs_ok) - int(jobs.get("done", 0))),
        "reconciled": {
            "pending_failed": mended.pending_failed,
            "orphans_cancelled": mended.orphans_cancelled,
            "errors": len(mended.errors),
        },
        "check_availability_p95_ms": per_function.get("check_availability", {}).get("p95_ms"),
        "per_function": per_function,
        "machine": "2 cores (this sandbox): servers, workers, emulator and load on one machine",
    }


def main() -> None:
    with throwaway_database("rezeption_bench_scaleout") as url:
        migrate.upgrade(url)
        report = asyncio.run(measure(url))
    print(json.dumps({k: v for k, v in report.items() if k != "per_function"}, indent=2))
    OUT.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
