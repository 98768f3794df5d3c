"""The agent's functions through the real HTTP stack: what the caller hears and what is stored.

The clock stands on Monday 3 November 2025, 08:00 in Berlin; Friseur 1 opens on Tuesday.
"""

from __future__ import annotations

import asyncio
import re

from sqlalchemy import func, select
from tests.integration.retell_adapter.conftest import CALLER, RetellClient

from rezeption.store.db import Database
from rezeption.store.tables import AppointmentRow, CallRow, FunctionCallTraceRow, IdempotencyRecordRow

ISO = re.compile(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}:\d{2}")


async def count(database: Database, table: type) -> int:
    async with database.read() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


def speakable(message: str) -> None:
    assert message and not ISO.search(message), message
    assert "_" not in message and "None" not in message, message


async def test_a_free_time_is_confirmed_in_german_with_weekday_date_and_time(retell: RetellClient) -> None:
    answer = await retell.function(
        "check_availability",
        {"dienstleistung": "Herrenhaarschnitt", "datum": "morgen", "uhrzeit": "zehn Uhr"},
    )
    assert answer["ok"] is True and answer["frei"] is True
    assert answer["datum"] == "2025-11-04" and answer["uhrzeit"] == "10:00"
    assert answer["message"].startswith("Morgen, am Dienstag, dem 4. November, um 10 Uhr ist noch frei.")
    speakable(answer["message"])


async def test_a_taken_time_offers_the_nearest_alternatives(retell: RetellClient) -> None:
    booked = await retell.function(
        "book_appointment",
        {
            "name": "Anna Alt",
            "dienstleistung": "Herrenhaarschnitt",
            "datum": "4.11.",
            "uhrzeit": "10 Uhr",
            "mitarbeiter": "Anna",
        },
        call_id="call_other",
    )
    assert booked["gebucht"] is True
    answer = await retell.function(
        "check_availability",
        {"service": "Herrenhaarschnitt", "date": "Dienstag", "time": "10 Uhr", "staff": "Anna"},
    )
    assert answer["ok"] is False and answer["reason"] == "slot_taken"
    assert answer["message"] == "Um 10 Uhr ist leider schon belegt. Ich hätte um 9, 9:15 oder 10:45 Uhr frei."
    assert [a["uhrzeit"] for a in answer["alternativen"]] == ["09:00", "09:15", "10:45"]


async def test_booking_repeats_everything_and_stores_one_confirmed_appointment(
    retell: RetellClient, database: Database
) -> None:
    answer = await retell.function(
        "book_appointment",
        {
            "name": "Peter Schuster",
            "dienstleistung": "Männerhaarschnitt",
            "datum": "übermorgen",
            "uhrzeit": "halb drei",
        },
    )
    assert answer["ok"] is True and answer["gebucht"] is True
    assert answer["message"] == (
        "Ich habe Ihren Termin gebucht: Herrenhaarschnitt übermorgen, am Mittwoch, dem 5. November, "
        "um 14:30 Uhr bei Anna, auf den Namen Peter Schuster."
    )
    async with database.read() as session:
        row = (await session.scalars(select(AppointmentRow))).one()
    assert row.status == "confirmed" and row.call_id == "call_1" and row.spoken_name == "Peter Schuster"
    assert row.starts_at.isoformat() == "2025-11-05T13:30:00+00:00"


async def test_the_name_told_early_in_the_call_is_used_when_a_later_call_lacks_it(
    retell: RetellClient,
) -> None:
    first = await retell.function(
        "book_appointment", {"name": "Peter Schuster", "dienstleistung": "Herrenschnitt"}
    )
    assert first["ok"] is False and first["reason"] == "missing_date"
    second = await retell.function("book_appointment", {"datum": "Dienstag", "uhrzeit": "11 Uhr"})
    assert second["ok"] is True, second
    assert "auf den Namen Peter Schuster" in second["message"]
    assert "Herrenhaarschnitt" in second["message"]


async def test_a_retry_gets_the_identical_reply_and_no_second_booking(
    retell: RetellClient, database: Database
) -> None:
    args = {
        "name": "Maria Meier",
        "dienstleistung": "Damenhaarschnitt",
        "datum": "Mittwoch",
        "uhrzeit": "9 Uhr",
    }
    first = await retell.function("book_appointment", args)
    again = await retell.function("book_appointment", args)
    assert first == again and first["gebucht"] is True
    assert await count(database, AppointmentRow) == 1


async def test_concurrent_duplicates_wait_for_the_first_and_get_its_reply(
    retell: RetellClient, database: Database
) -> None:
    args = {
        "name": "Maria Meier",
        "dienstleistung": "Damenhaarschnitt",
        "datum": "Mittwoch",
        "uhrzeit": "9 Uhr",
    }
    replies = await asyncio.gather(*(retell.function("book_appointment", args) for _ in range(6)))
    assert all(r == replies[0] for r in replies)
    assert replies[0]["gebucht"] is True
    assert await count(database, AppointmentRow) == 1
    assert await count(database, IdempotencyRecordRow) == 1


async def test_the_llms_year_is_not_trusted_and_a_wrong_weekday_is_asked_back(retell: RetellClient) -> None:
    old_year = await retell.function(
        "check_availability", {"dienstleistung": "Bart", "datum": "2023-11-06", "uhrzeit": "13:00"}
    )
    assert old_year["datum"] == "2025-11-06" and old_year["frei"] is True
    mismatch = await retell.function(
        "check_availability",
        {"dienstleistung": "Bart", "datum": "2025-11-06", "wochentag": "Freitag", "uhrzeit": "13 Uhr"},
    )
    assert mismatch["ok"] is False and mismatch["reason"] == "weekday_mismatch"
    assert "Donnerstag" in mismatch["message"] and "Freitag" in mismatch["message"]
    speakable(mismatch["message"])


async def test_unknown_and_ambiguous_services_are_asked_back(retell: RetellClient) -> None:
    unknown = await retell.function(
        "check_availability", {"dienstleistung": "Dauerwelle", "datum": "morgen", "uhrzeit": "10"}
    )
    assert unknown["reason"] == "unknown_service" and "Herrenhaarschnitt" in unknown["angebot"]
    speakable(unknown["message"])
    vague = await retell.function("check_availability", {"dienstleistung": "Haarschnitt", "datum": "morgen"})
    assert vague["reason"] == "ambiguous_service"
    assert vague["message"].startswith("Meinen Sie ")


async def test_a_day_without_a_time_lists_options_and_a_part_of_day_narrows_them(
    retell: RetellClient,
) -> None:
    day = await retell.function("check_availability", {"dienstleistung": "Bartpflege", "datum": "Donnerstag"})
    assert day["ok"] is True and len(day["optionen"]) == 3
    assert day["message"].startswith("Am Donnerstag, dem 6. November, hätte ich ")
    afternoon = await retell.function(
        "check_availability", {"dienstleistung": "Bartpflege", "datum": "Donnerstag", "uhrzeit": "abends"}
    )
    assert all(o["uhrzeit"] >= "18:00" for o in afternoon["optionen"]), afternoon


async def test_closed_days_and_past_times_get_a_reason(retell: RetellClient) -> None:
    sunday = await retell.function(
        "check_availability", {"dienstleistung": "Bart", "datum": "Sonntag", "uhrzeit": "12 Uhr"}
    )
    assert sunday["ok"] is False and sunday["reason"] == "closed"
    assert sunday["alternativen"], sunday
    past = await retell.function(
        "check_availability", {"dienstleistung": "Bart", "datum": "heute", "uhrzeit": "7 Uhr"}
    )
    assert past["ok"] is False and past["reason"] == "past_time"
    speakable(past["message"])


async def test_salon_facts_are_spoken_briefly(retell: RetellClient) -> None:
    services = await retell.function("list_services", {})
    assert services["message"].startswith("Wir bieten Herrenhaarschnitt, Damenhaarschnitt")
    assert {"name": "Färben", "dauer_minuten": 90, "preis_euro": 69.0} in services["leistungen"]
    hours = await retell.function("get_opening_hours", {})
    assert hours["message"] == (
        "Wir haben Dienstag und Mittwoch von 9 bis 18 Uhr, Donnerstag von 10 bis 20 Uhr, "
        "Freitag von 9 bis 18 Uhr und Samstag von 9 bis 14 Uhr geöffnet."
    )


async def test_cancel_and_reschedule_by_the_reference_from_the_booking_call(
    retell: RetellClient, database: Database
) -> None:
    await retell.function(
        "book_appointment",
        {
            "name": "Peter Schuster",
            "dienstleistung": "Herrenhaarschnitt",
            "datum": "Mittwoch",
            "uhrzeit": "10 Uhr",
        },
    )
    found = await retell.function("find_appointments", {})
    assert found["ok"] is True and len(found["termine"]) == 1
    reference = found["termine"][0]["referenz"]
    moved = await retell.function(
        "reschedule_appointment", {"referenz": reference, "neues_datum": "Mittwoch", "neue_uhrzeit": "11 Uhr"}
    )
    assert moved["ok"] is True and moved["uhrzeit"] == "11:00", moved
    cancelled = await retell.function("cancel_appointment", {"referenz": moved["referenz"]})
    assert cancelled["ok"] is True and cancelled["storniert"] is True
    again = await retell.function("cancel_appointment", {"referenz": moved["referenz"], "name": "nochmal"})
    assert again["ok"] is False and again["reason"] == "appointment_not_active"
    forged = await retell.function("cancel_appointment", {"referenz": reference[:-1] + "0"})
    assert forged["reason"] == "invalid_reference"
    async with database.read() as session:
        statuses = sorted((await session.scalars(select(AppointmentRow.status))).all())
    assert statuses == ["cancelled", "cancelled"]


async def test_bad_arguments_get_a_clear_reply_and_store_nothing(
    retell: RetellClient, database: Database
) -> None:
    wrong_type = await retell.function("book_appointment", {"name": 42, "dienstleistung": ["Bart"]})
    assert wrong_type["ok"] is False and wrong_type["reason"] == "invalid_arguments"
    assert any("name" in problem for problem in wrong_type["fehler"])
    too_long = await retell.function("check_availability", {"dienstleistung": "x" * 5000})
    assert too_long["reason"] == "invalid_arguments"
    assert await count(database, AppointmentRow) == 0


async def test_envelope_errors_are_4xx_and_unknown_calls_are_refused_politely(
    retell: RetellClient, database: Database, bare_args: None
) -> None:
    unknown_function = await retell.post(
        "/retell/functions/delete_everything", {"call": {"call_id": "c"}, "args": {}}
    )
    assert unknown_function.status_code == 404
    not_object = await retell.post("/retell/functions/list_services", b"[1, 2, 3]")
    assert not_object.status_code == 400
    not_json = await retell.post("/retell/functions/list_services", b"{nope")
    assert not_json.status_code == 400
    no_call_id = await retell.post("/retell/functions/list_services", {"call": {}, "args": {}})
    assert no_call_id.status_code == 400
    bare_without_header = await retell.post("/retell/functions/list_services", {"datum": "morgen"})
    assert bare_without_header.status_code == 400
    bare_without_agent = await retell.post(
        "/retell/functions/list_services", {}, headers={"X-Call-Id": "call_ghost"}
    )
    assert bare_without_agent.status_code == 400 and "X-Agent" in bare_without_agent.json()["detail"]
    never_seen = await retell.post(
        "/retell/functions/list_services",
        {},
        headers={"X-Call-Id": "call_ghost", "X-Agent-Number": "+493012345670"},
    )
    assert never_seen.status_code == 200 and never_seen.json()["reason"] == "unknown_call"
    stranger = await retell.function(
        "list_services", {}, call_id="call_x", agent_id="agent_nobody", to_number="+4940"
    )
    assert stranger["reason"] == "unknown_call"
    async with database.read() as session:
        ids = set((await session.scalars(select(CallRow.retell_call_id))).all())
    assert ids == set()


async def test_bare_arguments_with_a_call_id_header_work_after_call_inbound(
    retell: RetellClient, bare_args: None
) -> None:
    inbound = await retell.post(
        "/retell/inbound",
        {
            "event": "call_inbound",
            "call_inbound": {"from_number": CALLER, "to_number": "+493012345670", "call_id": "call_bare"},
        },
    )
    assert inbound.status_code == 200
    for _ in range(50):  # the call row is written right after the reply
        response = await retell.post(
            "/retell/functions/list_services",
            {},
            headers={"X-Call-Id": "call_bare", "X-Agent-Number": "+49 30 12345670"},
        )
        if response.json()["ok"]:
            break
        await asyncio.sleep(0.05)
    assert response.json()["ok"] is True


async def test_traces_record_each_function_call_after_the_reply(
    retell: RetellClient, database: Database
) -> None:
    await retell.function("list_services", {})
    for _ in range(50):
        if await count(database, FunctionCallTraceRow):
            break
        await asyncio.sleep(0.05)
    async with database.read() as session:
        trace = (await session.scalars(select(FunctionCallTraceRow))).one()
    assert trace.function == "list_services" and trace.ok is True and trace.retell_call_id == "call_1"


async def test_a_later_call_from_a_withheld_number_needs_the_name_and_a_fact_and_a_read_back(
    retell: RetellClient, database: Database
) -> None:
    await retell.function(
        "book_appointment",
        {
            "name": "Peter Schuster",
            "dienstleistung": "Bartpflege",
            "datum": "Donnerstag",
            "uhrzeit": "13 Uhr",
        },
        call_id="call_booking",
    )
    later = {"call_id": "call_later", "from_number": "anonymous"}
    name_only = await retell.function("find_appointments", {"name": "Peter Schuster"}, **later)
    assert name_only["ok"] is False and name_only["reason"] == "need_detail" and name_only["termine"] == []
    found = await retell.function(
        "find_appointments", {"name": "Peter Schuster", "datum": "Donnerstag"}, **later
    )
    assert found["ok"] is True, found
    assert found["termine"][0]["dienstleistung"] == "Bartpflege"
    speakable(found["message"])
    asked = await retell.function(
        "cancel_appointment", {"name": "Peter Schuster", "dienstleistung": "Bartpflege"}, **later
    )
    assert asked["ok"] is False and asked["reason"] == "confirm_cancel" and asked["storniert"] is False
    assert asked["message"].endswith("Soll ich ihn stornieren?") and "Bartpflege" in asked["message"]
    async with database.read() as session:
        assert (await session.scalars(select(AppointmentRow.status))).all() == ["confirmed"]
    cancelled = await retell.function("cancel_appointment", {"referenz": asked["referenz"]}, **later)
    assert cancelled["ok"] is True and cancelled["storniert"] is True
    stranger = await retell.function(
        "find_appointments",
        {"name": "Erika Mustermann", "datum": "Donnerstag"},
        call_id="call_x",
        from_number="anonymous",
    )
    assert stranger["ok"] is False and stranger["termine"] == []


async def test_a_reference_from_another_call_is_refused(retell: RetellClient) -> None:
    await retell.function(
        "book_appointment",
        {
            "name": "Peter Schuster",
            "dienstleistung": "Bartpflege",
            "datum": "Donnerstag",
            "uhrzeit": "13 Uhr",
        },
    )
    reference = (await retell.function("find_appointments", {}))["termine"][0]["referenz"]
    elsewhere = await retell.function("cancel_appointment", {"referenz": reference}, call_id="call_other")
    assert elsewhere["ok"] is False and elsewhere["reason"] == "reference_from_other_call"


async def test_two_appointments_are_read_out_and_nothing_is_cancelled_until_one_is_chosen(
    retell: RetellClient, database: Database
) -> None:
    for hour in ("13 Uhr", "15 Uhr"):
        await retell.function(
            "book_appointment",
            {
                "name": "Peter Schuster",
                "dienstleistung": "Bartpflege",
                "datum": "Donnerstag",
                "uhrzeit": hour,
            },
        )
    both = await retell.function("cancel_appointment", {"name": "Peter Schuster"}, call_id="call_2")
    assert both["ok"] is False and len(both["termine"]) == 2
    assert "Welchen" in both["message"]
    one = await retell.function(
        "cancel_appointment", {"name": "Peter Schuster", "uhrzeit": "15 Uhr"}, call_id="call_2"
    )
    assert one["ok"] is False and one["reason"] == "confirm_cancel" and one["uhrzeit"] == "15:00"
    async with database.read() as session:
        assert set((await session.scalars(select(AppointmentRow.status))).all()) == {"confirmed"}
    done = await retell.function("cancel_appointment", {"referenz": one["referenz"]}, call_id="call_2")
    assert done["ok"] is True and done["uhrzeit"] == "15:00"
    async with database.read() as session:
        statuses = (await session.execute(select(AppointmentRow.starts_at, AppointmentRow.status))).all()
    assert sorted(status for _, status in statuses) == ["cancelled", "confirmed"]


async def test_a_consenting_caller_is_recognized_on_the_next_call(retell: RetellClient) -> None:
    await retell.function(
        "book_appointment",
        {
            "name": "Peter Schuster",
            "dienstleistung": "Bartpflege",
            "datum": "Donnerstag",
            "uhrzeit": "13 Uhr",
        },
    )
    before = await retell.post(
        "/retell/inbound",
        {"event": "call_inbound", "call_inbound": {"from_number": CALLER, "to_number": "+493012345670"}},
    )
    assert before.json()["call_inbound"]["dynamic_variables"]["customer_known"] == "false"
    consent = await retell.function("record_consent", {})
    assert consent["ok"] is True and consent["gespeichert"] is True
    after = await retell.post(
        "/retell/inbound",
        {
            "event": "call_inbound",
            "call_inbound": {"from_number": "0151 23456789", "to_number": "+493012345670"},
        },
    )
    variables = after.json()["call_inbound"]["dynamic_variables"]
    assert variables["customer_known"] == "true" and variables["customer_name"] == "Peter Schuster"
    assert "Bartpflege" in variables["next_appointments"]
