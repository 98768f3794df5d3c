"""call_inbound: answer within milliseconds with the salon's context as dynamic variables.

The agent's LLM gets "today" in German, the ISO date, year, weekday and time, the next 14 days as a
German list, the salon's name and opening hours — all strings, all in the salon's zone — so it never
has to guess a year or a weekday. Caller recognition (`booking.caller_id`, only with consent) adds
`customer_known`, `shared_number`, `customer_name` and `next_appointments`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from rezeption.booking.caller_id import CallerMatch
from rezeption.domain.model import Catalog
from rezeption.language.speech import MONTH_NAMES, WEEKDAY_NAMES
from rezeption.retell.salon_functions import speak_exceptions, speak_opening_hours

RELATIVE_DAYS = {0: "heute", 1: "morgen", 2: "übermorgen"}


def long_date(moment: datetime) -> str:
    """ "Mittwoch, 5. November 2025"."""
    return f"{WEEKDAY_NAMES[moment.weekday()]}, {moment.day}. {MONTH_NAMES[moment.month - 1]} {moment.year}"


def next_days(moment: datetime, count: int = 14) -> str:
    """ "Mittwoch, 5. November (heute); Donnerstag, 6. November (morgen); ..." for `count` days."""
    parts = []
    for offset in range(count):
        day = moment.date() + timedelta(days=offset)
        text = f"{WEEKDAY_NAMES[day.weekday()]}, {day.day}. {MONTH_NAMES[day.month - 1]} {day.year}"
        if offset in RELATIVE_DAYS:
            text += f" ({RELATIVE_DAYS[offset]})"
        parts.append(text)
    return "; ".join(parts)


def dynamic_variables(catalog: Catalog, now: datetime) -> dict[str, str]:
    """The strings the agent's prompt uses, in the salon's zone."""
    local = now.astimezone(catalog.tenant.zone)
    return {
        "salon_name": catalog.tenant.name,
        "heute": long_date(local),
        "datum_iso": local.date().isoformat(),
        "jahr": str(local.year),
        "wochentag": WEEKDAY_NAMES[local.weekday()],
        "uhrzeit": local.strftime("%H:%M"),
        "naechste_14_tage": next_days(local),
        "oeffnungszeiten": speak_opening_hours(catalog.tenant.opening_hours),
        "ausnahmen": speak_exceptions(catalog, local.date()) or "keine",
        "zeitzone": catalog.tenant.timezone,
    }


def inbound_response(catalog: Catalog, now: datetime, caller: CallerMatch | None = None) -> dict[str, Any]:
    """The whole call_inbound reply: variables, caller recognition (None: the caller not
    recognized, as for a replay or an answer from memory) and the agent's time zone."""
    variables = dynamic_variables(catalog, now)
    variables.update((caller or CallerMatch("unknown")).dynamic_variables())
    return {
        "call_inbound": {
            "dynamic_variables": variables,
            "metadata": {"tenant": catalog.tenant.slug},
            "agent_override": {"agent": {"timezone": catalog.tenant.timezone, "language": "de-DE"}},
        }
    }
