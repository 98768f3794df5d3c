"""Availability: is a requested start free, and if not, which nearby starts are.

Alternatives follow how a receptionist offers them: first the free starts on the requested day
nearest to the requested time, then, day by day, the start closest to that time of day, until
`limit` are found (never in the past, never inside the minimum notice, never beyond the horizon).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from rezeption.booking.ports import BookingTx, CalendarProvider, SlotSource
from rezeption.domain.model import Catalog, Interval, Service, Slot, Staff, TimeRange
from rezeption.domain.schedule import (
    StartCheck,
    block_of,
    check_start,
    closed_reason,
    day_reason,
    opening_intervals,
    wall_intervals,
    working_intervals,
)

SEARCH_DAYS = 14
MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class AvailabilityAnswer:
    """Whether `requested` is free (and with whom), or why not, plus alternatives."""

    requested: datetime
    service: Service
    check: StartCheck
    alternatives: tuple[Slot, ...]
    catalog: Catalog
    """The salon as this answer saw it (speak its reasons from this one, not an older copy)."""

    @property
    def free(self) -> bool:
        """Whether the requested start can be booked."""
        return self.check.free

    @property
    def reason(self) -> str | None:
        """Why not, as a reason code (None when free)."""
        return self.check.reason


@dataclass(frozen=True)
class DayAnswer:
    """The free starts of a day or a window of days (and hours), or why there are none plus the
    nearest alternatives outside it."""

    first_day: date
    last_day: date
    service: Service
    slots: tuple[Slot, ...]
    reason: str | None
    alternatives: tuple[Slot, ...]
    catalog: Catalog
    """The salon as this answer saw it (speak its reasons from this one, not an older copy)."""


def window_reason(
    catalog: Catalog,
    service: Service,
    staff: Sequence[Staff],
    first_day: date,
    last_day: date,
    hours: tuple[time, time] | None,
) -> str:
    """Why a window of days (optionally only some hours of each) holds no free start.

    One day: closed all day (`special_closure`, `holiday`, `closed`), the hours outside the opening
    hours (`outside_hours`), nobody who offers the service works that day or in those hours
    (`nobody_that_day`, `nobody_then`), else booked out (`day_full`). Several days: `closed` when the
    salon opens on none of them, else `day_full`.
    """
    if first_day != last_day:
        day = first_day
        while day <= last_day:
            if closed_reason(catalog, day) is None:
                return "day_full"
            day += timedelta(days=1)
        return "closed"
    reason = day_reason(catalog, service, staff, first_day)
    if reason != "day_full" or hours is None:
        return reason
    zone = catalog.tenant.zone
    asked = wall_intervals(first_day, [TimeRange(*hours)], zone)
    if not any(o.overlaps(a) for o in opening_intervals(catalog, first_day) for a in asked):
        return "outside_hours"
    for member in staff:
        for work in working_intervals(catalog, member, first_day):
            if any(work.overlaps(a) for a in asked) and not any(
                absence.contains(work) for absence in member.absences
            ):
                return "day_full"
    return "nobody_then"


def inside_opening(catalog: Catalog, slots: Sequence[Slot]) -> list[Slot]:
    """The slots that lie inside the salon's opening hours (an external calendar does not know
    our closures and special hours)."""
    zone = catalog.tenant.zone
    opening: dict[date, list[Interval]] = {}
    kept = []
    for slot in slots:
        day = slot.start.astimezone(zone).date()
        if day not in opening:
            opening[day] = opening_intervals(catalog, day)
        if any(o.contains(Interval(slot.start, slot.end)) for o in opening[day]):
            kept.append(slot)
    return kept


async def check_claims(
    tx: BookingTx,
    catalog: Catalog,
    service: Service,
    staff: Sequence[Staff],
    start: datetime,
    now: datetime,
    *,
    named: bool,
) -> StartCheck:
    """Check `start` against the salon's rules and the appointments held in our database."""
    busy = await tx.busy(catalog.tenant.id, [s.id for s in staff], block_of(service, start))
    return check_start(catalog, service, staff, busy, start, now, named=named)


def search_window(
    catalog: Catalog, requested: datetime, now: datetime, days: int = SEARCH_DAYS
) -> Interval | None:
    """From the requested day's start (not before now + notice) over `days` days, within the horizon."""
    zone, policy = catalog.tenant.zone, catalog.tenant.policy
    day = requested.astimezone(zone).date()
    start = max(datetime.combine(day, datetime.min.time(), tzinfo=zone), now + policy.min_notice)
    last_day = min(
        day + timedelta(days=days), now.astimezone(zone).date() + timedelta(days=policy.horizon_days)
    )
    end = datetime.combine(last_day + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    return Interval(start, end) if end > start else None


def nearest(slots: Sequence[Slot], requested: datetime, zone: ZoneInfo, limit: int = 3) -> list[Slot]:
    """Pick up to `limit` alternatives: same day nearest first, then one per following day."""
    by_start: dict[datetime, Slot] = {}
    for slot in slots:
        by_start.setdefault(slot.start, slot)
    unique = [s for s in by_start.values() if s.start != requested]
    local = requested.astimezone(zone)
    wanted_minutes = local.hour * 60 + local.minute
    same_day = [s for s in unique if s.start.astimezone(zone).date() == local.date()]
    picked = sorted(sorted(same_day, key=lambda s: abs(s.start - requested))[:limit], key=lambda s: s.start)
    later: dict[date, list[Slot]] = {}
    for slot in unique:
        day = slot.start.astimezone(zone).date()
        if day > local.date():
            later.setdefault(day, []).append(slot)
    for day in sorted(later):
        if len(picked) >= limit:
            break
        picked.append(min(later[day], key=lambda s: _minutes_apart(s.start, wanted_minutes, zone)))
    return picked[:limit]


def _minutes_apart(start: datetime, wanted_minutes: int, zone: ZoneInfo) -> int:
    at = start.astimezone(zone)
    return abs(at.hour * 60 + at.minute - wanted_minutes)


async def alternatives(
    provider: CalendarProvider,
    catalog: Catalog,
    service: Service,
    staff: Sequence[Staff],
    requested: datetime,
    now: datetime,
    limit: int = 3,
) -> tuple[Slot, ...]:
    """Up to `limit` free starts near `requested`, from the provider's view of the calendar.

    Reads the requested day first, then the following days, and stops as soon as `limit` are
    found. A following day adds at most one start, so when `n` are still missing the next `n` days
    are read at once (one database read, or their Cal.com days fetched together): never a day that
    reading day by day would not have read, and one read instead of `n` when the requested day is
    full (a refused popular day read four days one by one). Each day's free starts are first
    counted only near the time that matters (`_near_starts`), the whole day only when that did not
    settle the answer.
    """
    requested = requested.astimezone(UTC)  # one instant for every step (a wall time the clocks
    # skip, given in the salon's zone, would otherwise be read as two different times of day)
    window = search_window(catalog, requested, now)
    if window is None:
        return ()
    zone = catalog.tenant.zone
    slots: list[Slot] = []
    picked: list[Slot] = []
    keep = (lambda found: inside_opening(catalog, found)) if provider.external else None
    day_start = window.start
    while day_start < window.end and len(picked) < limit:
        days = 1 if day_start == window.start else limit - len(picked)
        read_end = _midnight_after(day_start, days, zone, window.end)
        source = await provider.free_starts(catalog, service, staff, Interval(day_start, read_end))
        while day_start < read_end:
            day_end = _midnight_after(day_start, 1, zone, read_end)
            slots.extend(_near_starts(source, keep, catalog, Interval(day_start, day_end), requested, limit))
            day_start = day_end
        picked = nearest(slots, requested, zone, limit)
    return tuple(picked)


def _midnight_after(instant: datetime, days: int, zone: ZoneInfo, cap: datetime) -> datetime:
    """The local midnight `days` days after `instant`'s local day began, or `cap` if earlier."""
    day = instant.astimezone(zone).date() + timedelta(days=days)
    return min(cap, datetime.combine(day, datetime.min.time(), tzinfo=zone))


NEAR_RADII = (timedelta(hours=1), timedelta(hours=3))
"""How far around the wanted time a day's free starts are counted first, before the whole day."""

DST_SLACK = timedelta(hours=1)
"""How far a wall-clock time of day can lie from the same instant's distance (a clock change)."""


def _near_starts(
    source: SlotSource,
    keep: Callable[[list[Slot]], list[Slot]] | None,
    catalog: Catalog,
    day: Interval,
    requested: datetime,
    limit: int,
) -> list[Slot]:
    """The free starts of one day (`day`: a window inside one local day) that `nearest` can pick
    from, the same picks as from all of the day's starts.

    On the requested day `nearest` takes the `limit` starts nearest to `requested`: when a window
    of `radius` around it holds `limit` starts closer than `radius`, no start outside it can be
    nearer. On a following day it takes the one start nearest to the wanted time of day (wall
    clock): a start closer than `radius` in wall time lies within `radius` plus a clock change's
    hour of that time, so finding one there settles it. Ties keep their order (start, stylist).
    """
    zone = catalog.tenant.zone
    local = requested.astimezone(zone)  # `requested` is UTC (`alternatives`): instant arithmetic
    same_day = day.start.astimezone(zone).date() == local.date()
    if same_day:
        centre = requested
    else:
        wall = datetime.combine(day.start.astimezone(zone).date(), local.time(), tzinfo=zone)
        centre = wall.astimezone(UTC)
    wanted_minutes = local.hour * 60 + local.minute
    for radius in NEAR_RADII:
        reach = radius if same_day else radius + DST_SLACK
        start, end = max(day.start, centre - reach), min(day.end, centre + reach)
        if end <= start:
            continue
        found = source.within(Interval(start, end))
        if keep is not None:
            found = keep(found)
        if same_day:
            near = {s.start for s in found if s.start != requested and abs(s.start - requested) < radius}
            settled = len(near) >= limit
        else:
            settled = any(_minutes_apart(s.start, wanted_minutes, zone) * MINUTE < radius for s in found)
        if settled:
            return found
    found = source.within(day)
    return keep(found) if keep is not None else found
