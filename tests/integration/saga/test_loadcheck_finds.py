"""The load checker finds what it is there to find (a checker that always says "nothing" would pass
every load test): an orphan at Cal.com, a booking confirmed here but gone there, a double booking
made directly in Cal.com, a caller told "gebucht" who holds nothing, a call holding an appointment
its caller was told nothing of, two where an unanswered write allows at most one, and an appointment
at another time than its caller heard (as a move of someone else's appointment would leave it), and
one moved here but not at Cal.com."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from rezeption.booking.bookings import BookingRequest
from rezeption.ops.loadcheck import check, check_calcom, emulator_requests_seen
from rezeption.store.tables import AppointmentRow

from .conftest import TUESDAY_10, World

pytestmark = pytest.mark.postgres
BERLIN = ZoneInfo("Europe/Berlin")
NAMES = ["Eva Muster", "Hans Schuster", "Lena Vogel", "Paul Koch", "Mia Wolf", "Ida Klein", "Uwe Lange"]


async def book(
    world: World, call_id: str, start: object = TUESDAY_10, staff: str = "Anna", n: int = 1
) -> str:
    result = await world.bookings.book(
        BookingRequest(
            tenant_id=world.tenant_id,
            service="Herrenhaarschnitt",
            start=start,  # type: ignore[arg-type]
            staff=staff,
            customer_name=NAMES[int(call_id[-1]) + n],
            call_id=call_id,
            idempotency_key=f"{call_id}:book:{n}",
        )
    )
    return str(result.appointment.external_uid)


async def test_the_checker_counts_orphans_missing_doubles_and_lost_confirmations(world: World) -> None:
    began = await emulator_requests_seen(world.emulator.url)
    kept = await book(world, "load-t-1")
    gone = await book(world, "load-t-2", start=TUESDAY_10 + timedelta(hours=1))
    await book(world, "load-t-3", start=TUESDAY_10 + timedelta(hours=2))
    await book(world, "load-t-4", start=TUESDAY_10 + timedelta(hours=4))
    await book(world, "load-t-4", start=TUESDAY_10 + timedelta(hours=5), n=2)  # a second in the same call
    ended = await emulator_requests_seen(world.emulator.url)
    async with httpx.AsyncClient(base_url=world.emulator.url, timeout=10) as http:
        cancelled = await http.post(  # cancelled at Cal.com behind our back: confirmed here, gone there
            f"/v2/bookings/{gone}/cancel", json={"cancellationReason": "test"},
            headers={"Authorization": "Bearer cal_test_rezeption", "cal-api-version": "2024-08-13"},
        )  # fmt: skip
        assert cancelled.status_code == 200, cancelled.text
    orphan = world.emulator.admin.post(  # ours by its token, with nothing confirmed here
        "/_emulator/bookings",
        json={"eventTypeId": 101, "start": (TUESDAY_10 + timedelta(days=3)).isoformat(),
              "metadata": {"rezeption_token": "rz-999-0123456789"}},
    ).json()  # fmt: skip
    async with world.db.write() as session:  # load-t-4's second one moved here only, not at Cal.com
        row = await session.scalar(
            select(AppointmentRow).where(AppointmentRow.starts_at == TUESDAY_10 + timedelta(hours=5))
        )
        assert row is not None and row.call_id == "load-t-4"
        later = timedelta(minutes=30)
        row.starts_at, row.ends_at = row.starts_at + later, row.ends_at + later
        row.block_starts_at, row.block_ends_at = row.block_starts_at + later, row.block_ends_at + later
        await session.commit()
    world.emulator.walk_in(102, TUESDAY_10 + timedelta(days=10))  # Ben, twice at once: a double there
    world.emulator.walk_in(102, TUESDAY_10 + timedelta(days=10, minutes=15))

    expected = {"load-t-1": 1, "load-t-2": 1, "load-t-3": 0, "load-t-4": None, "load-t-5": 1}
    heard = {  # what the callers heard, salon time: load-t-2's is right, load-t-1 heard an hour later
        "load-t-1": f"{(TUESDAY_10 + timedelta(hours=1)).astimezone(BERLIN):%Y-%m-%dT%H:%M}",
        "load-t-2": f"{(TUESDAY_10 + timedelta(hours=1)).astimezone(BERLIN):%Y-%m-%dT%H:%M}",
        "load-t-3": "2000-01-01T10:00",  # told it holds none: mismatched, its time not checked
    }
    found = await check(world.db, expected, call_prefix="load-t-", starts=heard)
    remote = await check_calcom(world.db, world.emulator.url, expected, call_prefix="load-t-",
                                calls=5, requests_from=began, requests_until=ended)  # fmt: skip

    assert found.double_bookings == 0 and found.pending_left == 0
    assert found.mismatched_calls == ["load-t-3", "load-t-4", "load-t-5"]
    assert found.lost_confirmed == ["load-t-5"]
    assert found.wrong_time == ["load-t-1"]
    assert found.uncertain_calls == 1
    assert remote.orphans == [orphan["uid"]]
    assert len(remote.missing_at_calcom) == 1
    assert len(remote.time_differs) == 1 and remote.time_differs[0] not in remote.missing_at_calcom
    assert remote.double_bookings == 1
    assert remote.lost_confirmed == ["load-t-2", "load-t-5"]
    assert kept not in remote.orphans
    assert remote.requests_by_kind == {"create": 5} and remote.requests == 5
    assert remote.requests_per_call == 1.0
    assert remote.booked_calls == 3, "by default the calls expected to hold one appointment"
    assert remote.requests_per_booked_call == round(5 / 3, 3)
    assert remote.reads == {}
    counted = await check_calcom(world.db, world.emulator.url, expected, call_prefix="load-t-", calls=5,
                                 requests_from=began, booked_calls=4)  # fmt: skip
    assert counted.requests_by_kind == {"cancel": 1, "create": 5}, "to the end of the log"
    assert counted.requests_per_booked_call == 1.5, "per call that booked, a cancel after it included"
