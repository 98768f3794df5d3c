"""Writes are never blindly retried; ambiguous outcomes are read back by our token."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from calcom_harness import RunningEmulator

from rezeption.calendars.calcom.client import CalcomClient
from rezeption.calendars.calcom.errors import (
    CalcomConflict,
    CalcomNothingBooked,
    CalcomOutcomeUnknown,
    CalcomServerError,
    CalcomSlotUnavailable,
    CalcomTimeout,
    CalcomUnavailable,
)
from rezeption.calendars.calcom.models import CalcomAttendee

BERLIN = ZoneInfo("Europe/Berlin")
ANNA = CalcomAttendee(name="Anna Schmidt", time_zone="Europe/Berlin", phone_number="+4915123456789")
TEN = datetime(2025, 10, 21, 10, 0, tzinfo=BERLIN)
CREATE = {"method": "POST", "path": "/v2/bookings"}


def creates(emulator: RunningEmulator) -> list[dict[str, object]]:
    return emulator.requests("POST", "/v2/bookings")


def committed(emulator: RunningEmulator) -> list[dict[str, object]]:
    return [b for b in emulator.state()["bookings"] if b["status"] != "cancelled"]


async def test_a_5xx_on_create_is_not_retried_and_reports_an_unknown_outcome(
    client: CalcomClient, emulator: RunningEmulator
) -> None:
    emulator.add_faults({"mode": "server_error", **CREATE, "count": 1})

    with pytest.raises(CalcomServerError) as caught:
        await client.create_booking(42, TEN, ANNA, token="t1")

    assert caught.value.outcome_unknown is True
    assert len(creates(emulator)) == 1


async def test_safe_create_recovers_the_booking_when_the_response_is_lost_after_commit(
    client: CalcomClient, emulator: RunningEmulator
) -> None:
    emulator.add_faults({"mode": "lost_response", **CREATE, "count": 1})

    booking = await client.create_booking_safely(42, TEN, ANNA, token="tok-lost")

    assert booking.token == "tok-lost"
    assert booking.start == TEN
    assert len(creates(emulator)) == 1
    assert creates(emulator)[0]["dropped"] is True
    assert [b["uid"] for b in committed(emulator)] == [booking.uid]


async def test_safe_create_recovers_after_a_client_timeout_on_a_committed_create(
    emulator: RunningEmulator, make_client: Callable[..., CalcomClient]
) -> None:
    client = make_client(emulator, timeout=0.3)
    emulator.add_faults({"mode": "lost_response", **CREATE, "count": 1, "params": {"delay": 1.0}})

    booking = await client.create_booking_safely(42, TEN, ANNA, token="tok-slow")

    assert booking.token == "tok-slow"
    assert len(creates(emulator)) == 1


async def test_a_plain_create_times_out_as_an_ambiguous_timeout(
    emulator: RunningEmulator, make_client: Callable[..., CalcomClient]
) -> None:
    client = make_client(emulator, timeout=0.3)
    emulator.add_faults({"mode": "lost_response", **CREATE, "count": 1, "params": {"delay": 1.0}})

    with pytest.raises(CalcomTimeout) as caught:
        await client.create_booking(42, TEN, ANNA, token="t")

    assert caught.value.outcome_unknown is True


async def test_safe_create_says_nothing_was_booked_when_the_server_failed_before_commit(
    client: CalcomClient, emulator: RunningEmulator
) -> None:
    emulator.add_faults(
        {"mode": "server_error", **CREATE, "count": 1, "params": {"kind": "html", "status": 502}}
    )

    with pytest.raises(CalcomNothingBooked, match="nothing was booked"):
        await client.create_booking_safely(42, TEN, ANNA, token="tok-none")

    assert len(creates(emulator)) == 1
    assert committed(emulator) == []


async def test_safe_create_after_a_connection_reset_before_processing_books_nothing(
    client: CalcomClient, emulator: RunningEmulator
) -> None:
    emulator.add_faults({"mode": "reset", **CREATE, "count": 1})

    with pytest.raises(CalcomNothingBooked):
        await client.create_booking_safely(42, TEN, ANNA, token="tok-reset")

    assert len(creates(emulator)) == 1


async def test_safe_create_reports_unknown_when_reading_back_fails_too(
    client: CalcomClient, emulator: RunningEmulator
) -> None:
    emulator.add_faults(
        {"mode": "lost_response", **CREATE, "count": 1},
        {"mode": "server_error", "method": "GET", "path": "/v2/bookings", "count": 3},
    )

    with pytest.raises(CalcomOutcomeUnknown) as caught:
        await client.create_booking_safely(42, TEN, ANNA, token="tok-unknown")

    assert isinstance(caught.value, CalcomUnavailable)
    assert len(creates(emulator)) == 1
    assert len(emulator.requests("GET", "/v2/bookings")) == 3  # the read-back was retried


async def test_safe_create_is_idempotent_when_the_saga_repeats_it(
    client: CalcomClient, emulator: RunningEmulator
) -> None:
    first = await client.create_booking_safely(42, TEN, ANNA, token="tok-again")

    again = await client.create_booking_safely(42, TEN, ANNA, token="tok-again")

    assert again.uid == first.uid
    assert len(committed(emulator)) == 1


async def test_safe_create_recognises_its_own_twin_behind_a_duplicate_conflict(
    client: CalcomClient, emulator: RunningEmulator
) -> None:
    emulator.add_faults({"mode": "concurrent_duplicate", **CREATE, "count": 1})

    booking = await client.create_booking_safely(42, TEN, ANNA, token="tok-twin")

    assert booking.token == "tok-twin"
    assert len(committed(emulator)) == 1


async def test_a_stolen_slot_is_reported_as_unavailable_even_by_the_safe_create(
    client: CalcomClient, emulator: RunningEmulator
) -> None:
    emulator.add_faults({"mode": "slot_stolen", **CREATE, "count": 1})

    with pytest.raises(CalcomSlotUnavailable):
        await client.create_booking_safely(42, TEN, ANNA, token="tok-stolen")

    sources = [b["source"] for b in emulator.state()["bookings"]]
    assert sources == ["fault:slot_stolen"]


async def test_two_callers_racing_for_the_same_slot_get_one_booking_and_one_conflict(
    emulator: RunningEmulator, make_client: Callable[..., CalcomClient]
) -> None:
    emulator.add_faults({"mode": "race_window", **CREATE, "params": {"seconds": 0.3}})
    first, second = make_client(emulator), make_client(emulator)
    ben = CalcomAttendee(name="Ben", time_zone="Europe/Berlin", email="ben@example.com")

    results = await asyncio.gather(
        first.create_booking(42, TEN, ANNA, token="a"),
        second.create_booking(42, TEN, ben, token="b"),
        return_exceptions=True,
    )

    conflicts = [r for r in results if isinstance(r, CalcomConflict)]
    assert len(conflicts) == 1
    assert "booking_conflict_error" in conflicts[0].message
    assert len(committed(emulator)) == 1


async def test_safe_cancel_after_a_lost_response_returns_the_cancelled_booking(
    client: CalcomClient, emulator: RunningEmulator
) -> None:
    booking = await client.create_booking(42, TEN, ANNA, token="t")
    emulator.add_faults(
        {"mode": "lost_response", "method": "POST", "path": "/v2/bookings/*/cancel", "count": 1}
    )

    cancelled = await client.cancel_booking_safely(booking.uid, reason="krank")

    assert cancelled.status == "cancelled"
    assert len(emulator.requests("POST", f"/v2/bookings/{booking.uid}/cancel")) == 1


async def test_safe_reschedule_after_a_lost_response_follows_the_new_uid(
    client: CalcomClient, emulator: RunningEmulator
) -> None:
    booking = await client.create_booking(42, TEN, ANNA, token="t")
    emulator.add_faults(
        {"mode": "lost_response", "method": "POST", "path": "/v2/bookings/*/reschedule", "count": 1}
    )
    later = datetime(2025, 10, 22, 15, 0, tzinfo=BERLIN)

    moved = await client.reschedule_booking_safely(booking.uid, later)

    assert moved.start == later
    assert moved.rescheduled_from_uid == booking.uid
    assert len(emulator.requests("POST", f"/v2/bookings/{booking.uid}/reschedule")) == 1
