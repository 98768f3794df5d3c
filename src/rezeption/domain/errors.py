"""Domain errors: every way a booking request can be refused, with what the caller hears.

Each error carries a stable `code` (for operators, metrics and the agent's logic) and `message`,
one short German sentence a voice agent can speak. Nothing here is an unhandled crash: adapters map
any `BookingError` to a reply, never to a 5xx.

    BookingError
    ├── InvalidRequest              malformed or contradictory input (code: invalid_request)
    ├── UnknownTenant               no salon for this agent / number / slug
    ├── UnknownService              the service words match nothing (offers the list)
    ├── UnknownStaff                no stylist of that name
    ├── StaffDoesNotOfferService    the named stylist does not do this service
    ├── NotBookable                 a time that can never be booked, by reason:
    │       in_past, too_short_notice, beyond_horizon, holiday, closed,
    │       outside_hours, staff_absent, staff_not_working, staff_break
    ├── SlotTaken                   the time is bookable in principle but already taken
    ├── AppointmentNotFound         no such appointment for this salon
    ├── AppointmentNotActive        cancelled or failed already
    ├── AppointmentInPast           it already happened
    ├── TooLateToChange             inside the salon's cancellation window
    ├── TooManyAppointments         the caller's number or name holds the salon's maximum
    ├── TooManyInOneCall            this call has booked the salon's maximum already
    └── IdempotencyConflict         the same key was used for a different request
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class BookingError(Exception):
    """Base of every refusal; `code` for machines, `message` (German) for the caller."""

    code = "booking_error"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = details

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def technical_cause(error: BaseException) -> str:
    """An error for the operator (logs, outbox rows, reconcile reports): its type and what went
    wrong technically. A refusal's German sentence is for the caller: its code and details instead."""
    if isinstance(error, BookingError):
        facts = ", ".join(f"{k}={v}" for k, v in error.details.items() if isinstance(v, str | int | float))
        return f"{type(error).__name__} ({error.code}){': ' + facts if facts else ''}"[:300]
    text = str(error).strip()
    return f"{type(error).__name__}: {text}"[:300] if text else type(error).__name__


class InvalidRequest(BookingError):
    """The request is malformed or contradicts itself."""

    code = "invalid_request"


class UnknownTenant(BookingError):
    """No salon is configured for the given identifier."""

    code = "unknown_tenant"

    def __init__(self, ref: str) -> None:
        super().__init__("Dieser Salon ist bei uns leider nicht eingerichtet.", ref=ref)


class UnknownService(BookingError):
    """The requested service is not offered; `offer` lists what is."""

    code = "unknown_service"

    def __init__(self, ref: str, offer: Sequence[str]) -> None:
        listed = ", ".join(offer[:-1]) + (f" oder {offer[-1]}" if len(offer) > 1 else "".join(offer))
        super().__init__(
            f"Diese Leistung bieten wir leider nicht an. Möglich sind zum Beispiel {listed}.",
            ref=ref,
            offer=list(offer),
        )


class UnknownStaff(BookingError):
    """No stylist of that name works here."""

    code = "unknown_staff"

    def __init__(self, ref: str, offer: Sequence[str]) -> None:
        names = " und ".join([", ".join(offer[:-1]), offer[-1]] if len(offer) > 1 else list(offer))
        super().__init__(
            "Eine Mitarbeiterin oder einen Mitarbeiter mit diesem Namen haben wir nicht. "
            f"Bei uns arbeiten {names}.",
            ref=ref,
            offer=list(offer),
        )


class StaffDoesNotOfferService(BookingError):
    """The named stylist does not perform this service."""

    code = "staff_does_not_offer_service"

    def __init__(self, staff_name: str, service_name: str) -> None:
        super().__init__(
            f"{staff_name} bietet {service_name} leider nicht an. Soll ich bei einer Kollegin schauen?",
            staff=staff_name,
            service=service_name,
        )


NOT_BOOKABLE_MESSAGES: dict[str, str] = {
    "in_past": "Dieser Zeitpunkt liegt in der Vergangenheit. Wann möchten Sie stattdessen kommen?",
    "too_short_notice": "So kurzfristig können wir leider keinen Termin mehr vergeben.",
    "beyond_horizon": "So weit im Voraus können wir leider noch keine Termine vergeben.",
    "holiday": "An diesem Tag ist Feiertag, da haben wir geschlossen.",
    "closed": "An diesem Tag haben wir leider geschlossen.",
    "special_closure": "An diesem Tag bleibt der Salon leider geschlossen.",
    "nobody_then": "Zu dieser Uhrzeit arbeitet leider niemand, der diese Leistung anbietet.",
    "nobody_that_day": "An diesem Tag arbeitet leider niemand, der diese Leistung anbietet.",
    "day_full": "An diesem Tag ist leider schon alles ausgebucht.",
    "outside_hours": "Zu dieser Uhrzeit haben wir leider nicht geöffnet.",
    "staff_absent": "Die gewünschte Person ist an diesem Tag leider nicht im Salon.",
    "staff_not_working": "Die gewünschte Person arbeitet zu dieser Zeit leider nicht.",
    "staff_break": "Die gewünschte Person hat zu dieser Zeit Pause; dafür reicht die Zeit leider nicht.",
}


class NotBookable(BookingError):
    """A time that cannot be booked for a reason other than another booking."""

    def __init__(self, reason: str, **details: Any) -> None:
        if reason not in NOT_BOOKABLE_MESSAGES:
            raise ValueError(f"unknown reason {reason!r}")
        super().__init__(NOT_BOOKABLE_MESSAGES[reason], code=reason, **details)


def _appointments(count: int) -> str:
    """ "einen Termin", "4 Termine": a limit as the caller hears it."""
    return "einen Termin" if count == 1 else f"{count} Termine"


class TooManyAppointments(BookingError):
    """The caller's number (or name) holds as many future appointments as the salon allows."""

    code = "too_many_appointments"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"Unter Ihrer Nummer oder Ihrem Namen sind schon {_appointments(limit)} eingetragen; "
            "mehr kann ich am Telefon leider nicht buchen. Der Salon hilft Ihnen gern persönlich weiter.",
            limit=limit,
        )


class TooManyInOneCall(BookingError):
    """This phone call already booked as many appointments as the salon allows in one call."""

    code = "too_many_in_call"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"In diesem Gespräch habe ich schon {_appointments(limit)} eingetragen; mehr kann ich am "
            "Telefon leider nicht buchen. Der Salon hilft Ihnen gern persönlich weiter.",
            limit=limit,
        )


class SlotTaken(BookingError):
    """The requested time is already booked; `alternatives` may hold nearby free slots."""

    code = "slot_taken"

    def __init__(
        self, message: str = "Zu dieser Uhrzeit ist leider schon alles vergeben.", **details: Any
    ) -> None:
        super().__init__(message, **details)


class AppointmentNotFound(BookingError):
    """No appointment with this reference for this salon."""

    code = "appointment_not_found"

    def __init__(self, ref: object) -> None:
        super().__init__("Ich konnte diesen Termin leider nicht finden.", ref=str(ref))


class AppointmentNotActive(BookingError):
    """The appointment is already cancelled (or never confirmed)."""

    code = "appointment_not_active"

    def __init__(self, status: str) -> None:
        super().__init__("Dieser Termin ist bereits storniert.", status=status)


class AppointmentPending(BookingError):
    """The appointment's booking at the external calendar is still in flight or in doubt (pending
    here): it cannot be moved until the saga or the reconciler has settled it."""

    code = "appointment_pending"

    def __init__(self) -> None:
        super().__init__(
            "Ihr Termin wird von unserem Kalender gerade noch bestätigt, deshalb kann ich ihn im "
            "Moment nicht verlegen. Bitte versuchen Sie es in ein paar Minuten noch einmal."
        )


class AppointmentInPast(BookingError):
    """The appointment already lies in the past."""

    code = "appointment_in_past"

    def __init__(self) -> None:
        super().__init__("Dieser Termin liegt bereits in der Vergangenheit.")


class TooLateToChange(BookingError):
    """Inside the salon's cancellation window: the caller must call the salon."""

    code = "too_late_to_change"

    def __init__(self, hours: int) -> None:
        super().__init__(
            f"Weniger als {hours} Stunden vor dem Termin kann ich ihn leider nicht mehr ändern. "
            "Bitte rufen Sie dafür direkt im Salon an.",
            hours=hours,
        )


class IdempotencyConflict(BookingError):
    """The idempotency key was already used for a different request."""

    code = "idempotency_conflict"

    def __init__(self, key: str) -> None:
        super().__init__("Diese Anfrage passt nicht zu einer früheren mit derselben Kennung.", key=key)
