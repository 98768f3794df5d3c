"""list_services and get_opening_hours: what the salon offers and when it is open, spoken briefly."""

from __future__ import annotations

from datetime import date, time, timedelta
from itertools import groupby

from rezeption.domain.model import Catalog, SpecialDay, TimeRange, WeeklyHours
from rezeption.language import join_alternatives
from rezeption.language.speech import WEEKDAY_NAMES, speak_date, speak_day
from rezeption.retell.context import CallContext
from rezeption.retell.replies import Reply, reply
from rezeption.retell.tools import GetOpeningHoursArgs, ListServicesArgs


async def list_services(ctx: CallContext, _args: ListServicesArgs) -> Reply:
    """The active services by name, with durations and prices as facts."""
    active = [s for s in ctx.catalog.services if s.active]
    names = [s.name for s in active]
    return reply(
        True,
        f"Wir bieten {join_alternatives(names, 'und')} an. Was darf es für Sie sein?",
        leistungen=[
            {
                "name": s.name,
                "dauer_minuten": int(s.duration.total_seconds() // 60),
                "preis_euro": None if s.price_cents is None else s.price_cents / 100,
            }
            for s in active
        ],
    )


def _hour(value: time) -> str:
    return f"{value.hour}" if value.minute == 0 else f"{value.hour}:{value.minute:02d}"


def _clock(value: TimeRange) -> str:
    return f"von {_hour(value.start)} bis {_hour(value.end)} Uhr"


def speak_opening_hours(table: WeeklyHours) -> str:
    """ "Dienstag und Mittwoch von 9 bis 18 Uhr und Samstag von 9 bis 14 Uhr": equal neighbours grouped."""
    parts = []
    days = sorted(table)
    for _, run in groupby(enumerate(days), key=lambda pair: (pair[1] - pair[0], tuple(table[pair[1]]))):
        group = [day for _, day in run]
        ranges = " und ".join(_clock(r) for r in table[group[0]])
        if len(group) == 1:
            label = WEEKDAY_NAMES[group[0]]
        elif len(group) == 2:
            label = f"{WEEKDAY_NAMES[group[0]]} und {WEEKDAY_NAMES[group[-1]]}"
        else:
            label = f"{WEEKDAY_NAMES[group[0]]} bis {WEEKDAY_NAMES[group[-1]]}"
        parts.append(f"{label} {ranges}")
    return join_alternatives(parts, "und")


def speak_exceptions(catalog: Catalog, today: date, days: int = 14) -> str:
    """The salon-wide exceptions of the coming `days`, a run of equal days said once: "Heiligabend,
    am Donnerstag, dem 24. Dezember, nur von 9 bis 13 Uhr; Betriebsferien, vom Montag, dem 27. Juli,
    bis Freitag, dem 31. Juli, geschlossen" (empty when there are none)."""
    last = today + timedelta(days=days)
    ahead = sorted(d for d in catalog.special_days if today <= d <= last)
    runs: list[tuple[date, date, SpecialDay]] = []
    for day in ahead:
        special = catalog.special_days[day]
        if runs and runs[-1][1] + timedelta(days=1) == day and runs[-1][2] == special:
            runs[-1] = (runs[-1][0], day, special)
        else:
            runs.append((day, day, special))
    parts = []
    for first, end, special in runs:
        when = (
            speak_date(first, today)
            if first == end
            else f"vom {speak_day(first, today)}, bis {speak_day(end, today)}"
        )
        hours = "geschlossen" if special.closed else "nur " + " und ".join(_clock(r) for r in special.hours)
        label = f"{special.reason}, " if special.reason else ""
        parts.append(f"{label}{when}, {hours}")
    return "; ".join(parts)


async def get_opening_hours(ctx: CallContext, _args: GetOpeningHoursArgs) -> Reply:
    """The salon's opening hours as one sentence (with the exceptions of the coming two weeks), and
    per weekday as facts."""
    hours = ctx.catalog.tenant.opening_hours
    spoken = speak_opening_hours(hours)
    message = (
        f"Wir haben {spoken} geöffnet." if spoken else "Im Moment haben wir keine Öffnungszeiten hinterlegt."
    )
    exceptions = speak_exceptions(ctx.catalog, ctx.today)
    if exceptions:
        message += f" Abweichend davon: {exceptions}."
    return reply(
        True,
        message,
        oeffnungszeiten={
            WEEKDAY_NAMES[day]: [f"{r.start:%H:%M}-{r.end:%H:%M}" for r in ranges]
            for day, ranges in sorted(hours.items())
        },
        ausnahmen=[
            {
                "datum": day.isoformat(),
                "geoeffnet": [f"{r.start:%H:%M}-{r.end:%H:%M}" for r in ctx.catalog.special_days[day].hours],
                "grund": ctx.catalog.special_days[day].reason,
            }
            for day in sorted(ctx.catalog.special_days)
            if ctx.today <= day <= ctx.today + timedelta(days=14)
        ],
    )
