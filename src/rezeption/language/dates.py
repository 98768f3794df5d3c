"""The date grammar: a canonical phrase (see ``text.normalize``) -> a day, a window of days, or a rejection.

Owns the calendar rules of ``resolve_when`` (written out in the package docstring): relative days,
weekdays and calendar weeks, numeric and spoken dates with the year correction, and the windows
("am Wochenende", "Anfang nächster Woche", "im Dezember") that are asked about, never guessed.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from rezeption.language.text import MONTHS, WEEKDAYS


@dataclass(frozen=True, slots=True)
class DateOutcome:
    """What the date words meant: one day, a window of days, alternatives, or a reason to reject."""

    day: date | None = None
    window: tuple[date, date] | None = None
    alternatives: tuple[date, ...] = ()
    reason: str | None = None
    weekday_said: int | None = None
    from_weekday: bool = False


_WD_NAMES = "|".join(WEEKDAYS)
_WD = r"(?P<wd>" + _WD_NAMES + r")"
_MON = r"(?P<mon>" + "|".join(MONTHS) + r")"
_WEEKDAY_INDEX = {name: index for index, name in enumerate(WEEKDAYS)}
_MONTH_INDEX = {name: index + 1 for index, name in enumerate(MONTHS)}
_WEEK_OFFSET = {"diese": 0, "naechste": 1, "uebernaechste": 2}
_RELATIVE_DAYS = {"heute": 0, "morgen": 1, "uebermorgen": 2}
_MONTH_PARTS = {"anfang": (1, 10), "mitte": (11, 20), "ende": (21, 31)}
_WEEK_PARTS = {"anfang": (0, 2), "mitte": (1, 3), "ende": (3, 6)}


def next_occurrence(today: date, month: int, day: int) -> date | None:
    """Return the first ``day.month.`` on or after today (29.2. waits for a leap year), else None."""
    for year in range(today.year, today.year + 9):
        try:
            candidate = date(year, month, day)
        except ValueError:
            continue
        if candidate >= today:
            return candidate
    return None


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _next_weekday(today: date, weekday: int, *, include_today: bool = False) -> date:
    ahead = (weekday - today.weekday()) % 7
    if ahead == 0 and not include_today:
        ahead = 7
    return today + timedelta(days=ahead)


def _year(text: str | None) -> int | None:
    if text is None:
        return None
    value = int(text)
    return 2000 + value if value < 100 else value


def _calendar_date(today: date, day: int, month: int, year: int | None) -> DateOutcome:
    """A spoken or written date; past years and passed days roll forward, a future year is kept."""
    if not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(2028, month)[1]:
        return DateOutcome(reason="invalid_date")
    if year is not None:
        try:
            candidate = date(year, month, day)
        except ValueError:
            return DateOutcome(reason="invalid_date")
        if year > today.year:
            return DateOutcome(day=candidate)
    return DateOutcome(day=next_occurrence(today, month, day))


def _iso(m: re.Match[str], today: date) -> DateOutcome | None:
    return _calendar_date(today, int(m["d"]), int(m["m"]), int(m["y"]))


def _numeric(m: re.Match[str], today: date) -> DateOutcome | None:
    return _calendar_date(today, int(m["d"]), int(m["m"]), _year(m["y"] or m["y2"]))


def _numeric_bare(m: re.Match[str], today: date) -> DateOutcome | None:
    if not 1 <= int(m["m"]) <= 12:
        return None  # "14.30" is a time, not a date
    return _calendar_date(today, int(m["d"]), int(m["m"]), None)


def _day_month(m: re.Match[str], today: date) -> DateOutcome | None:
    return _calendar_date(today, int(m["d"]), _MONTH_INDEX[m["mon"]], _year(m["y"]))


def _day_of_month(m: re.Match[str], today: date) -> DateOutcome | None:
    day = int(m["d"])
    if not 1 <= day <= 31:
        return DateOutcome(reason="invalid_date")
    first = today.replace(day=1)
    for step in range(3):
        year, month = divmod(first.month - 1 + step, 12)
        if day <= calendar.monthrange(first.year + year, month + 1)[1]:
            candidate = date(first.year + year, month + 1, day)
            if candidate >= today:
                return DateOutcome(day=candidate)
    return DateOutcome(reason="invalid_date")


def _month_window(m: re.Match[str], today: date) -> DateOutcome | None:
    month = _MONTH_INDEX[m["mon"]]
    first_day, last_day = _MONTH_PARTS.get(m["part"] or "", (1, 31))
    for year in (today.year, today.year + 1):
        last = min(last_day, calendar.monthrange(year, month)[1])
        if date(year, month, last) >= today:
            return DateOutcome(window=(max(date(year, month, first_day), today), date(year, month, last)))
    return None


def _offset(m: re.Match[str], today: date) -> DateOutcome | None:
    base = today + timedelta(days=_RELATIVE_DAYS.get(m["base"] or "heute", 0))
    count, unit = int(m["n"]), m["unit"]
    if unit.startswith("tag"):
        alternatives = (base + timedelta(days=7),) if count == 8 else ()
        return DateOutcome(day=base + timedelta(days=count), alternatives=alternatives)
    if unit.startswith("woche"):
        return DateOutcome(day=base + timedelta(weeks=count))
    year, month = divmod(base.month - 1 + count, 12)
    last = calendar.monthrange(base.year + year, month + 1)[1]
    return DateOutcome(day=date(base.year + year, month + 1, min(base.day, last)))


def _relative(m: re.Match[str], today: date) -> DateOutcome | None:
    return DateOutcome(day=today + timedelta(days=_RELATIVE_DAYS[m[0]]))


def _weekday_in_weeks(m: re.Match[str], today: date) -> DateOutcome | None:
    start = today + timedelta(weeks=int(m["n"]))
    return DateOutcome(
        day=_next_weekday(start, _WEEKDAY_INDEX[m["wd"]], include_today=True), from_weekday=True
    )


def _weekday_of_week(m: re.Match[str], today: date) -> DateOutcome | None:
    day = _monday(today) + timedelta(weeks=_WEEK_OFFSET[m["mod"]], days=_WEEKDAY_INDEX[m["wd"]])
    if day < today:
        return DateOutcome(reason="past_date", from_weekday=True)
    return DateOutcome(day=day, from_weekday=True)


def _weekday(m: re.Match[str], today: date) -> DateOutcome | None:
    weekday, modifier = _WEEKDAY_INDEX[m["wd"]], m["mod"]
    if modifier == "diese":
        return DateOutcome(day=_next_weekday(today, weekday, include_today=True), from_weekday=True)
    day = _next_weekday(today, weekday)
    if modifier == "uebernaechste":
        return DateOutcome(day=day + timedelta(weeks=1), from_weekday=True)
    if modifier == "naechste" and _monday(day) == _monday(today):
        return DateOutcome(day=day, alternatives=(day + timedelta(weeks=1),), from_weekday=True)
    return DateOutcome(day=day, from_weekday=True)


def _week_window(m: re.Match[str], today: date) -> DateOutcome | None:
    monday = _monday(today) + timedelta(weeks=_WEEK_OFFSET[m["mod"] or "diese"])
    first, last = _WEEK_PARTS.get(m.groupdict().get("part") or "", (0, 6))
    end = monday + timedelta(days=last)
    if end < today:
        return DateOutcome(reason="past_date")
    return DateOutcome(window=(max(monday + timedelta(days=first), today), end))


def _weekend(m: re.Match[str], today: date) -> DateOutcome | None:
    saturday = _monday(today) + timedelta(days=5)
    if today.weekday() == 6 or m["mod"] in ("naechste", "uebernaechste"):
        saturday += timedelta(weeks=2 if m["mod"] == "uebernaechste" else 1)
    return DateOutcome(window=(max(saturday, today), saturday + timedelta(days=1)))


def _month_ahead(m: re.Match[str], today: date) -> DateOutcome | None:
    step = 0 if m["mod"] == "diese" else 1
    year, month = divmod(today.month - 1 + step, 12)
    first = date(today.year + year, month + 1, 1)
    last = first.replace(day=calendar.monthrange(first.year, first.month)[1])
    return DateOutcome(window=(max(first, today), last))


def _past(m: re.Match[str], today: date) -> DateOutcome | None:
    return DateOutcome(reason="past_date")


_Rule = tuple[re.Pattern[str], Callable[[re.Match[str], date], DateOutcome | None]]
_MOD = r"(?P<mod>naechste|uebernaechste|diese)"
_RULES: tuple[_Rule, ...] = tuple(
    (re.compile(pattern), handler)
    for pattern, handler in (
        (r"\b(?:vorgestern|gestern|letzte (?:woche|monat|" + _WD_NAMES + r"))\b", _past),
        (r"\b(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})\b", _iso),
        (r"\b(?P<d>\d{1,2})\. ?(?P<m>\d{1,2})\.(?: ?(?P<y>\d{4})\b|(?P<y2>\d{2})\b)?", _numeric),
        (r"\b(?P<d>\d{1,2})\.(?P<m>\d{1,2})\b(?![.:]| uhr)", _numeric_bare),
        (r"\b(?P<d>\d{1,2})\.? (?:des )?" + _MON + r"\b(?: (?P<y>\d{4})\b)?", _day_month),
        (r"\b" + _MON + r" (?P<d>\d{1,2})\.?(?![\d:]| uhr)(?: (?P<y>\d{4})\b)?", _day_month),
        (r"\b" + _WD + r" in (?P<n>\d{1,2}) wochen?\b", _weekday_in_weeks),
        (_MOD + r" woche (?:am )?" + _WD + r"\b", _weekday_of_week),
        (r"\b" + _WD + r" (?:in )?(?:der )?" + _MOD + r" woche\b", _weekday_of_week),
        (
            r"\b(?:(?P<base>heute|morgen|uebermorgen) )?in (?P<n>\d{1,3}) "
            r"(?P<unit>tagen|tag|wochen|woche|monaten|monat)\b",
            _offset,
        ),
        (r"\buebermorgen\b|\bmorgen\b|\bheute\b", _relative),
        (r"\b(?:(?P<part>anfang|mitte|ende) )?(?:(?:im|in|des) )?" + _MON + r"\b", _month_window),
        (r"\b(?:am|den|der|dem|zum|ab|bis) (?P<d>\d{1,2})\.(?!\d)", _day_of_month),
        (r"^(?P<d>\d{1,2})\.$", _day_of_month),
        (r"\b(?P<part>anfang|mitte|ende) (?:der |des )?(?:" + _MOD + r" )?woche\b", _week_window),
        (_MOD + r" woche\b", _week_window),
        (r"\b(?:(?P<mod>naechste|diese|uebernaechste) )?wochenende\b", _weekend),
        (r"\b(?P<mod>naechste|diese) monat\b", _month_ahead),
        (r"\b(?:(?P<mod>naechste|uebernaechste|diese) )?" + _WD + r"\b", _weekday),
    )
)
_BARE_WEEKDAY = re.compile(r"\b" + _WD + r"\b")


def find_date(text: str, today: date) -> tuple[DateOutcome | None, str]:
    """Find the first date phrase in ``text``; return its outcome and the text without it."""
    if not text or text.isspace():
        return None, text
    for pattern, handler in _RULES:
        match = pattern.search(text)
        if match is None:
            continue
        outcome = handler(match, today)
        if outcome is None:
            continue
        rest = text[: match.start()] + " " + text[match.end() :]
        if outcome.day is not None and not outcome.from_weekday:
            outcome, rest = _check_weekday(outcome, rest, today)
        return outcome, rest
    return None, text


def _check_weekday(outcome: DateOutcome, rest: str, today: date) -> tuple[DateOutcome, str]:
    """ "Freitag, der 6. November" when the 6th is a Thursday: ask, offering both readings."""
    match = _BARE_WEEKDAY.search(rest)
    if match is None or outcome.day is None:
        return outcome, rest
    rest = rest[: match.start()] + " " + rest[match.end() :]
    said = _WEEKDAY_INDEX[match["wd"]]
    if outcome.day.weekday() == said:
        return outcome, rest
    other = _monday(outcome.day) + timedelta(days=said)
    if other < today:
        other += timedelta(weeks=1)
    return DateOutcome(reason="weekday_mismatch", alternatives=(outcome.day, other), weekday_said=said), rest
