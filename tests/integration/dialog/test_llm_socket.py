"""Retell's custom-LLM socket against our server under uvicorn, with a real WebSocket client that
plays Retell (`emulators.retell.caller`): config, greeting, ping, reminders, interruptions, holding
lines, tool-call frames, end_call and transfer_number, refusals of unknown and ended calls."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import text
from tests.integration.retell_adapter.conftest import API_KEY, CALLER, SALON_NUMBER
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from rezeption.domain.clock import FixedClock
from rezeption.domain.flags import DIALOG_ENGINE, INTERIM_LINES, Rule
from rezeption.emulators.retell.caller import RetellCall, RetellPhone
from rezeption.retell.functions import FunctionRunner, Outcome
from rezeption.store.db import Database
from rezeption.store.flags import set_rule

HOLD = "Einen Moment bitte, ich schaue nach."


@pytest.fixture
def phone(server: str, clock: FixedClock) -> RetellPhone:
    return RetellPhone(server, API_KEY, now_ms=lambda: int(clock.now().timestamp() * 1000))


@pytest.fixture
async def call(phone: RetellPhone) -> AsyncIterator[RetellCall]:
    placed = await phone.call("call_socket_1", from_number=CALLER, to_number=SALON_NUMBER)
    yield placed
    await placed.socket.close()


def slow(app: FastAPI, function: str, seconds: float) -> list[str]:
    """Make one function take `seconds` longer in the running server (a slow calendar); the
    names of the functions run are collected in the returned list."""
    runner: FunctionRunner = app.state.retell_runner
    original = runner.run
    ran: list[str] = []

    async def delayed(name: str, ref: Any, args: dict[str, Any]) -> Outcome:
        ran.append(name)
        if name == function:
            await asyncio.sleep(seconds)
        return await original(name, ref, args)

    runner.run = delayed  # type: ignore[method-assign]
    return ran


async def confirmed(database: Database) -> int:
    async with database.statement() as conn:
        return int(
            (
                await conn.execute(text("SELECT count(*) FROM appointments WHERE status = 'confirmed'"))
            ).scalar_one()
        )


async def test_config_comes_first_then_the_greeting_as_response_zero(server: str, phone: RetellPhone) -> None:
    await phone.post(
        "/retell/inbound",
        {
            "event": "call_inbound",
            "call_inbound": {"call_id": "call_raw", "from_number": CALLER, "to_number": SALON_NUMBER},
        },
    )
    await asyncio.sleep(0.3)  # call_inbound records the call just after answering
    async with connect(f"{server.replace('http', 'ws')}/retell/llm/call_raw") as socket:
        first = json.loads(await socket.recv())
        second = json.loads(await socket.recv())
    assert first["response_type"] == "config" and first["config"]["auto_reconnect"] is True
    assert second["response_type"] == "response" and second["response_id"] == 0
    assert second["content_complete"] is True and "Friseur 1, guten Tag!" in second["content"]


async def test_ping_pong_is_echoed(call: RetellCall) -> None:
    assert await call.ping(1730620800123) == 1730620800123


async def test_an_unknown_call_id_is_refused(server: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{server.replace('http', 'ws')}/retell/llm/call_nobody_announced"):
            pass
    assert refused.value.response.status_code == 403


async def test_an_ended_call_is_refused(server: str, phone: RetellPhone, call: RetellCall) -> None:
    await phone.hang_up(call, from_number=CALLER, to_number=SALON_NUMBER)
    with pytest.raises(InvalidStatus):
        async with connect(f"{server.replace('http', 'ws')}/retell/llm/{call.call_id}"):
            pass


async def test_a_booking_over_the_socket_shows_its_function_calls(
    call: RetellCall, database: Database
) -> None:
    answer = await call.say("Herrenhaarschnitt am Mittwoch um 10, Hans Schuster")
    assert "Soll ich den Termin so eintragen?" in answer.text
    assert [t["name"] for t in answer.tools if t["response_type"] == "tool_call_invocation"] == [
        "check_availability"
    ]
    result = next(t for t in answer.tools if t["response_type"] == "tool_call_result")
    assert result["successful"] is True and json.loads(result["content"])["frei"] is True
    assert await confirmed(database) == 0  # nothing written before the yes
    booked = await call.say("Ja")
    assert "Ich habe Ihren Termin gebucht" in booked.text
    assert await confirmed(database) == 1
    goodbye = await call.say("Nein danke, tschüss")
    assert goodbye.end_call and "auf Wiederhören" in goodbye.text


async def test_a_slow_calendar_gets_a_holding_line_first(app: FastAPI, call: RetellCall) -> None:
    slow(app, "check_availability", 1.0)
    answer = await call.say("Herrenhaarschnitt am Mittwoch um 10, Hans Schuster")
    assert answer.chunks[0][1].strip() == HOLD
    assert "Soll ich den Termin so eintragen?" in answer.chunks[-1][1]


async def test_a_very_slow_calendar_gets_a_second_holding_line(app: FastAPI, call: RetellCall) -> None:
    slow(app, "check_availability", 5.0)
    answer = await call.say("Herrenhaarschnitt am Mittwoch um 10, Hans Schuster")
    texts = [chunk.strip() for _, chunk in answer.chunks]
    assert texts[0] == HOLD and texts[1] == "Ich bin gleich so weit."
    assert "Soll ich den Termin so eintragen?" in texts[-1]


async def test_a_fast_answer_has_no_holding_line(call: RetellCall) -> None:
    answer = await call.say("Wann haben Sie geöffnet?")
    assert len(answer.chunks) == 1 and "Dienstag" in answer.text


async def test_an_interrupted_booking_books_once_and_is_told_in_the_next_answer(
    app: FastAPI, call: RetellCall, database: Database
) -> None:
    await call.say("Herrenhaarschnitt am Mittwoch um 10, Hans Schuster")
    ran = slow(app, "book_appointment", 1.0)
    call.transcript.append({"role": "user", "content": "Ja"})
    await call.send_required(10)
    await asyncio.sleep(0.5)  # the booking is under way; the caller keeps talking
    call.transcript[-1] = {"role": "user", "content": "Ja, und was kostet das?"}
    await call.send_required(11)
    answer = await call.collect(11)
    assert "Ich habe Ihren Termin gebucht" in answer.text and "28 Euro" in answer.text
    assert ran.count("book_appointment") == 1
    assert await confirmed(database) == 1


async def test_a_superseded_response_is_never_completed(app: FastAPI, call: RetellCall) -> None:
    slow(app, "check_availability", 1.0)
    call.transcript.append({"role": "user", "content": "Herrenhaarschnitt am Mittwoch"})
    await call.send_required(20)
    await asyncio.sleep(0.4)
    call.transcript[-1] = {"role": "user", "content": "Herrenhaarschnitt am Mittwoch um 10, Hans Schuster"}
    await call.send_required(21)
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(15):
        while True:
            frame = json.loads(await call.socket.recv())
            frames.append(frame)
            if frame.get("response_id") == 21 and frame.get("content_complete"):
                break
    assert not any(f.get("response_id") == 20 and f.get("content_complete") for f in frames)
    assert "Soll ich den Termin so eintragen?" in frames[-1]["content"]


async def test_reminder_required_asks_again(call: RetellCall) -> None:
    await call.say("Einen Herrenhaarschnitt bitte")
    await call.send_required(30, "reminder_required")
    answer = await call.collect(30)
    assert answer.text.startswith("Sind Sie noch da?") and "An welchem Tag" in answer.text


async def test_a_request_for_a_person_carries_the_transfer_number(call: RetellCall) -> None:
    answer = await call.say("Ich möchte bitte mit einem Menschen sprechen")
    assert answer.transfer_number == "+493012345678" and not answer.end_call


async def test_a_reconnect_continues_the_same_dialog(server: str, call: RetellCall) -> None:
    await call.say("Mein Name ist Hans Schuster, einen Herrenhaarschnitt bitte")
    await call.socket.close()
    async with connect(f"{server.replace('http', 'ws')}/retell/llm/{call.call_id}") as socket:
        frames = [json.loads(await socket.recv()) for _ in range(2)]
        assert frames[1]["response_id"] == 0 and frames[1]["content"] == ""  # no second greeting
        resumed = RetellCall(socket, call.call_id, "", transcript=list(call.transcript), next_id=40)
        answer = await resumed.say("Mittwoch um 10")
    assert "auf den Namen Hans Schuster" in answer.text and "Herrenhaarschnitt" in answer.text


async def test_broken_frames_are_ignored(call: RetellCall) -> None:
    await call.socket.send("not json")
    await call.socket.send(json.dumps({"interaction_type": "response_required", "response_id": "7"}))
    await call.socket.send(json.dumps(["a", "list"]))
    answer = await call.say("Wann haben Sie geöffnet?")
    assert "Dienstag" in answer.text


async def test_a_superseded_turn_that_wrote_nothing_leaves_no_trace(
    app: FastAPI, call: RetellCall, database: Database
) -> None:
    """The caller says "Okay" to the holding line: the read-back the first request prepared was never
    heard, so "Okay" is no yes to it; the newer request answers both utterances with the read-back."""
    slow(app, "check_availability", 1.0)
    call.transcript.append({"role": "user", "content": "Herrenhaarschnitt am Mittwoch um 10, Hans Schuster"})
    await call.send_required(50)
    await asyncio.sleep(0.5)  # the holding line is out; the caller answers it
    call.transcript += [{"role": "agent", "content": HOLD}, {"role": "user", "content": "Okay"}]
    await call.send_required(51)
    answer = await call.collect(51)
    assert "Ich fasse zusammen: Herrenhaarschnitt am Mittwoch" in answer.text
    assert "Soll ich den Termin so eintragen?" in answer.text and "gebucht" not in answer.text
    assert await confirmed(database) == 0


async def test_a_reconnect_does_not_hear_answered_words_again(
    server: str, call: RetellCall, database: Database
) -> None:
    """The line drops after "Ja" was answered but before the answer was spoken: on the reconnect
    Retell asks again with the same words; they are not heard (or booked) twice, and the answer the
    caller missed is said again."""
    await call.say("Herrenhaarschnitt am Mittwoch um 10, Hans Schuster")
    await call.say("Ja")
    await call.socket.close()
    unheard = call.transcript[:-1]  # the booking's answer never reached the caller
    async with connect(f"{server.replace('http', 'ws')}/retell/llm/{call.call_id}") as socket:
        [json.loads(await socket.recv()) for _ in range(2)]
        resumed = RetellCall(socket, call.call_id, "", transcript=unheard, next_id=60)
        await resumed.send_required(60)
        again = await resumed.collect(60)
    assert "Ich habe Ihren Termin gebucht" in again.text
    assert not [t for t in again.tools if t.get("name") == "book_appointment"], "said again, not booked again"
    assert await confirmed(database) == 1


async def test_first_words_and_holding_lines_are_measured(
    app: FastAPI, server: str, call: RetellCall
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def scrape() -> dict[str, float]:
        import httpx

        text = httpx.get(f"{server}/metrics").text
        wanted = {"rezeption_dialog_first_words_seconds_count", "rezeption_dialog_holding_lines_total"}
        return {
            s.name: s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name in wanted
        }

    before = scrape()
    slow(app, "check_availability", 1.0)
    await call.say("Herrenhaarschnitt am Mittwoch um 10, Hans Schuster")  # a holding line first
    await call.say("Nein danke, tschüss")  # at once: nothing to look up
    after = scrape()
    assert (
        after["rezeption_dialog_first_words_seconds_count"]
        - before.get("rezeption_dialog_first_words_seconds_count", 0)
        == 2
    )
    assert (
        after["rezeption_dialog_holding_lines_total"] - before.get("rezeption_dialog_holding_lines_total", 0)
        == 1
    )


async def test_a_call_older_than_two_hours_is_refused(
    server: str, phone: RetellPhone, clock: FixedClock
) -> None:
    """Someone who learned an old call's id cannot speak in it: a call is live for two hours at most."""
    placed = await phone.call("call_socket_old", from_number=CALLER, to_number=SALON_NUMBER)
    await placed.socket.close()
    clock.advance(timedelta(hours=2, minutes=1))
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{server.replace('http', 'ws')}/retell/llm/call_socket_old"):
            pass
    assert refused.value.response.status_code == 403


async def traces_of(database: Database, call_id: str, function: str) -> list[Any]:
    for _ in range(60):  # traces are written in batches after the reply
        async with database.statement() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT flags, reply FROM function_call_traces"
                        " WHERE retell_call_id = :c AND function = :f"
                    ),
                    {"c": call_id, "f": function},
                )
            ).all()
        if rows:
            return [(_json(flags), _json(reply)) for flags, reply in rows]
        await asyncio.sleep(0.05)
    return []


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def test_with_the_dialog_engine_off_for_the_salon_the_call_is_put_through_to_it(
    app: FastAPI, server: str, phone: RetellPhone, database: Database, clock: FixedClock
) -> None:
    await set_rule(database, DIALOG_ENGINE, Rule(False), scope="friseur1", at=clock.now())
    app.state.services.flags.forget()  # as every process does within the cache's few seconds
    await phone.post(
        "/retell/inbound",
        {"event": "call_inbound",
         "call_inbound": {"call_id": "call_off", "from_number": CALLER, "to_number": SALON_NUMBER}},
    )  # fmt: skip
    await asyncio.sleep(0.3)
    async with connect(f"{server.replace('http', 'ws')}/retell/llm/call_off") as socket:
        await socket.recv()  # config
        greeting = json.loads(await socket.recv())
        words = [{"role": "user", "content": "Einen Termin bitte"}]
        await socket.send(
            json.dumps({"interaction_type": "response_required", "response_id": 1, "transcript": words})
        )
        again = json.loads(await socket.recv())
    assert (
        greeting["transfer_number"] == "+493012345678" and "verbinde Sie mit dem Salon" in greeting["content"]
    )
    assert again["response_id"] == 1 and again["transfer_number"] == "+493012345678"
    ((flags, reply),) = await traces_of(database, "call_off", "llm_connect")
    assert flags["dialog_engine"] == {"on": False, "why": "salon"} and reply["ok"] is False
    assert flags["interim_lines"] == {"on": True, "why": "default"} and "caller_id" in flags


async def test_with_interim_lines_off_a_slow_calendar_is_waited_for_in_silence(
    app: FastAPI, phone: RetellPhone, database: Database, clock: FixedClock
) -> None:
    await set_rule(database, INTERIM_LINES, Rule(True, percent=0), at=clock.now())
    app.state.services.flags.forget()
    placed = await phone.call("call_quiet", from_number=CALLER, to_number=SALON_NUMBER)
    try:
        slow(app, "check_availability", 1.0)
        answer = await placed.say("Herrenhaarschnitt am Mittwoch um 10, Hans Schuster")
    finally:
        await placed.socket.close()
    assert all(HOLD not in chunk for _, chunk in answer.chunks)
    assert "Soll ich den Termin so eintragen?" in answer.text
    ((flags, _),) = await traces_of(database, "call_quiet", "llm_connect")
    assert flags["interim_lines"] == {"on": False, "why": "global 0 %"}
