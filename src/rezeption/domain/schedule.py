"""Slots: which starts are free, and why a given start is not. Pure functions of their inputs.

Working time of a stylist on a day = the salon's opening hours ∩ the stylist's hours, nothing on a
public holiday. A start is free for a stylist when the whole block (buffer before + service + buffer
after) lies inside working time and touches no break, absence or other booking's block. Starts are
offered on a grid counted from local midnight (15 minutes by default). All arithmetic is on aware
instants, so a 60-minute service lasts 60 real minutes also on DST days; local wall times that do
not exist (spring forward) map forward, repeated ones (fall back) take their first occurrence.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from operator import attrgetter
from zoneinfo import ZoneInfo

from rezeption.domain.model import Catalog, Interval, Service, Slot, Staff, TimeRange, WeeklyHours


def wall_intervals(day: date, ranges: Sequence[TimeRange], zone: ZoneInfo) -> list[Interval]:
    """Turn the wall-clock ranges of one local day into aware UTC intervals."""
    return list(_wall_intervals(day, tuple(ranges), zone))


@lru_cache(maxsize=8192)
def _wall_intervals(day: date, ranges: tuple[TimeRange, ...], zone: ZoneInfo) -> tuple[Interval, ...]:
    # Remembered: every availability check and booking asks for the same few days and hours, and
    # the zone arithmetic showed in a booking's profile (a few per cent). Pure: it cannot go stale.
    spans = []
    for r in ranges:
        start = datetime.combine(day, r.start, tzinfo=zone).astimezone(UTC)
        end = datetime.combine(day, r.end, tzinfo=zone).astimezone(UTC)
        if end > start:
            spans.append(Interval(start, end))
    return tuple(spans)


def _weekly(day: date, hours: WeeklyHours, zone: ZoneInfo) -> list[Interval]:
    return wall_intervals(day, hours.get(day.weekday(), ()), zone)


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """Pairwise intersection of two lists of intervals."""
    out = []
    for x in a:
        for y in b:
            start, end = max(x.start, y.start), min(x.end, y.end)
            if end > start:
                out.append(Interval(start, end))
    return sorted(out)


def merge(spans: Iterable[Interval]) -> list[Interval]:
    """Sort and merge overlapping or touching intervals into disjoint ones."""
    merged: list[Interval] = []
    for span in sorted(spans):
        if merged and span.start <= merged[-1].end:
            if span.end > merged[-1].end:
                merged[-1] = Interval(merged[-1].start, span.end)
        else:
            merged.append(span)
    return merged


def opening_intervals(catalog: Catalog, day: date) -> list[Interval]:
    """When the salon is open on `day`: a special day's hours, else nothing on a public holiday,
    else the weekly hours."""
    special = catalog.special_days.get(day)
    if special is not None:
        return wall_intervals(day, special.hours, catalog.tenant.zone)
    if day in catalog.holidays:
        return []
    return _weekly(day, catalog.tenant.opening_hours, catalog.tenant.zone)


def closed_reason(catalog: Catalog, day: date) -> str | None:
    """Why the salon is closed all day (`special_closure`, `holiday`, `closed`), or None when it opens."""
    special = catalog.special_days.get(day)
    if special is not None:
        return "special_closure" if special.closed else None
    if day in catalog.holidays:
        return "holiday"
    if not catalog.tenant.opening_hours.get(day.weekday()):
        return "closed"
    return None


def working_intervals(catalog: Catalog, staff: Staff, day: date) -> list[Interval]:
    """When `staff` works on `day`: the salon's opening hours ∩ the stylist's own hours."""
    return intersect(opening_intervals(catalog, day), _weekly(day, staff.working_hours, catalog.tenant.zone))


def blocked_intervals(
    catalog: Catalog, staff: Staff, day: date, busy: Sequence[Interval], window: Interval
) -> list[Interval]:
    """Breaks, absences and other bookings of `staff` that touch `window`, merged."""
    spans = _weekly(day, staff.breaks, catalog.tenant.zone)
    spans.extend(a for a in staff.absences if a.overlaps(window))
    spans.extend(b for b in busy if b.overlaps(window))
    return merge(spans)


class BusyIndex:
    """One stylist's bookings, merged and sorted once, so each day's slice is a binary search."""

    def __init__(self, busy: Iterable[Interval]) -> None:
        self.spans = merge(busy)
        self.starts = [s.start for s in self.spans]
        self.ends = [s.end for s in self.spans]

    def touching(self, window: Interval) -> list[Interval]:
        """The spans that overlap `window`."""
        return self.spans[bisect_right(self.ends, window.start) : bisect_left(self.starts, window.end)]


def block_of(service: Service, start: datetime) -> Interval:
    """The span a booking of `service` at `start` keeps its stylist busy, buffers included."""
    return Interval(start - service.buffer_before, start + service.duration + service.buffer_after)


def ceil_to_grid(at: datetime, grid: timedelta, zone: ZoneInfo) -> datetime:
    """The first grid point at or after `at`, the grid counted in the salon's wall-clock time."""
    offset = at.astimezone(zone).utcoffset() or timedelta(0)
    step = grid.total_seconds()
    shifted = (at + offset).timestamp()
    aligned = math.ceil(shifted / step - 1e-9) * step
    return datetime.fromtimestamp(aligned, UTC) - offset


def local_days(window: Interval, zone: ZoneInfo) -> Iterator[date]:
    """Each local date that `window` touches, in order."""
    day = window.start.astimezone(zone).date()
    last = (window.end - timedelta(microseconds=1)).astimezone(zone).date()
    while day <= last:
        yield day
        day += timedelta(days=1)


def free_slots(
    catalog: Catalog,
    service: Service,
    staff: Sequence[Staff],
    busy: Mapping[int, Sequence[Interval]],
    window: Interval,
) -> list[Slot]:
    """All free grid starts in `window` for `service` with any of `staff`, ordered by start then staff."""
    return FreeStarts(catalog, service, staff, busy).within(window)


class FreeStarts:
    """The free grid starts of `service` with any of `staff`, over bookings read once: ask for any
    window the bookings cover, as often as needed (a narrow one first, a wider one only if the
    narrow one did not hold enough)."""

    def __init__(
        self,
        catalog: Catalog,
        service: Service,
        staff: Sequence[Staff],
        busy: Mapping[int, Sequence[Interval]],
    ) -> None:
        self.catalog, self.service, self.staff = catalog, service, staff
        self.indexes = {member.id: BusyIndex(busy.get(member.id, ())) for member in staff}

    def within(self, window: Interval) -> list[Slot]:
        """The free starts in `window`, ordered by start then staff."""
        catalog, service = self.catalog, self.service
        zone, grid = catalog.tenant.zone, catalog.tenant.policy.slot_grid
        slots: list[Slot] = []
        for day in local_days(window, zone):
            for member in self.staff:
                for work in working_intervals(catalog, member, day):
                    if work.end <= window.start or work.start >= window.end:
                        continue  # no start of this work lies in the window
                    touching = self.indexes[member.id].touching(work)
                    blocked = blocked_intervals(catalog, member, day, touching, work)
                    slots.extend(_free_in(service, member.id, work, blocked, window, grid, zone))
        slots.sort(key=attrgetter("start", "staff_id"))
        return slots


class ListedSlots:
    """Free starts already known as a list (an external calendar's answer), asked like `FreeStarts`."""

    def __init__(self, slots: Sequence[Slot]) -> None:
        self.slots = slots

    def within(self, window: Interval) -> list[Slot]:
        """The listed starts in `window`, in their listed order."""
        return [s for s in self.slots if window.start <= s.start < window.end]


def _free_in(
    service: Service,
    staff_id: int,
    work: Interval,
    blocked: Sequence[Interval],
    window: Interval,
    grid: timedelta,
    zone: ZoneInfo,
) -> list[Slot]:
    """The free grid starts of one stylist in one working interval (inside `window`). Where a
    start is free, every grid start after it is free too until the next blocked span (or the end
    of the work or the window), so such a run is counted out at once instead of start by start:
    a day of 20 stylists on a 15-minute grid is about a thousand slots."""
    before, duration = service.buffer_before, service.duration
    tail = duration + service.buffer_after
    ceil = _grid_ceiling(work, grid, zone)
    start = ceil(max(work.start + before, window.start))
    i, n = 0, len(blocked)
    free: list[Slot] = []
    while start < window.end:
        block_start, block_end = start - before, start + tail
        if block_end > work.end:
            break
        while i < n and blocked[i].end <= block_start:
            i += 1
        if i < n and blocked[i].start < block_end:
            start = ceil(max(blocked[i].end + before, start + grid))
            continue
        # blocked[i] (if any) starts at or after this start's block ends; later spans start later
        limit = min(work.end, blocked[i].start) if i < n else work.end
        count = min((limit - block_end) // grid + 1, -(-(window.end - start) // grid))
        for _ in range(count):
            free.append(Slot(start, start + duration, staff_id))
            start += grid
    return free


def _grid_ceiling(work: Interval, grid: timedelta, zone: ZoneInfo) -> Callable[[datetime], datetime]:
    """`ceil_to_grid` for instants inside `work`; without a zone lookup per call when the UTC
    offset is the same at both ends (every day but the two DST changes, inside opening hours)."""
    offset = work.start.astimezone(zone).utcoffset()
    if offset is None or offset != work.end.astimezone(zone).utcoffset():
        return lambda at: ceil_to_grid(at, grid, zone)
    micro = timedelta(microseconds=1)
    step, shift = grid // micro, offset // micro

    def ceil(at: datetime) -> datetime:
        # whole microseconds (exact: the float's error is far below half a microsecond)
        late = (round(at.timestamp() * 1_000_000) + shift) % step
        return at if late == 0 else at + timedelta(microseconds=step - late)

    return ceil


@dataclass(frozen=True)
class StartCheck:
    """The verdict on one requested start: the stylists free for it, or why none is."""

    free_staff_ids: tuple[int, ...]
    reason: str | None

    @property
    def free(self) -> bool:
        """Whether at least one stylist can take the booking."""
        return bool(self.free_staff_ids)


def check_start(
    catalog: Catalog,
    service: Service,
    staff: Sequence[Staff],
    busy: Mapping[int, Sequence[Interval]],
    start: datetime,
    now: datetime,
    *,
    named: bool = False,
) -> StartCheck:
    """Decide whether `start` is bookable now; reasons are NotBookable codes or `slot_taken`.

    With `named` (the caller asked for one stylist) the stylist's own reason is given (absent, not
    working); for "anyone" a start nobody can take is simply taken.
    """
    refusal = salon_refusal(catalog, service, start, now)
    if refusal is not None:
        return StartCheck((), refusal)
    block = block_of(service, start)
    day = start.astimezone(catalog.tenant.zone).date()
    free: list[int] = []
    reasons: list[str] = []
    for member in staff:
        reason = _staff_verdict(catalog, member, day, busy.get(member.id, ()), block)
        if reason is None:
            free.append(member.id)
        else:
            reasons.append(reason)
    if free:
        return StartCheck(tuple(free), None)
    if named and len(reasons) == 1:
        return StartCheck((), reasons[0])
    if reasons and all(r != "slot_taken" for r in reasons):
        return StartCheck((), "nobody_then")  # booked out is not the truth: nobody works then
    return StartCheck((), "slot_taken")


def salon_refusal(catalog: Catalog, service: Service, start: datetime, now: datetime) -> str | None:
    """Why nobody can take `service` at `start` by the salon's own rules: in the past, too short
    notice, beyond the horizon, closed, outside the opening hours (None: each stylist decides,
    `staff_free`). The first half of `check_start`."""
    policy, zone = catalog.tenant.policy, catalog.tenant.zone
    day = start.astimezone(zone).date()
    if start < now:
        return "in_past"
    if start < now + policy.min_notice:
        return "too_short_notice"
    if day > now.astimezone(zone).date() + timedelta(days=policy.horizon_days):
        return "beyond_horizon"
    shut = closed_reason(catalog, day)
    if shut is not None:
        return shut
    opening = opening_intervals(catalog, day)
    if not opening:
        return "closed"
    core = Interval(start, start + service.duration)
    if not any(o.contains(core) for o in opening):
        return "outside_hours"
    return None


def staff_free(
    catalog: Catalog, member: Staff, service: Service, start: datetime, busy: Sequence[Interval] = ()
) -> bool:
    """Whether `member` can take `service` at `start` (not absent, working then, no break, none of
    `busy` in the way), once `salon_refusal` found nothing. The second half of `check_start`, for
    one stylist."""
    day = start.astimezone(catalog.tenant.zone).date()
    return _staff_verdict(catalog, member, day, busy, block_of(service, start)) is None


def day_reason(catalog: Catalog, service: Service, staff: Sequence[Staff], day: date) -> str:
    """Why `day` has no free start for `service`: closed all day, nobody who offers it works that
    day (`nobody_that_day`), or booked out (`day_full`)."""
    shut = closed_reason(catalog, day)
    if shut is not None:
        return shut
    working = False
    for member in staff:
        for work in working_intervals(catalog, member, day):
            if not any(a.contains(work) for a in member.absences):
                working = True
    return "day_full" if working else "nobody_that_day"


def _staff_verdict(
    catalog: Catalog, member: Staff, day: date, busy: Sequence[Interval], block: Interval
) -> str | None:
    if any(a.overlaps(block) for a in member.absences):
        return "staff_absent"
    if not any(w.contains(block) for w in working_intervals(catalog, member, day)):
        return "staff_not_working"
    if any(b.overlaps(block) for b in blocked_intervals(catalog, member, day, busy, block)):
        taken = any(b.overlaps(block) for b in busy)
        # a break is not a booking: "taken" would be untrue (found by the model-based test)
        return "slot_taken" if taken else "staff_break"
    return None
