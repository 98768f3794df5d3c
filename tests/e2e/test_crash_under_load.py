"""`rezeption serve` killed (SIGKILL) three times at random moments while phone calls run against it,
started again on the same port each time (`ops.crashload`, the short form of bench/crash.py), on
PostgreSQL with the local calendar. Calls in flight at a kill hear a dropped connection; a call
ringing while it is down is delivered again, as Retell does, and connects if the server is back in
time; afterwards the separate checker finds no double booking, no
pending row, and every caller who heard "gebucht" (and kept it) holding exactly one confirmed
appointment, every other caller what they heard (none after a cancellation, none or one after a
write whose answer never came)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from tests.conftest import DEMO_SALON, ROOT, empty_tables
from tests.e2e.test_server_and_cli import free_port

from rezeption.ops.crashload import ServerProcess, child_env, kill_during_load
from rezeption.ops.loadcheck import check
from rezeption.ops.loadtest import LoadTest, Plan, Scenarios
from rezeption.store.db import Database
from rezeption.store.salon_file import read_salon
from rezeption.store.salon_import import import_salon

pytestmark = pytest.mark.postgres
API_KEY = "key_e2e_crashload_0123456789abcdef"
SCENARIOS = ROOT / "bench" / "loadtest_scenarios.yaml"


@pytest.fixture
async def salon_db(postgres_migrated: str) -> AsyncIterator[Database]:
    database = Database.from_url(postgres_migrated, pool_size=5)
    await empty_tables(database)
    await import_salon(database, read_salon(DEMO_SALON), now=datetime.now(UTC))
    try:
        yield database
    finally:
        await database.dispose()


async def test_three_kills_under_load_lose_no_booking_and_book_nothing_twice(
    salon_db: Database, postgres_migrated: str
) -> None:
    env = child_env(
        REZEPTION_DATABASE_URL=postgres_migrated,
        REZEPTION_RETELL_API_KEY=API_KEY,
        REZEPTION_ENVIRONMENT="development",
        REZEPTION_LOG_LEVEL="warning",
    )
    server = ServerProcess(free_port(), env, ready_timeout=30)
    scenarios = Scenarios.load(SCENARIOS)

    def make_load(round_: int) -> LoadTest:
        plan = Plan(
            calls=40, concurrency=8, think=0.1, deadline=60, seed=40 + round_, first_caller=40 * round_
        )
        return LoadTest(server.url, API_KEY, plan, scenarios)

    await server.start()
    try:
        run = await kill_during_load(server, make_load, kills=3, uptime=(0.3, 1.2), seed=2, max_rounds=8)
    finally:
        server.stop()

    calls = run.all_calls  # the earlier calls too: a kill may land while they book
    found = await check(salon_db, run.expected_active(), call_prefix="load-", starts=run.expected_starts())
    assert run.kills == 3 and server.starts == 4
    assert sum(c.booked for c in calls) >= 5, [(c.refusals, c.failures) for c in calls]
    assert any("http_error" in c.failures for c in calls)  # the kills were heard
    assert found.double_bookings == 0
    assert found.pending_left == 0
    assert found.lost_confirmed == []
    assert found.mismatched_calls == [] and found.wrong_time == []
