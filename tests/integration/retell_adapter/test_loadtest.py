"""The load generator against our server under uvicorn, as CI can afford it (24 calls, 8 at once,
short think times): every call's outcome is checked from the database by the separate checker (no
double booking, no pending row left, each caller's appointments as they were told), and the
generator refuses any address but this machine; it delivers call_inbound and webhooks again after
a 503, as Retell does, and no more often than Retell does."""

from __future__ import annotations

from collections import Counter

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from tests.conftest import ROOT
from tests.faults import serve_app
from tests.integration.retell_adapter.conftest import API_KEY, RetellClient

from rezeption.domain.clock import FixedClock
from rezeption.ops.loadcheck import check
from rezeption.ops.loadtest import REDELIVERIES, LoadTest, NotLocal, Plan, Scenarios
from rezeption.store.db import Database

SCENARIOS = ROOT / "bench" / "loadtest_scenarios.yaml"


async def test_a_short_load_books_what_callers_heard_and_nothing_twice(
    server: str, retell: RetellClient, database: Database, clock: FixedClock
) -> None:
    stamps = iter(range(10**9))
    plan = Plan(calls=24, concurrency=8, think=0.02, deadline=120, seed=3)
    test = LoadTest(server, API_KEY, plan, Scenarios.load(SCENARIOS),
                    now_ms=lambda: int(clock.now().timestamp() * 1000) + next(stamps))  # fmt: skip
    result = await test.run()

    assert len(result.calls) == 24
    assert {c.scenario for c in result.calls} >= {"book", "reschedule", "cancel"}
    assert sum(c.booked for c in result.calls) >= 12, [
        (c.scenario, c.refusals, c.failures) for c in result.calls
    ]
    assert all(not c.failures for c in result.calls), [c.failures for c in result.calls if c.failures]
    assert result.success_rate == 1.0
    found = await check(database, result.expected_active(), call_prefix=f"load-{test.run_id}-")
    assert found.double_bookings == 0 and found.pending_left == 0
    assert found.mismatched_calls == [], found.mismatched_calls
    assert result.latency_percentiles()["book_appointment"]["count"] >= 12


def test_the_load_generator_sends_nothing_beyond_this_machine() -> None:
    for url in ("http://10.0.0.5:8000", "https://rezeption.example", "http://127.0.0.1.evil.example:80"):
        with pytest.raises(NotLocal):
            LoadTest(url, API_KEY, Plan(calls=1, concurrency=1), Scenarios.load(SCENARIOS))


def busy_line() -> tuple[FastAPI, Counter[str]]:
    """A server whose ring-in is overloaded: call n's call_inbound is answered 503 (Retry-After: 1)
    always when n % 3 == 0, twice and then 200 when n % 3 == 1, at once otherwise; every call's
    first call_started gets 503; each delivery is counted per (event, call)."""
    app, deliveries = FastAPI(), Counter[str]()
    busy = {"error": "overloaded, try again shortly"}

    @app.post("/retell/inbound")
    async def inbound(request: Request) -> Response:
        call_id = (await request.json())["call_inbound"]["call_id"]
        deliveries[f"inbound {call_id}"] += 1
        n = int(call_id.rsplit("-", 1)[1])
        if n % 3 == 0 or (n % 3 == 1 and deliveries[f"inbound {call_id}"] <= 2):
            return JSONResponse(busy, status_code=503, headers={"Retry-After": "1"})
        return JSONResponse({"call_inbound": {}})

    @app.post("/retell/webhook")
    async def webhook(request: Request) -> Response:
        body = await request.json()
        deliveries[f"{body['event']} {body['call']['call_id']}"] += 1
        if body["event"] == "call_started" and deliveries[f"call_started {body['call']['call_id']}"] == 1:
            return JSONResponse(busy, status_code=503, headers={"Retry-After": "1"})
        return Response(status_code=204)

    @app.post("/retell/functions/{name}")
    async def function(name: str, request: Request) -> JSONResponse:
        deliveries[f"{name} {(await request.json())['call']['call_id']}"] += 1
        return JSONResponse({"ok": True, "frei": False, "alternativen": []})

    return app, deliveries


async def test_call_inbound_and_webhooks_are_delivered_again_after_a_503_as_retell_does() -> None:
    assert REDELIVERIES == 3  # retell.md: "retried up to 3 times" (call_inbound and webhooks)
    app, deliveries = busy_line()
    with serve_app(app) as served:
        plan = Plan(calls=9, concurrency=9, think=0.01, deadline=60, seed=5)
        test = LoadTest(served.url, API_KEY, plan, Scenarios.load(SCENARIOS))
        result = await test.run()

    by_n = {int(c.call_id.rsplit("-", 1)[1]): c for c in result.calls}
    for n, call in by_n.items():
        asked = [key for key in deliveries if key.endswith(f" {call.call_id}") and not key.startswith(
            ("inbound", "call_")
        )]  # fmt: skip
        if n % 3 == 0:  # never answered: the first delivery and 3 more, then the caller is lost
            assert deliveries[f"inbound {call.call_id}"] == 1 + REDELIVERIES
            assert call.ring_ms is None and call.failures == ["http_error"] and not asked
            assert f"call_started {call.call_id}" not in deliveries
        else:  # answered, at once or on the third delivery: the call goes on
            assert deliveries[f"inbound {call.call_id}"] == (3 if n % 3 == 1 else 1)
            assert call.ring_ms is not None and (call.ring_ms >= 2000) == (n % 3 == 1)
            assert deliveries[f"call_started {call.call_id}"] == 2
            assert deliveries[f"call_ended {call.call_id}"] == 1
            assert asked and not call.failures
    assert result.ring_figures()["redeliveries"] == 3 * REDELIVERIES + 3 * 2 + 6
