"""Round-robin (team) event types at Cal.com (issue 12): several stylists share one event type and
Cal.com picks the host. The stylist we name to the caller is the one who hosts the booking, and a
host taken a moment ago by a concurrent booking is not "schon alles vergeben" while others are free.

Before (issue 12): "bei Anna" was booked with Ben (129 of 206 appointments in the outside check),
and 5 of 10 concurrent bookings for different stylists got Cal.com's 409 booking_conflict_error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest

from rezeption.booking.bookings import BookingRequest
from rezeption.domain.errors import SlotTaken
from rezeption.store.salon_file import SalonFile

from .conftest import TUESDAY_10, World
from .emulator_salon import calcom_salon

BOTH_WORK = TUESDAY_10 + timedelta(hours=4)  # Tuesday 14:00: Anna and Ben both work
pytestmark = pytest.mark.postgres
TEAM = 170
HOSTS = {"anna": 11, "ben": 12}
CREATE = {"method": "POST", "path": "/v2/bookings"}


def team_salon(url: str) -> SalonFile:
    salon = calcom_salon(url)
    salon.calendar.settings["event_types"]["herrenhaarschnitt"] = {"anna": TEAM, "ben": TEAM}
    return salon


@pytest.fixture
def salon_for() -> Callable[[str], SalonFile]:
    return team_salon


def herren(world: World, key: str, staff: str, start=BOTH_WORK) -> BookingRequest:  # type: ignore[no-untyped-def]
    return BookingRequest(
        tenant_id=world.tenant_id,
        service="Herrenhaarschnitt",
        start=start,
        staff=staff,
        customer_name="Eva Muster",
        call_id=f"call-{key}",
        idempotency_key=key,
    )


def host_of(world: World, uid: str) -> int:
    (remote,) = [b for b in world.emulator.bookings() if b["uid"] == uid]
    return int(remote["hosts"][0]["id"])


async def test_the_stylist_named_to_the_caller_hosts_the_booking_at_cal_com(world: World) -> None:
    world.emulator.walk_in(TEAM, BOTH_WORK + timedelta(hours=2))  # Anna has one: round robin picks Ben next

    result = await world.bookings.book(herren(world, "k1", "Anna"))

    assert result.staff.key == "anna"
    assert host_of(world, result.appointment.external_uid or "") == HOSTS["anna"]
    posts = [r["path"] for r in world.emulator.requests("POST", "/v2/bookings")]
    assert posts == [
        "/v2/bookings",
        f"/v2/bookings/{result.appointment.external_uid}/reassign/{HOSTS['anna']}",
    ]


async def test_when_the_named_stylist_is_busy_there_the_booking_is_undone_and_refused(world: World) -> None:
    world.emulator.walk_in(TEAM, BOTH_WORK)  # Anna is busy at Cal.com then; we do not know it yet

    with pytest.raises(SlotTaken):
        await world.bookings.book(herren(world, "k1", "Anna"))

    ours = [b for b in world.emulator.active() if b["metadata"].get("rezeption_token")]
    assert ours == [], "the round-robin booking given to Ben was cancelled there"
    (row,) = await world.appointments()
    assert row.status == "failed"


async def test_concurrent_bookings_for_different_stylists_at_one_time_all_get_their_stylist(
    world: World,
) -> None:
    world.emulator.faults({"mode": "race_window", **CREATE, "params": {"seconds": 0.3}})

    results = await asyncio.gather(
        world.bookings.book(herren(world, "anna", "Anna")),
        world.bookings.book(herren(world, "ben", "Ben")),
    )

    assert sorted(r.staff.key for r in results) == ["anna", "ben"]
    for result in results:
        assert result.appointment.status.value == "confirmed"
        assert host_of(world, result.appointment.external_uid or "") == HOSTS[result.staff.key]
    assert len([b for b in world.emulator.active() if b["metadata"].get("rezeption_token")]) == 2
