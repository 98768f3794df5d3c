"""Chooses each salon's calendar provider from its settings (`calendar.provider` in the salon file)."""

from __future__ import annotations

from rezeption.booking.ports import CalendarProvider, UnitOfWork
from rezeption.calendars.local import LocalCalendar
from rezeption.domain.errors import BookingError
from rezeption.domain.model import Catalog


class CalendarNotConfigured(BookingError):
    """The salon names a calendar provider this process cannot serve."""

    code = "calendar_not_configured"

    def __init__(self, provider: str) -> None:
        super().__init__(
            "Unser Kalender ist gerade nicht erreichbar. Bitte rufen Sie später noch einmal an.",
            provider=provider,
        )


class CalendarDirectory:
    """`booking.ports.CalendarDirectory`: the local calendar for every salon that uses it."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.local = LocalCalendar(uow)

    def for_tenant(self, catalog: Catalog) -> CalendarProvider:
        """The provider that holds this salon's bookings."""
        if catalog.tenant.calendar_provider == "local":
            return self.local
        raise CalendarNotConfigured(catalog.tenant.calendar_provider)
