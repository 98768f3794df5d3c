"""The functions the voice agent may call, one Pydantic model of arguments each.

These models are the single source for validating requests, for the OpenAPI document and for the
tool JSON schemas of the agent definition (`tool_definitions`). Arguments are the caller's words,
German names first (`dienstleistung`, `datum`, `uhrzeit`, `name`, `mitarbeiter`), English aliases
accepted (`service`, `date`, `time`, `staff`, ...). Dates and times are resolved by us, never by the
agent's LLM: an ISO date is accepted, but its year is not trusted.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints

Words = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]


def words(description: str, *names: str) -> Any:
    """A field of spoken words with German and English names."""
    return Field(None, description=description, validation_alias=AliasChoices(*names))


class Arguments(BaseModel):
    """Unknown argument names are ignored; known ones are validated."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ListServicesArgs(Arguments):
    """List what the salon offers."""


class GetOpeningHoursArgs(Arguments):
    """Tell the salon's opening hours."""


class CheckAvailabilityArgs(Arguments):
    """Is a time free for a service? Otherwise up to three nearby alternatives."""

    dienstleistung: Words | None = words("Die gewünschte Leistung, wie gesagt.", "dienstleistung", "service")
    datum: Words | None = words('Der Tag, wie gesagt ("Donnerstag", "übermorgen", "5.11.").', "datum", "date")
    uhrzeit: Words | None = words('Die Uhrzeit, wie gesagt ("halb drei", "14 Uhr").', "uhrzeit", "time")
    wochentag: Words | None = words("Der Wochentag, falls genannt.", "wochentag", "weekday")
    mitarbeiter: Words | None = words(
        "Gewünschte Mitarbeiterin, falls genannt.", "mitarbeiter", "staff", "stylist"
    )


class BookAppointmentArgs(CheckAvailabilityArgs):
    """Book the appointment once the caller has agreed."""

    name: Words | None = words("Name des Kunden, wie gesagt.", "name", "kunde", "customer_name")
    telefon: Words | None = words("Rückrufnummer, falls anders als die Anrufernummer.", "telefon", "phone")


class FindAppointmentsArgs(Arguments):
    """Find the caller's appointments: the name they booked under, and from another number also the
    day, time or service of the appointment."""

    name: Words | None = words("Vor- und Nachname, auf den gebucht wurde.", "name", "kunde", "customer_name")
    telefon: Words | None = words(
        "Telefonnummer der Buchung, nur wenn der Anrufer sie nennt.", "telefon", "phone"
    )
    datum: Words | None = words("Tag des Termins, wie gesagt.", "datum", "date")
    uhrzeit: Words | None = words("Uhrzeit des Termins, wie gesagt.", "uhrzeit", "time")
    dienstleistung: Words | None = words("Leistung des Termins.", "dienstleistung", "service")


class CancelAppointmentArgs(FindAppointmentsArgs):
    """Cancel one appointment. Without referenz it is only read back with a question; after the
    caller says yes, call again with the referenz from that answer."""

    referenz: Words | None = words(
        "Referenz des in diesem Gespräch vorgelesenen Termins.", "referenz", "reference", "ref"
    )


class RescheduleAppointmentArgs(CancelAppointmentArgs):
    """Move one appointment to a new day and time. Without referenz it is only read back with a
    question; after the caller says yes, call again with the referenz from that answer."""

    neues_datum: Words | None = words("Der neue Tag, wie gesagt.", "neues_datum", "new_date")
    neue_uhrzeit: Words | None = words("Die neue Uhrzeit, wie gesagt.", "neue_uhrzeit", "new_time")


class RecordConsentArgs(Arguments):
    """The caller agreed to be recognized by their number on later calls."""

    name: Words | None = words("Name des Kunden.", "name", "kunde", "customer_name")


TOOLS: dict[str, type[Arguments]] = {
    "list_services": ListServicesArgs,
    "get_opening_hours": GetOpeningHoursArgs,
    "check_availability": CheckAvailabilityArgs,
    "book_appointment": BookAppointmentArgs,
    "find_appointments": FindAppointmentsArgs,
    "cancel_appointment": CancelAppointmentArgs,
    "reschedule_appointment": RescheduleAppointmentArgs,
    "record_consent": RecordConsentArgs,
}


TOOL_TIMEOUT_MS = 8000
"""What Retell waits per function call; the server answers inside its time budget before that."""

DESCRIPTIONS = {
    "list_services": "Nennt die Leistungen des Salons mit Dauer und Preis.",
    "get_opening_hours": "Nennt die Öffnungszeiten und die Ausnahmen der nächsten zwei Wochen.",
    "check_availability": "Prüft, ob ein Termin frei ist; sonst nennt sie die nächsten freien Zeiten. "
    "Tag und Uhrzeit so übergeben, wie der Anrufer sie sagt.",
    "book_appointment": "Bucht den Termin, erst nachdem der Anrufer Leistung, Tag, Uhrzeit und "
    "Mitarbeiter bestätigt hat.",
    "find_appointments": "Findet die Termine des Anrufers: Name, von einer anderen Nummer auch Tag, "
    "Uhrzeit oder Leistung.",
    "cancel_appointment": "Sagt einen Termin ab. Ohne referenz wird er nur vorgelesen; nach dem Ja "
    "mit der referenz aus dieser Antwort erneut aufrufen.",
    "reschedule_appointment": "Verschiebt einen Termin auf einen neuen Tag und eine neue Uhrzeit. Ohne "
    "referenz wird er nur vorgelesen; nach dem Ja mit der referenz erneut aufrufen.",
    "record_consent": "Speichert, dass der Anrufer bei späteren Anrufen an seiner Nummer erkannt "
    "werden möchte.",
}
"""What each tool does, in German like its parameters (the agent's LLM reads these)."""


def tool_definitions(base_url: str) -> list[dict[str, Any]]:
    """Retell custom-tool definitions for every function (the agent-as-code uses these)."""
    tools = []
    for name, model in TOOLS.items():
        schema = model.model_json_schema(by_alias=False)
        properties = {
            key: {"type": "string", "description": spec.get("description", "")}
            for key, spec in schema.get("properties", {}).items()
        }
        tools.append(
            {
                "type": "custom",
                "name": name,
                "description": DESCRIPTIONS.get(name) or (model.__doc__ or name).strip(),
                "url": f"{base_url.rstrip('/')}/retell/functions/{name}",
                "method": "POST",
                "parameters": {"type": "object", "properties": properties, "required": []},
                "speak_during_execution": name
                in {"check_availability", "book_appointment", "reschedule_appointment"},
                "execution_message_type": "static_text",
                "execution_message_description": "Einen Moment bitte, ich schaue kurz nach.",
                "timeout_ms": TOOL_TIMEOUT_MS,
                "max_retry": 0,
            }
        )
    return tools
