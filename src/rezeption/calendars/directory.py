"""Chooses each salon's calendar provider from its settings (`calendar.provider` in the salon file).

Owns one provider per salon: the local calendar for everyone who uses it, and one `CalcomCalendar`
(with one HTTP client, circuit breakers and rate-limit state) per Cal.com salon, rebuilt only when
the salon's Cal.com settings change (a salon-file reload), and one request budget per Cal.com API
key (in Redis when `redis_url` is set, so every process shares it; salons sharing a key share it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rezeption.booking.ports import CalendarProvider, UnitOfWork
from rezeption.calendars.calcom import CalcomCalendar, CalcomSettings
from rezeption.calendars.calcom.budget import RequestBudget, request_budget_from_url
from rezeption.calendars.calcom.client import CalcomClient
from rezeption.calendars.local import LocalCalendar
from rezeption.calendars.slot_cache import MemorySlotCache, SlotCache
from rezeption.domain.clock import Clock
from rezeption.domain.errors import BookingError
from rezeption.domain.flags import CALCOM_PROVIDER, FlagBook, current_call
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
    """`booking.ports.CalendarDirectory`: local or Cal.com, per salon.

    `client_options` go to every `CalcomClient` (tests pass fast backoff; the benchmark a breaker).
    With `flags`, a Cal.com salon's provider is refused during a call whose `calcom_provider` flag
    is off (the worker and the reconciler, outside any call, keep working).
    """

    def __init__(
        self,
        uow: UnitOfWork,
        *,
        clock: Clock | None = None,
        slot_cache: SlotCache | None = None,
        client_options: dict[str, Any] | None = None,
        redis_url: str | None = None,
        flags: FlagBook | None = None,
    ) -> None:
        self.flags = flags
        self.local = LocalCalendar(uow)
        self.clock = clock
        self.slot_cache: SlotCache = slot_cache or MemorySlotCache()
        self.client_options = dict(client_options or {})
        self._calcom: dict[int, tuple[CalcomSettings, CalcomCalendar]] = {}
        self.redis_url = redis_url
        self._budgets: dict[tuple[str, Any], RequestBudget] = {}

    def _now(self) -> Callable[[], datetime]:
        clock = self.clock
        return clock.now if clock is not None else (lambda: datetime.now(UTC))

    def for_tenant(self, catalog: Catalog) -> CalendarProvider:
        """The provider that holds this salon's bookings."""
        provider = catalog.tenant.calendar_provider
        if provider == "local":
            return self.local
        if provider == "calcom":
            flags = self.flags
            in_call = flags is not None and current_call() is not None
            if in_call and flags is not None and not flags.on(CALCOM_PROVIDER, tenant_id=catalog.tenant.id):
                raise CalendarNotConfigured("calcom (flag calcom_provider off)")
            return self.calcom(catalog)
        raise CalendarNotConfigured(provider)

    def calcom(self, catalog: Catalog) -> CalcomCalendar:
        """The salon's Cal.com provider (one client per salon, reused across requests)."""
        try:
            settings = CalcomSettings.from_mapping(catalog.tenant.calendar_settings)
        except (ValueError, TypeError) as error:
            raise CalendarNotConfigured("calcom") from error
        entry = self._calcom.get(catalog.tenant.id)
        if entry is not None and entry[0] == settings:
            return entry[1]
        options: dict[str, Any] = {
            "timeout": settings.write_timeout,
            "clock": self._now(),
            "read_attempts": 2,
            "budget": self.budget_for(settings),
            "salon": catalog.tenant.slug,
            **self.client_options,
        }
        client = CalcomClient(settings.base_url, settings.api_key, **options)
        provider = CalcomCalendar(
            client=client,
            settings=settings,
            scope=str(catalog.tenant.id),
            cache=self.slot_cache,
            now=self._now(),
        )
        self._calcom[catalog.tenant.id] = (settings, provider)
        return provider

    def budget_for(self, settings: CalcomSettings) -> RequestBudget:
        """The request budget of the salon's API key (one per key and limit)."""
        key = (settings.api_key, settings.rate_limit)
        budget = self._budgets.get(key)
        if budget is None:
            budget = request_budget_from_url(self.redis_url, settings.api_key, settings.rate_limit)
            self._budgets[key] = budget
        return budget

    async def aclose(self) -> None:
        """Close every Cal.com client."""
        for _, provider in self._calcom.values():
            await provider.aclose()
        self._calcom.clear()
