"""The salon's world as plain values: tenants, services, staff, appointments, slots.

Pure data, no I/O. Times of day (opening hours, breaks) are wall-clock times in the salon's zone;
instants (appointments, absences) are aware datetimes, stored in UTC.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class AppointmentStatus(enum.StrEnum):
    """Life of an appointment: pending claims the slot, confirmed is booked, the rest release it."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    FAILED = "failed"


ACTIVE_STATUSES = frozenset({AppointmentStatus.PENDING, AppointmentStatus.CONFIRMED})


@dataclass(frozen=True, order=True)
class Interval:
    """A half-open span of time [start, end) between two aware instants."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("Interval needs aware datetimes")
        if self.end <= self.start:
            raise ValueError("Interval must end after it starts")

    def overlaps(self, other: Interval) -> bool:
        """True when the two spans share any instant ([) semantics: touching is not overlapping)."""
        return self.start < other.end and other.start < self.end

    def contains(self, other: Interval) -> bool:
        """True when `other` lies wholly inside this span."""
        return self.start <= other.start and other.end <= self.end


@dataclass(frozen=True)
class TimeRange:
    """A wall-clock range within one day, e.g. 09:00-18:00."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"time range {self.start}-{self.end} must end after it starts")


WeeklyHours = Mapping[int, Sequence[TimeRange]]
"""Weekday (0 = Monday) to the wall-clock ranges of that day; a missing day is closed."""


@dataclass(frozen=True)
class BookingPolicy:
    """The salon's rules for what may be booked and changed."""

    min_notice: timedelta = timedelta(hours=1)
    horizon_days: int = 90
    slot_grid: timedelta = timedelta(minutes=15)
    change_min_notice: timedelta = timedelta(hours=2)
    max_active_per_caller: int = 4
    """Active future appointments one number, or one name, may hold (a caller or a bot cannot
    hoard the salon's slots); the salon's own bookings are not limited."""
    max_bookings_per_call: int = 3
    """Active future appointments one phone call may book (a caller who withholds the number and
    gives a new name each time is bounded too); a parent booking for two children still fits."""


@dataclass(frozen=True)
class Tenant:
    """A salon: its zone, its public holidays' state, opening hours and booking policy."""

    id: int
    slug: str
    name: str
    timezone: str
    holiday_state: str
    opening_hours: WeeklyHours
    policy: BookingPolicy
    calendar_provider: str = "local"
    calendar_settings: Mapping[str, object] = field(default_factory=dict)
    transfer_number: str | None = None  # the salon's own line, for callers who ask for a person

    @property
    def zone(self) -> ZoneInfo:
        """The salon's time zone."""
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class Service:
    """Something the salon sells, with its duration and the buffers around it."""

    id: int
    key: str
    name: str
    aliases: tuple[str, ...]
    duration: timedelta
    buffer_before: timedelta = timedelta(0)
    buffer_after: timedelta = timedelta(0)
    price_cents: int | None = None
    active: bool = True
    staff_ids: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Staff:
    """A stylist: weekly working hours, weekly breaks and absences (aware UTC intervals)."""

    id: int
    key: str
    name: str
    working_hours: WeeklyHours
    breaks: WeeklyHours = field(default_factory=dict)
    absences: tuple[Interval, ...] = ()
    active: bool = True


@dataclass(frozen=True)
class SpecialDay:
    """A salon-wide exception for one local day: closed (no hours) or open at different hours.

    It replaces the weekly opening hours of that day and wins over a public holiday (a salon that
    declares hours on a holiday opens then).
    """

    hours: tuple[TimeRange, ...] = ()
    reason: str | None = None

    @property
    def closed(self) -> bool:
        """Whether the salon is closed all day."""
        return not self.hours


@dataclass(frozen=True)
class Closure:
    """A salon-wide exception as the operator wrote it: local days `first_day`..`last_day`
    (inclusive), closed (no hours) or open at `hours`; `yearly` repeats it every year."""

    first_day: date
    last_day: date
    hours: tuple[TimeRange, ...] = ()
    reason: str | None = None
    yearly: bool = False
    id: int | None = None
    origin: str = "file"

    def days(self, first_year: int, last_year: int) -> list[date]:
        """The local days it covers between the two years (inclusive), every year when yearly."""
        if not self.yearly:
            return _days_between(self.first_day, self.last_day)
        days: list[date] = []
        for year in range(first_year, last_year + 1):
            start = _same_day_in(self.first_day, year)
            end = _same_day_in(self.last_day, year + (self.last_day.year - self.first_day.year))
            days.extend(_days_between(start, end))
        return days


def _same_day_in(day: date, year: int) -> date:
    """`day`'s month and day in `year` (29 February becomes 28 February in a common year)."""
    try:
        return day.replace(year=year)
    except ValueError:
        return day.replace(year=year, day=28)


def _days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


@dataclass(frozen=True)
class Catalog:
    """Everything about one salon that availability needs, loaded together."""

    tenant: Tenant
    services: tuple[Service, ...]
    staff: tuple[Staff, ...]
    holidays: frozenset[date] = frozenset()
    closures: tuple[Closure, ...] = ()
    special_days: Mapping[date, SpecialDay] = field(default_factory=dict)

    def staff_by_id(self, staff_id: int) -> Staff:
        """The stylist with this id (KeyError if none)."""
        for member in self.staff:
            if member.id == staff_id:
                return member
        raise KeyError(staff_id)

    def service_by_id(self, service_id: int) -> Service:
        """The service with this id (KeyError if none)."""
        for service in self.services:
            if service.id == service_id:
                return service
        raise KeyError(service_id)

    def qualified_staff(self, service: Service) -> list[Staff]:
        """Active stylists who offer `service`, in the salon's order."""
        return [s for s in self.staff if s.active and s.id in service.staff_ids]


@dataclass(frozen=True)
class Slot:
    """A bookable start for a service with one stylist: [start, end) of the service itself."""

    start: datetime
    end: datetime
    staff_id: int


@dataclass(frozen=True)
class Appointment:
    """A booking as we hold it; `starts_at`/`ends_at` are the service, `block_*` include buffers."""

    id: int
    tenant_id: int
    service_id: int
    staff_id: int
    customer_id: int | None
    starts_at: datetime
    ends_at: datetime
    block_starts_at: datetime
    block_ends_at: datetime
    status: AppointmentStatus
    source: str
    provider: str
    external_uid: str | None
    call_id: str | None
    idempotency_key: str | None
    spoken_name: str | None
    version: int
    rescheduled_from_id: int | None = None
    created_at: datetime = datetime(1970, 1, 1, tzinfo=UTC)

    @property
    def active(self) -> bool:
        """Whether the appointment still holds its slot."""
        return self.status in ACTIVE_STATUSES
