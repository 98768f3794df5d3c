"""HTTP routes for Retell: functions, call_inbound and call-event webhooks.

Every request is verified on its raw bytes before anything is parsed or stored: unsigned, malformed,
stale or forged -> 401. Bodies over 2 MB -> 413. Routes are thin: verify, parse, run, reply.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from fastapi import APIRouter, BackgroundTasks, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from rezeption.booking.ports import ERASED, Trace
from rezeption.booking.prefetch import prefetch
from rezeption.bootstrap import Services
from rezeption.budget import within
from rezeption.domain.flags import as_trace, recording
from rezeption.http_body import BodyTooLarge, BodyTooSlow, read_bounded
from rezeption.language import mask_phone, normalize_phone
from rezeption.language.text import strip_controls
from rezeption.ops.logging import bind_request
from rezeption.retell.functions import CallRef, FunctionRunner, writes
from rezeption.retell.inbound import inbound_response
from rezeption.retell.signature import verify
from rezeption.retell.tools import TOOLS
from rezeption.retell.traces import TraceWriter, trace_function
from rezeption.retell.wire import FunctionEnvelope, InboundCall, InboundEnvelope, WebhookEnvelope

MAX_BODY = 2 * 1024 * 1024
INBOUND_BUDGET = 2.0  # seconds; Retell waits for call_inbound before it connects the caller
WEBHOOK_BUDGET = 5.0
MAX_DEPTH = 32  # Retell's call object nests about 6 levels deep (transcript_object -> words)
Envelope = TypeVar("Envelope", bound=BaseModel)
log = structlog.get_logger("rezeption.retell")


class Refused(Exception):
    """A request refused before it reached the domain (status + operator-facing detail)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


async def read_body(request: Request) -> bytes:
    """The raw body, refusing more than MAX_BODY bytes without reading them all."""
    try:
        return await read_bounded(request, MAX_BODY)
    except BodyTooLarge as error:
        raise Refused(413, "request body larger than 2 MB") from error
    except BodyTooSlow as error:
        raise Refused(408, "the request body came too slowly") from error


async def verified_json(request: Request, services: Services) -> dict[str, Any]:
    """Read, verify and parse the body; Refused on any problem. Replays are told apart by the
    route: a write by its idempotency key, a read and call_inbound by their signature's first
    sight, recorded with their own first statement; a call event is applied once however often."""
    raw = await read_body(request)
    now_ms = int(services.clock.now().timestamp() * 1000)
    key = services.settings.retell_api_key.get_secret_value()
    signature = request.headers.get("x-retell-signature")
    if not verify(raw, key, signature, now_ms):
        raise Refused(401, "missing, malformed, stale or forged X-Retell-Signature")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise Refused(400, f"body is not JSON: {error}") from error
    except RecursionError as error:
        raise Refused(400, f"body nests deeper than {MAX_DEPTH} levels") from error
    if not isinstance(body, dict):
        raise Refused(400, "body must be a JSON object")
    return cleaned(body)


def signature_digest(signature: str) -> str:
    """What the record of signed requests seen keeps of a signature (never the signature itself)."""
    return hashlib.sha256(signature.encode()).hexdigest()


def cleaned(body: dict[str, Any]) -> dict[str, Any]:
    """The body with control characters (NUL and the like; not tab or newline) removed from every key
    and string, so none reaches a database; Refused when it nests deeper than MAX_DEPTH."""
    result: dict[str, Any] = _clean(body, 0)
    return result


def _clean(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise Refused(400, f"body nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        return strip_controls(value)
    if isinstance(value, dict):
        return {strip_controls(k): _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v, depth + 1) for v in value]
    return value


async def verified_envelope(
    request: Request, services: Services, model: type[Envelope], what: str
) -> Envelope:
    """The verified body validated as `model`; Refused (400) when it does not fit."""
    body = await verified_json(request, services)
    try:
        return model.model_validate(body)
    except ValidationError as error:
        raise Refused(400, f"not a {what} envelope: {error.error_count()} problems") from error


def _refusal(error: Refused) -> JSONResponse:
    return JSONResponse({"ok": False, "reason": "refused", "detail": error.detail}, status_code=error.status)


def _ms(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value / 1000, UTC) if value else None


def build_router() -> APIRouter:
    """The /retell routes; they find the wired services on `request.app.state.services`."""
    router = APIRouter(prefix="/retell", tags=["retell"])

    for tool, model in TOOLS.items():
        router.add_api_route(
            f"/functions/{tool}",
            _named_function(tool),
            methods=["POST"],
            summary=(model.__doc__ or tool).strip(),
            openapi_extra={"requestBody": _request_body(model)},
            response_model=None,
        )

    @router.post("/functions/{name}", include_in_schema=False)
    async def function(name: str, request: Request) -> JSONResponse:
        """A custom function: `{name, call, args}`, or the bare args with an `X-Call-Id` header."""
        return await _run_function(name, request)

    @router.post("/inbound")
    async def inbound(request: Request, background: BackgroundTasks) -> JSONResponse:
        """call_inbound: the salon's context for the agent, within milliseconds; from memory when
        the database is away (the call must still connect)."""
        services: Services = request.app.state.services
        try:
            # the signature's first sight is recorded with the call's opening (`_inbound`)
            envelope = await verified_envelope(request, services, InboundEnvelope, "call_inbound")
        except Refused as error:
            return _refusal(error)
        bind_request(call_id=envelope.call_inbound.call_id)
        digest = signature_digest(request.headers.get("x-retell-signature") or "")
        traces = request.app.state.retell_traces
        try:
            return await within(
                INBOUND_BUDGET, _inbound(services, envelope.call_inbound, background, traces, digest)
            )
        except Exception as error:
            log.warning("retell.inbound_from_memory", error=type(error).__name__)
            return JSONResponse(await _inbound_from_memory(services, envelope.call_inbound, background))

    @router.post("/webhook")
    async def webhook(request: Request) -> Response:
        """call_started / call_ended / call_analyzed (others tolerated); duplicates applied once."""
        services: Services = request.app.state.services
        try:
            # No record of signatures seen: a call event is applied once however often it comes
            # (`calls.record_event` keeps the events applied), so a replay changes nothing, and
            # the record cost each of a call's three webhooks a committed write.
            envelope = await verified_envelope(request, services, WebhookEnvelope, "call-event")
        except Refused as error:
            return _refusal(error)
        bind_request(call_id=envelope.the_call.call_id if envelope.the_call is not None else None)
        try:
            return await within(WEBHOOK_BUDGET, _call_event(services, envelope))
        except Refused as error:
            return _refusal(error)
        except Exception as error:  # the database away or slow: 503, Retell delivers it again
            log.warning(
                "retell.webhook_unavailable", webhook_event=envelope.event, error=type(error).__name__
            )
            return JSONResponse({"ok": False, "reason": "unavailable"}, status_code=503)

    return router


async def _inbound(
    services: Services,
    inbound_call: InboundCall,
    background: BackgroundTasks,
    traces: TraceWriter,
    digest: str,
) -> JSONResponse:
    """The salon's variables and the caller's recognition. One statement (`Calls.ring_in`) records
    the signature's first sight, opens the call and reads the customers at the caller's number.

    The same signed bytes again (a replay: Retell delivering what got no answer, our process
    killed, say, or someone replaying it) connect with the salon's variables only: a replay never
    learns who calls or what they booked. The call is opened either way (an upsert that fills only
    what is missing): the first delivery may have been cut off before it was, and the custom-LLM
    socket serves only a call it knows."""
    started = time.perf_counter()
    to_number = normalize_phone(inbound_call.to_number)
    tenant_id = await services.calls.tenant_for(agent_id=inbound_call.agent_id, to_number=to_number)
    if tenant_id is None:
        log.warning("retell.inbound_unknown_salon", to=mask_phone(to_number))
        return JSONResponse({"call_inbound": {}})
    now = services.clock.now()
    catalog = await services.bookings.current_catalog(tenant_id, now)
    bind_request(salon=catalog.tenant.slug)
    with recording(inbound_call.call_id) as decisions:
        question = await services.callers.question(tenant_id, inbound_call.from_number)
        ring = await services.calls.ring_in(
            inbound_call.call_id or None,
            digest=digest,
            now=now,
            tenant_id=tenant_id,
            agent_id=inbound_call.agent_id,
            from_number=normalize_phone(inbound_call.from_number),
            to_number=to_number,
            phone=question.phone,
        )
        if not ring.first:
            log.info("retell.inbound_replayed")
            return JSONResponse(inbound_response(catalog, now))
        caller = await services.callers.recognize(tenant_id, question, ring.customers)
    if catalog.tenant.calendar_provider != "local":  # an external calendar's slots, warmed
        background.add_task(
            _quietly,
            prefetch,
            uow=services.uow,
            calendars=services.calendars,
            clock=services.clock,
            tenant_id=tenant_id,
            catalogs=services.bookings.catalogs,
        )
    if inbound_call.call_id and decisions:  # the caller-ID flag's answer, in the call's traces
        traces.add(
            Trace(
                tenant_id=tenant_id,
                retell_call_id=inbound_call.call_id,
                function="call_inbound",
                args={},
                reply={"ok": True, "caller": caller.status},
                latency_ms=int((time.perf_counter() - started) * 1000),
                at=now,
                flags=as_trace(decisions),
            )
        )
    return JSONResponse(inbound_response(catalog, now, caller))


async def _inbound_from_memory(
    services: Services, inbound_call: InboundCall, background: BackgroundTasks
) -> dict[str, Any]:
    """The salon's static variables from what this process remembers (no caller recognition).
    The call is still opened after the answer, when the database takes it by then: the custom-LLM
    socket serves only a call it knows."""
    try:
        tenant_id = await within(
            0.2,
            services.calls.tenant_for(
                agent_id=inbound_call.agent_id, to_number=normalize_phone(inbound_call.to_number)
            ),
        )
    except Exception:
        return {"call_inbound": {}}
    if tenant_id is not None and inbound_call.call_id:
        background.add_task(
            _quietly,
            services.calls.open,
            inbound_call.call_id,
            tenant_id=tenant_id,
            at=services.clock.now(),
            agent_id=inbound_call.agent_id,
            from_number=normalize_phone(inbound_call.from_number),
            to_number=normalize_phone(inbound_call.to_number),
        )
    catalog = services.bookings.catalogs.last_known(tenant_id) if tenant_id is not None else None
    if catalog is None:
        return {"call_inbound": {}}
    return inbound_response(catalog, services.clock.now())


async def _quietly(work: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> None:
    """Run background work after a reply; its failure is logged (by type only), never raised."""
    try:
        await work(*args, **kwargs)
    except Exception as error:
        log.warning(
            "retell.background_failed", work=getattr(work, "__name__", "?"), error=type(error).__name__
        )


async def _call_event(services: Services, envelope: WebhookEnvelope) -> Response:
    call = envelope.the_call
    if call is None:
        raise Refused(400, "call-event envelope without a call")
    if envelope.event not in {"call_started", "call_ended", "call_analyzed"}:
        return Response(status_code=204)
    tenant_id = await services.calls.tenant_for(
        agent_id=call.agent_id, to_number=normalize_phone(call.to_number)
    )
    if tenant_id is None:
        log.warning("retell.webhook_unknown_salon", webhook_event=envelope.event, call_id=call.call_id)
        return Response(status_code=204)
    await services.flags.fresh()
    bind_request(salon=services.flags.slug(tenant_id))
    numbers: dict[str, Any] = {
        "agent_id": call.agent_id or None,  # "" names no agent, on either path
        "to_number": normalize_phone(call.to_number),
        "from_number": normalize_phone(call.from_number),
    }
    event: dict[str, Any] = {
        "event": envelope.event,
        "at": services.clock.now(),
        "started_at": _ms(call.start_timestamp) if envelope.event == "call_started" else None,
        "ended_at": _ms(call.end_timestamp) if envelope.event == "call_ended" else None,
        "transcript": call.transcript if envelope.event == "call_ended" else None,
        "analysis": call.call_analysis if envelope.event == "call_analyzed" else None,
    }
    # The usual case in one statement: a new call, or the one stored agreeing with the envelope.
    # Anything else (a duplicate, an erased call, one that does not agree) is read and decided.
    if await services.calls.record_if_agrees(call.call_id, tenant_id=tenant_id, **numbers, **event):
        return Response(status_code=204)
    known = await services.calls.get(call.call_id)
    if known is not None and ERASED in known.memory:
        # someone was erased from this call (store.gdpr): a late event brings nothing back, quietly
        # (its number is gone, so it would not agree, and Retell would deliver it three times more);
        # call_ended still ends it, from the call's own salon, lest it stay "ongoing" for ever
        if envelope.event == "call_ended" and await services.calls.agrees(
            known,
            agent_id=call.agent_id,
            to_number=normalize_phone(call.to_number),
            from_number=None,
            check_caller=False,
        ):
            ended_at = _ms(call.end_timestamp) or services.clock.now()
            await services.calls.end_erased(call.call_id, ended_at=ended_at)
        return Response(status_code=204)
    if (
        known is not None
        and known.tenant_id is not None
        and not await services.calls.agrees(known, **numbers)
    ):
        log.warning("retell.webhook_refused", webhook_event=envelope.event, call_id=call.call_id)
        raise Refused(403, "the envelope names another call than the one recorded under this id")
    await services.calls.record_event(call.call_id, tenant_id=tenant_id, **numbers, **event)
    return Response(status_code=204)


async def _run_function(name: str, request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    runner: FunctionRunner = request.app.state.retell_runner
    started = time.perf_counter()
    try:
        # a write's replay gets the reply stored under its idempotency key; a read's signature is
        # recorded with its call's read (`FunctionRunner.run`): no replay record here
        body = await verified_json(request, services)
        if name not in TOOLS:
            raise Refused(404, f"no function {name!r}")
        ref, args = _envelope(name, body, request.headers, bare_allowed=request.app.state.bare_args)
    except Refused as error:
        return _refusal(error)
    bind_request(call_id=ref.call_id)
    signature = None if writes(name) else signature_digest(request.headers.get("x-retell-signature") or "")
    outcome = await runner.run(name, ref, args, signature=signature)
    if outcome.status == 409:  # this signed request came before: refused, not run, not traced
        return JSONResponse(outcome.reply, status_code=409)
    bind_request(salon=services.flags.slug(outcome.tenant_id))
    latency = int((time.perf_counter() - started) * 1000)
    trace_function(request.app.state.retell_traces, services.clock, name, ref.call_id, outcome, latency)
    return JSONResponse(outcome.reply, status_code=outcome.status)


def _named_function(name: str) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def endpoint(request: Request) -> JSONResponse:
        return await _run_function(name, request)

    endpoint.__name__ = f"retell_{name}"
    return endpoint


def _request_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of a function: Retell's envelope with this function's arguments."""
    envelope = {
        "type": "object",
        "required": ["call", "args"],
        "properties": {
            "name": {"type": "string"},
            "call": {
                "type": "object",
                "description": "Retell's call object (call_id, agent_id, numbers, ...)",
            },
            "args": model.model_json_schema(),
        },
    }
    return {"required": True, "content": {"application/json": {"schema": envelope}}}


def _envelope(
    name: str, body: dict[str, Any], headers: Mapping[str, str], *, bare_allowed: bool
) -> tuple[CallRef, dict[str, Any]]:
    """The call and the arguments of a function request; Refused unless the body is a function call
    for this very route (Retell signs only body and time, so a body must prove where it belongs).

    The bare-arguments form (Retell's "payload: args only", the call named by an unsigned
    `X-Call-Id` header) is off unless REZEPTION_RETELL_BARE_ARGS=true, and even then only reads:
    its call id is not signed, so it never decides what a write touches."""
    if "event" in body:
        raise Refused(400, "a call-event body is not a function call")
    if "call" in body or "args" in body:
        if body.get("name") != name or "call" not in body or "args" not in body:
            raise Refused(400, f"a function call for /functions/{name} names it and has call and args")
        try:
            envelope = FunctionEnvelope.model_validate({"name": name, **body})
        except ValidationError as error:
            raise Refused(400, f"malformed function envelope: {error.error_count()} problems") from error
        if envelope.name != name:
            raise Refused(400, f"function {envelope.name!r} posted to /functions/{name}")
        call = envelope.call
        ref = CallRef(call.call_id, call.agent_id, call.from_number, normalize_phone(call.to_number))
        return ref, envelope.args
    if not bare_allowed:
        raise Refused(
            400, "bare arguments are off (REZEPTION_RETELL_BARE_ARGS): send Retell's {name, call, args}"
        )
    if writes(name):
        raise Refused(400, f"{name} changes appointments: it needs Retell's full {{name, call, args}}")
    call_id, agent_id, agent_number = (headers.get(h) for h in ("x-call-id", "x-agent-id", "x-agent-number"))
    if not call_id or len(call_id) > 128:
        raise Refused(400, "bare arguments need an X-Call-Id header")
    if not agent_id and not agent_number:
        raise Refused(
            400, "bare arguments need an X-Agent-Id or X-Agent-Number header naming the salon's agent"
        )
    return CallRef(call_id, agent_id, None, normalize_phone(agent_number), full=False), body
