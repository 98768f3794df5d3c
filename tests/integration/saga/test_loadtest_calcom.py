"""`rezeption loadtest` against a server whose salon books into the Cal.com emulator under the
`faulty` profile (every request about a second, 5xx, slow and lost answers, stolen slots; Cal.com's
real limit of 120 requests a minute), as CI can afford it: 16 calls, 8 at once. Then the reconciler
runs and the separate checker reads both sides: no double booking here or at Cal.com, no orphan at
Cal.com, nothing confirmed here that Cal.com lacks, no pending row, every caller who heard "gebucht"
holding exactly one confirmed appointment on both sides, and about one Cal.com request per call (the
run's calls; the earlier calls that booked what its cancel and reschedule callers change come
first and are not counted)."""

from __future__ import annotations

import itertools
import time

import httpx
import pytest
from tests.conftest import ROOT
from tests.integration.retell_adapter.conftest import API_KEY, running

from rezeption.app import create_app
from rezeption.calendars.directory import CalendarDirectory
from rezeption.domain.clock import FixedClock
from rezeption.emulators.retell.caller import RetellPhone
from rezeption.ops.loadcheck import check, check_calcom, emulator_requests_seen, reconcile_after_run
from rezeption.ops.loadtest import CALCOM_FAULT_PROFILES, LoadTest, Plan, Scenarios
from rezeption.settings import Settings
from rezeption.store.db import Database
from rezeption.store.salon_file import SalonFile
from rezeption.store.uow import SqlUnitOfWork

from .conftest import Emulator
from .emulator_salon import calcom_salon

pytestmark = pytest.mark.postgres
SCENARIOS = ROOT / "bench" / "loadtest_scenarios.yaml"


async def first_call_rings(url: str, salon: SalonFile, clock: FixedClock) -> None:
    """The period's first call_inbound: its prefetch reads the slots (the background refresher
    reads nothing for a salon nobody called)."""
    phone = RetellPhone(url, API_KEY, now_ms=lambda: int(clock.now().timestamp() * 1000))
    envelope = {"call_id": "first-of-the-day", "agent_id": salon.retell_agent_ids[0],
                "from_number": "+4915100000000", "to_number": salon.phone_numbers[0]}  # fmt: skip
    answer = await phone.post("/retell/inbound", {"event": "call_inbound", "call_inbound": envelope})
    answer.raise_for_status()


def warmed(emulator: Emulator, event_types: int) -> None:
    """Wait (at most 20 s) until the server has read every event type's slots once."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if len([e for e in emulator.requests("GET", "/v2/slots") if e["status"] == 200]) >= event_types:
            return
        time.sleep(0.1)
    raise AssertionError("the server did not warm its slot picture")


async def test_a_short_load_through_faulty_calcom_leaves_nothing_behind(
    pg: Database, postgres_migrated: str, emulator: Emulator, clock: FixedClock, tenant_id: int
) -> None:
    salon = calcom_salon(emulator.url)
    types = {v for m in salon.calendar.settings["event_types"].values() for v in dict(m).values()}
    settings = Settings(database_url=postgres_migrated, retell_api_key=API_KEY, environment="test")
    stamps = itertools.count()
    plan = Plan(calls=16, concurrency=8, think=0.05, deadline=90, seed=4,
                to_number=salon.phone_numbers[0], agent_id=salon.retell_agent_ids[0])  # fmt: skip
    with running(create_app(settings, clock=clock)) as url:
        await first_call_rings(url, salon, clock)
        warmed(emulator, len(types))
        emulator.faults(*CALCOM_FAULT_PROFILES["faulty"])
        test = LoadTest(url, API_KEY, plan, Scenarios.load(SCENARIOS),
                        now_ms=lambda: int(clock.now().timestamp() * 1000) + next(stamps))  # fmt: skip
        await test.book_earlier()  # what cancel and reschedule callers change, booked in earlier calls
        began = await emulator_requests_seen(emulator.url)
        result = await test.run()
        ended = await emulator_requests_seen(emulator.url)
    # the server has stopped; what it left is settled as the worker would after the pending deadline
    # (the faults off: the reconciler lists every event type's bookings, ~1 s each under them; the
    # benchmark bench/loadtest_calcom.py reconciles with them on)
    emulator.clear_faults()
    calendars = CalendarDirectory(SqlUnitOfWork(pg), clock=clock)
    try:
        await reconcile_after_run(SqlUnitOfWork(pg), calendars, clock)
    finally:
        await calendars.aclose()
    expected = result.expected_active()
    prefix = f"load-{test.run_id}-"
    found = await check(pg, expected, call_prefix=prefix, starts=result.expected_starts())
    remote = await check_calcom(pg, emulator.url, expected, call_prefix=prefix, calls=16,
                                requests_from=began, requests_until=ended)  # fmt: skip

    outcomes = [(c.scenario, c.refusals, c.failures) for c in result.calls]
    assert len(result.calls) == 16
    assert sum(c.booked for c in result.calls) >= 6, outcomes
    assert found.double_bookings == 0 and remote.double_bookings == 0
    assert remote.orphans == [] and remote.missing_at_calcom == [] and remote.time_differs == []
    assert found.pending_left == 0
    assert found.mismatched_calls == [], (found.mismatched_calls, outcomes)
    assert found.wrong_time == [], found.wrong_time
    assert found.lost_confirmed == [] and remote.lost_confirmed == []
    assert remote.requests_by_kind.get("create", 0) >= sum(c.booked for c in result.calls)
    # the run's calls only: cancel and reschedule callers change what an earlier call booked, so
    # three in four calls write once, and faults add a resend now and then (the target: <= 1)
    assert remote.requests_per_call <= 1.5, remote.requests_by_kind
    assert remote.rate_limited == 0
    window = emulator.admin.get("/_emulator/requests").json()[began:ended]
    assert window and all("latency" in e["faults"] for e in window)  # every request took ~1 s


def test_the_checker_reads_only_an_emulator_on_this_machine() -> None:
    import asyncio

    from rezeption.ops.loadtest import NotLocal

    with pytest.raises(NotLocal):
        asyncio.run(emulator_requests_seen("http://10.1.2.3:8765"))
    with pytest.raises(httpx.ConnectError):
        asyncio.run(emulator_requests_seen("http://127.0.0.1:9"))
