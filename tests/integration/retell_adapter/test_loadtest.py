"""The load generator against our server under uvicorn, as CI can afford it (24 calls, 8 at once,
short think times): every call's outcome is checked from the database by the separate checker (no
double booking, no pending row left, each caller's appointments as they were told), and the
generator refuses any address but this machine."""

from __future__ import annotations

import pytest
from tests.conftest import ROOT
from tests.integration.retell_adapter.conftest import API_KEY, RetellClient

from rezeption.domain.clock import FixedClock
from rezeption.ops.loadcheck import check
from rezeption.ops.loadtest import LoadTest, NotLocal, Plan, Scenarios
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
