"""A GDPR erasure at a Cal.com salon: the customer's future booking is cancelled at Cal.com too, at once
or, when Cal.com is down, by the outbox worker; the erasure itself never waits for Cal.com."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rezeption.booking.bookings import BookingRequest
from rezeption.cli.customers import erase_customer_data
from rezeption.ops.worker import WorkerOptions, run_once

from .conftest import TUESDAY_10, World

pytestmark = pytest.mark.postgres

CANCEL = {"method": "POST", "path": "/v2/bookings/*/cancel"}
PHONE = "+4915112345678"


class Deps:
    def __init__(self, world: World) -> None:
        self.database, self.reconciler, self.clock = world.db, world.reconciler, world.clock


async def book(world: World) -> None:
    await world.bookings.book(
        BookingRequest(
            tenant_id=world.tenant_id,
            service="Herrenhaarschnitt",
            start=TUESDAY_10,
            staff="Anna",
            customer_name="Eva Muster",
            phone_e164=PHONE,
            call_id="call-1",
            idempotency_key="call-1:book",
        )
    )
    assert len(world.emulator.active()) == 1


async def test_an_erasure_cancels_the_customers_cal_com_booking_there_too(world: World) -> None:
    await book(world)

    counts = await erase_customer_data(world.db, world.bookings, "0151 12345678")

    assert (counts["customers"], counts["future_cancelled"], counts["future_left_active"]) == (1, 1, 0)
    assert world.emulator.active() == []
    (row,) = await world.appointments()
    assert (row.status, row.spoken_name) == ("cancelled", None)
    events = await world.events(row.id)
    assert ("cancelled", None) in events and ("calendar_cancelled", "done") in events
    assert [j.status for j in await world.jobs("calendar_cancel")] == ["done"]


async def test_with_cal_com_down_the_erasure_completes_and_the_worker_cancels_there_later(
    world: World,
) -> None:
    await book(world)
    world.emulator.faults(
        {"mode": "server_error", **CANCEL, "count": 1000, "params": {"kind": "html", "status": 503}}
    )

    counts = await erase_customer_data(world.db, world.bookings, PHONE)

    assert counts["future_cancelled"] == 1
    (row,) = await world.appointments()
    assert row.status == "cancelled"
    assert len(world.emulator.active()) == 1, "Cal.com holds it until the job runs"
    (job,) = await world.jobs("calendar_cancel")
    assert job.status == "pending" and job.payload["uid"] == row.external_uid
    world.emulator.clear_faults()
    world.clock.advance(timedelta(minutes=1))
    assert await run_once(Deps(world), WorkerOptions(worker_id="w1")) == 1
    assert world.emulator.active() == []
    (job,) = await world.jobs("calendar_cancel")
    assert job.status == "done"
