"""Dates and times as a German receptionist says them.

Owns the spoken forms the agent reads out: ``speak_time`` ("14:30 Uhr", "9 Uhr"), ``speak_date``
("morgen", "am Donnerstag, dem 6. November"), ``speak_when`` (both together) and ``join_alternatives``
("a, b oder c"). Every form is one that ``resolve_when`` reads back to the same date and time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, time

from rezeption.language.dates import next_occurrence

WEEKDAY_NAMES = ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag")
MONTH_NAMES = (
    "Januar",
    "Februar",
    "März",
    "April",
    "Mai",
    "Juni",
    "Juli",
    "August",
    "September",
    "Oktober",
    "November",
    "Dezember",
)
_RELATIVE = {0: "heute", 1: "morgen", 2: "übermorgen"}


def speak_time(value: time) -> str:
    """Say a clock time: "14:30 Uhr", "9 Uhr"; 1-6 o'clock get "nachts"/"morgens" (not 13-18)."""
    text = f"{value.hour} Uhr" if value.minute == 0 else f"{value.hour}:{value.minute:02d} Uhr"
    if 1 <= value.hour <= 4:
        return f"{text} nachts"
    if 5 <= value.hour <= 6:
        return f"{text} morgens"
    return text


def speak_day(value: date, today: date) -> str:
    """Say a calendar date without "am": "Donnerstag, dem 6. November" (with the year when it is needed)."""
    text = f"{WEEKDAY_NAMES[value.weekday()]}, dem {value.day}. {MONTH_NAMES[value.month - 1]}"
    if next_occurrence(today, value.month, value.day) != value:
        text += f" {value.year}"
    return text


def speak_date(value: date, today: date) -> str:
    """Say a date: "heute", "morgen", "übermorgen", else "am Donnerstag, dem 6. November"."""
    relative = _RELATIVE.get((value - today).days)
    return relative if relative is not None else f"am {speak_day(value, today)}"


def speak_when(day: date, at: time, today: date) -> str:
    """Say a date and time: "am Donnerstag, dem 6. November, um 14:30 Uhr"; "morgen um 9 Uhr"."""
    spoken = speak_date(day, today)
    separator = ", " if spoken.startswith("am ") else " "
    return f"{spoken}{separator}um {speak_time(at)}"


def join_alternatives(items: Sequence[str], conjunction: str = "oder") -> str:
    """Join spoken options naturally: "a", "a oder b", "a, b oder c"."""
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"
