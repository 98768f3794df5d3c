"""GDPR at Friseur 1: export all we hold on a customer, erase them (statistics stay), purge transcripts."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import JSON, String, Text, select, update
from tests.conftest import BERLIN, DEMO_SALON, berlin, empty_tables
from tests.integration.lookup.world import World, build_world, import_second_salon
from typer.testing import CliRunner

from rezeption.booking.bookings import BookingRequest, Bookings
from rezeption.booking.caller_id import CallerId
from rezeption.booking.lookup import AppointmentFinder, LookupQuery
from rezeption.booking.saga import JOB_CALLBACK, JOB_CANCEL
from rezeption.cli.customers import customers_app, erase_customer_data
from rezeption.domain.clock import FixedClock
from rezeption.domain.errors import AppointmentInPast, TooLateToChange
from rezeption.store import calls
from rezeption.store.db import Database
from rezeption.store.flags import flag_book
from rezeption.store.gdpr import (
    CustomerRefError,
    erase_customer,
    erasure_plan,
    export_customer,
    purge_transcripts,
)
from rezeption.store.lookup import SqlLookupStore
from rezeption.store.salon_file import SalonFileError, parse_salon, read_salon
from rezeption.store.salon_import import import_salon
from rezeption.store.tables import (
    AppointmentEventRow,
    AppointmentRow,
    Base,
    CallRow,
    CustomerNameKeyRow,
    CustomerRow,
    FunctionCallTraceRow,
    IdempotencyRecordRow,
    OutboxJobRow,
    TenantRow,
)
from rezeption.store.uow import SqlUnitOfWork

PEOPLE: list[dict[str, Any]] = [
    {"key": "peter", "name": "Peter Schuster", "phone": "+4915110000001", "call": "call_1", "appointments": [
        {"key": "tue", "at": "2025-11-04 10:00", "service": "herrenhaarschnitt"},
        {"key": "thu", "at": "2025-11-06 15:00", "service": "bartpflege", "status": "cancelled"},
    ]},
    {"key": "eva", "name": "Eva Weiß", "phone": "+4915110000009", "call": "call_2", "appointments": [
        {"key": "wed", "at": "2025-11-05 10:00", "service": "damenhaarschnitt"},
    ]},
    {"key": "b_peter", "tenant": "b", "name": "Peter Schuster", "phone": "+4915110000001", "appointments": [
        {"key": "b_tue", "at": "2025-11-04 10:00", "service": "herrenhaarschnitt"},
    ]},
]  # fmt: skip


async def seed(database: Database, clock: FixedClock, tenants: dict[str, int]) -> World:
    world = await build_world(database, tenants, PEOPLE, clock.now())
    now = clock.now()
    async with database.write() as session, session.begin():
        for call, number, customer in (
            ("call_1", "+4915110000001", None),
            ("call_2", "+4915110000009", None),
        ):
            session.add(
                CallRow(
                    retell_call_id=call,
                    tenant_id=tenants["a"],
                    from_number=number,
                    to_number="+493012345670",
                    customer_id=customer,
                    memory={"name": "said in the call", "_events": ["call_started", "call_ended"]},
                    transcript=f"Agent: Hallo. Anrufer: Hier ist jemand, Nummer {number}.",
                    started_at=now - timedelta(days=1),
                    ended_at=now - timedelta(days=1) + timedelta(minutes=3),
                    created_at=now - timedelta(days=1),
                )
            )
            session.add(
                FunctionCallTraceRow(
                    tenant_id=tenants["a"],
                    retell_call_id=call,
                    function="book_appointment",
                    args={"name": "the caller's name"},
                    reply={"message": "gebucht"},
                    ok=True,
                    latency_ms=12,
                    at=now,
                )
            )
    return world


@pytest.fixture
async def world(database: Database, clock: FixedClock, salon_id: int, other_salon_id: int) -> World:
    return await seed(database, clock, {"a": salon_id, "b": other_salon_id})


async def test_export_holds_everything_about_the_customer_and_nothing_else(
    database: Database, clock: FixedClock, world: World
) -> None:
    doc = await export_customer(database, "0151 10000001", now=clock.now(), tenant_slug="friseur1")
    json.dumps(doc)
    assert [c["name"] for c in doc["customers"]] == ["Peter Schuster"]
    assert doc["customers"][0]["salon"] == "friseur1" and doc["customers"][0]["phone"] == "+4915110000001"
    assert {a["id"] for a in doc["appointments"]} == {
        world.appointment_ids["tue"],
        world.appointment_ids["thu"],
    }
    assert [c["call_id"] for c in doc["calls"]] == ["call_1"]
    assert "Hier ist jemand" in doc["calls"][0]["transcript"]
    assert doc["calls"][0]["memory"] == {"name": "said in the call"}, "our bookkeeping is not theirs"
    assert [t["call_id"] for t in doc["function_calls"]] == ["call_1"]
    everywhere = await export_customer(database, "+4915110000001", now=clock.now())
    assert {c["salon"] for c in everywhere["customers"]} == {"friseur1", "friseur2"}
    by_id = await export_customer(database, str(world.customer_ids["eva"]), now=clock.now())
    assert [c["name"] for c in by_id["customers"]] == ["Eva Weiß"] and by_id["calls"][0][
        "call_id"
    ] == "call_2"


# --- hostile cases: erase one person, and only that person -----------------------------------------

ZERO = {
    "customers": 0,
    "appointments": 0,
    "future_cancelled": 0,
    "future_left_active": 0,
    "calls_erased": 0,
    "calls_redacted": 0,
    "function_calls_erased": 0,
    "function_calls_redacted": 0,
    "replies_erased": 0,
    "replies_redacted": 0,
    "callback_requests_dropped": 0,
}
GONE = "[gelöscht]"
GISELA_PHONE, JUERGEN_PHONE = "+4915110000021", "+4915122222222"
NUMBERED = {"gisela": "1", "juergen": "2"}  # ids and keys must not spell a name the scan looks for
# How each person is written in the call, most specific first (as a human would cross them out).
SPELLINGS = {
    "gisela": ["gisela.weiss@example.org", GISELA_PHONE, "0151 10000021", "Gisela", "Weiss", "Weiß"],
    "juergen": [JUERGEN_PHONE, "0151 22222222", "Juergen", "Jürgen", "Mueller", "Müller"],
}
# What must be nowhere after the erase: name words (folded: lower case, umlauts as ae/oe/ue, ß as ss,
# and without the umlaut's e) and the number's digits as E.164 and nationally.
TRACES = {
    "gisela": (["gisela", "weiss"], ["4915110000021", "015110000021"], "gisela.weiss@example.org"),
    "juergen": (["juergen", "jurgen", "mueller", "muller"], ["4915122222222", "015122222222"], None),
}
FAMILY_TRANSCRIPT = (
    "Agent: Friseur 1, guten Tag.\n"
    "Anrufer: Hier ist Gisela Weiss. Ich möchte einen Termin für mich und einen für meinen Sohn, "
    "Juergen Müller.\n"
    "Agent: Gern. Unter welcher Nummer erreichen wir Jürgen?\n"
    "Anrufer: 0151 22222222. Meine eigene ist die 0151 10000021, meine E-Mail gisela.weiss@example.org.\n"
    "Agent: Danke, Frau Weiß. Ich habe Sie und Herrn Mueller eingetragen."
)


def scrub(value: Any, spellings: list[str]) -> Any:
    """`value` with each spelling replaced, walked through JSON: the expected result, written by hand."""
    if isinstance(value, str):
        for spelling in spellings:
            value = value.replace(spelling, GONE)
        return value
    if isinstance(value, dict):
        return {k: scrub(v, spellings) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, spellings) for v in value]
    return value


def by_name(tenant_id: int, name: str) -> LookupQuery:
    """A caller asking for "my appointment tomorrow" under `name` (a name alone is not enough)."""
    return LookupQuery(tenant_id=tenant_id, name=name, date_words="morgen")


def folded(text: str) -> str:
    text = text.casefold()
    for umlaut, plain in (("ä", "ae"), ("ö", "oe"), ("ü", "ue")):
        text = text.replace(umlaut, plain)
    return text


async def every_text(database: Database) -> list[tuple[str, str]]:
    """(table.column, text) of every string and JSON value in every table of the schema."""
    found: list[tuple[str, str]] = []
    async with database.read() as session:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, String | Text | JSON)]
            if not columns:
                continue
            for row in (await session.execute(select(*columns))).all():
                for column, value in zip(columns, row, strict=True):
                    if value is None:
                        continue
                    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                    found.append((f"{table.name}.{column.name}", text))
    return found


async def assert_nowhere(database: Database, words: list[str], numbers: list[str], email: str | None) -> None:
    """No name word, number (in any spacing) or e-mail address of the person in any column."""
    leaks = []
    for where, text in await every_text(database):
        plain, digits = folded(text), re.sub(r"[\s\-/().+]", "", text)
        leaks += [(where, w) for w in words if w in plain]
        leaks += [(where, n) for n in numbers if n in digits]
        if email and email in plain:
            leaks.append((where, email))
    assert leaks == []


async def seed_family_call(
    database: Database, bookings: Bookings, clock: FixedClock, salon_id: int
) -> dict[str, Any]:
    """Gisela calls from her mobile and books for herself and her son Jürgen (his own number), one call.

    Also written: the call (transcript, memory), both function calls with their stored replies, a
    calendar error detail in each appointment's event log, a call-back request and a dead calendar
    job per appointment, and an unrelated call of someone else.
    """
    now = clock.now()
    people = {
        "gisela": ("Gisela Weiß", GISELA_PHONE, "damenhaarschnitt", berlin(2025, 11, 4, 10, 0)),
        "juergen": ("Jürgen Müller", JUERGEN_PHONE, "herrenhaarschnitt", berlin(2025, 11, 4, 14, 0)),
    }
    booked = {
        key: await bookings.book(
            BookingRequest(
                tenant_id=salon_id,
                service=service,
                start=start,
                customer_name=name,
                phone_e164=phone,
                call_id="call_family",
                idempotency_key=f"retell:{NUMBERED[key]}",
            )
        )
        for key, (name, phone, service, start) in people.items()
    }
    customer = {key: b.appointment.customer_id for key, b in booked.items()}
    appointment = {key: b.appointment.id for key, b in booked.items()}
    args = {
        "gisela": {"name": "Gisela Weiß", "dienstleistung": "Damenhaarschnitt", "datum": "morgen"},
        "juergen": {
            "name": "Juergen Mueller",
            "telefon": "0151 22222222",
            "dienstleistung": "Herrenhaarschnitt",
            "datum": "morgen",
        },
    }
    replies = {
        key: {
            "ok": True,
            "message": f"Ich habe den Termin gebucht, auf den Namen {name}.",
            "name": name,
        }
        for key, (name, *_) in people.items()
    }
    memory = {
        "name": "Jürgen Müller",
        "phone": JUERGEN_PHONE,
        "booked": [appointment["gisela"], appointment["juergen"]],
        "analysis": {"call_summary": "Gisela Weiß (0151 10000021) bucht auch für Jürgen Müller."},
    }
    async with database.write() as session, session.begin():
        await session.execute(
            update(CustomerRow)
            .where(CustomerRow.id == customer["gisela"])
            .values(email="gisela.weiss@example.org")
        )
        session.add(
            CallRow(
                retell_call_id="call_family",
                tenant_id=salon_id,
                from_number=GISELA_PHONE,
                to_number="+493012345670",
                customer_id=customer["gisela"],
                memory=memory,
                transcript=FAMILY_TRANSCRIPT,
                started_at=now - timedelta(minutes=5),
                ended_at=now,
                created_at=now - timedelta(minutes=5),
            )
        )
        session.add(
            CallRow(
                retell_call_id="call_other",
                tenant_id=salon_id,
                from_number="+4915199999999",
                memory={"name": "Hanna Lorenz"},
                transcript="Anrufer: Hanna Lorenz hier, ich wollte nur die Öffnungszeiten wissen.",
                created_at=now,
            )
        )
        for key, (name, phone, *_) in people.items():
            session.add(
                FunctionCallTraceRow(
                    tenant_id=salon_id,
                    retell_call_id="call_family",
                    function="book_appointment",
                    args=args[key],
                    reply=replies[key],
                    ok=True,
                    latency_ms=20,
                    at=now,
                )
            )
            session.add(
                IdempotencyRecordRow(
                    key=f"reply-{NUMBERED[key]}",
                    call_id="call_family",
                    tenant_id=salon_id,
                    scope="book_appointment",
                    state="done",
                    reply=replies[key],
                    locked_until=now,
                    created_at=now,
                    expires_at=now + timedelta(hours=48),
                )
            )
            session.add(
                AppointmentEventRow(
                    tenant_id=salon_id,
                    appointment_id=appointment[key],
                    kind="calendar_unknown",
                    data={"token": "rz-x", "calendar": f"attendee {name} <{phone}> not accepted"},
                    at=now,
                )
            )
            session.add(
                OutboxJobRow(
                    tenant_id=salon_id,
                    kind=JOB_CALLBACK,
                    payload={
                        "appointment_id": appointment[key],
                        "customer_id": customer[key],
                        "call_id": "call_family",
                        "reason": "calendar_unavailable",
                    },
                    dedupe_key=f"{JOB_CALLBACK}:{appointment[key]}",
                    status="pending",
                    attempts=0,
                    run_after=now,
                    created_at=now,
                    updated_at=now,
                )
            )
            session.add(
                OutboxJobRow(
                    tenant_id=salon_id,
                    kind=JOB_CANCEL,
                    payload={
                        "uid": f"uid-{NUMBERED[key]}",
                        "appointment_id": appointment[key],
                        "why": "cancelled",
                    },
                    dedupe_key=f"{JOB_CANCEL}:uid-{NUMBERED[key]}",
                    status="dead",
                    attempts=8,
                    run_after=now,
                    last_error=f"CalendarRejected: attendee {name} ({phone}) is invalid",
                    created_at=now,
                    updated_at=now,
                )
            )
    return {
        "customer": customer,
        "appointment": appointment,
        "args": args,
        "replies": replies,
        "memory": memory,
    }


async def test_cancelling_for_an_erasure_skips_only_the_change_notice(
    database: Database, clock: FixedClock, bookings: Bookings, salon_id: int
) -> None:
    world = await build_world(database, {"a": salon_id}, SOON_AND_PAST, clock.now())
    soon = world.appointment_ids["soon"]
    with pytest.raises(TooLateToChange):
        await bookings.cancel(tenant_id=salon_id, appointment_id=soon)
    with pytest.raises(AppointmentInPast):
        await bookings.cancel(
            tenant_id=salon_id, appointment_id=world.appointment_ids["past"], respect_notice=False
        )
    done = await bookings.cancel(
        tenant_id=salon_id, appointment_id=soon, source="gdpr_erase", respect_notice=False
    )
    assert done.appointment.status.value == "cancelled"


@pytest.mark.parametrize("erased", ["juergen", "gisela"], ids=["the-son-erased", "the-caller-erased"])
async def test_erasing_one_of_two_people_booked_in_one_call_leaves_the_other_intact(
    database: Database,
    clock: FixedClock,
    bookings: Bookings,
    finder: AppointmentFinder,
    salon_id: int,
    erased: str,
) -> None:
    family = await seed_family_call(database, bookings, clock, salon_id)
    kept = "gisela" if erased == "juergen" else "juergen"
    names = {"gisela": "Gisela Weiß", "juergen": "Jürgen Müller"}
    for name in names.values():
        assert (await finder.find_appointments(by_name(salon_id, name))).kind == "one"

    counts = await erase_customer_data(database, bookings, str(family["customer"][erased]))

    assert counts == {
        **ZERO,
        "customers": 1,
        "appointments": 1,
        "future_cancelled": 1,
        "calls_redacted": 1,
        "function_calls_redacted": 1,
        "replies_redacted": 1,
        "callback_requests_dropped": 1,
    }
    await assert_nowhere(database, *TRACES[erased])
    spellings = SPELLINGS[erased]
    async with database.read() as session:
        call = (await session.scalars(select(CallRow).where(CallRow.retell_call_id == "call_family"))).one()
        assert call.transcript == scrub(FAMILY_TRANSCRIPT, spellings)
        assert call.from_number == (GISELA_PHONE if kept == "gisela" else None)
        assert call.memory == {**scrub(family["memory"], spellings), "_erased": True}
        other = (await session.scalars(select(CallRow).where(CallRow.retell_call_id == "call_other"))).one()
        assert other.transcript == "Anrufer: Hanna Lorenz hier, ich wollte nur die Öffnungszeiten wissen."
        assert other.memory == {"name": "Hanna Lorenz"} and other.from_number == "+4915199999999"
        traces = {
            t.args["dienstleistung"]: t
            for t in await session.scalars(
                select(FunctionCallTraceRow).where(FunctionCallTraceRow.retell_call_id == "call_family")
            )
        }
        mine = "Damenhaarschnitt" if erased == "gisela" else "Herrenhaarschnitt"
        theirs = "Herrenhaarschnitt" if erased == "gisela" else "Damenhaarschnitt"
        assert traces[mine].args == scrub(family["args"][erased], spellings)
        assert traces[mine].reply == scrub(family["replies"][erased], spellings)
        assert traces[mine].args["name"] == f"{GONE} {GONE}"
        assert (traces[theirs].args, traces[theirs].reply) == (family["args"][kept], family["replies"][kept])
        replies = {
            r.key: r.reply
            for r in await session.scalars(
                select(IdempotencyRecordRow).where(IdempotencyRecordRow.call_id == "call_family")
            )
        }
        assert replies == {
            f"reply-{NUMBERED[erased]}": scrub(family["replies"][erased], spellings),
            f"reply-{NUMBERED[kept]}": family["replies"][kept],
        }
        person = await session.get(CustomerRow, family["customer"][kept])
        assert person is not None and person.name == ("Gisela Weiß" if kept == "gisela" else "Jürgen Müller")
        assert person.phone_e164 == (GISELA_PHONE if kept == "gisela" else JUERGEN_PHONE)
        statuses = {
            a.id: (a.status, a.spoken_name)
            for a in await session.scalars(select(AppointmentRow).order_by(AppointmentRow.id))
        }
        assert statuses == {
            family["appointment"][erased]: ("cancelled", None),
            family["appointment"][kept]: ("confirmed", person.name),
        }
        events = {
            (e.appointment_id, e.kind): e.data
            for e in await session.scalars(select(AppointmentEventRow).order_by(AppointmentEventRow.id))
        }
        assert events[(family["appointment"][erased], "cancelled")] == {"source": "gdpr_erase"}
        assert (family["appointment"][kept], "cancelled") not in events
        assert events[(family["appointment"][kept], "calendar_unknown")]["calendar"] == (
            f"attendee {person.name} <{person.phone_e164}> not accepted"
        )
        jobs = {(j.kind, j.payload["appointment_id"]): j for j in await session.scalars(select(OutboxJobRow))}
        assert (JOB_CALLBACK, family["appointment"][erased]) not in jobs
        assert (
            jobs[(JOB_CALLBACK, family["appointment"][kept])].payload["customer_id"]
            == family["customer"][kept]
        )
        assert jobs[(JOB_CANCEL, family["appointment"][erased])].last_error == (
            f"CalendarRejected: attendee {GONE} {GONE} ({GONE}) is invalid"
        )
        assert jobs[(JOB_CANCEL, family["appointment"][erased])].payload["uid"] == f"uid-{NUMBERED[erased]}"
        assert person.name in (jobs[(JOB_CANCEL, family["appointment"][kept])].last_error or "")
    assert (await finder.find_appointments(by_name(salon_id, names[kept]))).kind == "one"
    assert (await finder.find_appointments(by_name(salon_id, names[erased]))).kind == "none"


LINE = "+493098765432"
FAMILY_LINE = {
    "call_a": "Anrufer: Hier ist Karin Vogel, ich rufe von der 030 98765432 an.",
    "call_b": "Anrufer: Lena Brandt hier, wir teilen uns den Anschluss 030 98765432.",
}


async def test_erasing_one_person_of_a_family_line_leaves_the_other_their_number_calls_and_caller_id(
    database: Database, clock: FixedClock, bookings: Bookings, salon_id: int
) -> None:
    ids: dict[str, int] = {}
    for call, name, start in (
        ("call_a", "Karin Vogel", berlin(2025, 11, 4, 10, 0)),
        ("call_b", "Lena Brandt", berlin(2025, 11, 5, 10, 0)),
    ):
        async with database.write() as session, session.begin():
            session.add(
                CallRow(
                    retell_call_id=call,
                    tenant_id=salon_id,
                    from_number=LINE,
                    to_number="+493012345670",
                    memory={"name": name},
                    transcript=FAMILY_LINE[call],
                    created_at=clock.now(),
                )
            )
        booked = await bookings.book(
            BookingRequest(
                tenant_id=salon_id,
                service="damenhaarschnitt",
                start=start,
                customer_name=name,
                phone_e164=LINE,
                call_id=call,
                idempotency_key=f"retell:{call}",
            )
        )
        assert booked.appointment.customer_id is not None
        ids[call] = booked.appointment.customer_id
        await SqlLookupStore(database).record_consent(
            salon_id, call_id=call, at=clock.now(), customer_id=ids[call]
        )
    caller = CallerId(
        store=SqlLookupStore(database), uow=SqlUnitOfWork(database), clock=clock, flags=flag_book(database)
    )
    assert (await caller.find_caller(salon_id, "030 98765432")).status == "shared"

    counts = await erase_customer_data(database, bookings, str(ids["call_a"]))

    assert (counts["calls_erased"], counts["calls_redacted"], counts["future_cancelled"]) == (0, 2, 1)
    await assert_nowhere(database, ["karin", "vogel"], [], None)
    recognized = await caller.find_caller(salon_id, "030 98765432")
    assert (recognized.status, recognized.name, recognized.customer_id) == (
        "known",
        "Lena Brandt",
        ids["call_b"],
    )
    async with database.read() as session:
        lena = await session.get(CustomerRow, ids["call_b"])
        assert lena is not None and (lena.name, lena.phone_e164) == ("Lena Brandt", LINE)
        assert lena.caller_id_consent_at is not None and lena.consent_call_id == "call_b"
        calls = {c.retell_call_id: c for c in await session.scalars(select(CallRow))}
    assert (calls["call_b"].transcript, calls["call_b"].memory) == (
        FAMILY_LINE["call_b"],
        {"name": "Lena Brandt"},
    )
    assert calls["call_b"].from_number == LINE and calls["call_b"].customer_id == ids["call_b"]
    assert calls["call_a"].transcript == f"Anrufer: Hier ist {GONE} {GONE}, ich rufe von der 030 98765432 an."
    assert calls["call_a"].from_number == LINE  # Lena's number too: not Karin's alone to erase


SOON_AND_PAST: list[dict[str, Any]] = [
    {"key": "maria", "name": "Maria Kaiser", "phone": "+4915110000031", "appointments": [
        {"key": "soon", "at": "2025-11-03 09:00", "service": "herrenhaarschnitt"},
        {"key": "later", "at": "2025-11-05 10:00", "service": "bartpflege", "status": "pending"},
        {"key": "past", "at": "2025-10-28 10:00", "service": "herrenhaarschnitt"},
        {"key": "gone", "at": "2025-11-06 10:00", "service": "bartpflege", "status": "cancelled"},
    ]},
]  # fmt: skip


async def test_future_appointments_are_cancelled_by_the_erase_even_within_the_notice_past_ones_stay(
    database: Database, clock: FixedClock, bookings: Bookings, salon_id: int
) -> None:
    world = await build_world(database, {"a": salon_id}, SOON_AND_PAST, clock.now())
    ids = world.appointment_ids
    plan = await erasure_plan(database, "0151 10000031", now=clock.now())
    assert plan.customer_ids == (world.customer_ids["maria"],)
    assert plan.future == ((salon_id, ids["soon"]), (salon_id, ids["later"]))

    counts = await erase_customer_data(database, bookings, "0151 10000031")

    assert (counts["future_cancelled"], counts["future_left_active"], counts["appointments"]) == (2, 0, 4)
    async with database.read() as session:
        rows = {a.id: a for a in await session.scalars(select(AppointmentRow))}
        events = (
            await session.execute(
                select(AppointmentEventRow.appointment_id, AppointmentEventRow.data).where(
                    AppointmentEventRow.kind == "cancelled"
                )
            )
        ).all()
    assert {k: rows[v].status for k, v in ids.items()} == {
        "soon": "cancelled",
        "later": "cancelled",
        "past": "confirmed",
        "gone": "cancelled",
    }
    assert sorted((a, d) for a, d in events) == [
        (ids["soon"], {"source": "gdpr_erase"}),
        (ids["later"], {"source": "gdpr_erase"}),
    ]
    assert all(r.spoken_name is None for r in rows.values())


async def test_stored_replies_of_their_calls_are_deleted_and_older_ones_without_a_call_redacted(
    database: Database, clock: FixedClock, world: World, salon_id: int, other_salon_id: int
) -> None:
    now = clock.now()
    peter_reply = {"ok": True, "message": "Gebucht auf den Namen Peter Schuster.", "name": "Peter Schuster"}
    eva_reply = {"ok": True, "message": "Gebucht auf den Namen Eva Weiß.", "name": "Eva Weiß"}
    async with database.write() as session, session.begin():
        for key, call, tenant, reply in (
            ("in-his-call", "call_1", salon_id, peter_reply),
            ("before-0004", None, salon_id, peter_reply),
            ("eva-before-0004", None, salon_id, eva_reply),
            ("other-salon-before-0004", None, other_salon_id, peter_reply),
        ):
            session.add(
                IdempotencyRecordRow(
                    key=key,
                    call_id=call,
                    tenant_id=tenant,
                    scope="book_appointment",
                    state="done",
                    reply=reply,
                    locked_until=now,
                    created_at=now,
                    expires_at=now + timedelta(hours=48),
                )
            )

    counts = await erase_customer(database, "+4915110000001", now=now, tenant_slug="friseur1")

    assert (counts["replies_erased"], counts["replies_redacted"]) == (1, 1)
    async with database.read() as session:
        left = dict(
            (await session.execute(select(IdempotencyRecordRow.key, IdempotencyRecordRow.reply))).all()
        )
    assert left == {
        "before-0004": {
            "ok": True,
            "message": f"Gebucht auf den Namen {GONE} {GONE}.",
            "name": f"{GONE} {GONE}",
        },
        "eva-before-0004": eva_reply,
        "other-salon-before-0004": peter_reply,  # the erase named Friseur 1 only
    }


async def test_erase_anonymizes_person_and_calls_but_keeps_appointment_statistics(
    database: Database, clock: FixedClock, world: World, finder: AppointmentFinder, salon_id: int
) -> None:
    assert (await finder.find_appointments(by_name(salon_id, "Peter Schuster"))).kind == "one"
    counts = await erase_customer(database, "+4915110000001", now=clock.now(), tenant_slug="friseur1")
    assert counts == {
        **ZERO,
        "customers": 1,
        "appointments": 2,
        "future_left_active": 1,  # the store alone cancels nothing: erase_customer_data does, first
        "calls_erased": 1,
        "function_calls_erased": 1,
    }
    async with database.read() as session:
        peter = await session.get(CustomerRow, world.customer_ids["peter"])
        assert peter is not None and (peter.name, peter.name_normalized, peter.phone_e164) == (
            None,
            None,
            None,
        )
        keys = await session.scalars(
            select(CustomerNameKeyRow).where(CustomerNameKeyRow.customer_id == peter.id)
        )
        assert keys.all() == []
        kept = (
            await session.scalars(select(AppointmentRow).where(AppointmentRow.customer_id == peter.id))
        ).all()
        assert sorted(a.status for a in kept) == ["cancelled", "confirmed"]
        assert all(a.spoken_name is None for a in kept)
        call = (await session.scalars(select(CallRow).where(CallRow.retell_call_id == "call_1"))).one()
        assert (call.transcript, call.from_number, call.memory) == (None, None, {"_erased": True})
        trace = (
            await session.scalars(
                select(FunctionCallTraceRow).where(FunctionCallTraceRow.retell_call_id == "call_1")
            )
        ).one()
        assert trace.args == {} and trace.reply == {}
        eva_call = (await session.scalars(select(CallRow).where(CallRow.retell_call_id == "call_2"))).one()
        assert eva_call.transcript is not None and eva_call.from_number == "+4915110000009"
        other_salon = await session.get(CustomerRow, world.customer_ids["b_peter"])
        assert other_salon is not None and other_salon.name == "Peter Schuster"
        b_keys = await session.scalars(
            select(CustomerNameKeyRow).where(CustomerNameKeyRow.customer_id == other_salon.id)
        )
        assert b_keys.all() != []
    gone = await finder.find_appointments(by_name(salon_id, "Peter Schuster"))
    assert gone.kind == "none"
    caller = CallerId(
        store=SqlLookupStore(database), uow=SqlUnitOfWork(database), clock=clock, flags=flag_book(database)
    )
    assert (await caller.find_caller(salon_id, "+4915110000001")).status == "unknown"


async def test_unknown_refs_are_refused_or_find_nobody(
    database: Database, clock: FixedClock, world: World
) -> None:
    with pytest.raises(CustomerRefError):
        await export_customer(database, "Peter", now=clock.now())
    assert (await export_customer(database, "999999", now=clock.now()))["customers"] == []
    assert (await erase_customer(database, "+4915199999999", now=clock.now()))["customers"] == 0


async def test_transcripts_are_purged_after_each_salons_retention(
    database: Database, clock: FixedClock, world: World, other_salon_id: int
) -> None:
    now = clock.now()
    async with database.write() as session, session.begin():
        settings = (await session.get(TenantRow, other_salon_id)).settings  # type: ignore[union-attr]
        await session.execute(
            update(TenantRow)
            .where(TenantRow.id == other_salon_id)
            .values(settings={**settings, "transcript_retention_days": 5})
        )
        for call, tenant, age in (
            ("old_a", None, 100),
            ("young_b", other_salon_id, 10),
            ("young_a", None, 89),
        ):
            session.add(
                CallRow(
                    retell_call_id=call,
                    tenant_id=tenant or world.tenants["a"],
                    memory={},
                    transcript="Anrufer: ...",
                    started_at=now - timedelta(days=age),
                    ended_at=None,
                    created_at=now - timedelta(days=age),
                )
            )
    assert await purge_transcripts(database, now=now) == 2
    async with database.read() as session:
        left = dict((await session.execute(select(CallRow.retell_call_id, CallRow.transcript))).all())
    assert left["old_a"] is None and left["young_b"] is None
    assert left["young_a"] is not None and left["call_1"] is not None
    assert await purge_transcripts(database, now=now) == 0


def test_the_salon_file_carries_the_retention_with_a_default() -> None:
    assert read_salon(DEMO_SALON).booking.transcript_retention_days == 90
    text = DEMO_SALON.read_text(encoding="utf-8")
    changed = text.replace(
        "  change_min_notice_hours: 2", "  transcript_retention_days: 30\n  change_min_notice_hours: 2"
    )
    assert parse_salon(changed).booking.transcript_retention_days == 30
    with pytest.raises(SalonFileError, match="transcript_retention_days"):
        parse_salon(
            text.replace(
                "  change_min_notice_hours: 2", "  transcript_retention_days: 0\n  change_min_notice_hours: 2"
            )
        )


def test_the_cli_exports_and_erases_and_says_how_many_future_appointments_it_cancelled(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    url = database_url  # migrated and empty (SQLite) or migrated and shared (PostgreSQL: emptied below)
    clock = FixedClock(berlin(2025, 11, 3, 8, 0))
    next_week = (
        datetime.now(BERLIN).date() + timedelta(days=7)
    ).isoformat()  # the CLI runs on the real clock
    ahead: list[dict[str, Any]] = [
        {"key": "peter", "name": "Peter Schuster", "phone": "+4915110000001", "appointments": [
            {"key": "ahead", "at": f"{next_week} 10:00", "service": "herrenhaarschnitt"},
        ]},
        {"key": "b_peter", "tenant": "b", "name": "Peter Schuster", "phone": "+4915110000001",
         "appointments": [
            {"key": "b_ahead", "at": f"{next_week} 10:00", "service": "herrenhaarschnitt"},
        ]},
    ]  # fmt: skip

    async def prepare() -> World:
        database = Database.from_url(url)
        try:
            await empty_tables(database)
            a = (await import_salon(database, read_salon(DEMO_SALON), now=clock.now())).tenant_id
            b = await import_second_salon(database, clock.now())
            await seed(database, clock, {"a": a, "b": b})
            return await build_world(database, {"a": a, "b": b}, ahead, clock.now())
        finally:
            await database.dispose()

    async def statuses() -> dict[int, tuple[str, list[Any]]]:
        database = Database.from_url(url)
        try:
            async with database.read() as session:
                rows = (await session.execute(select(AppointmentRow.id, AppointmentRow.status))).all()
                events = (
                    await session.execute(
                        select(AppointmentEventRow.appointment_id, AppointmentEventRow.data).where(
                            AppointmentEventRow.kind == "cancelled"
                        )
                    )
                ).all()
            return {i: (status, [d for a, d in events if a == i]) for i, status in rows}
        finally:
            await database.dispose()

    future = asyncio.run(prepare()).appointment_ids
    monkeypatch.setenv("REZEPTION_DATABASE_URL", url)
    caplog.set_level(
        logging.INFO
    )  # (aiosqlite's DEBUG lines quote SQL parameters: never run DEBUG in production)
    runner = CliRunner()
    out = tmp_path / "export.json"
    exported = runner.invoke(
        customers_app, ["export", "0151 10000001", "--tenant", "friseur1", "--out", str(out)]
    )
    assert exported.exit_code == 0, exported.output
    assert json.loads(out.read_text(encoding="utf-8"))["customers"][0]["name"] == "Peter Schuster"
    refused = runner.invoke(customers_app, ["erase", "+4915110000001"], input="n\n")
    assert refused.exit_code == 1
    assert "2 customer(s)" in refused.output and "cancel their 2 future appointment(s)" in refused.output
    assert asyncio.run(statuses())[future["ahead"]] == ("confirmed", [])

    erased = runner.invoke(customers_app, ["erase", "+4915110000001", "--tenant", "friseur1", "--yes"])

    assert erased.exit_code == 0, erased.output
    assert "erased: 1 customer(s); 1 future appointment(s) cancelled" in erased.output
    assert "gdpr: erasure done" in caplog.text
    for shown in (refused.output, erased.output, caplog.text):
        assert not any(leak in shown for leak in ("Peter", "Schuster", "4915110000001", "0151"))
    after = asyncio.run(statuses())
    assert after[future["ahead"]] == ("cancelled", [{"source": "gdpr_erase"}])
    assert after[future["b_ahead"]] == ("confirmed", [])  # --tenant friseur1: the other salon keeps it
    again = runner.invoke(customers_app, ["export", "+4915110000001", "--tenant", "friseur1"])
    assert again.exit_code == 1
    bad = runner.invoke(customers_app, ["export", "nobody"])
    assert bad.exit_code == 2


async def test_call_events_that_come_after_the_erasure_bring_nothing_back(
    database: Database, clock: FixedClock, world: World, salon_id: int
) -> None:
    """Retell delivers call_analyzed after call_ended, and delivers a webhook again when our answer
    was a 503: such an event may come after the caller was erased. It must not write the transcript,
    the summary or the number back into the erased call."""
    await erase_customer(database, "+4915110000001", now=clock.now(), tenant_slug="friseur1")
    said = "Agent: Hallo. Anrufer: Peter Schuster hier, 0151 10000001."
    await calls.record_event(
        database, "call_1", event="call_ended", tenant_id=salon_id, at=clock.now(),
        ended_at=clock.now(), from_number="+4915110000001", transcript=said,
    )  # fmt: skip
    await calls.record_event(
        database, "call_1", event="call_analyzed", tenant_id=salon_id, at=clock.now(),
        from_number="+4915110000001", analysis={"call_summary": "Peter Schuster bucht einen Termin."},
    )  # fmt: skip
    async with database.read() as session:
        call = (await session.scalars(select(CallRow).where(CallRow.retell_call_id == "call_1"))).one()
    assert (call.transcript, call.from_number) == (None, None)
    assert "Peter" not in json.dumps(call.memory) and "analysis" not in call.memory
