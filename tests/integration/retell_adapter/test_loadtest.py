"""The load generator against our server under uvicorn, as CI can afford it (24 calls, 8 at once,
short think times): every call's outcome is checked from the database by the separate checker (no
double booking, no pending row left, each caller's appointments as they were told); cancel and
reschedule callers change, in a call of their own, what an earlier call from their number booked;
the generator refuses any address but this machine; it delivers call_inbound and webhooks again after
a 503, as Retell does, and no more often than Retell does."""

from __future__ import annotations

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
    starts = result.expected_starts()
    found = await check(database, result.expected_active(), call_prefix=f"load-{test.run_id}-", starts=starts)
    assert found.double_bookings == 0 and found.pending_left == 0
    assert found.mismatched_calls == [], found.mismatched_calls
    assert found.wrong_time == [] and len(starts) >= 12, (found.wrong_time, starts)
    assert result.latency_percentiles()["book_appointment"]["count"] >= 12

    # a quarter of the calls change what an earlier call of theirs booked, found by number and name
    changers = [c for c in result.calls if c.scenario in ("cancel", "reschedule")]
    earlier = {c.call_id: c for c in result.earlier}
    assert changers and len(earlier) == len(changers)
    assert all(c.earlier_call in earlier and not c.booking_attempts for c in changers)
    found_again = [c for c in changers if earlier[c.earlier_call].booked]  # type: ignore[index]
    outcomes = [(c.scenario, c.refusals, c.failures) for c in found_again]
    # read back in a call of its own (the lookup by number and name found it), then changed, or a
    # move refused for a taken time with no other offered
    assert found_again and all(
        {"confirm_cancel", "confirm_reschedule"} & set(c.refusals) for c in found_again
    ), outcomes
    assert sum(c.cancelled or c.moved for c in found_again) >= len(found_again) - 1, outcomes
    assert any(c.cancelled for c in found_again) and any(c.moved for c in found_again), outcomes
    told = result.expected_active()
    assert all(told[c.call_id] == 0 for c in changers), "a change books nothing in its own call"
    assert [told[c.earlier_call] for c in found_again if c.cancelled] == [0] * sum(  # type: ignore[index]
        c.cancelled for c in found_again
    )


def test_the_load_generator_sends_nothing_beyond_this_machine() -> None:
    for url in ("http://10.0.0.5:8000", "https://rezeption.example", "http://127.0.0.1.evil.example:80"):
        with pytest.raises(NotLocal):
            LoadTest(url, API_KEY, Plan(calls=1, concurrency=1), Scenarios.load(SCENARIOS))


def busy_line() -> tuple[FastAPI, list[str]]:
    """A server whose ring-in is overloaded. Call n's call_inbound is answered 503 (Retry-After: 1)
    always when n % 4 == 0; 503 with Retry-After: 2 twice, then 200, when n % 4 == 1; 409 once, then
    200, when n % 4 == 2; 200 at once otherwise. Every call's first call_started gets 503; the
    call_ended of n % 4 == 3 always gets 500, and so does its first function call. Each delivery is
    logged as "event call_id", in the order they came."""
    app, log = FastAPI(), list[str]()

    def busy(status: int = 503, after: str = "1") -> JSONResponse:
        return JSONResponse({"error": "overloaded"}, status_code=status, headers={"Retry-After": after})

    @app.post("/retell/inbound")
    async def inbound(request: Request) -> Response:
        call_id = (await request.json())["call_inbound"]["call_id"]
        log.append(f"inbound {call_id}")
        n, times = int(call_id.rsplit("-", 1)[1]), log.count(f"inbound {call_id}")
        if n % 4 == 0 or (n % 4 == 1 and times <= 2):
            return busy(after="1" if n % 4 == 0 else "2")
        if n % 4 == 2 and times == 1:
            return busy(409)
        return JSONResponse({"call_inbound": {}})

    @app.post("/retell/webhook")
    async def webhook(request: Request) -> Response:
        body = await request.json()
        call_id = body["call"]["call_id"]
        log.append(f"{body['event']} {call_id}")
        if body["event"] == "call_started" and log.count(f"call_started {call_id}") == 1:
            return busy()
        if body["event"] == "call_ended" and call_id.endswith(("3", "7")):
            return busy(500)
        return Response(status_code=204)

    @app.post("/retell/functions/{name}")
    async def function(name: str, request: Request) -> JSONResponse:
        call_id = (await request.json())["call"]["call_id"]
        log.append(f"{name} {call_id}")
        functions = [e for e in log if e.endswith(f" {call_id}") and not e.startswith(("inbound", "call_"))]
        if int(call_id.rsplit("-", 1)[1]) % 4 == 3 and len(functions) == 1:
            return busy(500)  # the call's first function call (webhooks come in their own time)
        return JSONResponse({"ok": True, "frei": False, "alternativen": []})

    return app, log


async def test_call_inbound_and_webhooks_are_delivered_again_without_a_2xx_as_retell_does() -> None:
    assert REDELIVERIES == 3  # retell.md: "retried up to 3 times" (call_inbound and webhooks)
    app, log = busy_line()
    with serve_app(app) as served:
        plan = Plan(calls=8, concurrency=8, think=0.01, deadline=60, seed=5)
        test = LoadTest(served.url, API_KEY, plan, Scenarios.load(SCENARIOS))
        result = await test.run()

    for call in result.calls:
        n, mine = int(call.call_id.rsplit("-", 1)[1]), [e for e in log if e.endswith(f" {call.call_id}")]
        functions = [e for e in mine if not e.startswith(("inbound", "call_"))]
        if n % 4 == 0:  # never answered: the first delivery and 3 more, then the caller is lost
            assert mine == [f"inbound {call.call_id}"] * (1 + REDELIVERIES)
            assert call.ring_ms is None and call.failures == ["http_error"]
            continue
        assert mine.count(f"inbound {call.call_id}") == {1: 3, 2: 2, 3: 1}[n % 4]
        assert call.ring_ms is not None and (call.ring_ms >= 4000) == (n % 4 == 1)  # Retry-After: 2
        assert functions and len(set(functions)) == len(functions), "a function call is never sent again"
        # the call goes on while its call_started is delivered again, 1 s later
        assert mine.index(functions[0]) < len(mine) - 1 - mine[::-1].index(f"call_started {call.call_id}")
        assert mine.count(f"call_started {call.call_id}") == 2
        assert mine.count(f"call_ended {call.call_id}") == (1 + REDELIVERIES if n % 4 == 3 else 1)
        assert call.webhooks_lost == (1 if n % 4 == 3 else 0)
        assert call.failures == (["http_error"] if n % 4 == 3 else [])
    errors = result.http_errors()  # what each "http_error" failure and each lost webhook was
    functions = {k: n for k, n in errors.items() if not k.startswith("call_")}
    assert (errors["call_inbound: 503"], errors["call_ended: 500"]) == (2, 2), errors
    assert sum(functions.values()) == 2 and all(k.endswith(": 500") for k in functions), errors
    assert errors["call_inbound: 503"] + sum(functions.values()) == result.failure_reasons()["http_error"]
    figures = result.ring_figures()
    assert figures["webhooks_lost"] == 2
    # inbound: 2 x 3 (never) + 2 x 2 (503 twice) + 2 x 1 (409 once); call_started: 6; call_ended: 2 x 3
    assert figures["redeliveries"] == 6 + 4 + 2 + 6 + 6
