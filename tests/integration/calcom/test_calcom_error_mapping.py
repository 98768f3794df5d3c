"""Every Cal.com error answer becomes the right exception of our one hierarchy."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from calcom_harness import RunningEmulator
from tests.metrics import sample

from rezeption.calendars.calcom.client import CalcomClient
from rezeption.calendars.calcom.errors import (
    CalcomAlreadyCancelled,
    CalcomAuthError,
    CalcomBadRequest,
    CalcomConflict,
    CalcomError,
    CalcomHoldConflict,
    CalcomNotFound,
    CalcomOutOfBounds,
    CalcomRejected,
    CalcomServerError,
    CalcomSlotUnavailable,
    CalcomUnavailable,
    parse_error_body,
)
from rezeption.calendars.calcom.models import CalcomAttendee

BERLIN = ZoneInfo("Europe/Berlin")
ANNA = CalcomAttendee(name="Anna", time_zone="Europe/Berlin", email="anna@example.com")
TEN = datetime(2025, 10, 21, 10, 0, tzinfo=BERLIN)


async def test_unknown_booking_is_not_found(client: CalcomClient) -> None:
    with pytest.raises(CalcomNotFound, match="was not found in the database") as caught:
        await client.get_booking("doesNotExist")
    assert caught.value.status_code == 404
    assert caught.value.code == "NotFoundException"


async def test_unknown_event_type_on_create_is_not_found(client: CalcomClient) -> None:
    with pytest.raises(CalcomNotFound, match="Event type with id 999 not found"):
        await client.create_booking(999, TEN, ANNA, token="t")


@pytest.mark.parametrize(
    ("api_key", "message"),
    [
        ("cal_unknown_key", "CustomThrottlerGuard - Invalid API Key"),
        ("not-a-cal-key", "Your api key is not valid"),
        ("cal_expired", "Your api key is expired"),
    ],
)
async def test_bad_keys_fail_even_on_public_endpoints(
    start_emulator: Callable[..., RunningEmulator],
    make_client: Callable[..., CalcomClient],
    api_key: str,
    message: str,
) -> None:
    emulator = start_emulator(expired_api_keys=["cal_expired"])
    client = make_client(emulator, api_key=api_key, salon="bad-key-test")
    refused = sample("rezeption_calcom_key_refused_total", salon="bad-key-test")

    with pytest.raises(CalcomAuthError, match=message):
        await client.get_slots(42, TEN, TEN + timedelta(hours=4))
    assert len(emulator.requests()) == 1  # 401 is not retried
    assert sample("rezeption_calcom_key_refused_total", salon="bad-key-test") == refused + 1


async def test_a_key_revoked_mid_session_fails_every_call(
    client: CalcomClient, emulator: RunningEmulator
) -> None:
    emulator.add_faults({"mode": "auth_expired"})

    with pytest.raises(CalcomAuthError, match="expired"):
        await client.list_event_types()
    with pytest.raises(CalcomAuthError):
        await client.create_booking(42, TEN, ANNA, token="t")


async def test_a_walk_in_booking_makes_the_slot_unavailable(
    client: CalcomClient, emulator: RunningEmulator
) -> None:
    emulator.walk_in(42, TEN)

    with pytest.raises(CalcomSlotUnavailable, match="already has booking") as caught:
        await client.create_booking(42, TEN, ANNA, token="t")
    assert isinstance(caught.value, CalcomRejected)


async def test_outside_opening_hours_is_unavailable(client: CalcomClient) -> None:
    with pytest.raises(CalcomSlotUnavailable):
        await client.create_booking(42, datetime(2025, 10, 21, 20, 0, tzinfo=BERLIN), ANNA, token="t")


async def test_a_start_in_the_past_is_out_of_bounds(client: CalcomClient) -> None:
    with pytest.raises(CalcomOutOfBounds, match="in the past"):
        await client.create_booking(42, datetime(2025, 10, 17, 10, 0, tzinfo=BERLIN), ANNA, token="t")


async def test_too_soon_for_the_minimum_notice_is_out_of_bounds(
    start_emulator: Callable[..., RunningEmulator], make_client: Callable[..., CalcomClient]
) -> None:
    emulator = start_emulator(
        event_types=[{"id": 42, "slug": "haarschnitt", "title": "Haarschnitt", "host_id": 7,
                      "minimum_booking_notice": 180}]
    )  # fmt: skip
    client = make_client(emulator)

    with pytest.raises(CalcomOutOfBounds, match="minimum booking notice"):
        await client.create_booking(42, datetime(2025, 10, 20, 10, 0, tzinfo=BERLIN), ANNA, token="t")
    slots = await client.get_slots(
        42, datetime(2025, 10, 20, 0, tzinfo=BERLIN), datetime(2025, 10, 20, 23, tzinfo=BERLIN)
    )
    assert slots[0].start == datetime(2025, 10, 20, 11, 0, tzinfo=BERLIN)


async def test_cancelling_twice_is_already_cancelled(client: CalcomClient) -> None:
    booking = await client.create_booking(42, TEN, ANNA, token="t")
    await client.cancel_booking(booking.uid)

    with pytest.raises(CalcomAlreadyCancelled, match="cancelled already"):
        await client.cancel_booking(booking.uid)


async def test_safe_cancel_treats_already_cancelled_as_done(client: CalcomClient) -> None:
    booking = await client.create_booking(42, TEN, ANNA, token="t")
    await client.cancel_booking(booking.uid)

    again = await client.cancel_booking_safely(booking.uid)

    assert again.status == "cancelled"


async def test_rescheduling_the_old_uid_again_points_to_the_new_one(client: CalcomClient) -> None:
    booking = await client.create_booking(42, TEN, ANNA, token="t")
    moved = await client.reschedule_booking(booking.uid, TEN + timedelta(days=1))

    with pytest.raises(CalcomAlreadyCancelled, match=f"already to booking with uid={moved.uid}"):
        await client.reschedule_booking(booking.uid, TEN + timedelta(days=2))


async def test_cancelling_an_ended_booking_is_a_bare_400(
    client: CalcomClient, emulator: RunningEmulator
) -> None:
    booking = await client.create_booking(42, TEN, ANNA, token="t")
    emulator.set_clock(datetime(2025, 10, 22, 12, 0, tzinfo=BERLIN))

    with pytest.raises(CalcomBadRequest, match="already ended") as caught:
        await client.cancel_booking(booking.uid)
    assert caught.value.code is None  # shape D carries no code


async def test_holding_a_booked_slot_is_a_hold_conflict(
    client: CalcomClient, emulator: RunningEmulator
) -> None:
    emulator.walk_in(42, TEN)

    with pytest.raises(CalcomHoldConflict, match="already booked"):
        await client.reserve_slot(42, TEN)


async def test_holding_a_held_slot_is_a_hold_conflict(client: CalcomClient) -> None:
    await client.reserve_slot(42, TEN)

    with pytest.raises(CalcomHoldConflict, match="already reserved by another user"):
        await client.reserve_slot(42, TEN)


async def test_an_expired_own_hold_loses_to_a_newer_hold_with_409(
    client: CalcomClient, emulator: RunningEmulator, make_client: Callable[..., CalcomClient]
) -> None:
    mine = await client.reserve_slot(42, TEN)
    emulator.set_clock(advance_seconds=6 * 60)  # my 5-minute hold runs out
    await make_client(emulator).reserve_slot(42, TEN)  # someone else holds it now

    with pytest.raises(CalcomConflict, match="Someone else reserved this booking time slot"):
        await client.create_booking(42, TEN, ANNA, token="t", reserved_slot_uid=mine.uid)


async def test_hold_expiry_mid_call_still_books_when_nobody_else_holds(
    client: CalcomClient, emulator: RunningEmulator
) -> None:
    mine = await client.reserve_slot(42, TEN)
    emulator.add_faults({"mode": "hold_expiry", "method": "POST", "path": "/v2/bookings", "count": 1})

    booking = await client.create_booking(42, TEN, ANNA, token="t", reserved_slot_uid=mine.uid)

    assert booking.status == "accepted"


async def test_a_server_without_reserved_slot_uid_gets_one_resend_without_it(
    client: CalcomClient, emulator: RunningEmulator
) -> None:
    hold = await client.reserve_slot(42, TEN)
    emulator.add_faults({"mode": "reserved_slot_uid_unsupported", "method": "POST", "path": "/v2/bookings"})

    booking = await client.create_booking(42, TEN, ANNA, token="t", reserved_slot_uid=hold.uid)

    assert booking.start == TEN
    assert [e["status"] for e in emulator.requests("POST", "/v2/bookings")] == [400, 201]


async def test_invalid_metadata_is_a_bad_request(client: CalcomClient) -> None:
    with pytest.raises(CalcomBadRequest, match="metadata"):
        await client.create_booking(42, TEN, ANNA, token="t", metadata={"k": "x" * 501})


async def test_a_booking_requiring_confirmation_comes_back_pending_and_does_not_stop_another(
    client: CalcomClient, emulator: RunningEmulator
) -> None:
    """Cal.com's create checks only accepted bookings: several requests awaiting the host's
    confirmation can hold one time (#13936, #29958); an accepted one then stops the next."""
    emulator.add_faults({"mode": "pending", "method": "POST", "path": "/v2/bookings", "count": 2})

    booking = await client.create_booking(42, TEN, ANNA, token="t")
    second = await client.create_booking(42, TEN, ANNA, token="u")

    assert booking.status == second.status == "pending"
    assert booking.is_active and second.is_active and booking.uid != second.uid
    accepted = await client.create_booking(42, TEN, ANNA, token="v")
    assert accepted.status == "accepted"
    with pytest.raises(CalcomSlotUnavailable):
        await client.create_booking(42, TEN, ANNA, token="w")


async def test_stale_slots_list_a_time_that_then_cannot_be_booked(
    client: CalcomClient, emulator: RunningEmulator
) -> None:
    emulator.walk_in(42, TEN)
    emulator.add_faults({"mode": "stale_slots", "method": "GET", "path": "/v2/slots", "count": 1})

    slots = await client.get_slots(42, TEN - timedelta(hours=1), TEN + timedelta(hours=1))
    assert TEN in [slot.start for slot in slots]

    with pytest.raises(CalcomSlotUnavailable):
        await client.create_booking(42, TEN, ANNA, token="t")


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [("json", 500, None), ("prisma", 500, "INTERNAL_SERVER_ERROR"), ("with_code", 500, "InternalServerError"),
     ("html", 504, None)],
)  # fmt: skip
async def test_every_5xx_shape_is_a_server_error(
    client: CalcomClient, emulator: RunningEmulator, kind: str, status: int, code: str | None
) -> None:
    emulator.add_faults({"mode": "server_error", "params": {"kind": kind, "status": status}})

    with pytest.raises(CalcomServerError) as caught:
        await client.get_booking("x")

    assert caught.value.status_code == status
    assert caught.value.code == code
    assert isinstance(caught.value, CalcomUnavailable)


async def test_a_lost_response_surfaces_as_an_ambiguous_unavailable(
    client: CalcomClient, emulator: RunningEmulator
) -> None:
    emulator.add_faults({"mode": "lost_response", "method": "POST", "path": "/v2/bookings", "count": 1})

    with pytest.raises(CalcomUnavailable) as caught:
        await client.create_booking(42, TEN, ANNA, token="t")

    assert caught.value.outcome_unknown is True
    assert not isinstance(caught.value, CalcomServerError)


@pytest.mark.parametrize(
    ("body", "message", "code", "shape"),
    [
        (b'{"status":"error","error":{"code":"NotFoundException","message":"Cannot GET /x"}}',
         "Cannot GET /x", "NotFoundException", "A"),
        (b'{"status":"error","error":{"code":"CONFLICT","message":"Invalid Input"}}',
         "Invalid Input", "CONFLICT", "B"),
        (b'{"status":"error","error":{"code":"Nope","message":"m"},"message":"m"}', "m", "Nope", "C"),
        (b'{"statusCode":409,"message":"booking_conflict_error"}', "booking_conflict_error", None, "D"),
        (b'{"statusCode":400,"message":["a","b"]}', "a, b", None, "D"),
        (b"<html><body>502 Bad gateway</body></html>", "non-JSON response body (text/html)", None, "html"),
        (b"", "empty response body", None, "empty"),
    ],
)  # fmt: skip
def test_all_error_body_shapes_parse(body: bytes, message: str, code: str | None, shape: str) -> None:
    parsed = parse_error_body(
        body, "text/html; charset=utf-8" if body.startswith(b"<") else "application/json"
    )

    assert (parsed.message, parsed.code, parsed.shape) == (message, code, shape)


def test_the_hierarchy_has_one_root() -> None:
    for error in (CalcomSlotUnavailable, CalcomServerError, CalcomConflict, CalcomAuthError):
        assert issubclass(error, CalcomError)
