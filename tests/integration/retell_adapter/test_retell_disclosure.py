"""Who may hear of and change an appointment, tried through the Retell functions as an outsider would.

Each test starts from the attack an outside check found ("a stranger calling from another number
cancelled a different person's appointment") and then shows the real customer is still served.
The clock stands on Monday 3 November 2025, 08:00 in Berlin.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import select
from tests.integration.lookup.world import import_second_salon
from tests.integration.retell_adapter.conftest import AGENT, SALON_NUMBER, RetellClient

from rezeption.domain.clock import FixedClock
from rezeption.store.db import Database
from rezeption.store.tables import AppointmentRow, CallRow

GISELA = "+4915111111111"
STRANGER = "+4917699999999"
OTHER_AGENT, OTHER_NUMBER = "agent_friseur2", "+493012345679"


async def book_gisela(retell: RetellClient) -> dict[str, Any]:
    booked = await retell.function(
        "book_appointment",
        {
            "name": "Gisela Schuster-Wendt",
            "dienstleistung": "Damenhaarschnitt",
            "datum": "18.11.",
            "uhrzeit": "10 Uhr",
        },
        call_id="call_gisela",
        from_number=GISELA,
    )
    assert booked["ok"] is True, booked
    return booked


async def statuses(database: Database) -> list[str]:
    async with database.read() as session:
        return list((await session.scalars(select(AppointmentRow.status).order_by(AppointmentRow.id))).all())


def no_phone_numbers(reply: dict[str, Any]) -> None:
    text = re.sub(r"\D", "", json.dumps(reply, ensure_ascii=False))
    assert "1511111111" not in text and "1769999999" not in text, reply


async def test_a_stranger_naming_a_similar_person_cannot_cancel_or_hear_the_appointment(
    retell: RetellClient, database: Database
) -> None:
    await book_gisela(retell)
    stranger = {"call_id": "call_stranger", "from_number": STRANGER}
    for args in (
        {"name": "Gisela Becker-Wendt"},
        {"name": "Gisela Becker-Wendt", "datum": "18.11."},
        {
            "name": "Gisela Becker-Wendt",
            "datum": "18.11.",
            "uhrzeit": "10 Uhr",
            "dienstleistung": "Damenhaarschnitt",
        },
        {"name": "Wendt"},
        {"name": "Wendt", "datum": "18.11."},
        {"name": "Gisela", "datum": "18.11."},
        {"name": "Gisela Schuster"},  # right, but no fact yet
    ):
        for function in ("find_appointments", "cancel_appointment", "reschedule_appointment"):
            answer = await retell.function(function, {**args, "neues_datum": "19.11."}, **stranger)
            assert answer["ok"] is False and answer["termine"] == [], (function, args, answer)
            assert "referenz" not in answer and "Schuster" not in answer["message"], answer
            no_phone_numbers(answer)
    assert await statuses(database) == ["confirmed"]


async def test_what_a_stranger_hears_does_not_tell_whether_the_name_has_an_appointment(
    retell: RetellClient,
) -> None:
    await book_gisela(retell)
    stranger = {"call_id": "call_probe", "from_number": STRANGER}
    pairs = [
        ({"name": "Gisela Schuster-Wendt"}, {"name": "Erika Mustermann"}),
        ({"name": "Wendt"}, {"name": "Mustermann"}),
        (
            {"name": "Gisela Schuster-Wendt", "datum": "20.11."},
            {"name": "Erika Mustermann", "datum": "20.11."},
        ),
        ({"telefon": GISELA}, {"telefon": "+4915100000000"}),
    ]
    for exists, invented in pairs:
        one = await retell.function("find_appointments", exists, **stranger)
        other = await retell.function("find_appointments", invented, **stranger)
        assert (one["message"], one["reason"]) == (other["message"], other["reason"]), (exists, invented)


async def test_the_customer_on_her_own_line_is_found_by_a_shortened_double_surname_and_confirms_first(
    retell: RetellClient, database: Database
) -> None:
    await book_gisela(retell)
    own = {"call_id": "call_gisela_2", "from_number": GISELA}
    for name in ("Gisela Schuster", "Schuster-Wendt", "Gisela", "Frau Schuster Wendt"):
        found = await retell.function("find_appointments", {"name": name}, **own)
        assert found["ok"] is True and found["termine"][0]["datum"] == "2025-11-18", (name, found)
    no_name = await retell.function("find_appointments", {}, **own)
    assert no_name["reason"] == "need_name" and no_name["termine"] == []
    asked = await retell.function("cancel_appointment", {"name": "Gisela Schuster"}, **own)
    assert asked["reason"] == "confirm_cancel" and "Soll ich ihn stornieren?" in asked["message"]
    assert await statuses(database) == ["confirmed"]
    done = await retell.function("cancel_appointment", {"referenz": asked["referenz"]}, **own)
    assert done["ok"] is True and done["storniert"] is True
    assert await statuses(database) == ["cancelled"]


async def test_from_another_line_the_full_name_and_a_fact_find_it_and_a_move_needs_the_reference(
    retell: RetellClient, database: Database
) -> None:
    await book_gisela(retell)
    other = {"call_id": "call_from_work", "from_number": STRANGER}
    found = await retell.function(
        "find_appointments", {"name": "Gisela Schuster", "dienstleistung": "Damenhaarschnitt"}, **other
    )
    assert found["ok"] is True and len(found["termine"]) == 1
    no_phone_numbers(found)
    asked = await retell.function(
        "reschedule_appointment",
        {"name": "Gisela Schuster", "datum": "18.11.", "neues_datum": "19.11.", "neue_uhrzeit": "11 Uhr"},
        **other,
    )
    assert asked["reason"] == "confirm_reschedule" and asked["verlegt"] is False
    assert "verlegen?" in asked["message"] and "19. November" in asked["message"]
    assert await statuses(database) == ["confirmed"]
    moved = await retell.function(
        "reschedule_appointment",
        {"referenz": asked["referenz"], "neues_datum": "19.11.", "neue_uhrzeit": "11 Uhr"},
        **other,
    )
    assert moved["ok"] is True and moved["datum"] == "2025-11-19" and moved["uhrzeit"] == "11:00", moved


async def test_a_said_number_is_a_claim_that_needs_a_fact_and_a_matching_name(
    retell: RetellClient, database: Database
) -> None:
    await book_gisela(retell)
    other = {"call_id": "call_said", "from_number": STRANGER}
    for args in (
        {"telefon": GISELA},
        {"telefon": "0151 11111111"},
        {"telefon": GISELA, "name": "Maria Muster", "datum": "18.11."},
        {"telefon": GISELA, "name": "Gisela Becker-Wendt", "datum": "18.11."},
    ):
        for function in ("find_appointments", "cancel_appointment"):
            answer = await retell.function(function, args, **other)
            assert answer["ok"] is False and answer["termine"] == [], (function, args, answer)
    assert await statuses(database) == ["confirmed"]
    assert (await retell.function("find_appointments", {"telefon": GISELA, "datum": "18.11."}, **other))[
        "reason"
    ] == "too_many_attempts"  # four misses above, in this call
    found = await retell.function(
        "find_appointments",
        {"telefon": "0151 11111111", "datum": "18.11."},
        call_id="call_said_2",
        from_number=STRANGER,
    )
    assert found["ok"] is True and found["termine"][0]["uhrzeit"] == "10:00"
    no_phone_numbers(found)


async def test_three_misses_in_one_call_end_lookups_from_another_line(retell: RetellClient) -> None:
    await book_gisela(retell)
    other = {"call_id": "call_guessing", "from_number": STRANGER}
    for day in ("4.11.", "5.11.", "6.11."):
        miss = await retell.function("find_appointments", {"name": "Gisela Schuster", "datum": day}, **other)
        assert miss["reason"] == "not_found"
    locked = await retell.function(
        "find_appointments", {"name": "Gisela Schuster", "datum": "18.11."}, **other
    )
    assert locked["reason"] == "too_many_attempts" and locked["termine"] == []
    fresh = await retell.function(
        "find_appointments",
        {"name": "Gisela Schuster", "datum": "18.11."},
        call_id="call_next",
        from_number=STRANGER,
    )
    assert fresh["ok"] is True


@pytest.mark.parametrize("name", ["A", "Dr.", "von der", "1234", "😀"])
async def test_bad_names_are_asked_again_and_nothing_is_read_out_or_booked(
    retell: RetellClient, database: Database, name: str
) -> None:
    await book_gisela(retell)
    found = await retell.function("find_appointments", {"name": name}, call_id="call_bad", from_number=GISELA)
    assert found["reason"] == "need_name" and found["message"] == "Unter welchem Namen haben Sie gebucht?"
    assert found["termine"] == []
    booked = await retell.function(
        "book_appointment",
        {"name": name, "dienstleistung": "Bartpflege", "datum": "Donnerstag", "uhrzeit": "13 Uhr"},
        call_id="call_bad_booking",
    )
    assert booked["reason"] == "missing_name"
    consent = await retell.function("record_consent", {"name": name}, call_id="call_bad_consent")
    assert consent["reason"] == "missing_name"
    assert await statuses(database) == ["confirmed"]


@pytest.fixture
async def second_salon(database: Database, clock: FixedClock, salon_id: int) -> int:
    return await import_second_salon(database, clock.now())


async def test_a_call_of_one_salon_named_in_another_salons_envelope_is_refused(
    retell: RetellClient, database: Database, second_salon: int, bare_args: None
) -> None:
    await book_gisela(retell)
    own = await retell.function(
        "find_appointments", {"name": "Gisela"}, call_id="call_gisela", from_number=GISELA
    )
    assert own["ok"] is True
    envelope = {
        "name": "find_appointments",
        "call": {
            "call_id": "call_gisela",
            "agent_id": OTHER_AGENT,
            "from_number": GISELA,
            "to_number": OTHER_NUMBER,
        },
        "args": {"name": "Gisela"},
    }
    refused = await retell.post("/retell/functions/find_appointments", envelope)
    assert refused.status_code == 403 and refused.json()["reason"] == "call_mismatch"
    assert "termine" not in refused.json()
    other_caller = {**envelope, "call": {**envelope["call"], "agent_id": AGENT, "to_number": SALON_NUMBER}}
    other_caller["call"]["from_number"] = STRANGER
    assert (await retell.post("/retell/functions/find_appointments", other_caller)).status_code == 403
    bare = await retell.post(
        "/retell/functions/find_appointments",
        {"name": "Gisela"},
        headers={"X-Call-Id": "call_gisela", "X-Agent-Number": OTHER_NUMBER},
    )
    assert bare.status_code == 403
    bare_agent = await retell.post(
        "/retell/functions/find_appointments",
        {"name": "Gisela"},
        headers={"X-Call-Id": "call_gisela", "X-Agent-Id": OTHER_AGENT},
    )
    assert bare_agent.status_code == 403
    bare_no_agent = await retell.post(
        "/retell/functions/find_appointments", {"name": "Gisela"}, headers={"X-Call-Id": "call_gisela"}
    )
    assert bare_no_agent.status_code == 400
    bare_own = await retell.post(
        "/retell/functions/find_appointments",
        {"name": "Gisela"},
        headers={"X-Call-Id": "call_gisela", "X-Agent-Id": AGENT},
    )
    assert bare_own.status_code == 200 and bare_own.json()["ok"] is True
    webhook = await retell.post(
        "/retell/webhook",
        {
            "event": "call_ended",
            "call": {
                "call_id": "call_gisela",
                "agent_id": OTHER_AGENT,
                "from_number": GISELA,
                "to_number": OTHER_NUMBER,
                "transcript": "User: das ist nicht mein Anruf",
                "end_timestamp": 1762156800000,
            },
        },
    )
    assert webhook.status_code == 403
    async with database.read() as session:
        call = (await session.scalars(select(CallRow).where(CallRow.retell_call_id == "call_gisela"))).one()
    assert call.tenant_id != second_salon and call.transcript is None and call.ended_at is None
