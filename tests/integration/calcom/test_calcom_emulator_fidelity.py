"""The emulator answers like Cal.com on the wire: versions, auth, envelopes, slots, DST."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from calcom_harness import API_KEY, RunningEmulator

from rezeption.calendars.calcom.client import CalcomClient
from rezeption.calendars.calcom.models import CalcomAttendee

BERLIN = ZoneInfo("Europe/Berlin")
AUTH = {"Authorization": f"Bearer {API_KEY}"}
SLOT_QUERY = {"eventTypeId": "42", "start": "2025-10-21T00:00:00Z", "end": "2025-10-21T12:00:00Z"}
BOOKING_BODY = {
    "start": "2025-10-21T08:00:00Z",
    "eventTypeId": 42,
    "attendee": {"name": "Anna", "email": "anna@example.com", "timeZone": "Europe/Berlin"},
}
SUNDAY_SCHEDULE = {
    "id": 5,
    "time_zone": "Europe/Berlin",
    "weekly": {"sun": ["01:00-05:00", "09:00-10:00", "13:00-14:00"], "mon": ["09:00-18:00"]},
}


def raw(
    emulator: RunningEmulator, method: str, path: str, version: str | None, **kwargs: Any
) -> httpx.Response:
    headers = dict(AUTH)
    if version is not None:
        headers["cal-api-version"] = version
    return emulator.admin.request(method, path, headers=headers, **kwargs)


@pytest.mark.parametrize("version", [None, "2024-08-13", "2024-04-15"])
def test_slots_without_their_version_are_a_404(emulator: RunningEmulator, version: str | None) -> None:
    response = raw(emulator, "GET", "/v2/slots", version, params=SLOT_QUERY)

    assert response.status_code == 404
    body = response.json()
    assert body["status"] == "error"
    assert body["error"]["code"] == "NotFoundException"
    assert body["error"]["message"].startswith("Cannot GET /v2/slots?")


def test_booking_create_with_the_slots_version_is_a_404(emulator: RunningEmulator) -> None:
    response = raw(emulator, "POST", "/v2/bookings", "2024-09-04", json=BOOKING_BODY)

    assert response.status_code == 404


@pytest.mark.parametrize("version", [None, "2024-06-14", "1999-01-01"])
def test_booking_create_with_a_legacy_version_is_a_400(
    emulator: RunningEmulator, version: str | None
) -> None:
    response = raw(emulator, "POST", "/v2/bookings", version, json=BOOKING_BODY)

    assert response.status_code == 400
    assert emulator.state()["bookings"] == []


def test_event_types_with_the_bookings_version_are_a_404(emulator: RunningEmulator) -> None:
    assert raw(emulator, "GET", "/v2/event-types", "2024-08-13").status_code == 404


def test_create_answers_201_with_the_envelope_and_echoes_the_request_id(emulator: RunningEmulator) -> None:
    response = raw(emulator, "POST", "/v2/bookings", "2024-08-13", json=BOOKING_BODY)
    echoed = emulator.admin.get(
        "/v2/bookings/nope", headers={"cal-api-version": "2024-08-13", "X-Request-Id": "abc-123"}
    )

    assert response.status_code == 201
    assert response.json()["status"] == "success"
    assert response.json()["data"]["start"] == "2025-10-21T08:00:00.000Z"
    assert response.json()["data"]["end"] == "2025-10-21T08:30:00.000Z"
    assert response.headers["x-request-id"] == "unknown-request-id"
    assert echoed.headers["x-request-id"] == "abc-123"


def test_unknown_properties_are_rejected_with_cal_com_wording(emulator: RunningEmulator) -> None:
    response = raw(emulator, "POST", "/v2/bookings", "2024-08-13", json={**BOOKING_BODY, "end": "x"})

    assert response.status_code == 400
    assert "end property is wrong,property end should not exist" in response.json()["error"]["message"]


def test_listing_bookings_requires_a_key(emulator: RunningEmulator) -> None:
    response = emulator.admin.get("/v2/bookings", headers={"cal-api-version": "2024-08-13"})

    assert response.status_code == 401
    assert response.json()["error"]["message"].startswith(
        "ApiAuthStrategy - No authentication method provided"
    )


def test_slots_default_format_is_utc_objects_with_utc_day_keys(emulator: RunningEmulator) -> None:
    response = raw(emulator, "GET", "/v2/slots", "2024-09-04", params=SLOT_QUERY)

    data = response.json()["data"]
    assert list(data) == ["2025-10-21"]
    assert data["2025-10-21"][0] == {"start": "2025-10-21T07:00:00.000Z"}


def test_slots_with_a_zone_and_range_format_carry_offsets(emulator: RunningEmulator) -> None:
    params = {**SLOT_QUERY, "timeZone": "Europe/Berlin", "format": "range"}
    response = raw(emulator, "GET", "/v2/slots", "2024-09-04", params=params)

    first = response.json()["data"]["2025-10-21"][0]
    assert first == {"start": "2025-10-21T09:00:00.000+02:00", "end": "2025-10-21T09:30:00.000+02:00"}


def test_slots_reject_unknown_parameters_and_inverted_ranges(emulator: RunningEmulator) -> None:
    unknown = raw(emulator, "GET", "/v2/slots", "2024-09-04", params={**SLOT_QUERY, "slotFormat": "range"})
    inverted = raw(
        emulator, "GET", "/v2/slots", "2024-09-04", params={**SLOT_QUERY, "end": "2025-10-20T00:00:01Z"}
    )

    assert unknown.status_code == 400
    assert "property slotFormat should not exist" in unknown.json()["error"]["message"]
    assert inverted.status_code == 400
    assert inverted.json()["error"]["message"].startswith("Invalid time range given")


def test_a_midnight_end_is_widened_to_the_end_of_that_day(emulator: RunningEmulator) -> None:
    params = {**SLOT_QUERY, "end": "2025-10-21T00:00:00Z"}
    response = raw(emulator, "GET", "/v2/slots", "2024-09-04", params=params)

    assert len(response.json()["data"]["2025-10-21"]) == 18


def test_unknown_reservation_is_200_with_null_data(emulator: RunningEmulator) -> None:
    response = raw(emulator, "GET", "/v2/slots/reservations/nope", "2024-09-04")

    assert response.status_code == 200
    assert response.json() == {"status": "success", "data": None}


def test_a_custom_hold_duration_needs_a_key(emulator: RunningEmulator) -> None:
    body = {"eventTypeId": 42, "slotStart": "2025-10-21T08:00:00Z", "reservationDuration": 10}
    response = emulator.admin.post(
        "/v2/slots/reservations", json=body, headers={"cal-api-version": "2024-09-04"}
    )

    assert response.status_code == 401
    assert response.json()["error"]["message"].startswith("reservationDuration can only be used")


async def test_dst_end_day_in_berlin_has_the_repeated_hour_twice(
    start_emulator: Callable[..., RunningEmulator], make_client: Callable[..., CalcomClient]
) -> None:
    emulator = start_emulator(now="2025-10-24T08:00:00Z", schedules=[SUNDAY_SCHEDULE])
    client = make_client(emulator)
    day_start = datetime(2025, 10, 26, 0, 0, tzinfo=BERLIN)
    day_end = datetime(2025, 10, 26, 23, 59, tzinfo=BERLIN)

    slots = await client.get_slots(42, day_start, day_end, "Europe/Berlin")

    utc_starts = [slot.start.astimezone(UTC) for slot in slots]
    night = [s for s in utc_starts if s < datetime(2025, 10, 26, 5, tzinfo=UTC)]
    assert len(night) == 10  # 01:00 CEST .. 05:00 CET is five real hours
    assert night[0] == datetime(2025, 10, 25, 23, 0, tzinfo=UTC)
    labels = [(s.start.strftime("%H:%M"), s.start.utcoffset()) for s in slots[:6]]
    assert [label for label, _ in labels] == ["01:00", "01:30", "02:00", "02:30", "02:00", "02:30"]
    assert labels[2][1] != labels[4][1]  # the same wall time, once in CEST and once in CET
    nine = next(s.start for s in slots if s.start.hour == 9)
    assert nine.astimezone(UTC) == datetime(2025, 10, 26, 8, 0, tzinfo=UTC)
    afternoon = [s.start.strftime("%H:%M") for s in slots if s.start.hour >= 12]
    assert afternoon == ["13:00", "13:30"]


async def test_dst_bug_mode_offers_afternoon_hours_one_hour_late(
    start_emulator: Callable[..., RunningEmulator], make_client: Callable[..., CalcomClient]
) -> None:
    emulator = start_emulator(now="2025-10-24T08:00:00Z", schedules=[SUNDAY_SCHEDULE])
    emulator.add_faults({"mode": "dst_bug", "method": "GET", "path": "/v2/slots"})
    client = make_client(emulator)

    slots = await client.get_slots(
        42,
        datetime(2025, 10, 26, 12, 0, tzinfo=BERLIN),
        datetime(2025, 10, 26, 23, 0, tzinfo=BERLIN),
        "Europe/Berlin",
    )
    monday = await client.get_slots(
        42,
        datetime(2025, 10, 27, 0, 0, tzinfo=BERLIN),
        datetime(2025, 10, 27, 10, 0, tzinfo=BERLIN),
        "Europe/Berlin",
    )

    assert [s.start.strftime("%H:%M") for s in slots] == ["14:00", "14:30"]
    assert monday[0].start.strftime("%H:%M %z") == "09:00 +0100"  # ordinary days are unaffected


async def test_a_booking_on_the_dst_day_lands_on_the_right_instant(
    start_emulator: Callable[..., RunningEmulator], make_client: Callable[..., CalcomClient]
) -> None:
    emulator = start_emulator(now="2025-10-24T08:00:00Z", schedules=[SUNDAY_SCHEDULE])
    client = make_client(emulator)
    nine = datetime(2025, 10, 26, 9, 0, tzinfo=BERLIN)

    booking = await client.create_booking(
        42, nine, CalcomAttendee(name="A", time_zone="Europe/Berlin", email="a@example.com"), token="dst"
    )

    assert booking.start == datetime(2025, 10, 26, 8, 0, tzinfo=UTC)
    assert emulator.state()["bookings"][0]["start"] == "2025-10-26T08:00:00.000Z"
