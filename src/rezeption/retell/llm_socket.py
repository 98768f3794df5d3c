"""Retell's custom-LLM WebSocket at /retell/llm/{call_id}: our dialog engine speaks for the agent.

Protocol (shared/reference/retell.md section 5): we send `config` first, then the greeting as
response 0; `ping_pong` is echoed; `call_details` and `update_only` are noted, not answered;
`response_required` and `reminder_required` get one answer each under their `response_id`, streamed
(`dialog.voice`: holding lines while the calendar is slow) and closed with `content_complete`. A
newer response_required supersedes an older one: the older stops speaking, but a write it started
finishes, and what it would have said about that write is said at the start of the next answer.
Function calls show in the transcript as tool_call_invocation / tool_call_result.

Who may connect: Retell does not sign this socket, so the call id is the credential: it must name a
call we recorded from Retell's signed call_inbound (or a signed webhook or function call), of a
salon we serve, created within `LIVE_FOR` and not ended. Anything else is refused before the
socket is accepted (HTTP 403). A reconnect of the same call continues the same dialog.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from rezeption.booking.ports import CallRecord, Trace
from rezeption.bootstrap import Services
from rezeption.dialog.manager import ANYTHING_ELSE, Caller, Dialog, Reply, Say
from rezeption.dialog.voice import Voice
from rezeption.domain.flags import DIALOG_ENGINE, INTERIM_LINES, as_trace, recording
from rezeption.domain.model import Catalog
from rezeption.language.text import strip_controls
from rezeption.ops.logging import bind_request
from rezeption.retell.functions import CallRef, FunctionRunner, writes
from rezeption.retell.traces import trace_function

log = structlog.get_logger("rezeption.retell.llm")
LIVE_FOR = timedelta(hours=2)  # a call older than this is over, whatever the webhooks said
MAX_MESSAGE = 512 * 1024  # characters of one frame; Retell's transcripts are far smaller
MAX_UTTERANCE = 2000
RECORD_WAITS = 10  # x 0.1 s for a call_inbound's record to land
KEPT_DIALOGS = 2_000  # dialogs remembered for reconnects, oldest dropped first
SORRY = "Entschuldigung, da ist etwas schiefgegangen. Können Sie das bitte wiederholen?"


class SocketFunctions:
    """The dialog's `Functions` port over the Retell adapter's runner: same validation, idempotency
    (call id + arguments), traces and log lines as the HTTP functions; each call in the transcript."""

    def __init__(self, session: LlmSession, runner: FunctionRunner, ref: CallRef, services: Services) -> None:
        self.session = session
        self.runner = runner
        self.ref = ref
        self.services = services
        self.count = 0

    async def __call__(self, name: str, args: dict[str, Any]) -> Reply:
        self.count += 1
        tool_call_id = f"{self.session.turn_id}-{self.count}"
        await self.session.send(
            {
                "response_type": "tool_call_invocation",
                "tool_call_id": tool_call_id,
                "name": name,
                "arguments": json.dumps(args, ensure_ascii=False),
            }
        )
        started = time.perf_counter()
        outcome = await self.runner.run(name, self.ref, args)
        latency = int((time.perf_counter() - started) * 1000)
        trace_function(
            self.session.traces, self.services.clock, name, self.ref.call_id, outcome, latency, channel="llm"
        )
        if writes(name) and name != "record_consent":
            self.session.call.wrote = True
        await self.session.send(
            {
                "response_type": "tool_call_result",
                "tool_call_id": tool_call_id,
                "content": json.dumps(outcome.reply, ensure_ascii=False),
                "successful": bool(outcome.reply.get("ok")),
            }
        )
        return outcome.reply


@dataclass
class LiveCall:
    """What a call keeps across its sockets (Retell reconnects): the dialog, the caller's words
    already answered (by transcript index), and the lock that runs its turns one at a time."""

    dialog: Dialog
    consumed: dict[int, str] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    started: bool = False
    wrote: bool = False  # the running turn booked, cancelled or moved something
    last_answer: str = ""
    interim_lines: bool = True  # the interim_lines flag's answer for this call
    declined: Say | None = None  # the dialog_engine flag is off for this call: this is all it hears


class LlmSession:
    """One connected socket of one call."""

    def __init__(self, websocket: WebSocket, call: LiveCall, traces: Any) -> None:
        self.websocket = websocket
        self.call = call
        self.dialog = call.dialog
        self.traces = traces
        self.latest = -1
        self.turn_id = 0
        self.closed = False
        self._send_lock = asyncio.Lock()
        self.functions: SocketFunctions | None = None

    async def send(self, payload: dict[str, Any]) -> None:
        """Send one frame; a closed socket only stops the sending (the work goes on)."""
        if self.closed:
            return
        async with self._send_lock:
            try:
                await self.websocket.send_text(json.dumps(payload, ensure_ascii=False))
            except Exception:  # closed under us: the caller hung up or Retell reconnects
                self.closed = True

    async def run(self, *, resumed: bool) -> None:
        """Serve the socket until it closes; then let running turns finish (bounded by their budget)."""
        await self.send(
            {
                "response_type": "config",
                "config": {"auto_reconnect": True, "call_details": True, "transcript_with_tool_calls": False},
            }
        )
        if self.call.declined is not None:
            greeting = self.call.declined
        else:
            greeting = Say("") if resumed else await self.dialog.begin()
        await self.send(_response(0, greeting))
        turns: set[asyncio.Task[None]] = set()
        while True:
            try:
                raw = await self.websocket.receive_text()
            except (WebSocketDisconnect, RuntimeError):
                break
            message = _parse(raw)
            if message is None:
                continue
            kind = message.get("interaction_type")
            if kind == "ping_pong":
                await self.send({"response_type": "ping_pong", "timestamp": message.get("timestamp")})
            elif kind in {"response_required", "reminder_required"}:
                response_id = message.get("response_id")
                if (
                    not isinstance(response_id, int)
                    or isinstance(response_id, bool)
                    or response_id <= self.latest
                ):
                    continue
                self.latest = response_id
                transcript = message.get("transcript")
                turn = asyncio.create_task(
                    self.answer(response_id, transcript if isinstance(transcript, list) else [], kind)
                )
                turns.add(turn)
                turn.add_done_callback(turns.discard)
            elif kind == "call_details":
                log.info("retell.llm_call_details", call_id=self.dialog.call_id)
        self.closed = True
        if turns:
            await asyncio.wait(turns, timeout=15)

    async def answer(self, response_id: int, transcript: list[Any], kind: str) -> None:
        """Work out and stream the answer to one response_required / reminder_required."""

        async def send_part(text: str) -> None:
            await self.send(
                {
                    "response_type": "response",
                    "response_id": response_id,
                    "content": text,
                    "content_complete": False,
                }
            )

        if self.call.declined is not None:
            await self.send(_response(response_id, self.call.declined))
            return
        voice = Voice(
            send_part,
            alive=lambda: self.latest == response_id and not self.closed,
            hold=self.call.interim_lines,
        )
        try:
            say = await voice.during(self._turn(response_id, transcript, kind, voice))
        except Exception:
            log.exception("retell.llm_turn_failed", call_id=self.dialog.call_id)
            say = Say(SORRY)
        if say is None or not voice.alive():
            return
        voice.answered()
        await self.send(_response(response_id, say))

    async def _turn(self, response_id: int, transcript: list[Any], kind: str, voice: Voice) -> Say | None:
        async with self.call.lock:  # one turn at a time per call, across a reconnect's sessions too
            if response_id != self.latest or self.closed:
                return None  # a newer request holds the same words and more: it answers them
            self.turn_id = response_id
            self.dialog.speak = voice.say
            self.call.wrote = False
            if self.functions is not None:
                self.functions.count = 0
            before = copy.deepcopy(self.dialog.state), dict(self.call.consumed)
            words = self._new_words(transcript)
            if words:
                say = await self.dialog.respond(words)
            elif kind == "reminder_required":
                say = await self.dialog.reminder()
            elif self.call.last_answer and self.call.last_answer not in _agent_said(transcript):
                say = Say(self.call.last_answer)  # the answer got lost on the way (a reconnect): again
            else:
                say = Say(self.dialog.state.question)
            if self.dialog.unsaid:
                say = Say(f"{self.dialog.unsaid} {say.text}", say.end_call, say.transfer_number)
                self.dialog.unsaid = ""
            if response_id != self.latest or self.closed:  # superseded (or hung up) while working
                if self.call.wrote:  # what was booked or changed must still be said
                    self.dialog.unsaid = say.text.removesuffix(ANYTHING_ELSE).strip()
                else:  # nothing happened that the caller did not hear: the newer turn hears it all
                    self.dialog.state, self.call.consumed = before
                return None
            self.call.last_answer = say.text
            return say

    def _new_words(self, transcript: list[Any]) -> str:
        """The caller's words no turn has answered yet: what grew or came since, and what a turn
        that was superseded without effect had taken (given back). Before the agent last spoke,
        an answered utterance is never heard twice; on a call's first turn here, nothing before."""
        consumed = self.call.consumed
        last_agent = max(
            (i for i, u in enumerate(transcript) if isinstance(u, dict) and u.get("role") == "agent"),
            default=-1,
        )
        parts = []
        for index, utterance in enumerate(transcript):
            if not isinstance(utterance, dict) or utterance.get("role") != "user":
                continue
            content = strip_controls(str(utterance.get("content") or ""))[:MAX_UTTERANCE].strip()
            seen = consumed.get(index)
            if seen is None and index < last_agent and not self.call.started:
                seen = content  # a call new to this process (a reconnect elsewhere): not the past
            if seen is None:
                fresh = content
            elif index < last_agent:
                continue
            else:
                fresh = content[len(seen) :] if content.startswith(seen) else content
            consumed[index] = content
            if fresh.strip(" ,.!?"):
                parts.append(fresh.strip(" ,"))
        self.call.started = True
        return " ".join(parts)


def _agent_said(transcript: list[Any]) -> list[str]:
    return [
        str(u.get("content") or "") for u in transcript if isinstance(u, dict) and u.get("role") == "agent"
    ]


def _declined(salon: Catalog) -> Say:
    """What a call hears when the dialog engine is switched off for it: put through to the salon,
    or (no number to put through to) a polite goodbye."""
    hello = f"Guten Tag, hier ist {salon.tenant.name}."
    if salon.tenant.transfer_number:
        return Say(
            f"{hello} Einen Moment bitte, ich verbinde Sie mit dem Salon.",
            transfer_number=salon.tenant.transfer_number,
        )
    return Say(
        f"{hello} Leider kann ich Ihren Anruf gerade nicht annehmen. "
        "Bitte rufen Sie später noch einmal an. Auf Wiederhören!",
        end_call=True,
    )


def _response(response_id: int, say: Say) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "response_type": "response",
        "response_id": response_id,
        "content": say.text,
        "content_complete": True,
    }
    if say.end_call:
        payload["end_call"] = True
    if say.transfer_number:
        payload["transfer_number"] = say.transfer_number
    return payload


def _parse(raw: str) -> dict[str, Any] | None:
    if len(raw) > MAX_MESSAGE:
        log.warning("retell.llm_frame_too_large", size=len(raw))
        return None
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError):
        log.warning("retell.llm_frame_not_json")
        return None
    return message if isinstance(message, dict) else None


class Dialogs:
    """The dialogs of this process's live calls, so a reconnect of a call continues it."""

    def __init__(self, limit: int = KEPT_DIALOGS) -> None:
        self.limit = limit
        self._dialogs: OrderedDict[str, LiveCall] = OrderedDict()
        self._sockets: dict[str, WebSocket] = {}

    def get(self, call_id: str) -> LiveCall | None:
        """The call's dialog if this process holds it."""
        return self._dialogs.get(call_id)

    def keep(self, call: LiveCall) -> None:
        """Remember a call's dialog (dropping the oldest beyond the limit)."""
        self._dialogs[call.dialog.call_id] = call
        self._dialogs.move_to_end(call.dialog.call_id)
        while len(self._dialogs) > self.limit:
            self._dialogs.popitem(last=False)

    def forget(self, call_id: str) -> None:
        """Drop a finished call's dialog."""
        self._dialogs.pop(call_id, None)

    async def take_over(self, call_id: str, websocket: WebSocket) -> None:
        """Make `websocket` the call's only socket (an older one of a reconnect is closed)."""
        older = self._sockets.get(call_id)
        self._sockets[call_id] = websocket
        if older is not None and older.client_state is WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await older.close(code=1000)

    def release(self, call_id: str, websocket: WebSocket) -> None:
        """The socket closed."""
        if self._sockets.get(call_id) is websocket:
            del self._sockets[call_id]


async def _live_call(services: Services, call_id: str) -> CallRecord | None:
    """The call if it may be spoken for; Retell connects right after call_inbound, whose record is
    written just after its answer: a call not (yet) known is looked for a little longer."""
    if not call_id or len(call_id) > 128:
        return None
    record = await services.calls.get(call_id)
    for _ in range(RECORD_WAITS):
        if record is not None:
            break
        await asyncio.sleep(0.1)
        record = await services.calls.get(call_id)
    if record is None or record.tenant_id is None or record.ended_at is not None:
        return None
    if record.created_at is not None and services.clock.now() - record.created_at > LIVE_FOR:
        return None
    return record


def build_llm_router() -> APIRouter:
    """The custom-LLM socket route."""
    router = APIRouter(prefix="/retell", tags=["retell"])

    @router.websocket("/llm/{call_id}")
    async def llm_socket(websocket: WebSocket, call_id: str) -> None:
        services: Services = websocket.app.state.services
        runner: FunctionRunner = websocket.app.state.retell_runner
        dialogs: Dialogs = websocket.app.state.llm_dialogs
        record = await _live_call(services, call_id)
        if record is None:
            log.warning("retell.llm_refused", call_id=call_id[:128], reason="unknown_or_ended_call")
            await websocket.close(code=1008)  # before accept: the handshake is refused (HTTP 403)
            return
        assert record.tenant_id is not None
        tenant_id = record.tenant_id
        await services.flags.fresh()
        bind_request(call_id=call_id, salon=services.flags.slug(tenant_id))
        await websocket.accept()
        await dialogs.take_over(call_id, websocket)
        live = dialogs.get(call_id)
        resumed = live is not None
        session_ref = CallRef(call_id, record.agent_id, record.from_number, record.to_number)

        async def catalog() -> Catalog:
            return await services.bookings.current_catalog(tenant_id, services.clock.now())

        if live is None:
            salon = await catalog()
            started = time.perf_counter()
            with recording(call_id) as decisions:
                await services.flags.fresh()
                engine = services.flags.on(DIALOG_ENGINE, tenant_id=tenant_id)
                interim = services.flags.on(INTERIM_LINES, tenant_id=tenant_id)
                match = await services.callers.find_caller(tenant_id, record.from_number)
            websocket.app.state.retell_traces.add(
                Trace(
                    tenant_id=tenant_id,
                    retell_call_id=call_id,
                    function="llm_connect",
                    args={},
                    reply={"ok": engine, "caller": match.status},
                    latency_ms=int((time.perf_counter() - started) * 1000),
                    at=services.clock.now(),
                    flags=as_trace(decisions),
                )
            )
            live = LiveCall(
                Dialog(
                    call_id=call_id,
                    catalog=catalog,
                    functions=_unbound,
                    clock=services.clock,
                    caller=Caller(match.name if match.status == "known" else None),
                    transfer_number=salon.tenant.transfer_number,
                ),
                interim_lines=interim,
                declined=None if engine else _declined(salon),
            )
            dialogs.keep(live)
        dialog = live.dialog
        session = LlmSession(websocket, live, websocket.app.state.retell_traces)
        session.functions = SocketFunctions(session, runner, session_ref, services)
        dialog.functions = session.functions
        log.info("retell.llm_connected", call_id=call_id, resumed=resumed)
        try:
            await session.run(resumed=resumed)
        finally:
            dialogs.release(call_id, websocket)
            if dialog.state.ended:
                dialogs.forget(call_id)
            log.info("retell.llm_closed", call_id=call_id, ended=dialog.state.ended)

    return router


async def _unbound(name: str, args: dict[str, Any]) -> Reply:
    raise RuntimeError("the dialog's functions are bound when its socket connects")
