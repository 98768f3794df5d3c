"""The text behind ``rezeption parse "<date words>" "<time words>" [--now ISO] [--json]``.

Owns ``parse_command``: it resolves the words against a given or injected "now" in the salon's zone
and returns what the command prints, so the Typer app wires it in one line.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from rezeption.language.speech import join_alternatives, speak_date, speak_time, speak_when
from rezeption.language.when import resolve_when

SALON_ZONE = ZoneInfo("Europe/Berlin")


def _reference(now_iso: str | None, now: datetime | None) -> datetime:
    """``--now`` (naive ISO is read as salon time), else the injected clock's now, in the salon's zone."""
    if now_iso:
        parsed = datetime.fromisoformat(now_iso)
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=SALON_ZONE)
        return parsed.astimezone(SALON_ZONE)
    if now is None:
        raise ValueError("pass --now or the current time")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(SALON_ZONE)


WEEKDAYS = ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag")


def parse_command(
    date_words: str, time_words: str, now_iso: str | None, as_json: bool, *, now: datetime | None = None
) -> str:
    """Resolve the words and return the JSON object (``as_json``) or one German line to print."""
    return resolve_command(date_words, time_words, now_iso, as_json, now=now)[0]


def resolve_command(
    date_words: str, time_words: str, now_iso: str | None, as_json: bool, *, now: datetime | None = None
) -> tuple[str, bool]:
    """What ``parse`` prints, and whether the words were refused (the command then exits 1)."""
    reference = _reference(now_iso, now)
    when = resolve_when(date_words, time_words, reference)
    refused = when.reason is not None
    if as_json:
        return json.dumps({**when.as_dict(), "now": reference.isoformat()}, ensure_ascii=False), refused
    if refused:
        return f"{when.reason}: {when.message}", True
    return _spoken(when, reference.date()), False


def _spoken(when: Any, today: date) -> str:
    """The resolved words as the receptionist says them, then the calendar date they mean."""
    if when.date is not None and when.time is not None:
        text = speak_when(when.date, when.time, today)
    elif when.date is not None:
        text = speak_date(when.date, today)
    elif when.time is not None:
        text = f"um {speak_time(when.time)}"
    else:
        text = "ein Zeitraum"
    window = when.window
    if (
        window is not None
        and window.first_day is not None
        and window.last_day not in (None, window.first_day)
    ):
        assert window.last_day is not None
        text += f" (zwischen {speak_date(window.first_day, today)} und {speak_date(window.last_day, today)})"
    if when.window is not None and when.window.start is not None and when.window.end is not None:
        text += f" (zwischen {speak_time(when.window.start)} und {speak_time(when.window.end)})"
    if when.alternatives:
        options = [speak_date(a.date, today) for a in when.alternatives if a.date is not None]
        text += f"; oder auch {join_alternatives(options)}"
    if when.approximate:
        text += " (ungefähr)"
    if when.date is not None:
        exact = f"{WEEKDAYS[when.date.weekday()]}, {when.date.strftime('%d.%m.%Y')}"
        if when.time is not None:
            exact += f", {when.time.strftime('%H:%M')}"
        text += f" → {exact}"
    return text
