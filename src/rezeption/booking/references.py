"""Opaque appointment references the voice agent passes back: tamper-proof, bound to salon and call.

A reference is ``<appointment id, base 36>-<tenant tag><call tag>``: two truncated HMAC-SHA256 tags
under a key derived from the operator's secret. The tenant tag covers salon and appointment, the
call tag also the call it was issued in. So a forged or altered reference, or one issued at another
salon, fails the tenant tag (`InvalidReference`); a genuine one from an earlier call fails only the
call tag (`ReferenceFromOtherCall`). Either way nothing is looked up, nothing changes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from rezeption.domain.errors import BookingError

_SHAPE = re.compile(r"^([0-9a-z]{1,13})-([a-z2-7]{16})$")
_TAG_BYTES = 5  # 40 bits each: guessing one takes ~10^12 tries, and every try is a logged failure


class InvalidReference(BookingError):
    """Not a reference we issued for this salon (forged, altered, mistyped or another salon's)."""

    code = "invalid_reference"

    def __init__(self) -> None:
        super().__init__(
            "Diesen Termin kann ich hier leider nicht zuordnen. Unter welchem Namen haben Sie gebucht?"
        )


class ReferenceFromOtherCall(BookingError):
    """A genuine reference, but issued in another call: look the appointment up again."""

    code = "reference_from_other_call"

    def __init__(self) -> None:
        super().__init__(
            "Diese Terminangabe stammt aus einem anderen Gespräch. Ich suche den Termin gern neu: "
            "Unter welchem Namen haben Sie gebucht?"
        )


def reference_key(secret: str) -> bytes:
    """The signing key for references, derived from an operator secret (e.g. REZEPTION_ADMIN_SECRET)."""
    return hmac.new(secret.encode(), b"rezeption/appointment-reference/v1", hashlib.sha256).digest()


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if number == 0:
            return text


class References:
    """Issues and reads references under one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("reference key must be at least 16 bytes")
        self._key = key

    def _tag(self, message: str) -> str:
        digest = hmac.new(self._key, message.encode(), hashlib.sha256).digest()[:_TAG_BYTES]
        return base64.b32encode(digest).decode().lower()

    def _tags(self, tenant_id: int, appointment_id: int, call_id: str | None) -> str:
        salon = f"{tenant_id}:{appointment_id}"
        return self._tag(f"salon|{salon}") + self._tag(f"call|{salon}|{call_id or ''}")

    def issue(self, tenant_id: int, appointment_id: int, call_id: str | None) -> str:
        """The reference for this salon's appointment, valid in call `call_id`."""
        if appointment_id < 0:
            raise ValueError("appointment ids are not negative")
        return f"{_base36(appointment_id)}-{self._tags(tenant_id, appointment_id, call_id)}"

    def read(self, tenant_id: int, call_id: str | None, reference: str) -> int:
        """The appointment id in `reference`, if this salon issued it in this call; else a BookingError."""
        shape = _SHAPE.match(reference.strip().lower())
        if shape is None:
            raise InvalidReference()
        appointment_id = int(shape.group(1), 36)
        expected = self._tags(tenant_id, appointment_id, call_id)
        given = shape.group(2)
        if not hmac.compare_digest(expected[:8], given[:8]):
            raise InvalidReference()
        if not hmac.compare_digest(expected[8:], given[8:]):
            raise ReferenceFromOtherCall()
        return appointment_id
