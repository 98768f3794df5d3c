"""``resolve_when``: a caller's date and time words -> a ``When`` on the salon's clock.

Owns the one public resolution function and its result. It reads both fields (a time inside the date
field and a date inside the time field are found too), joins the date grammar (``dates``) with the
clock grammar (``times``), and rejects what cannot be booked: no such date or time, a day or time
already past, a weekday that does not match the date, a time skipped by the DST change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from rezeption.domain.model import WeeklyHours
from rezeption.language.dates import DateOutcome, find_date
from rezeption.language.speech import WEEKDAY_NAMES, join_alternatives, speak_date, speak_time
from rezeption.language.text import normalize
from rezeption.language.times import (
    WINDOWS,
    ClockSpec,
    choose_hour,
    find_bare_hour,
    find_clock,
    find_part_of_day,
)

OpeningHours = tuple[time, time] | Mapping[int, Sequence[tuple[time, time]]]
"""Either one (open, close) pair for every day, or weekday (0 = Monday) -> (open, close) pairs."""

FAR_FUTURE = timedelta(days=3653)
"""Days further ahead than this (ten years) are refused: no salon books them, and "31.12.9999" would
overflow every calculation after it."""

REASONS = {
    "not_understood": (
        "Das habe ich leider nicht verstanden. An welchem Tag und um wie viel Uhr hätten Sie gern den Termin?"
    ),
    "invalid_date": "Dieses Datum gibt es nicht. Welchen Tag meinen Sie?",
    "invalid_time": "Diese Uhrzeit gibt es nicht. Welche Uhrzeit meinen Sie?",
    "past_date": "Dieser Tag liegt in der Vergangenheit. Welchen Tag meinen Sie?",
    "past_time": "Diese Uhrzeit ist heute schon vorbei. Welche Uhrzeit passt Ihnen?",
    "weekday_mismatch": "Wochentag und Datum passen nicht zusammen. Welchen Tag meinen Sie?",
    "nonexistent_time": "Diese Uhrzeit fällt wegen der Zeitumstellung aus. Welche Uhrzeit passt Ihnen?",
    "far_future": "Dieser Tag liegt zu weit in der Zukunft. Welchen Tag meinen Sie?",
}
"""Reason code -> the German sentence the caller hears (some are made more specific when they can be)."""


@dataclass(frozen=True, slots=True)
class Reading:
    """One possible reading of the caller's words."""

    date: date | None
    time: time | None


@dataclass(frozen=True, slots=True)
class Window:
    """A period instead of a point: days (``first_day``..``last_day``) and/or hours (``start``..``end``)."""

    first_day: date | None = None
    last_day: date | None = None
    start: time | None = None
    end: time | None = None


@dataclass(frozen=True, slots=True)
class When:
    """The resolved date and time; None where not understood or rejected (then ``reason`` says why)."""

    date: date | None = None
    time: time | None = None
    window: Window | None = None
    alternatives: tuple[Reading, ...] = field(default=())
    approximate: bool = False
    reason: str | None = None
    message: str | None = None

    @property
    def complete(self) -> bool:
        """True when there is one date and one time to book and nothing to ask."""
        return (
            self.date is not None and self.time is not None and self.reason is None and not self.alternatives
        )

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view: ISO dates, HH:MM times."""
        window = None
        if self.window is not None:
            window = {
                "first_day": _iso(self.window.first_day),
                "last_day": _iso(self.window.last_day),
                "start": _hhmm(self.window.start),
                "end": _hhmm(self.window.end),
            }
        return {
            "date": _iso(self.date),
            "time": _hhmm(self.time),
            "window": window,
            "alternatives": [{"date": _iso(a.date), "time": _hhmm(a.time)} for a in self.alternatives],
            "approximate": self.approximate,
            "reason": self.reason,
            "message": self.message,
        }


def weekly_pairs(hours: WeeklyHours) -> dict[int, list[tuple[time, time]]]:
    """A salon's weekly opening hours in the shape `resolve_when` takes (weekday -> (open, close))."""
    return {day: [(r.start, r.end) for r in ranges] for day, ranges in hours.items()}


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _hhmm(value: time | None) -> str | None:
    return value.strftime("%H:%M") if value is not None else None


def _hours_on(opening_hours: OpeningHours | None, day: date | None) -> list[tuple[time, time]] | None:
    if opening_hours is None:
        return None
    if isinstance(opening_hours, tuple):
        return [opening_hours]
    if day is not None:
        return list(opening_hours.get(day.weekday(), ()))
    return [pair for pairs in opening_hours.values() for pair in pairs]


def _exists(day: date, at: time, now: datetime) -> bool:
    """False for a wall-clock time the DST change skips (2025-03-30 02:30 in Europe/Berlin)."""
    local = datetime.combine(day, at, tzinfo=now.tzinfo)
    return local.astimezone(UTC).astimezone(now.tzinfo).replace(tzinfo=None) == local.replace(tzinfo=None)


def _find(date_norm: str, time_norm: str, today: date) -> tuple[DateOutcome | None, ClockSpec | None, str]:
    """Read both fields: the date field date-first, the time field time-first; return the rest words."""
    outcome, date_rest = find_date(date_norm, today)
    clock = find_bare_hour(time_norm)
    time_rest = ""
    if clock is None:
        clock, time_rest = find_clock(time_norm)
    time_outcome, time_rest = find_date(time_rest, today)
    if clock is None:
        clock, date_rest = find_clock(date_rest)
    return outcome or time_outcome, clock, f"{date_rest} {time_rest}"


def resolve_when(
    date_text: str, time_text: str, now: datetime, *, opening_hours: OpeningHours | None = None
) -> When:
    """Resolve the caller's date and time words against aware ``now``; the rules: see the package."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    today = now.date()
    date_norm, time_norm = normalize(date_text), normalize(time_text)
    outcome, clock, rest = _find(date_norm, time_norm, today)
    part = find_part_of_day(rest)
    if outcome is None and clock is None and part is None:
        return _reject("not_understood") if (date_norm or time_norm) else When()
    outcome = outcome or DateOutcome()
    day = outcome.day
    if outcome.reason is not None:
        return _reject(outcome.reason, outcome, today)
    latest = today + FAR_FUTURE
    days = [day, *outcome.alternatives, *(outcome.window or ())]
    if any(d is not None and d > latest for d in days):
        return _reject("far_future", outcome, today)
    hours = _hours_on(opening_hours, day)
    at: time | None = None
    window: Window | None = None
    if clock is not None:
        if clock.invalid:
            return _reject("invalid_time", outcome, today)
        at = choose_hour(clock, part, _is_open(hours))
    elif part == "mittags":
        at = time(12)
    elif part in WINDOWS:
        window = _time_window(part, hours, day, now)
        if window is None:
            return _reject("past_time", outcome, today)
    if outcome.window is not None:
        first, last = outcome.window
        window = Window(first, last, window.start if window else None, window.end if window else None)
    if day is not None and at is not None:
        if not _exists(day, at, now):
            return _reject("nonexistent_time", outcome, today)
        if datetime.combine(day, at, tzinfo=now.tzinfo) <= now:
            return _reject("past_time", outcome, today, said=at)
    return When(
        date=day,
        time=at,
        window=window,
        alternatives=tuple(Reading(other, at) for other in outcome.alternatives),
        approximate=clock is not None and clock.approximate,
    )


def _is_open(hours: list[tuple[time, time]] | None) -> Callable[[time], bool] | None:
    if not hours:
        return None
    return lambda at: any(start <= at < end for start, end in hours)


def _time_window(
    part: str, hours: list[tuple[time, time]] | None, day: date | None, now: datetime
) -> Window | None:
    """A part of the day as hours, narrowed to the opening hours and, today, to what is still ahead."""
    start, end = WINDOWS[part]
    if hours:
        inside = [(max(start, o), min(end, c)) for o, c in hours if max(start, o) < min(end, c)]
        if inside:
            start, end = min(s for s, _ in inside), max(e for _, e in inside)
    if day == now.date():
        current = now.time().replace(second=0, microsecond=0, tzinfo=None)
        if end <= current:
            return None
        start = max(start, (datetime.combine(day, current) + timedelta(minutes=1)).time())
    return Window(day, day, start, end)


def _reject(
    reason: str, outcome: DateOutcome | None = None, today: date | None = None, said: time | None = None
) -> When:
    """A rejection: the offending part is None; date rejections keep nothing, time rejections keep the day."""
    message = REASONS[reason]
    day = (
        outcome.day
        if outcome is not None and reason in ("invalid_time", "past_time", "nonexistent_time")
        else None
    )
    alternatives: tuple[Reading, ...] = ()
    if (
        reason == "weekday_mismatch"
        and outcome is not None
        and today is not None
        and outcome.weekday_said is not None
    ):
        options = [speak_date(option, today) for option in outcome.alternatives]
        message = (
            f"Sie sagten {WEEKDAY_NAMES[outcome.weekday_said]}, aber das Datum ist ein "
            f"{WEEKDAY_NAMES[outcome.alternatives[0].weekday()]}. Meinen Sie {join_alternatives(options)}?"
        )
        alternatives = tuple(Reading(option, None) for option in outcome.alternatives)
    elif reason == "past_time" and said is not None:
        message = f"{speak_time(said)} ist heute schon vorbei. Welche Uhrzeit passt Ihnen?"
    return When(date=day, reason=reason, message=message, alternatives=alternatives)
