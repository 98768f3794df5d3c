"""The time grammar: a canonical phrase (``text.normalize``) -> a clock time, a part of the day, or nothing.

Owns the clock rules of ``resolve_when``: "14 Uhr", "14:30", "vierzehn Uhr dreißig", "halb drei",
"viertel nach/vor", "dreiviertel vier", "zehn nach halb drei", "3 pm"; parts of the day ("nachmittags um
drei", "vormittags" alone = a window); "gegen"/"kurz nach" = approximate; and which of two 12-hour
readings is meant (a part of the day, then the opening hours, then 1-6 -> 13-18 and 7-12 as said).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import time


@dataclass(frozen=True, slots=True)
class ClockSpec:
    """A time as said: ``hour`` on a 12-hour dial unless ``clock24``; ``invalid`` when no such time exists."""

    hour: int
    minute: int
    clock24: bool = False
    approximate: bool = False
    meridiem: str | None = None
    invalid: bool = False


PARTS_OF_DAY = ("morgens", "vormittags", "mittags", "nachmittags", "abends", "nachts")
WINDOWS: dict[str, tuple[time, time]] = {
    "morgens": (time(7), time(10)),
    "vormittags": (time(8), time(12)),
    "nachmittags": (time(12), time(18)),
    "abends": (time(18), time(22)),
}
_PART = re.compile(r"\b(?P<part>" + "|".join(PARTS_OF_DAY) + r")\b")
_APPROX = r"(?:(?P<approx>gegen|kurz nach|kurz vor) (?:um )?)?"


def _spec(hour: int, minute: int, *, written: str = "", m: re.Match[str] | None = None) -> ClockSpec:
    """A clock time from an hour and minute as said; 24-hour when > 12, 0, or written with a leading zero."""
    approximate = m is not None and m["approx"] is not None
    if not 0 <= hour <= 23 or not 0 <= minute <= 59:
        return ClockSpec(hour, minute, invalid=True)
    clock24 = hour > 12 or hour == 0 or (len(written) == 2 and written.startswith("0"))
    return ClockSpec(hour, minute, clock24=clock24, approximate=approximate)


def _before(hour: int, minutes_before: int, m: re.Match[str]) -> ClockSpec:
    """ "halb drei", "viertel vor vier": minutes before the named hour; "halb eins" is 12:30."""
    if not 1 <= hour <= 24:
        return ClockSpec(hour, 0, invalid=True)
    total = hour * 60 - minutes_before
    said, minute = divmod(total, 60)
    if said == 0:
        said = 12
    spec = _spec(said, minute, m=m)
    return ClockSpec(said, minute, clock24=hour > 12, approximate=spec.approximate)


def _hour_minute(m: re.Match[str]) -> ClockSpec:
    return _spec(int(m["h"]), int(m["m"] or 0), written=m["h"], m=m)


def _hour(m: re.Match[str]) -> ClockSpec:
    return _spec(int(m["h"]), 0, written=m["h"], m=m)


def _meridiem(m: re.Match[str]) -> ClockSpec:
    hour = int(m["h"])
    if not 1 <= hour <= 12:
        return ClockSpec(hour, 0, invalid=True)
    spec = _spec(hour, int(m["m"] or 0), m=m)
    return ClockSpec(
        spec.hour, spec.minute, approximate=spec.approximate, meridiem=m["mer"], invalid=spec.invalid
    )


def _half(m: re.Match[str]) -> ClockSpec:
    if m["past"]:  # English "half past two"
        return _spec(int(m["h"]), 30, m=m)
    return _before(int(m["h"]), 30, m)


def _quarter(m: re.Match[str]) -> ClockSpec:
    hour, kind = int(m["h"]), m["kind"].strip()
    if kind == "nach":
        return _spec(hour, 15, m=m)
    if kind == "vor":
        return _before(hour, 15, m)
    return _before(hour, 45, m)  # "viertel vier" (east and south): 3:15


def _three_quarter(m: re.Match[str]) -> ClockSpec:
    return _before(int(m["h"]), 15, m)


def _minutes_around(m: re.Match[str]) -> ClockSpec:
    minutes, hour = int(m["n"]), int(m["h"])
    if not 1 <= minutes <= 29:
        return ClockSpec(hour, minutes, invalid=True)
    offset = minutes if m["dir"] == "nach" else -minutes
    return _before(hour, (30 if m["half"] else 0) - offset, m)


_Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], ClockSpec]]
_RULES: tuple[_Rule, ...] = (
    *(
        (re.compile(_APPROX + pattern), handler)
        for pattern, handler in (
            (
                r"\b(?P<h>\d{1,2})(?::(?P<m>\d{2}))? ?(?P<mer>am|pm)\b(?! (?:\d|\w+tag\b|den|dem|der))",
                _meridiem,
            ),
            (r"\b(?P<h>\d{1,2}) uhr (?P<m>\d{1,2})\b(?![.:])", _hour_minute),
            (r"\b(?P<h>\d{1,2}):(?P<m>\d{2})\b", _hour_minute),
            (r"\b(?P<h>\d{1,2})\.(?P<m>\d{2})(?![\d.])", _hour_minute),
            (
                r"\b(?P<n>\d{1,2}) (?:minuten )?(?P<dir>nach|vor) (?P<half>halb )?(?P<h>\d{1,2})\b(?![.:])",
                _minutes_around,
            ),
            (r"\bhalb (?P<past>nach )?(?P<h>\d{1,2})\b(?![.:])", _half),
            (r"\b(?:dreiviertel|3 viertel) (?P<h>\d{1,2})\b(?![.:])", _three_quarter),
            (r"\bviertel (?P<kind>nach |vor |)(?P<h>\d{1,2})\b(?![.:])", _quarter),
            (r"\b(?P<h>\d{1,2}) uhr\b", _hour),
            (r"\b(?:um|ab) (?P<h>\d{1,2})\b(?![.:\d])", _hour),
        )
    ),
    (re.compile(r"\b(?P<approx>gegen|kurz nach|kurz vor) (?P<h>\d{1,2})\b(?![.:\d])"), _hour),
)
_BARE = re.compile(r"^(?P<h>\d{1,2})(?: (?P<m>\d{2}))?$")


def find_clock(text: str) -> tuple[ClockSpec | None, str]:
    """Find the first clock time in ``text``; return it and the text without it."""
    if not text or text.isspace():
        return None, text
    for pattern, handler in _RULES:
        match = pattern.search(text)
        if match is not None:
            return handler(match), text[: match.start()] + " " + text[match.end() :]
    return None, text


def find_bare_hour(text: str) -> ClockSpec | None:
    """A time field that holds only a number ("drei", "14 30") is an hour (and minute)."""
    match = _BARE.match(text.strip())
    if match is None:
        return None
    return _spec(int(match["h"]), int(match["m"] or 0), written=match["h"])


def find_part_of_day(text: str) -> str | None:
    """Return the first part of the day named in ``text`` ("nachmittags"), or None."""
    match = _PART.search(text)
    return match["part"] if match else None


def choose_hour(spec: ClockSpec, part: str | None, is_open: Callable[[time], bool] | None) -> time:
    """Pick the reading of a valid spec: a part of the day, then the opening hours, then 1-6 -> 13-18."""
    hour, minute = spec.hour, spec.minute
    if spec.clock24:
        return time(hour, minute)
    if spec.meridiem is not None:
        return time(hour % 12 + (12 if spec.meridiem == "pm" else 0), minute)
    if part in ("morgens", "vormittags"):
        return time(hour, minute)
    if part == "mittags":
        return time(hour if hour >= 11 else hour + 12, minute)
    if part in ("nachmittags", "abends"):
        return time(hour % 12 + 12, minute)
    if part == "nachts":
        return time(0 if hour == 12 else hour if hour <= 5 else hour + 12, minute)
    readings = [time(hour, minute)] if hour == 12 else [time(hour, minute), time(hour + 12, minute)]
    if is_open is not None:
        inside = [reading for reading in readings if is_open(reading)]
        if len(inside) == 1:
            return inside[0]
    return readings[-1] if 1 <= hour <= 6 else readings[0]
