"""Reads retry with backoff; the circuit breaker and the rate limit stop calls before they are sent."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from calcom_harness import FakeClock, RunningEmulator
from tests.metrics import Growth, sample

from rezeption.calendars.calcom.breaker import BreakerState, CircuitBreaker
from rezeption.calendars.calcom.client import CalcomClient
from rezeption.calendars.calcom.errors import (
    CalcomCircuitOpen,
    CalcomRateLimited,
    CalcomServerError,
    CalcomTimeout,
    CalcomUnavailable,
)
from rezeption.calendars.calcom.models import CalcomAttendee

BERLIN = ZoneInfo("Europe/Berlin")
DAY_START = datetime(2025, 10, 21, 0, 0, tzinfo=BERLIN)
DAY_END = datetime(2025, 10, 21, 23, 59, tzinfo=BERLIN)
ANNA = CalcomAttendee(name="Anna", time_zone="Europe/Berlin", email="anna@example.com")
SLOTS = {"method": "GET", "path": "/v2/slots"}


async def test_a_read_is_retried_after_json_and_html_5xx_and_then_succeeds(
    client: CalcomClient, emulator: RunningEmulator
) -> None:
    emulator.add_faults(
        {"mode": "server_error", **SLOTS, "nth": 1},
        {"mode": "server_error", **SLOTS, "nth": 2, "params": {"kind": "html", "status": 503}},
    )

    slots = await client.get_slots(42, DAY_START, DAY_END, "Europe/Berlin")

    assert len(slots) == 18
    assert [e["status"] for e in emulator.requests("GET", "/v2/slots")] == [500, 503, 200]


async def test_a_read_gives_up_after_its_attempts_with_a_server_error(
    client: CalcomClient, emulator: RunningEmulator
) -> None:
    emulator.add_faults({"mode": "server_error", **SLOTS, "params": {"kind": "html", "status": 502}})

    with pytest.raises(CalcomServerError) as caught:
        await client.get_slots(42, DAY_START, DAY_END)

    assert caught.value.status_code == 502
    assert "non-JSON" in caught.value.message
    assert caught.value.outcome_unknown is False
    assert len(emulator.requests("GET", "/v2/slots")) == 3


async def test_a_slow_read_times_out_and_the_retry_gets_through(
    emulator: RunningEmulator, make_client: Callable[..., CalcomClient]
) -> None:
    client = make_client(emulator, timeout=0.2, read_attempts=2)
    emulator.add_faults({"mode": "latency", **SLOTS, "count": 1, "params": {"seconds": 0.6}})

    slots = await client.get_slots(42, DAY_START, DAY_END)

    assert slots
    assert len(emulator.requests("GET", "/v2/slots")) == 2


async def test_a_slow_read_with_no_attempts_left_is_a_timeout(
    emulator: RunningEmulator, make_client: Callable[..., CalcomClient]
) -> None:
    client = make_client(emulator, timeout=0.2, read_attempts=1)
    emulator.add_faults({"mode": "latency", **SLOTS, "count": 1, "params": {"seconds": 0.6}})

    with pytest.raises(CalcomTimeout):
        await client.get_slots(42, DAY_START, DAY_END)


async def test_the_breaker_opens_after_consecutive_failures_and_half_opens_after_cooldown(
    emulator: RunningEmulator, make_client: Callable[..., CalcomClient], clock: FakeClock
) -> None:
    breaker = CircuitBreaker(failure_threshold=3, cooldown=timedelta(seconds=30), clock=clock)
    client = make_client(emulator, read_breaker=breaker, read_attempts=1, salon="breaker-test")
    emulator.add_faults({"mode": "server_error", **SLOTS, "count": 4})
    grew = Growth()

    for _ in range(3):
        with pytest.raises(CalcomServerError):
            await client.get_slots(42, DAY_START, DAY_END)
    assert breaker.state is BreakerState.OPEN
    assert sample("rezeption_calendar_breaker_state", salon="breaker-test", breaker="read") == 2
    errors = {"provider": "calcom", "route": "/v2/slots", "kind": "http_5xx"}
    assert grew.of("rezeption_calendar_errors_total", **errors) == 3

    with pytest.raises(CalcomCircuitOpen):
        await client.get_booking("anything")
    assert len(emulator.requests()) == 3  # refused without sending

    clock.advance(31)
    assert breaker.state is BreakerState.HALF_OPEN
    with pytest.raises(CalcomServerError):  # the single probe fails: open again
        await client.get_slots(42, DAY_START, DAY_END)
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CalcomCircuitOpen):
        await client.get_slots(42, DAY_START, DAY_END)

    clock.advance(31)
    slots = await client.get_slots(42, DAY_START, DAY_END)  # the probe succeeds: closed
    assert slots
    assert breaker.state is BreakerState.CLOSED
    assert len(emulator.requests()) == 5
    assert sample("rezeption_calendar_breaker_state", salon="breaker-test", breaker="read") == 0


async def test_the_breaker_stops_a_read_retry_loop_early(
    emulator: RunningEmulator, make_client: Callable[..., CalcomClient], clock: FakeClock
) -> None:
    breaker = CircuitBreaker(failure_threshold=2, cooldown=timedelta(seconds=30), clock=clock)
    client = make_client(emulator, read_breaker=breaker, read_attempts=5)
    emulator.add_faults({"mode": "server_error", **SLOTS})

    with pytest.raises(CalcomCircuitOpen) as caught:
        await client.get_slots(42, DAY_START, DAY_END)

    assert isinstance(caught.value, CalcomUnavailable)
    assert len(emulator.requests()) == 2


async def test_a_4xx_answer_counts_as_healthy_for_the_breaker(
    emulator: RunningEmulator, make_client: Callable[..., CalcomClient], clock: FakeClock
) -> None:
    breaker = CircuitBreaker(failure_threshold=2, cooldown=timedelta(seconds=30), clock=clock)
    client = make_client(emulator, read_breaker=breaker, read_attempts=1)
    emulator.add_faults({"mode": "server_error", **SLOTS, "count": 1})

    with pytest.raises(CalcomServerError):
        await client.get_slots(42, DAY_START, DAY_END)
    with pytest.raises(Exception, match="not found"):
        await client.get_booking("unknown-uid")
    with pytest.raises(Exception, match="not found"):
        await client.get_booking("unknown-uid")

    assert breaker.consecutive_failures == 0
    assert breaker.state is BreakerState.CLOSED


async def test_429_is_not_retried_and_blocks_further_calls_until_the_reset(
    start_emulator: Callable[..., RunningEmulator],
    make_client: Callable[..., CalcomClient],
    clock: FakeClock,
) -> None:
    emulator = start_emulator(rate_limit={"limit": 3, "window_seconds": 60, "block_seconds": 60})
    other_replica = make_client(emulator)
    for _ in range(3):
        await other_replica.list_event_types()  # the same key's quota, used up elsewhere
    client = make_client(emulator)

    with pytest.raises(CalcomRateLimited) as caught:
        await client.list_event_types()
    assert caught.value.sent is True
    assert caught.value.retry_after_seconds == 60
    assert caught.value.limit == 3
    assert len(emulator.requests()) == 4

    with pytest.raises(CalcomRateLimited) as local:
        await client.get_slots(42, DAY_START, DAY_END)
    assert local.value.sent is False
    assert len(emulator.requests()) == 4  # refused locally

    clock.advance(61)
    emulator.set_clock(advance_seconds=61)
    assert await client.list_event_types()


async def test_an_exhausted_remaining_header_blocks_before_the_429(
    start_emulator: Callable[..., RunningEmulator],
    make_client: Callable[..., CalcomClient],
) -> None:
    emulator = start_emulator(rate_limit={"limit": 2, "window_seconds": 60, "block_seconds": 60})
    client = make_client(emulator, salon="remaining-test")
    await client.list_event_types()
    assert sample("rezeption_calcom_rate_limit_remaining", salon="remaining-test") == 1
    await client.list_event_types()  # Remaining: 0
    assert sample("rezeption_calcom_rate_limit_remaining", salon="remaining-test") == 0

    with pytest.raises(CalcomRateLimited) as caught:
        await client.list_event_types()

    assert caught.value.sent is False
    assert 0 < caught.value.retry_after_seconds <= 60
    assert len(emulator.requests()) == 2


async def test_an_injected_429_carries_the_reset_and_no_retry_after(
    client: CalcomClient, emulator: RunningEmulator
) -> None:
    emulator.add_faults({"mode": "rate_limited", **SLOTS, "count": 1, "params": {"reset_seconds": 17}})

    with pytest.raises(CalcomRateLimited) as caught:
        await client.get_slots(42, DAY_START, DAY_END)

    assert caught.value.retry_after_seconds == 17
    assert caught.value.code == "ThrottlerException"
    assert len(emulator.requests("GET", "/v2/slots")) == 1
    raw = emulator.admin.get(
        "/v2/slots",
        params={"eventTypeId": 42, "start": "2025-10-21T00:00:00Z", "end": "2025-10-21T12:00:00Z"},
        headers={"cal-api-version": "2024-09-04"},
    )
    assert "retry-after" not in raw.headers
    assert raw.headers["x-ratelimit-limit-default"] == "120"


async def test_a_write_is_never_retried_even_when_reads_would_be(
    client: CalcomClient, emulator: RunningEmulator
) -> None:
    emulator.add_faults({"mode": "server_error", "method": "POST", "path": "/v2/bookings"})

    with pytest.raises(CalcomServerError):
        await client.create_booking(42, datetime(2025, 10, 21, 10, tzinfo=BERLIN), ANNA, token="t")

    assert len(emulator.requests("POST", "/v2/bookings")) == 1
