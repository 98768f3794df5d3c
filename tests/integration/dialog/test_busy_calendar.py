"""When the calendar is too busy to take a booking (Cal.com's rate limit, our budget for it), the
caller chooses: try again after a pause (the proposal kept, booked once it goes through) or a call
back (the saga has stored the request). The busy answer is injected at the functions port; the
retry runs through the real runner and database."""

from __future__ import annotations

import pytest
from tests.integration.dialog.phone import Phone

from rezeption.booking.ports import CalendarBusy, MoveInDoubt
from rezeption.dialog.manager import RETRY_AFTER

BUSY = {"ok": False, "reason": "calendar_busy", "message": CalendarBusy().message}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_caller_asks_to_try_again_and_is_booked_after_a_pause(phone: Phone) -> None:
    phone.faults["book_appointment"] = [BUSY]
    call = await phone.call()
    await call.say("Herrenhaarschnitt am Mittwoch um 10, Hans Schuster")
    busy = await call.say("Ja")
    assert "sehr viel los" in busy and "noch einmal versuchen" in busy
    again = await call.say("Ja, versuchen Sie es bitte noch einmal")
    assert again.startswith("Gern, ich versuche es gleich noch einmal.")
    assert "Ich habe Ihren Termin gebucht: Herrenhaarschnitt" in again
    assert phone.pauses == [RETRY_AFTER]
    tries = [args for name, args, _ in call.functions if name == "book_appointment"]
    assert len(tries) == 2 and tries[0] == tries[1]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_caller_asks_for_a_call_back(phone: Phone) -> None:
    phone.faults["book_appointment"] = [BUSY]
    call = await phone.call()
    await call.say("Herrenhaarschnitt am Mittwoch um 10, Hans Schuster")
    await call.say("Ja")
    answer = await call.say("Rufen Sie mich lieber zurück")
    assert "ruft Sie zurück" in answer and phone.pauses == []
    assert len(call.called("book_appointment")) == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_calendar_busy_every_time_ends_in_a_call_back_not_a_loop(phone: Phone) -> None:
    phone.faults["book_appointment"] = [BUSY] * 10
    call = await phone.call()
    await call.say("Herrenhaarschnitt am Mittwoch um 10, Hans Schuster")
    await call.say("Ja")
    answers = [await call.say("Ja, bitte nochmal versuchen") for _ in range(3)]
    assert "Es klappt gerade leider nicht. Der Salon ruft Sie zurück" in answers[-1]
    assert len(call.called("book_appointment")) == 4 and len(phone.pauses) == 3


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_move_in_doubt_ends_with_the_call_back_not_a_new_time(phone: Phone) -> None:
    """Cal.com may or may not have made the move: the caller hears that the salon checks it and
    calls back, and is not asked for another time (a second move would wait for the first)."""
    first = await phone.call()
    await first.say("Herrenhaarschnitt am Mittwoch um 10, Hans Schuster")
    assert "gebucht" in await first.say("Ja")
    call = await phone.call()
    assert "Auf wann" in await call.say("Ich möchte meinen Termin verschieben. Hans Schuster.")
    assert "verlegen?" in await call.say("Auf Donnerstag um 11")
    phone.faults["reschedule_appointment"] = [
        {"ok": False, "reason": "move_in_doubt", "message": MoveInDoubt().message}
    ]
    answer = await call.say("Ja")
    assert "ruft Sie zurück" in answer and "Kann ich sonst noch" in answer, answer
    assert "Auf wann" not in answer and len(call.called("reschedule_appointment")) == 2
