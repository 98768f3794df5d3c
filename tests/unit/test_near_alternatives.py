"""A refusal's alternatives counted only near the wanted time (`availability._near_starts`) are
exactly the alternatives of the whole days: random salons, hours, breaks, bookings, holidays,
notice, grids and asked times, on plain days and across both clock changes, for our calendar and
for an external one whose answer holds starts outside the opening hours."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from rezeption.booking.availability import alternatives, inside_opening, nearest, search_window
from rezeption.domain.model import (
    BookingPolicy,
    Catalog,
    Interval,
    Service,
    Slot,
    Staff,
    Tenant,
    TimeRange,
)
from rezeption.domain.schedule import FreeStarts, ListedSlots, free_slots

BERLIN = ZoneInfo("Europe/Berlin")
FIRST_DAYS = [date(2027, 3, 9), date(2027, 3, 26), date(2027, 10, 29)]
"""A plain week and the two weekends the clocks change in Berlin."""


class Calendar:
    """A calendar provider over bookings held in memory; `external` adds night starts that the
    salon's opening hours must filter out, as Cal.com's answer can."""

    def __init__(self, busy: Mapping[int, Sequence[Interval]], *, external: bool) -> None:
        self.busy, self.external = busy, external
        self.reads: list[Interval] = []

    def _all(
        self, catalog: Catalog, service: Service, staff: Sequence[Staff], window: Interval
    ) -> list[Slot]:
        slots = free_slots(catalog, service, staff, self.busy, window)
        if self.external:
            first, last = window.start.astimezone(BERLIN).date(), window.end.astimezone(BERLIN).date()
            for day in (first + timedelta(days=n) for n in range((last - first).days + 1)):
                night = datetime.combine(day, time(2, 30), tzinfo=BERLIN)
                if window.start <= night < window.end:
                    slots.append(Slot(night, night + service.duration, staff[0].id))
            slots.sort(key=lambda s: (s.start, s.staff_id))
        return slots

    async def free_slots(
        self, catalog: Catalog, service: Service, staff: Sequence[Staff], window: Interval
    ) -> list[Slot]:
        self.reads.append(window)
        return self._all(catalog, service, staff, window)

    async def free_starts(
        self, catalog: Catalog, service: Service, staff: Sequence[Staff], window: Interval
    ) -> FreeStarts | ListedSlots:
        self.reads.append(window)
        if self.external:
            return ListedSlots(self._all(catalog, service, staff, window))
        return FreeStarts(catalog, service, staff, self.busy)


async def whole_days(
    provider: Calendar, catalog: Catalog, service: Service, staff: Sequence[Staff],
    requested: datetime, now: datetime, limit: int,
) -> tuple[Slot, ...]:  # fmt: skip
    """The search as it was written before: every free start of each day, then `nearest` (of the
    asked instant)."""
    requested = requested.astimezone(UTC)
    window = search_window(catalog, requested, now)
    if window is None:
        return ()
    slots: list[Slot] = []
    picked: list[Slot] = []
    day_start = window.start
    while day_start < window.end and len(picked) < limit:
        next_day = (day_start.astimezone(BERLIN) + timedelta(days=1)).date()
        day_end = min(window.end, datetime.combine(next_day, time(0), tzinfo=BERLIN))
        found = await provider.free_slots(catalog, service, staff, Interval(day_start, day_end))
        slots.extend(inside_opening(catalog, found) if provider.external else found)
        picked = nearest(slots, requested, BERLIN, limit)
        day_start = day_end
    return tuple(picked)


def hours(draw: st.DrawFn, earliest: int, latest: int) -> tuple[TimeRange, ...]:
    a, b = sorted(draw(st.lists(st.integers(earliest, latest), min_size=2, max_size=2, unique=True)))
    return (TimeRange(time(a // 60, a % 60), time(b // 60, b % 60)),)


@st.composite
def cases(draw: st.DrawFn) -> tuple[Calendar, Catalog, Service, datetime, datetime, int]:
    first = draw(st.sampled_from(FIRST_DAYS))
    opening = {d: hours(draw, 0, 23 * 60 + 59) for d in range(7) if draw(st.integers(0, 5))}
    policy = BookingPolicy(
        min_notice=timedelta(minutes=draw(st.sampled_from([0, 60, 24 * 60]))),
        horizon_days=draw(st.integers(1, 20)),
        slot_grid=timedelta(minutes=draw(st.sampled_from([10, 15, 30]))),
    )
    tenant = Tenant(1, "t", "Salon", "Europe/Berlin", "BE", opening, policy)
    staff = []
    for n in range(1, draw(st.integers(1, 5)) + 1):
        own = {d: hours(draw, 0, 23 * 60 + 59) for d in range(7) if draw(st.integers(0, 4))}
        breaks = {d: hours(draw, 11 * 60, 15 * 60) for d in range(7) if draw(st.booleans())}
        staff.append(Staff(n, f"s{n}", f"Stylist {n}", own, breaks))
    service = Service(
        1, "s", "Schnitt", (),
        timedelta(minutes=draw(st.sampled_from([15, 30, 45, 60, 120]))),
        timedelta(minutes=draw(st.sampled_from([0, 5, 15]))),
        timedelta(minutes=draw(st.sampled_from([0, 10]))),
    )  # fmt: skip
    holidays = frozenset(first + timedelta(days=d) for d in draw(st.lists(st.integers(0, 6), max_size=2)))
    catalog = Catalog(tenant=tenant, services=(service,), staff=tuple(staff), holidays=holidays)
    midnight = datetime.combine(first, time(0), tzinfo=BERLIN).astimezone(UTC)
    busy: dict[int, list[Interval]] = {}
    for member in staff:
        spans = draw(st.lists(st.tuples(st.integers(0, 6 * 24 * 60), st.integers(10, 600)), max_size=12))
        busy[member.id] = [
            Interval(midnight + timedelta(minutes=s), midnight + timedelta(minutes=s + length))
            for s, length in spans
        ]
    now = midnight + timedelta(minutes=draw(st.integers(0, 24 * 60)))
    requested = midnight + timedelta(
        minutes=draw(st.integers(0, 5 * 24 * 60)), seconds=draw(st.sampled_from([0, 7]))
    )
    if draw(
        st.booleans()
    ):  # as `day_availability` passes it: the salon's wall time, maybe one that does not exist
        requested = datetime.combine(
            requested.astimezone(BERLIN).date(), requested.astimezone(BERLIN).time(), BERLIN
        )
    calendar = Calendar(busy, external=draw(st.booleans()))
    return calendar, catalog, service, requested, now, draw(st.integers(1, 4))


@settings(max_examples=300, deadline=None)
@given(cases())
def test_counting_near_the_wanted_time_picks_what_the_whole_days_pick(
    case: tuple[Calendar, Catalog, Service, datetime, datetime, int],
) -> None:
    calendar, catalog, service, requested, now, limit = case
    staff = catalog.staff
    expected = asyncio.run(whole_days(calendar, catalog, service, staff, requested, now, limit))
    day_by_day = list(calendar.reads)
    calendar.reads.clear()
    found = asyncio.run(alternatives(calendar, catalog, service, staff, requested, now, limit))  # type: ignore[arg-type]
    assert found == expected
    # never a day that day by day did not read (Cal.com's requests), in no more reads than days
    assert days_of(calendar.reads) == days_of(day_by_day)
    assert len(calendar.reads) <= len(day_by_day)


def days_of(windows: list[Interval]) -> list[date]:
    """The local days the read windows cover, in reading order (a day read twice counts twice)."""
    covered = []
    for window in windows:
        day = window.start.astimezone(BERLIN).date()
        while datetime.combine(day, time(0), tzinfo=BERLIN) < window.end:
            covered.append(day)
            day += timedelta(days=1)
    return covered


def test_a_wanted_time_with_free_starts_around_it_is_answered_without_the_whole_day() -> None:
    """The narrow window is really used: on a free day the picks come from the first radius."""
    opening = {d: (TimeRange(time(8), time(20)),) for d in range(7)}
    tenant = Tenant(1, "t", "Salon", "Europe/Berlin", "BE", opening, BookingPolicy(min_notice=timedelta(0)))
    staff = tuple(Staff(n, f"s{n}", f"Stylist {n}", opening) for n in range(1, 4))
    service = Service(1, "s", "Schnitt", (), timedelta(minutes=30), timedelta(0), timedelta(0))
    catalog = Catalog(tenant=tenant, services=(service,), staff=staff)
    asked = datetime(2027, 3, 9, 15, 0, tzinfo=BERLIN)
    windows: list[Interval] = []

    class Watched(FreeStarts):
        def within(self, window: Interval) -> list[Slot]:
            windows.append(window)
            return super().within(window)

    class Local(Calendar):
        async def free_starts(self, catalog, service, staff, window):  # type: ignore[no-untyped-def]
            return Watched(catalog, service, staff, self.busy)

    found = asyncio.run(
        alternatives(Local({}, external=False), catalog, service, staff, asked, asked - timedelta(days=1))  # type: ignore[arg-type]
    )
    assert [s.start.astimezone(BERLIN).time() for s in found] == [time(14, 30), time(14, 45), time(15, 15)]
    assert windows == [Interval(asked - timedelta(hours=1), asked + timedelta(hours=1))]


def test_an_asked_time_the_clocks_skip_picks_what_the_whole_days_pick() -> None:
    """Found in review: 02:30 on the night the clocks go forward does not exist. Given in the
    salon's zone (as a day's availability passes it), the narrowed search read it as 03:30 and the
    whole-day search as 02:30, so they offered different starts the next day (the Sunday is closed)."""
    night = {d: (TimeRange(time(2), time(2, 15)), TimeRange(time(3, 45), time(4))) for d in range(6)}
    policy = BookingPolicy(min_notice=timedelta(0))
    tenant = Tenant(1, "t", "Salon", "Europe/Berlin", "BE", night, policy)
    staff = (Staff(1, "s1", "Stylist 1", night),)
    service = Service(1, "s", "Schnitt", (), timedelta(minutes=15), timedelta(0), timedelta(0))
    catalog = Catalog(tenant=tenant, services=(service,), staff=staff)
    asked = datetime.combine(date(2027, 3, 28), time(2, 30), BERLIN)
    now = datetime(2027, 3, 27, 12, 0, tzinfo=UTC)
    calendar = Calendar({}, external=False)
    expected = asyncio.run(whole_days(calendar, catalog, service, staff, asked, now, 1))
    found = asyncio.run(alternatives(calendar, catalog, service, staff, asked, now, 1))  # type: ignore[arg-type]
    assert found == expected


def test_a_full_day_reads_the_days_it_still_needs_at_once() -> None:
    """A refused popular day (in the load run, four days read one by one, a third of the server's
    time): the requested day, then the three days the three alternatives still need, in one read."""
    opening = {d: (TimeRange(time(9), time(18)),) for d in range(7)}
    tenant = Tenant(1, "t", "Salon", "Europe/Berlin", "BE", opening, BookingPolicy(min_notice=timedelta(0)))
    staff = (Staff(1, "s1", "Stylist 1", opening),)
    service = Service(1, "s", "Schnitt", (), timedelta(minutes=30), timedelta(0), timedelta(0))
    catalog = Catalog(tenant=tenant, services=(service,), staff=staff)
    asked = datetime(2027, 3, 9, 15, 0, tzinfo=BERLIN)
    full = Interval(datetime(2027, 3, 9, 9, 0, tzinfo=BERLIN), datetime(2027, 3, 9, 18, 0, tzinfo=BERLIN))
    calendar = Calendar({1: [full]}, external=False)
    found = asyncio.run(alternatives(calendar, catalog, service, staff, asked, asked - timedelta(days=1)))  # type: ignore[arg-type]
    assert [s.start.astimezone(BERLIN) for s in found] == [
        datetime(2027, 3, d, 15, 0, tzinfo=BERLIN) for d in (10, 11, 12)
    ]
    assert days_of(calendar.reads) == [date(2027, 3, d) for d in (9, 10, 11, 12)]
    assert len(calendar.reads) == 2
