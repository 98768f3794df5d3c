"""The embedded calendar: bookings live in our own database, slots come from our own rules.

Free slots = the schedule rules (`domain.schedule`) over the appointments held in the store. The
local row *is* the booking, so `create` and `cancel` have nothing external to do.
"""

from __future__ import annotations

from collections.abc import Sequence

from rezeption.booking.ports import ExternalBooking, UnitOfWork
from rezeption.domain.model import Appointment, Catalog, Interval, Service, Slot, Staff
from rezeption.domain.schedule import FreeStarts


class LocalCalendar:
    """`CalendarProvider` over our own appointments table."""

    name = "local"
    external = False

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    async def free_slots(
        self, catalog: Catalog, service: Service, staff: Sequence[Staff], window: Interval
    ) -> list[Slot]:
        """Free grid starts in `window` for `service` with any of `staff`."""
        return (await self.free_starts(catalog, service, staff, window)).within(window)

    async def free_starts(
        self, catalog: Catalog, service: Service, staff: Sequence[Staff], window: Interval
    ) -> FreeStarts:
        """The bookings that touch `window` read once; its free starts computed per asked window."""
        reach = Interval(
            window.start - service.buffer_before, window.end + service.duration + service.buffer_after
        )
        async with self.uow.reading() as tx:
            busy = await tx.busy(catalog.tenant.id, [s.id for s in staff], reach)
        return FreeStarts(catalog, service, staff, busy)

    async def create(self, catalog: Catalog, appointment: Appointment) -> ExternalBooking:
        """Nothing to create elsewhere: the confirmed row is the booking."""
        return ExternalBooking(uid=None, start=appointment.starts_at, end=appointment.ends_at)

    async def cancel(self, catalog: Catalog, appointment: Appointment) -> None:
        """Nothing to cancel elsewhere: the cancelled row releases the slot."""
