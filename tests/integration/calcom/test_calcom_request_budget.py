"""The request budget of one Cal.com key, shared by two processes through one Redis (issue 12).

The emulator keeps Cal.com's rule: over the limit in a window is a 429, then the key is blocked.
Here the window is 10 s with 30 requests (Cal.com's is 60 s with 120; the same rule, scaled so
the test runs in seconds), and the budget's sliding window allows 28 in any 10 s, under the 30.
Two processes sending as fast as their budget lets them, for 12 s, never meet a 429. The
control: the same two processes with a window each (no Redis) exceed the limit and are blocked,
so the test can fail. Both ignore Cal.com's X-RateLimit-Remaining, which alone would often keep
two processes apart: the window must do it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from calcom_harness import API_KEY, RunningEmulator
from tests.conftest import redis_url

from rezeption.calendars.calcom.budget import BudgetConfig, MemoryRequestBudget

WINDOW = {"limit": 30, "window_seconds": 10, "block_seconds": 10}
RUN_SECONDS = 12.0
REDIS = redis_url(14)

HAMMER = """
import asyncio, json, sys, time, uuid
from rezeption.calendars.calcom.budget import BudgetConfig, request_budget_from_url
from rezeption.calendars.calcom.client import CalcomClient
from rezeption.calendars.calcom.errors import CalcomRateLimited

url, key, redis_url = sys.argv[1], sys.argv[2], sys.argv[3] or None
seconds, start_at, blind = float(sys.argv[4]), float(sys.argv[5]), sys.argv[6] == "blind"
config = BudgetConfig(per_minute=28, window_seconds=10, write_reserve=2, read_reserve=2)

async def main():
    budget = request_budget_from_url(redis_url, key, config)
    if blind:  # ignore Cal.com's X-RateLimit-Remaining: only the window itself keeps us under
        async def ignore(remaining):
            return None
        budget.observe = ignore
    client = CalcomClient(url, key, budget=budget, read_attempts=1, timeout=5)
    sent = refused = limited = 0
    while time.time() < start_at:
        await asyncio.sleep(0.005)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            await client.list_event_types()
            sent += 1
        except CalcomRateLimited as error:
            if error.sent:
                limited += 1
            else:
                refused += 1
            await asyncio.sleep(0.02)
    await client.aclose()
    print(json.dumps({"sent": sent, "refused": refused, "limited": limited}))

asyncio.run(main())
"""


def hammer(emulator: RunningEmulator, redis_url: str, blind: bool = True) -> list[dict[str, int]]:
    """Two processes on one key, started together; what each one saw."""
    start_at = time.time() + 2.0  # both import first, then begin at the same instant
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                HAMMER,
                emulator.url,
                API_KEY,
                redis_url,
                str(RUN_SECONDS),
                str(start_at),
                "blind" if blind else "seeing",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        results.append(json.loads(out))
    return results


@pytest.mark.redis
def test_two_processes_sharing_one_redis_budget_never_meet_a_429(
    start_emulator: Callable[..., RunningEmulator],
) -> None:
    import redis

    redis.Redis.from_url(REDIS).flushdb()
    emulator = start_emulator(rate_limit=WINDOW)
    results = hammer(emulator, REDIS)
    assert sum(r["limited"] for r in results) == 0
    assert len(emulator.requests("GET", "/v2/event-types")) == sum(r["sent"] for r in results)
    # They were busy: the budget, not idleness, kept them under the limit.
    assert sum(r["sent"] for r in results) >= 24 and sum(r["refused"] for r in results) > 0


@pytest.mark.redis
def test_the_control_two_processes_with_a_bucket_each_are_blocked(
    start_emulator: Callable[..., RunningEmulator],
) -> None:
    emulator = start_emulator(rate_limit=WINDOW)
    results = hammer(emulator, "")
    assert sum(r["limited"] for r in results) > 0, "without the shared budget the key is blocked"


async def test_reads_leave_the_reserve_to_writes_and_background_waits_its_turn() -> None:
    budget = MemoryRequestBudget(
        BudgetConfig(per_minute=6, window_seconds=1.0, write_reserve=2, read_reserve=2)
    )
    assert [await budget.take("read") for _ in range(5)] == [True, True, True, True, False]
    assert await budget.take("write") and await budget.take("write")
    assert not await budget.take("read"), "a caller's read never waits"
    began = time.monotonic()
    assert await budget.take("write"), "a write waits briefly for the oldest request to leave the window"
    assert 0.5 < time.monotonic() - began < 1.5
    await budget.observe(0)  # Cal.com says nothing is left: believe it
    assert not await budget.take("read")


async def test_a_background_read_waits_until_the_window_has_room_above_both_reserves() -> None:
    budget = MemoryRequestBudget(
        BudgetConfig(per_minute=5, window_seconds=0.3, write_reserve=1, read_reserve=1)
    )
    for _ in range(3):
        assert await budget.take("background")
    began = time.monotonic()
    assert await asyncio.wait_for(budget.take("background"), 2)
    assert time.monotonic() - began >= 0.2, "it waited for the first request to leave the window"


async def test_a_busy_minute_may_use_the_whole_window_at_once() -> None:
    """50 callers booking within a second: Cal.com allows it (120 a minute), so do we; the 117th
    request of the minute is refused (after the write's short wait)."""
    budget = MemoryRequestBudget(BudgetConfig(write_patience=0.05))
    assert all([await budget.take("write") for _ in range(116)])
    assert not await budget.take("write")


@pytest.mark.redis
async def test_the_shared_window_counts_every_process_and_frees_places_as_they_age() -> None:
    import redis.asyncio as aioredis

    from rezeption.calendars.calcom.budget import RedisRequestBudget

    client = aioredis.Redis.from_url(REDIS)
    await client.flushdb()
    config = BudgetConfig(per_minute=4, window_seconds=0.5, write_reserve=1, read_reserve=1, write_patience=0)
    one, two = RedisRequestBudget(client, "cal_x", config), RedisRequestBudget(client, "cal_x", config)
    assert [await one.take("write"), await two.take("write"), await one.take("read")] == [True, True, True]
    assert not await two.take("read"), "the fourth place is the writes' reserve"
    assert await two.take("write") and not await one.take("write")
    await asyncio.sleep(0.6)
    assert await one.take("read"), "the window moved on"
    await client.aclose()
