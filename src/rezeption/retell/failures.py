"""What goes wrong during a function call, sorted once: what the caller hears, and whether to try again.

`classify(error)` is the one place that decides. Input that can never succeed (a date out of range,
an appointment another request just changed) is a clear refusal that keeps the idempotency key, so
a retry gets the same answer instead of doing the work again. Only real transient trouble (the
database or the calendar away, the time budget spent, a bug) says "gleich noch einmal" and releases
the key; so does a booking limit, which a cancellation in the same call lifts. Replies never carry
SQL, parameters or personal data; the log line carries only the exception's type.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from rezeption.booking.ports import SlotClaimFailed
from rezeption.ops.metrics import DEADLOCKS
from rezeption.retell.replies import Reply, reply
from rezeption.store.db import is_unavailable

SORRY = (
    "Entschuldigung, da ist bei mir gerade etwas schiefgelaufen. "
    "Einen Moment bitte, ich versuche es gleich noch einmal."
)
UNAVAILABLE = (
    "Entschuldigung, ich komme gerade nicht an unseren Kalender. Einen Moment bitte, ich versuche es "
    "gleich noch einmal. Sonst kann Sie der Salon auch zurückrufen."
)
OVER_BUDGET_NOTHING_DONE = (
    "Entschuldigung, das dauert gerade zu lange. Es wurde nichts geändert. "
    "Soll ich es gleich noch einmal versuchen?"
)
OVER_BUDGET_CHECKING = (
    "Entschuldigung, das dauert gerade länger. Ich prüfe, ob es geklappt hat: "
    "Fragen Sie mich bitte gleich noch einmal danach."
)
SERVER_BUSY = (
    "Im Moment ist bei uns sehr viel los, deshalb komme ich gerade nicht an den Kalender. "
    "Es wurde nichts geändert. Einen Moment bitte, ich versuche es gleich noch einmal."
)
CHANGED_MEANWHILE = (
    "Dieser Termin wurde gerade eben geändert. Ich schaue ihn mir noch einmal an: Wann ist Ihr Termin jetzt?"
)
INVALID_INPUT = "Diese Angabe kann ich leider nicht verarbeiten. Können Sie es bitte anders sagen?"

NOTHING_CHANGED = "nichts_geaendert"
BEING_CHECKED = "wird_geprueft"

TRANSIENT = frozenset(
    {
        "internal_error",
        "calendar_unavailable",
        "calendar_busy",
        "availability_unchecked",
        "busy",
        "unavailable",
        "over_budget",
        "server_busy",
    }
)
LIFTED_IN_THE_CALL = frozenset({"too_many_in_call", "too_many_appointments", "appointment_pending"})
"""Refusals the caller's own next step can lift (a cancellation frees a place) or that pass with
time (an appointment still pending at the calendar is settled within minutes): like TRANSIENT
they release the idempotency key, so the same request asked again after it is decided anew
instead of replaying the old "no"."""


@dataclass(frozen=True)
class Failure:
    """A classified failure: the reply, and whether the same request may succeed when tried again."""

    reply: Reply
    transient: bool
    kind: str


def database_trouble(error: BaseException) -> bool:
    """The database refused, dropped, timed out, is locked or full: trouble that passes, not a bad
    request (`store.db.is_unavailable` decides, for the HTTP routes too)."""
    return is_unavailable(error) or isinstance(error, ConnectionError | asyncio.TimeoutError)


def classify(error: BaseException) -> Failure:
    """The reply and the retry decision for an exception a function handler raised."""
    if isinstance(error, SlotClaimFailed):
        return Failure(reply(False, CHANGED_MEANWHILE, "changed_meanwhile"), False, "conflict")
    if isinstance(error, OverflowError | UnicodeError):
        return Failure(reply(False, INVALID_INPUT, "invalid_input"), False, "input")
    if getattr(getattr(error, "orig", None), "sqlstate", None) == "40P01":
        DEADLOCKS.labels("unhandled").inc()  # a deadlock outside the slot claim: a bug to page for
    if database_trouble(error):
        return Failure(reply(False, UNAVAILABLE, "unavailable", ergebnis=NOTHING_CHANGED), True, "database")
    return Failure(reply(False, SORRY, "internal_error"), True, "bug")


def over_budget(write_started: bool) -> Reply:
    """What the caller hears when the time budget ran out: nothing happened, or we are checking."""
    if write_started:
        return reply(False, OVER_BUDGET_CHECKING, "over_budget", ergebnis=BEING_CHECKED)
    return reply(False, OVER_BUDGET_NOTHING_DONE, "over_budget", ergebnis=NOTHING_CHANGED)


def server_busy() -> Reply:
    """What the caller hears when the server turned the function call away under overload (before
    any work: nothing changed, the agent may simply ask again)."""
    return reply(False, SERVER_BUSY, "server_busy", ergebnis=NOTHING_CHANGED)
