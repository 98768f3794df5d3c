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
from rezeption.language import join_alternatives, speak_date, speak_time, speak_when

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


def speak_slots(catalog: Catalog, slots: Sequence[Slot], today: date, day: date | None) -> str:
    """ "14:30 Uhr oder 15:15 Uhr" on the day talked about; other days with their date."""
    spoken = []
    for slot in slots:
        local = slot.start.astimezone(catalog.tenant.zone)
        if local.date() == day:
            spoken.append(speak_time(local.time()))
        else:
            spoken.append(speak_when(local.date(), local.time(), today))
    return join_alternatives(spoken)


def offer_sentence(catalog: Catalog, slots: Sequence[Slot], today: date, day: date | None) -> str:
    """ "Ich hätte 14:30 Uhr oder 15:15 Uhr frei." (empty when there is nothing to offer)."""
    if not slots:
        return ""
    return f"Ich hätte {speak_slots(catalog, slots, today, day)} frei."


def refusal(catalog: Catalog, error: BookingError, today: date, day: date | None = None) -> Reply:
    """A domain refusal with its alternatives, spoken."""
    alternatives: Sequence[Slot] = error.details.get("alternatives", ())
    message = error.message
    offer = offer_sentence(catalog, alternatives, today, day)
    if offer:
        message = f"{message} {offer}"
    facts: dict[str, Any] = {}
    if alternatives:
        facts["alternativen"] = [slot_facts(catalog, s) for s in alternatives]
    for key in ("offer",):
        if key in error.details:
            facts["angebot"] = error.details[key]
    return reply(False, message, error.code, **facts)


def capitalized(text: str) -> str:
    """The text with a capital first letter, to start a sentence."""
    return text[:1].upper() + text[1:]


def spoken_day(day: date, today: date) -> str:
    """ "Am Donnerstag, dem 6. November" / "Morgen", to start a sentence."""
    return capitalized(speak_date(day, today))
