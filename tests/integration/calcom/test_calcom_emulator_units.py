"""Pure pieces of the emulator and client, tested without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from rezeption.calendars.calcom.breaker import BreakerState, CircuitBreaker
from rezeption.calendars.calcom.errors import CalcomCircuitOpen
from rezeption.calendars.calcom.models import parse_instant, to_wire
from rezeption.calendars.calcom.transport import mask_phone, version_for
from rezeption.emulators.calcom.config import FaultRule, ScheduleConfig, load_config
from rezeption.emulators.calcom.faults import FaultBook
from rezeption.emulators.calcom.requests import parse_slot_query
from rezeption.emulators.calcom.slots import Interval, SlotRules, free_slots, working_windows
from rezeption.emulators.calcom.wire import ApiError

BERLIN = ZoneInfo("Europe/Berlin")
MONDAY = ScheduleConfig(id=1, time_zone="Europe/Berlin", weekly={"mon": ["09:00-12:00"]})
DAY = (datetime(2025, 10, 20, 0, 0, tzinfo=UTC), datetime(2025, 10, 20, 23, 59, tzinfo=UTC))
HALF_HOUR = SlotRules(duration=timedelta(minutes=30), interval=timedelta(minutes=30))


def starts(rules: SlotRules, busy: tuple[Interval, ...] = (), now: datetime = DAY[0]) -> list[str]:
    windows = working_windows(MONDAY, *DAY)
    found = free_slots(windows, rules, start=DAY[0], end=DAY[1], now=now, busy=busy)
    return [s.astimezone(BERLIN).strftime("%H:%M") for s in found]


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 10, 20, hour, minute, tzinfo=BERLIN)


def test_a_morning_window_gives_six_half_hour_slots() -> None:
    assert starts(HALF_HOUR) == ["09:00", "09:30", "10:00", "10:30", "11:00", "11:30"]


def test_a_booking_and_its_buffers_hide_the_neighbouring_slots() -> None:
    rules = SlotRules(
        duration=timedelta(minutes=30),
        interval=timedelta(minutes=30),
        before_buffer=timedelta(minutes=15),
        after_buffer=timedelta(minutes=15),
    )
    assert starts(rules, busy=(Interval(at(10), at(10, 30)),)) == ["09:00", "11:00", "11:30"]


def test_minimum_notice_and_interval_shape_the_list() -> None:
    rules = SlotRules(
        duration=timedelta(minutes=90), interval=timedelta(minutes=30), minimum_notice=timedelta(hours=1)
    )
    assert starts(rules, now=at(9, 10)) == ["10:30"]


def test_a_date_only_end_and_a_midnight_end_are_widened() -> None:
    date_only = parse_slot_query({"eventTypeId": "1", "start": "2025-10-20", "end": "2025-10-20"})
    midnight = parse_slot_query({"eventTypeId": "1", "start": "2025-10-20", "end": "2025-10-21T00:00:00Z"})

    assert date_only.start == DAY[0]
    assert date_only.end == datetime(2025, 10, 20, 23, 59, 59, 999000, tzinfo=UTC)
    assert midnight.end == datetime(2025, 10, 21, 23, 59, 59, 999000, tzinfo=UTC)


def test_slot_query_without_any_event_type_selector_is_rejected() -> None:
    with pytest.raises(ApiError) as caught:
        parse_slot_query({"start": "2025-10-20", "end": "2025-10-21"})
    assert caught.value.status == 400


def test_fault_rules_fire_by_nth_count_and_seeded_probability() -> None:
    book = FaultBook(seed=1)
    book.add(
        [
            FaultRule(mode="server_error", method="GET", path="/v2/slots", nth=2),
            FaultRule(mode="latency", path="/v2/bookings*", count=2),
        ]
    )
    slot_hits = [bool(book.select("GET", "/v2/slots")) for _ in range(4)]
    booking_hits = [bool(book.select("POST", "/v2/bookings/abc/cancel")) for _ in range(4)]

    assert slot_hits == [False, True, False, False]
    assert booking_hits == [True, True, False, False]

    def draw(seed: int) -> list[bool]:
        flaky = FaultBook(seed=seed)
        flaky.add([FaultRule(mode="reset", probability=0.5)])
        return [bool(flaky.select("GET", "/v2/slots")) for _ in range(20)]

    assert draw(3) == draw(3)
    assert 0 < sum(draw(3)) < 20


def test_the_config_loads_from_yaml_and_refuses_naive_now(tmp_path: Path) -> None:
    path = tmp_path / "calcom.yaml"
    path.write_text(
        "now: 2025-10-20T06:00:00Z\nseed: 3\nfaults:\n  - {mode: latency, params: {seconds: 1}}\n"
    )
    config = load_config(path)

    assert config.now == datetime(2025, 10, 20, 6, 0, tzinfo=UTC)
    assert config.faults[0].mode == "latency"
    with pytest.raises(ValueError, match="zone"):
        load_config({"now": "2025-10-20T06:00:00"})


def test_the_breaker_admits_a_few_probes_when_half_open() -> None:
    now = [datetime(2025, 1, 1, tzinfo=UTC)]
    breaker = CircuitBreaker(
        failure_threshold=2, cooldown=timedelta(seconds=10), half_open_probes=2, clock=lambda: now[0]
    )
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CalcomCircuitOpen):
        breaker.before_call()

    now[0] += timedelta(seconds=10)
    breaker.before_call()
    breaker.before_call()  # a second probe: recovery is not one request's luck
    with pytest.raises(CalcomCircuitOpen):
        breaker.before_call()  # a third caller while both probes are in flight
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED, "a closed breaker counts from zero again"


def test_wire_instants_are_utc_z_and_parse_back_aware() -> None:
    assert to_wire(datetime(2025, 10, 26, 9, 0, tzinfo=BERLIN)) == "2025-10-26T08:00:00.000Z"
    assert parse_instant("2025-03-07T09:00:00.000+01:00") == datetime(2025, 3, 7, 8, 0, tzinfo=UTC)
    assert parse_instant("2025-03-07T09:00:00").tzinfo is UTC
    with pytest.raises(ValueError):
        to_wire(datetime(2025, 10, 26, 9, 0))  # noqa: DTZ001


def test_version_headers_follow_the_resource() -> None:
    assert version_for("/v2/slots/reservations/x") == "2024-09-04"
    assert version_for("/v2/bookings/abc/cancel") == "2024-08-13"
    assert version_for("/v2/event-types/42") == "2024-06-14"
    assert version_for("/v2/webhooks") is None


def test_phone_numbers_are_masked_in_log_text() -> None:
    assert mask_phone("call +49 151 2345 6789 now") == "call ***89 now"
