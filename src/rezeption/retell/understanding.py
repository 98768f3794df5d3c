"""Turning the caller's words into the salon's things: service, stylist, day and time.

Each resolver either returns the thing or raises `Clarify`, a reply the agent speaks to ask back
(which service of two, which day of a week, which name). Words come from the function arguments
first and from the call's memory second.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from rezeption.domain.model import Catalog, Service, Staff
from rezeption.language import join_alternatives, match_service, resolve_when, speak_date
from rezeption.language.names import LIKELY_SAME, name_score
from rezeption.language.when import weekly_pairs
from rezeption.ops.metrics import PAST_YEAR_DATES
from rezeption.retell.context import CallContext


class Clarify(Exception):
    """Not enough or contradictory words: ask the caller (a domain outcome, not a failure)."""

    def __init__(self, reason: str, message: str, **facts: object) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.facts = facts


def resolve_service(ctx: CallContext, words: str | None) -> Service:
    """The one service the caller means (from their words or what they said earlier in the call)."""
    active = [s for s in ctx.catalog.services if s.active]
    if not words:
        remembered = ctx.memory.get("service")
        for service in active:
            if service.key == remembered:
                return service
        raise Clarify(
            "missing_service", "Welche Leistung möchten Sie buchen?", angebot=[s.name for s in active]
        )
    match = match_service(words, active)
    if match.kind == "matched" and isinstance(match.service, Service):
        ctx.learn(service=match.service.key)
        return match.service
    if match.kind == "ambiguous":
        names = [c.name for c in match.candidates]
        raise Clarify("ambiguous_service", f"Meinen Sie {join_alternatives(names)}?", kandidaten=names)
    offer = list(match.offer)
    raise Clarify(
        "unknown_service",
        f"Das bieten wir leider nicht an. Möglich sind zum Beispiel {join_alternatives(offer[:4])}.",
        angebot=offer,
    )


def resolve_staff(catalog: Catalog, words: str | None) -> Staff | None:
    """The stylist the caller named (None for anyone); Clarify when nobody of that name works here."""
    if not words or words.strip().lower() in {
        "egal",
        "irgendwer",
        "beliebig",
        "any",
        "anyone",
        "keine",
        "niemand",
    }:
        return None
    active = [s for s in catalog.staff if s.active]
    scored = sorted(
        ((max(name_score(words, s.name), name_score(words, s.key)), s) for s in active), key=lambda x: -x[0]
    )
    if scored and scored[0][0] >= LIKELY_SAME:
        return scored[0][1]
    names = [s.name for s in active]
    raise Clarify(
        "unknown_staff",
        "Eine Mitarbeiterin oder einen Mitarbeiter mit diesem Namen haben wir nicht. "
        f"Bei uns arbeiten {join_alternatives(names, 'und')}.",
        mitarbeiter=names,
    )


_YEAR = re.compile(r"\b((?:19|20)\d\d)\b")


@dataclass(frozen=True)
class Moment:
    """A resolved day, and a time unless the caller gave a part of the day (then `window`); a span
    of days ("nächste Woche", "am Wochenende") runs from `day` to `last_day`."""

    day: date
    at: time | None
    window: tuple[time, time] | None = None
    last_day: date | None = None


def resolve_moment(
    ctx: CallContext, date_words: str | None, time_words: str | None, weekday: str | None
) -> Moment:
    """Resolve day and time words against the salon's clock, or Clarify what to ask."""
    date_text = " ".join(part for part in (weekday, date_words) if part)
    if not date_text and not time_words:
        remembered_day, remembered_time = ctx.memory.get("date"), ctx.memory.get("time")
        if remembered_day:
            return Moment(
                date.fromisoformat(remembered_day),
                time.fromisoformat(remembered_time) if remembered_time else None,
            )
        raise Clarify("missing_date", "An welchem Tag möchten Sie kommen?")
    if any(int(year) < ctx.today.year for year in _YEAR.findall(date_text)):
        PAST_YEAR_DATES.inc()  # the old system's LLM said 2023: we never book it, but we watch for it
    hours = weekly_pairs(ctx.catalog.tenant.opening_hours)
    when = resolve_when(date_text, time_words or "", ctx.now, opening_hours=hours)
    if when.reason is not None:
        options = [speak_date(a.date, ctx.today) for a in when.alternatives if a.date is not None]
        raise Clarify(when.reason, when.message or "Das habe ich leider nicht verstanden.", optionen=options)
    if when.alternatives:
        days = [when.date, *(a.date for a in when.alternatives)]
        options = [speak_date(day, ctx.today) for day in days if day is not None]
        raise Clarify("ambiguous_date", f"Meinen Sie {join_alternatives(options)}?", optionen=options)
    window = None
    if when.time is None and when.window is not None and when.window.start and when.window.end:
        window = (when.window.start, when.window.end)
    if when.date is None and when.window is not None and when.window.first_day and when.window.last_day:
        first = max(when.window.first_day, ctx.today)
        if first > when.window.last_day:
            raise Clarify("missing_date", "An welchem Tag genau möchten Sie kommen?")
        if when.time is not None:  # "nächste Woche um 10": the days of that week with 10 Uhr free
            window = (when.time, (datetime.combine(first, when.time) + timedelta(minutes=1)).time())
        return Moment(first, None, window, last_day=when.window.last_day)
    if when.date is None:
        raise Clarify("missing_date", "An welchem Tag genau möchten Sie kommen?")
    ctx.learn(date=when.date.isoformat(), time=when.time.strftime("%H:%M") if when.time else None)
    return Moment(when.date, when.time, window)


def instant(ctx: CallContext, day: date, at: time) -> datetime:
    """The aware instant of a local day and time in the salon's zone (first of a repeated hour)."""
    return datetime.combine(day, at, tzinfo=ctx.catalog.tenant.zone)
