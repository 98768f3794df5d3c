"""Who may hear about an appointment and who may change it: the one place this policy is decided.

The lookup use case (`booking.lookup`) fetches candidate rows and asks this module what may be read
out; cancel and move act only on a reference read out in the same call (`AppointmentFinder.pick`).
The rules (README, "Who may find, hear and change an appointment"):

1. The call that booked: its own appointments, without a name; a said name must not contradict.
2. The number that booked (the customer's number on record is the line the call comes from): a name
   that agrees with the booking in any form, sounds-alike included. When it fits several people on
   that line, ask for the first name and read nothing out.
3. Any other line, withheld numbers, and a number the caller only *says*: the full name (spelled as
   booked) or the said number, plus one fact that matches (a day, the exact time, one service).
   Exactly one appointment is read out; several fit -> ask for day and time, list nothing. After
   `MAX_MISSES` misses in one call, no more of these lookups in that call.

Every part of a said name must match a part of the booked one (`language.names.match_name`).
Until a name and a fact both fit, what a caller from another line hears depends only on what they
said, never on what is stored: the refusals below are chosen before any row is looked at.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rezeption.booking.lookup_model import AppointmentHit, CustomerHit
from rezeption.language.names import match_name, normalize_name, says_full_name, usable_name

MAX_MISSES = 3

ASK_NAME = "Unter welchem Namen haben Sie gebucht?"
ASK_FULL_NAME = "Nennen Sie mir bitte Ihren Vor- und Nachnamen."
ASK_FIRST_NAME = "Unter dieser Nummer sind mehrere Personen mit diesem Namen gebucht. Wie ist Ihr Vorname?"
ASK_DETAIL = (
    "Zur Sicherheit brauche ich noch eine Angabe zu Ihrem Termin: An welchem Tag ist er, "
    "um wie viel Uhr, oder für welche Leistung?"
)
ASK_DAY_AND_TIME = "Dazu finde ich mehr als einen Termin. An welchem Tag und um wie viel Uhr ist Ihrer?"
NOT_FOUND_CLAIM = (
    "Zu diesem Namen und dieser Angabe finde ich keinen Termin. Wenn Sie von der Nummer anrufen, "
    "mit der Sie gebucht haben, finde ich ihn leichter."
)
TOO_MANY_ATTEMPTS = (
    "Das kann ich am Telefon leider nicht weiter prüfen. Bitte rufen Sie von der Nummer an, mit der "
    "Sie gebucht haben, oder kommen Sie im Salon vorbei."
)


@dataclass(frozen=True)
class Question:
    """Nothing is read out; the caller hears `message` (`reason` for the agent)."""

    message: str
    reason: str
    missed: bool = False


@dataclass(frozen=True)
class Claim:
    """What a caller from another line offered: a name, a number they said, whether a fact came too."""

    name: str | None
    said_phone: str | None
    has_fact: bool
    misses: int


def bad_name(name: str | None) -> bool:
    """A name was said, but it holds nothing to search by (one letter, a title, digits, an emoji)."""
    return name is not None and bool(name.strip()) and not usable_name(name)


def stored_names(hit: AppointmentHit) -> list[str]:
    """The names an appointment was booked under (the customer's, and the one said at booking)."""
    return [n for n in (hit.customer_name, hit.spoken_name) if n]


def _agrees(said: str, stored: Iterable[str], *, strict: bool, full: bool = False) -> bool:
    for name in stored:
        match = match_name(said, name, strict=strict)
        if match is not None and (match.full or not full):
            return True
    return False


def person(hit: AppointmentHit) -> str:
    """Who an appointment belongs to: the normalized customer name, else the customer row."""
    name = hit.customer_name or hit.spoken_name
    return normalize_name(name) if name else f"#{hit.customer_id}"


def booked_in_call(name: str | None, hits: Sequence[AppointmentHit]) -> list[AppointmentHit]:
    """Rule 1: this call's own bookings; a said name must not contradict the booked one."""
    if name is None:
        return list(hits)
    return [h for h in hits if not stored_names(h) or _agrees(name, stored_names(h), strict=False)]


def line_people(name: str, customers: Sequence[CustomerHit]) -> set[str]:
    """Rule 2: the people on the caller's own line whose booked name agrees with the said one."""
    return {
        normalize_name(c.name)
        for c in customers
        if c.name and normalize_name(c.name) and _agrees(name, [c.name], strict=False)
    }


def on_own_line(name: str, who: str, hits: Sequence[AppointmentHit]) -> list[AppointmentHit]:
    """Rule 2: the appointments of the one person `who` on this line, as named by the caller."""
    return [h for h in hits if person(h) == who and _agrees(name, stored_names(h), strict=False)]


def claim_refusal(claim: Claim) -> Question | None:
    """Rule 3, before any row is read: what is missing from the claim (None: search)."""
    if claim.misses >= MAX_MISSES:
        return Question(TOO_MANY_ATTEMPTS, "too_many_attempts")
    if claim.name is None and claim.said_phone is None:
        return Question(ASK_NAME, "need_name")
    if claim.said_phone is None and not says_full_name(claim.name or ""):
        return Question(ASK_FULL_NAME, "need_full_name")
    if not claim.has_fact:
        return Question(ASK_DETAIL, "need_detail")
    return None


def claimed(claim: Claim, hits: Sequence[AppointmentHit]) -> list[AppointmentHit]:
    """Rule 3: the candidates the claim names. By name: the full name, spelled as booked. By a said
    number (hits are that number's): every said name part must match, spelled as booked."""
    if claim.said_phone is not None:
        if claim.name is None:
            return list(hits)
        return [h for h in hits if _agrees(claim.name, stored_names(h), strict=True)]
    assert claim.name is not None
    return [h for h in hits if _agrees(claim.name, stored_names(h), strict=True, full=True)]


def claim_answer(matching: Sequence[AppointmentHit]) -> Question | None:
    """Rule 3, after the fact narrowed the claimed candidates: None when exactly one may be read out."""
    if not matching:
        return Question(NOT_FOUND_CLAIM, "not_found", missed=True)
    if len(matching) > 1:
        return Question(ASK_DAY_AND_TIME, "need_detail")
    return None
