"""Phone numbers as callers and the telephony platform give them -> E.164, and masked for logs.

Owns ``normalize_phone`` and ``mask_phone``. phonenumbers does the numbering-plan work; this module
refuses what phonenumbers would wrongly accept, because a caller-ID match on a wrong number greets a
stranger by name: withheld and anonymous markers (also the pseudo-numbers carriers put in their
place), any letter (phonenumbers maps "030 FRISEUR" and a letter O to digits), digits without a
leading "+", "00" or "0" ("49151..." is not a German number), and invalid or too short numbers.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

# Pseudo-numbers that stand for a withheld caller ID (keypad spellings of ANONYMOUS, RESTRICTED,
# UNKNOWN, BLOCKED, UNAVAILABLE); some platforms pass them on as if they were numbers.
_WITHHELD_NUMBERS = frozenset({"+266696687", "+7378742833", "+8656696", "+2562533", "+86282452253"})
_ALLOWED = re.compile(r"\+?[\d\s\-/().]+")
_NON_DIGITS = re.compile(r"\D")


@lru_cache(maxsize=4096)  # a function call normalizes the same two numbers several times
def normalize_phone(raw: str | None, region: str = "DE") -> str | None:
    """Return the E.164 form of a phone number, or None when it is withheld, ambiguous or invalid."""
    if raw is None:
        return None
    text = raw.strip()
    if not text or _ALLOWED.fullmatch(text) is None:
        return None  # letters, "anonymous", "unterdrückt", "sip:...", "+" in the middle
    digits = _NON_DIGITS.sub("", text)
    if text.startswith("+"):
        candidate = "+" + digits
    elif digits.startswith("00"):
        candidate = "+" + digits[2:]
    elif digits.startswith("0"):
        candidate = digits
    else:
        return None  # "49151..." or "151...": country or trunk prefix missing, do not guess
    if candidate in _WITHHELD_NUMBERS:
        return None
    try:
        number = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(e164: str | None) -> str:
    """Mask a number for logs, keeping country, area code and last three digits: "+49 30 ****738"."""
    if not e164:
        return "<none>"
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return "<invalid>"
    national = phonenumbers.national_significant_number(number)
    if len(national) < 7:
        return f"+{number.country_code} ****"
    return f"+{number.country_code} {national[:2]} ****{national[-3:]}"
