"""The dialog engine (the custom-LLM socket's receptionist) hears the per-call booking limit as a
final answer: the caller is told and asked what else, not sent round again for another day that
would be refused the same way. A withheld number, a new name for each booking."""

from __future__ import annotations

import pytest
from tests.integration.dialog.phone import Phone

from rezeption.dialog.manager import ANYTHING_ELSE


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_fourth_booking_in_one_call_is_refused_and_the_caller_asked_what_else(phone: Phone) -> None:
    call = await phone.call(from_number=None)
    for name, hour in (("Hans Schuster", 10), ("Paul Meier", 11), ("Eva Engel", 12)):
        await call.say(f"Herrenhaarschnitt am Mittwoch um {hour}, {name}")
        booked = await call.say("Ja")
        assert "Ich habe Ihren Termin gebucht" in booked, call.lines
    await call.say("Herrenhaarschnitt am Mittwoch um 15, Uwe Vogel")
    refused = await call.say("Ja")
    last = call.called("book_appointment")[-1]
    assert last.get("reason") == "too_many_in_call", call.functions
    assert "In diesem Gespräch habe ich schon 3 Termine eingetragen" in refused, refused
    assert refused.endswith(ANYTHING_ELSE), refused
