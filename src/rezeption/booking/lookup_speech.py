"""What the receptionist says about found appointments: one summary, or a list to choose from.

"Ich habe Ihren Termin gefunden: Herrenhaarschnitt am Dienstag um 10 Uhr bei Anna." and "Sie haben am
Montag zwei Termine: um 10 Uhr Herrenhaarschnitt und um 15 Uhr Bartpflege. Welchen meinen Sie?" Days
within the coming week are said by weekday alone (the way `resolve_when` reads them back).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, time
from typing import Protocol

from rezeption.language import join_alternatives, speak_date, speak_time
from rezeption.language.speech import WEEKDAY_NAMES

COUNTS = {
    2: "zwei",
    3: "drei",
    4: "vier",
    5: "fünf",
    6: "sechs",
    7: "sieben",
    8: "acht",
    9: "neun",
    10: "zehn",
}


class Spoken(Protocol):
    """What speech needs of a found appointment."""

    @property
    def local_date(self) -> date: ...

    @property
    def local_time(self) -> time: ...

    @property
    def service(self) -> str: ...

    @property
    def staff(self) -> str: ...


def speak_day(day: date, today: date) -> str:
    """ "heute", "morgen", "übermorgen", "am Freitag" (this coming week) or "am Freitag, dem 14. November"."""
    ahead = (day - today).days
    if 3 <= ahead <= 6:
        return f"am {WEEKDAY_NAMES[day.weekday()]}"
    return speak_date(day, today)


def speak_day_time(day: date, at: time, today: date) -> str:
    """ "morgen um 10 Uhr", "am Freitag um 11 Uhr", "am Dienstag, dem 11. November, um 12 Uhr"."""
    spoken = speak_day(day, today)
    return f"{spoken}{', ' if ', dem ' in spoken else ' '}um {speak_time(at)}"


def _count(n: int) -> str:
    return COUNTS.get(n, str(n))


def describe_one(found: Spoken, today: date) -> str:
    """The summary of one appointment."""
    return (
        f"Ich habe Ihren Termin gefunden: {found.service} "
        f"{speak_day_time(found.local_date, found.local_time, today)} bei {found.staff}."
    )


def describe_many(found: Sequence[Spoken], today: date, most: int) -> str:
    """A list to choose from: grouped by day when all are on one day; the first `most` when many."""
    shown = found[:most]
    days = {f.local_date for f in found}
    if len(days) == 1:
        items = [f"um {speak_time(f.local_time)} {f.service}" for f in shown]
        day = speak_day(found[0].local_date, today)
        head = f"Sie haben {day}{',' if ', dem ' in day else ''} {_count(len(found))} Termine"
    else:
        items = [f"{speak_day_time(f.local_date, f.local_time, today)} {f.service}" for f in shown]
        head = f"Ich habe {_count(len(found))} Termine gefunden"
    if len(found) > len(shown):
        listed = join_alternatives(items, "und")
        return f"{head}, zum Beispiel {listed}. An welchem Tag ist der Termin, den Sie meinen?"
    return f"{head}: {join_alternatives(items, 'und')}. Welchen meinen Sie?"
