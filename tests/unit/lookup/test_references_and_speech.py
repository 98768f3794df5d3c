"""Pure parts of the lookup: references (tamper-proof, salon- and call-bound), names, spoken answers."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from rezeption.booking.lookup_model import FoundAppointment
from rezeption.booking.lookup_speech import describe_many, describe_one, speak_day
from rezeption.booking.references import InvalidReference, ReferenceFromOtherCall, References, reference_key
from rezeption.language import resolve_when

REFS = References(reference_key("unit-test-secret-0123456789"))
MONDAY = date(2025, 11, 3)


def test_a_reference_reads_back_to_its_appointment_in_its_salon_and_call() -> None:
    for appointment_id in (0, 1, 35, 36, 123_456_789):
        reference = REFS.issue(7, appointment_id, "call_1")
        assert REFS.read(7, "call_1", reference) == appointment_id
        assert REFS.read(7, "call_1", f"  {reference.upper()} ") == appointment_id


def test_another_salon_or_a_changed_character_is_refused() -> None:
    reference = REFS.issue(7, 42, "call_1")
    with pytest.raises(InvalidReference):
        REFS.read(8, "call_1", reference)
    for position in range(len(reference)):
        if reference[position] == "-":
            continue
        swapped = "b" if reference[position] != "b" else "c"
        with pytest.raises((InvalidReference, ReferenceFromOtherCall)):
            REFS.read(7, "call_1", reference[:position] + swapped + reference[position + 1 :])


def test_another_call_is_told_apart_from_a_forgery() -> None:
    reference = REFS.issue(7, 42, "call_1")
    with pytest.raises(ReferenceFromOtherCall) as error:
        REFS.read(7, "call_2", reference)
    assert "anderen Gespräch" in error.value.message
    with pytest.raises(InvalidReference) as forged:
        REFS.read(7, "call_1", References(reference_key("other-secret-0123456789")).issue(7, 42, "call_1"))
    assert forged.value.message.endswith("Unter welchem Namen haben Sie gebucht?")


@pytest.mark.parametrize("junk", ["", "42", "abc-", "-" * 17, "1-" + "A" * 16 + "x", "1-0000000000000000"])
def test_junk_is_an_invalid_reference(junk: str) -> None:
    with pytest.raises(InvalidReference):
        REFS.read(7, "call_1", junk)


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError):
        References(b"short")


def found(day: date, at: time, service: str) -> FoundAppointment:
    return FoundAppointment("ref", 1, None, day, at, service, "Anna")  # type: ignore[arg-type]


def test_one_appointment_is_summarized_and_the_spoken_day_reads_back() -> None:
    one = found(date(2025, 11, 7), time(11), "Herrenhaarschnitt")
    assert (
        describe_one(one, MONDAY)
        == "Ich habe Ihren Termin gefunden: Herrenhaarschnitt am Freitag um 11 Uhr bei Anna."
    )
    for ahead in range(0, 40):
        day = date.fromordinal(MONDAY.toordinal() + ahead)
        spoken = speak_day(day, MONDAY)
        assert resolve_when(spoken, "um 23 Uhr", _at_eight(MONDAY)).date == day, spoken


def _at_eight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 8, tzinfo=ZoneInfo("Europe/Berlin"))


def test_several_on_one_day_are_listed_like_a_receptionist_would() -> None:
    monday_next = date(2025, 11, 10)
    both = [found(monday_next, time(10), "Herrenhaarschnitt"), found(monday_next, time(15), "Bartpflege")]
    assert describe_many(both, date(2025, 11, 4), 4) == (
        "Sie haben am Montag zwei Termine: um 10 Uhr Herrenhaarschnitt und um 15 Uhr Bartpflege. "
        "Welchen meinen Sie?"
    )


def test_many_on_different_days_are_cut_short_and_ask_for_the_day() -> None:
    many = [found(date(2025, 11, 4 + i), time(10), "Bartpflege") for i in range(6)]
    spoken = describe_many(many, MONDAY, 4)
    assert spoken.startswith("Ich habe sechs Termine gefunden, zum Beispiel morgen um 10 Uhr Bartpflege")
    assert spoken.endswith("An welchem Tag ist der Termin, den Sie meinen?")
    assert "Sonntag" not in spoken
