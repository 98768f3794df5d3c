"""Slot arithmetic of the Cal.com emulator: working windows, busy times, free starts. Pure.

Owns the computation behind ``GET /v2/slots``: from a weekly schedule in its zone, a UTC range,
"now" plus the minimum notice, the booking window, buffers and busy intervals, the list of free
slot starts (UTC). Windows are laid out per local date with ``zoneinfo``, so DST days come out
right; ``dst_bug`` reproduces cal.com #30021 (windows starting at or after 13:00 offered one hour
late on transition days).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from rezeption.emulators.calcom.config import ScheduleConfig

__all__ = ["Interval", "SlotRules", "free_slots", "is_transition_day", "working_windows"]


@dataclass(frozen=True, slots=True)
class Interval:
    """A half-open UTC interval [start, end)."""

    start: datetime
    end: datetime

    def overlaps(self, other: Interval) -> bool:
        """True when the two intervals share any instant."""
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True, slots=True)
class SlotRules:
    """What shapes the slots of one event type."""

    duration: timedelta
    interval: timedelta
    minimum_notice: timedelta = timedelta(0)
    before_buffer: timedelta = timedelta(0)
    after_buffer: timedelta = timedelta(0)
    booking_window: timedelta | None = None


def is_transition_day(day: date, zone: ZoneInfo) -> bool:
    """True when the zone's UTC offset changes during this local date."""
    first = datetime.combine(day, time(0, 0), tzinfo=zone).utcoffset()
    last = datetime.combine(day, time(23, 59), tzinfo=zone).utcoffset()
    return first != last


def working_windows(
    schedule: ScheduleConfig, start: datetime, end: datetime, *, dst_bug: bool = False
) -> Iterator[Interval]:
    """UTC working windows of the schedule that touch [start, end]."""
    zone = ZoneInfo(schedule.time_zone)
    day = start.astimezone(zone).date() - timedelta(days=1)
    last_day = end.astimezone(zone).date() + timedelta(days=1)
    while day <= last_day:
        shift = dst_bug and is_transition_day(day, zone)
        for opens, closes in schedule.windows(day.weekday()):
            window_start = datetime.combine(day, opens, tzinfo=zone)
            window_end = datetime.combine(day, closes, tzinfo=zone)
            if shift and opens >= time(13, 0):
                window_start += timedelta(hours=1)
                window_end += timedelta(hours=1)
            utc_start, utc_end = window_start.astimezone(UTC), window_end.astimezone(UTC)
            if utc_end > start and utc_start <= end:
                yield Interval(utc_start, utc_end)
        day += timedelta(days=1)


def free_slots(
    windows: Iterable[Interval],
    rules: SlotRules,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    busy: Iterable[Interval] = (),
    held: Iterable[Interval] = (),
) -> list[datetime]:
    """Free slot starts (UTC) in [start, end], aligned to ``rules.interval`` from each window start."""
    busy_padded = [Interval(item.start - rules.after_buffer, item.end + rules.before_buffer) for item in busy]
    held_list = list(held)
    earliest = now + rules.minimum_notice
    latest = now + rules.booking_window if rules.booking_window is not None else None
    found: list[datetime] = []
    for window in windows:
        slot_start = window.start
        while slot_start + rules.duration <= window.end:
            candidate = Interval(slot_start, slot_start + rules.duration)
            if (
                start <= slot_start <= end
                and slot_start >= earliest
                and (latest is None or slot_start <= latest)
                and not any(candidate.overlaps(b) for b in busy_padded)
                and not any(candidate.overlaps(h) for h in held_list)
            ):
                found.append(slot_start)
            slot_start += rules.interval
    return sorted(set(found))
