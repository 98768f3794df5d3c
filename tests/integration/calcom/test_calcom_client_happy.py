"""The client against the emulator when nothing goes wrong: slots, holds, bookings, event types."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from calcom_harness import RunningEmulator

from rezeption.calendars.calcom.client import CalcomClient
from rezeption.calendars.calcom.models import TOKEN_METADATA_KEY, CalcomAttendee

BERLIN = ZoneInfo("Europe/Berlin")
ANNA = CalcomAttendee(name="Anna Schmidt", time_zone="Europe/Berlin", email="anna@example.com", language="de")


def berlin(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 10, day, hour, minute, tzinfo=BERLIN)


async def test_tuesday_slots_are_aware_berlin_times_within_opening_hours(client: CalcomClient) -> None:
    slots = await client.get_slots(42, berlin(21, 0), berlin(21, 23, 59), "Europe/Berlin")

    assert slots[0].start == berlin(21, 9, 0)
    assert slots[-1].start == berlin(21, 17, 30)
    assert len(slots) == 18
    assert all(slot.start.tzinfo is not None for slot in slots)
    assert all(slot.duration == timedelta(minutes=30) for slot in slots)
    assert str(slots[0].start.tzinfo) == "Europe/Berlin"


async def test_a_booked_slot_disappears_and_the_booking_round_trips(client: CalcomClient) -> None:
    booking = await client.create_booking(42, berlin(21, 10), ANNA, token="tok-1", metadata={"note": "x"})

    assert booking.status == "accepted"
    assert booking.start == berlin(21, 10)
    assert booking.end == berlin(21, 10, 30)
    assert booking.metadata == {"note": "x", TOKEN_METADATA_KEY: "tok-1"}
    assert booking.token == "tok-1"
    assert booking.event_type_id == 42
    assert booking.attendees[0].email == "anna@example.com"
    assert len(booking.uid) == 22

    fetched = await client.get_booking(booking.uid)
    assert fetched == booking

    slots = await client.get_slots(42, berlin(21, 0), berlin(21, 23, 59), "Europe/Berlin")
    assert berlin(21, 10) not in [slot.start for slot in slots]
    assert berlin(21, 10, 30) in [slot.start for slot in slots]


async def test_list_bookings_filters_by_email_window_and_status(client: CalcomClient) -> None:
    first = await client.create_booking(42, berlin(21, 10), ANNA, token="a")
    other = CalcomAttendee(name="Ben", time_zone="Europe/Berlin", email="ben@example.com")
    await client.create_booking(42, berlin(22, 11), other, token="b")
    cancelled = await client.create_booking(42, berlin(23, 12), ANNA, token="c")
    await client.cancel_booking(cancelled.uid)

    by_email = await client.list_bookings(attendee_email="anna@example.com", status=["upcoming"])
    assert [b.uid for b in by_email.bookings] == [first.uid]

    window = await client.list_bookings(after_start=berlin(22, 0), before_end=berlin(24, 0))
    assert {b.token for b in window.bookings} == {"b", "c"}

    page = await client.list_bookings(take=2, skip=0, sort_start="asc")
    assert page.total_items == 3
    assert page.has_next_page
    assert [b.token for b in page.bookings] == ["a", "b"]


async def test_cancel_marks_the_booking_cancelled_and_frees_the_slot(client: CalcomClient) -> None:
    booking = await client.create_booking(42, berlin(21, 10), ANNA, token="t")

    cancelled = await client.cancel_booking(booking.uid, reason="Kundin hat abgesagt")

    assert cancelled.status == "cancelled"
    assert cancelled.cancellation_reason == "Kundin hat abgesagt"
    slots = await client.get_slots(42, berlin(21, 0), berlin(21, 23, 59), "Europe/Berlin")
    assert berlin(21, 10) in [slot.start for slot in slots]


async def test_reschedule_creates_a_new_uid_and_cancels_the_old_one(client: CalcomClient) -> None:
    booking = await client.create_booking(42, berlin(21, 10), ANNA, token="t")

    moved = await client.reschedule_booking(booking.uid, berlin(22, 15), reason="passt besser")

    assert moved.uid != booking.uid
    assert moved.start == berlin(22, 15)
    assert moved.end - moved.start == timedelta(minutes=30)
    assert moved.rescheduled_from_uid == booking.uid
    old = await client.get_booking(booking.uid)
    assert old.status == "cancelled"
    assert old.rescheduled_to_uid == moved.uid


async def test_reserve_hides_the_slot_until_released(client: CalcomClient) -> None:
    hold = await client.reserve_slot(42, berlin(21, 11))

    assert hold.slot_start == berlin(21, 11)
    assert hold.slot_end == berlin(21, 11, 30)
    assert hold.until == datetime(2025, 10, 20, 6, 5, tzinfo=UTC)
    assert (await client.get_reservation(hold.uid)) == hold
    slots = await client.get_slots(42, berlin(21, 0), berlin(21, 23, 59), "Europe/Berlin")
    assert berlin(21, 11) not in [slot.start for slot in slots]

    await client.release_reservation(hold.uid)
    await client.release_reservation(hold.uid)  # idempotent

    assert await client.get_reservation(hold.uid) is None
    slots = await client.get_slots(42, berlin(21, 0), berlin(21, 23, 59), "Europe/Berlin")
    assert berlin(21, 11) in [slot.start for slot in slots]


async def test_booking_with_a_hold_consumes_it(client: CalcomClient, emulator: RunningEmulator) -> None:
    hold = await client.reserve_slot(42, berlin(21, 11))

    booking = await client.create_booking(42, berlin(21, 11), ANNA, token="t", reserved_slot_uid=hold.uid)

    assert booking.status == "accepted"
    assert emulator.state()["reservations"] == []


async def test_event_types_are_listed_with_lengths(client: CalcomClient) -> None:
    types = await client.list_event_types()

    assert [(t.id, t.slug, t.length_minutes) for t in types] == [(42, "haarschnitt", 30), (43, "faerben", 90)]
    one = await client.get_event_type(43)
    assert one.slot_interval == 30
    assert one.owner_id == 7


async def test_naive_datetimes_are_refused_before_anything_is_sent(
    client: CalcomClient, emulator: RunningEmulator
) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await client.get_slots(42, datetime(2025, 10, 21, 9), berlin(21, 18))  # noqa: DTZ001
    with pytest.raises(ValueError, match="timezone-aware"):
        await client.create_booking(42, datetime(2025, 10, 21, 9), ANNA, token="t")  # noqa: DTZ001

    assert emulator.requests() == []


async def test_requests_carry_the_version_header_per_resource(
    client: CalcomClient, emulator: RunningEmulator
) -> None:
    # The emulator answers 404 / legacy 400 on a wrong or missing cal-api-version, so each
    # successful call proves its header; this checks each resource once.
    await client.get_slots(42, berlin(21, 0), berlin(21, 23, 59))
    await client.list_bookings()
    await client.list_event_types()

    statuses = [(e["method"], e["path"], e["status"]) for e in emulator.requests()]
    assert statuses == [
        ("GET", "/v2/slots", 200),
        ("GET", "/v2/bookings", 200),
        ("GET", "/v2/event-types", 200),
    ]
