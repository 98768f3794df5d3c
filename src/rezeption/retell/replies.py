"""Replies the agent speaks: `{"ok": bool, "message": "<short German>", "reason"?: code, ...facts}`.

Messages hold no ISO strings, ids or English; facts (ISO dates, HH:MM, names) ride alongside for the
agent's logic. Domain refusals become `ok: false` with their reason code and German sentence, plus
spoken alternatives when there are any.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from rezeption.domain.errors import BookingError
from rezeption.domain.model import Catalog, Slot
from rezeption.language import speak_date
from rezeption.language.offers import (
    capitalized,
    hours_sentence,
    offer_sentence,
    refusal_sentence,
    speak_slots,
    speak_times,
    why_not,
)

__all__ = [
    "Reply",
    "capitalized",
    "hours_sentence",
    "offer_sentence",
    "refusal",
    "reply",
    "slot_facts",
    "speak_slots",
    "speak_times",
    "spoken_day",
    "why_not",
]

Reply = dict[str, Any]


def reply(ok: bool, message: str, reason: str | None = None, **facts: Any) -> Reply:
    """One reply; `reason` only on refusals."""
    body: Reply = {"ok": ok, "message": message}
    if reason is not None:
        body["reason"] = reason
    body.update(facts)
    return body


def slot_facts(catalog: Catalog, slot: Slot) -> dict[str, str]:
    """A slot as structured facts in the salon's zone."""
    local = slot.start.astimezone(catalog.tenant.zone)
    return {
        "datum": local.date().isoformat(),
        "uhrzeit": local.strftime("%H:%M"),
        "mitarbeiter": catalog.staff_by_id(slot.staff_id).name,
    }


def refusal(catalog: Catalog, error: BookingError, today: date, day: date | None = None) -> Reply:
    """A domain refusal with its alternatives, spoken (`language.offers.refusal_sentence`)."""
    alternatives: Sequence[Slot] = error.details.get("alternatives", ())
    facts: dict[str, Any] = {}
    if alternatives:
        facts["alternativen"] = [slot_facts(catalog, s) for s in alternatives]
    if "offer" in error.details:
        facts["angebot"] = error.details["offer"]
    return reply(False, refusal_sentence(catalog, error, today, day), error.code, **facts)


def spoken_day(day: date, today: date) -> str:
    """ "Am Donnerstag, dem 6. November" / "Morgen", to start a sentence."""
    return capitalized(speak_date(day, today))
