"""Bad input at the edge, bodies at the wrong route, and failures classified once (issue 11).

Each test is one failure an outside probe produced: a 500, a write executed from a body that was
not a function call, a deterministic refusal spoken as temporary. The clock stands on Monday
3 November 2025, 08:00 in Berlin.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select
from tests.integration.retell_adapter.conftest import AGENT, CALLER, SALON_NUMBER, RetellClient

from rezeption.booking.calls import Calls
from rezeption.booking.ports import Trace
from rezeption.domain.clock import FixedClock
from rezeption.retell.traces import TraceWriter
from rezeption.store.call_store import SqlCallStore
from rezeption.store.calls import TenantRoutes
from rezeption.store.db import Database
from rezeption.store.idempotency import IdempotencyStore
from rezeption.store.tables import (
    AppointmentEventRow,
    AppointmentRow,
    CallRow,
    FunctionCallTraceRow,
    IdempotencyRecordRow,
)

CALL = {"call_id": "call_1", "agent_id": AGENT, "from_number": CALLER, "to_number": SALON_NUMBER}
BOOK = {"name": "Peter Schuster", "dienstleistung": "Bartpflege", "datum": "Donnerstag", "uhrzeit": "12:00"}


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


async def statuses(database: Database) -> list[str]:
    async with database.read() as session:
        return list((await session.scalars(select(AppointmentRow.status))).all())


@pytest.mark.parametrize("depth", [40, 5000])
async def test_deeply_nested_json_is_refused_on_every_route_never_a_500(
    retell: RetellClient, depth: int
) -> None:
    raw = ('{"a":' * depth + "1" + "}" * depth).encode()
    for path in ("/retell/functions/list_services", "/retell/inbound", "/retell/webhook"):
        response = await retell.post(path, raw)
        assert response.status_code == 400, (path, response.status_code)
    body = {"name": "list_services", "call": CALL, "args": {"deep": nested(depth)}}
    if depth < 100:  # json.dumps itself recurses; the raw form above covers the very deep case
        assert (await retell.post("/retell/functions/list_services", body)).status_code == 400


async def test_nul_and_control_characters_never_reach_the_database(
    retell: RetellClient, database: Database
) -> None:
    booked = await retell.function("book_appointment", {**BOOK, "name": "Peter\x00 Schus\x07ter"})
    assert booked["ok"] is True and booked["name"] == "Peter Schuster", booked
    odd_call = "call_\x00nul"
    listed = await retell.function("list_services", {}, call_id=odd_call, agent_id="agent_friseur1\x00")
    assert listed["ok"] is True
    ended = await retell.post(
        "/retell/webhook",
        {
            "event": "call_ended",
            "call": {**CALL, "transcript": "User: Hallo\x00 Welt", "end_timestamp": 1762156800000},
        },
    )
    assert ended.status_code == 204
    analyzed = await retell.post(
        "/retell/webhook",
        {"event": "call_analyzed", "call": {**CALL, "call_analysis": {"summary\x00": "gut\x00"}}},
    )
    assert analyzed.status_code == 204
    async with database.read() as session:
        call = (await session.scalars(select(CallRow).where(CallRow.retell_call_id == "call_1"))).one()
        ids = set((await session.scalars(select(CallRow.retell_call_id))).all())
    assert call.transcript == "User: Hallo Welt" and call.memory["analysis"] == {"summary": "gut"}
    assert "call_nul" in ids and not any("\x00" in i for i in ids)


async def test_timestamps_out_of_range_are_a_bad_request_not_a_500(retell: RetellClient) -> None:
    for stamp in (10**18, -5):
        response = await retell.post(
            "/retell/webhook", {"event": "call_started", "call": {**CALL, "start_timestamp": stamp}}
        )
        assert response.status_code == 400, stamp


async def test_a_date_that_can_never_work_is_a_refusal_that_keeps_its_key(
    retell: RetellClient, database: Database
) -> None:
    for function, args in (
        ("check_availability", {"dienstleistung": "Bartpflege", "datum": "31.12.9999", "uhrzeit": "10 Uhr"}),
        ("find_appointments", {"name": "Peter Schuster", "datum": "31.12.9999"}),
        ("book_appointment", {**BOOK, "datum": "31.12.9999"}),
    ):
        answer = await retell.function(function, args)
        assert answer["ok"] is False and answer["reason"] == "far_future", (function, answer)
        assert "gleich noch einmal" not in answer["message"]
    again = await retell.function("book_appointment", {**BOOK, "datum": "31.12.9999"})
    assert again["reason"] == "far_future"
    async with database.read() as session:
        states = (await session.scalars(select(IdempotencyRecordRow.state))).all()
    assert states == ["done"]  # kept: a retry gets the same refusal without doing the work again


async def test_a_body_posted_to_a_route_it_does_not_belong_to_is_refused_and_changes_nothing(
    retell: RetellClient, database: Database
) -> None:
    booked = await retell.function("book_appointment", BOOK)
    assert booked["ok"] is True
    call_ended = {"event": "call_ended", "call": {**CALL, "transcript": "User: tschüss"}}
    for path in ("/retell/functions/cancel_appointment", "/retell/functions/book_appointment"):
        assert (await retell.post(path, call_ended)).status_code == 400
    other_function = {"name": "find_appointments", "call": CALL, "args": {"referenz": booked["referenz"]}}
    assert (await retell.post("/retell/functions/cancel_appointment", other_function)).status_code == 400
    no_name = {"call": CALL, "args": {"referenz": booked["referenz"]}}
    assert (await retell.post("/retell/functions/cancel_appointment", no_name)).status_code == 400
    function_call = {"name": "cancel_appointment", "call": CALL, "args": {"referenz": booked["referenz"]}}
    assert (await retell.post("/retell/webhook", function_call)).status_code == 400
    assert (await retell.post("/retell/inbound", function_call)).status_code == 400
    assert (
        await retell.post("/retell/inbound", {"call_inbound": {"to_number": SALON_NUMBER}})
    ).status_code == 400
    assert await statuses(database) == ["confirmed"]


async def test_bare_arguments_are_off_by_default_so_a_header_cannot_name_the_call(
    retell: RetellClient, database: Database
) -> None:
    booked = await retell.function("book_appointment", BOOK)
    headers = {"X-Call-Id": "call_1", "X-Agent-Id": AGENT}
    for name, args in (
        ("cancel_appointment", {"referenz": booked["referenz"]}),
        ("cancel_appointment", {}),
        ("find_appointments", {}),
    ):
        response = await retell.post(f"/retell/functions/{name}", args, headers=headers)
        assert response.status_code == 400 and "REZEPTION_RETELL_BARE_ARGS" in response.json()["detail"]
    assert await statuses(database) == ["confirmed"]


async def test_with_bare_arguments_on_a_write_still_needs_the_full_envelope(
    retell: RetellClient, database: Database, bare_args: None
) -> None:
    booked = await retell.function("book_appointment", BOOK)
    headers = {"X-Call-Id": "call_1", "X-Agent-Id": AGENT}
    for name, args in (
        ("cancel_appointment", {"referenz": booked["referenz"]}),
        ("reschedule_appointment", {"referenz": booked["referenz"], "neues_datum": "Freitag"}),
        ("book_appointment", {**BOOK, "uhrzeit": "14:00"}),
        ("record_consent", {"name": "Peter Schuster"}),
    ):
        response = await retell.post(f"/retell/functions/{name}", args, headers=headers)
        assert response.status_code == 400 and "full" in response.json()["detail"], name
    read = await retell.post("/retell/functions/find_appointments", {}, headers=headers)
    assert read.status_code == 200 and read.json()["ok"] is True
    assert await statuses(database) == ["confirmed"]


async def test_the_same_booking_in_other_words_is_the_callers_own_not_taken(
    retell: RetellClient, database: Database
) -> None:
    first = await retell.function("book_appointment", BOOK)
    assert first["ok"] is True and first["uhrzeit"] == "12:00"
    for words in ("12 Uhr", "zwölf Uhr", "mittags"):
        again = await retell.function("book_appointment", {**BOOK, "uhrzeit": words})
        assert again["ok"] is True and again["schon_gebucht"] is True, (words, again)
        assert again["message"].startswith("Der Termin ist schon für Sie eingetragen")
    someone_else = await retell.function(
        "book_appointment", {**BOOK, "name": "Maria Krause", "uhrzeit": "12 Uhr"}
    )
    assert someone_else.get("schon_gebucht") is None and someone_else["ok"] is False  # Ben is taken
    other_call = await retell.function(
        "book_appointment", {**BOOK, "uhrzeit": "12 Uhr"}, call_id="call_other"
    )
    assert other_call["ok"] is False and other_call["reason"] == "slot_taken"
    assert await statuses(database) == ["confirmed"]


async def test_one_bad_trace_is_dropped_alone_and_counted(
    database: Database, clock: FixedClock, salon_id: int
) -> None:
    writer = TraceWriter(
        Calls(SqlCallStore(database, TenantRoutes(database)), IdempotencyStore(database, clock))
    )

    def trace(tenant_id: int, n: int) -> Trace:
        return Trace(
            tenant_id=tenant_id,
            retell_call_id=f"call_{n}",
            function="list_services",
            args={},
            reply={"ok": True},
            latency_ms=3,
            at=clock.now() + timedelta(seconds=n),
        )

    for n in range(5):
        writer.add(trace(salon_id if n != 2 else 999_999, n))  # no such salon: a foreign-key refusal
    assert await writer.flush() == 4
    assert writer.dropped == 1
    async with database.read() as session:
        stored = sorted((await session.scalars(select(FunctionCallTraceRow.retell_call_id))).all())
    assert stored == ["call_0", "call_1", "call_3", "call_4"]


async def test_an_exact_replay_is_answered_from_the_first_or_refused_never_run_twice_or_disclosing(
    retell: RetellClient, database: Database, clock: FixedClock
) -> None:
    booked = await retell.function("book_appointment", BOOK)
    stamp = int(clock.now().timestamp() * 1000) + 10_000

    async def send(path: str, body: dict[str, Any]) -> httpx.Response:
        raw = json.dumps(body).encode()
        headers = {"X-Retell-Signature": retell.sign_at(raw, stamp), "Content-Type": "application/json"}
        return await retell.http.post(path, content=raw, headers=headers)

    cancel = {"name": "cancel_appointment", "call": CALL, "args": {"referenz": booked["referenz"]}}
    first = await send("/retell/functions/cancel_appointment", cancel)
    replayed = await send("/retell/functions/cancel_appointment", cancel)
    assert first.json()["storniert"] is True and replayed.json() == first.json()
    async with database.read() as session:
        events = (await session.scalars(select(AppointmentEventRow.kind))).all()
    assert events.count("cancelled") == 1
    find = {"name": "find_appointments", "call": CALL, "args": {"name": "Peter Schuster"}}
    assert (await send("/retell/functions/find_appointments", find)).status_code == 200
    assert (await send("/retell/functions/find_appointments", find)).status_code == 409
    # call_inbound: Retell may deliver the very same signed bytes again when our answer did not
    # reach it; the call must still connect, but a replay never discloses who calls
    assert (await retell.function("record_consent", {}))["gespeichert"] is True
    inbound = {"event": "call_inbound", "call_inbound": {"from_number": CALLER, "to_number": SALON_NUMBER}}
    heard = (await send("/retell/inbound", inbound)).json()["call_inbound"]["dynamic_variables"]
    assert heard["customer_known"] == "true" and heard["customer_name"] == "Peter Schuster"
    again = await send("/retell/inbound", inbound)
    assert again.status_code == 200
    replayed_variables = again.json()["call_inbound"]["dynamic_variables"]
    assert replayed_variables["customer_known"] == "false" and replayed_variables["customer_name"] == ""
    assert replayed_variables["next_appointments"] == "" and "Peter" not in again.text
    assert {k: v for k, v in replayed_variables.items() if not k.startswith(("customer", "next"))} == {
        k: v for k, v in heard.items() if not k.startswith(("customer", "next"))
    }  # the salon's name, hours and today's date, as the first answer gave them
    # the first delivery cut off before it opened the call (our process killed): the replay opens it
    cut_off = {"event": "call_inbound", "call_inbound": {**inbound["call_inbound"], "call_id": "call_cut"}}
    assert (await send("/retell/inbound", cut_off)).status_code == 200
    await _call_row_appears(database, "call_cut")
    async with database.write() as session, session.begin():
        await session.execute(delete(CallRow).where(CallRow.retell_call_id == "call_cut"))
    assert (await send("/retell/inbound", cut_off)).status_code == 200
    await _call_row_appears(database, "call_cut")


async def _call_row_appears(database: Database, call_id: str) -> None:
    """The call's row, opened by the ring-in (or after the answer when its statement failed)."""
    for _ in range(200):
        async with database.read() as session:
            if (await session.scalars(select(CallRow).where(CallRow.retell_call_id == call_id))).first():
                return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{call_id} was not opened")


async def test_the_loser_of_a_concurrent_cancel_and_move_hears_a_clear_answer_not_try_again(
    retell: RetellClient, database: Database
) -> None:
    for round_, hour in enumerate((13, 14, 15, 17)):  # Ben's Thursday, around his 16:00 break
        call_id = f"call_race_{round_}"
        booked = await retell.function(
            "book_appointment", {**BOOK, "uhrzeit": f"{hour} Uhr"}, call_id=call_id
        )
        assert booked["ok"] is True, booked
        cancel = retell.function("cancel_appointment", {"referenz": booked["referenz"]}, call_id=call_id)
        move = retell.function(
            "reschedule_appointment",
            {"referenz": booked["referenz"], "neues_datum": "Freitag", "neue_uhrzeit": f"{10 + round_} Uhr"},
            call_id=call_id,
        )
        answers = await asyncio.gather(cancel, move)
        for answer in answers:
            assert answer.get("reason") not in {"internal_error", "unavailable"}, answers
            assert "gleich noch einmal" not in answer["message"], answers
        assert any(a["ok"] for a in answers), answers
    async with database.read() as session:
        active = (
            await session.scalars(select(AppointmentRow.id).where(AppointmentRow.status == "confirmed"))
        ).all()
    assert len(active) <= 4  # each round leaves the old one cancelled or moved, never two
