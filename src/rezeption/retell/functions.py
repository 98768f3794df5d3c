"""Running one function call: validate, find the salon and the call, resolve, reply — idempotently.

Write functions (book, cancel, reschedule) run at most once per key = call id + function +
canonical arguments: a retry or a concurrent duplicate waits for the first and gets its reply.
Every domain outcome is an HTTP 200 reply the agent can speak; only an unknown function is a 404.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import ValidationError

from rezeption.booking.bookings import Bookings
from rezeption.booking.caller_id import CallerId
from rezeption.booking.calls import Calls
from rezeption.booking.lookup import AppointmentFinder
from rezeption.booking.ports import CallRecord
from rezeption.budget import BudgetSpent, within
from rezeption.domain.clock import Clock
from rezeption.domain.errors import BookingError
from rezeption.domain.flags import FlagBook, as_trace, recording
from rezeption.language import normalize_phone
from rezeption.ops.logging import bind_request
from rezeption.ops.metrics import outcome_label
from rezeption.ops.tracing import call_span
from rezeption.retell.appointment_functions import (
    cancel_appointment,
    find_appointments,
    record_consent,
    reschedule_appointment,
)
from rezeption.retell.availability_functions import book_appointment, check_availability
from rezeption.retell.context import CallContext
from rezeption.retell.failures import LIFTED_IN_THE_CALL, TRANSIENT, classify, over_budget
from rezeption.retell.replies import Reply, refusal, reply
from rezeption.retell.request_keys import (
    CHANGES,
    base_key,
    changed_something,
    counted,
    generation,
    in_generation,
)
from rezeption.retell.salon_functions import get_opening_hours, list_services
from rezeption.retell.tools import TOOLS, Arguments
from rezeption.retell.understanding import Clarify

log = structlog.get_logger("rezeption.retell")

Handler = Callable[[CallContext, Any], Awaitable[Reply]]
HANDLERS: dict[str, tuple[Handler, bool]] = {
    "list_services": (list_services, False),
    "get_opening_hours": (get_opening_hours, False),
    "check_availability": (check_availability, False),
    "book_appointment": (book_appointment, True),
    "find_appointments": (find_appointments, False),
    "cancel_appointment": (cancel_appointment, True),
    "reschedule_appointment": (reschedule_appointment, True),
    "record_consent": (record_consent, True),
}
STORED_AT_ONCE = frozenset({"cancel_appointment", "reschedule_appointment"})
"""Changes whose reply and count are stored before the reply is sent (`FunctionRunner._store_change`)."""
BUDGET_SECONDS = 6.5
"""A function call's time budget: below the 8 s tool timeout the agent definition gives Retell, with
room for the network. Database, lock, idempotency and calendar waits all live inside it."""
WORK_RESERVE = 2.0  # of the budget, kept for the work after waiting for another request's key
RELEASE_PATIENCE = 0.5
STORE_PATIENCE = 0.5  # seconds a cancel's or move's reply may take to store before the batch takes it
REPLAY_CHECK = 0.5  # seconds a read waits for its signature's record before it goes on without


def writes(name: str) -> bool:
    """Whether the function changes something (and so runs at most once per idempotency key)."""
    return HANDLERS[name][1]


class SeenBefore(Exception):
    """This exact signed request came before (a replay): a read is not run again."""


SEEN_BEFORE: Reply = {"ok": False, "reason": "refused", "detail": "this signed request was already answered"}


class EnvelopeMixesSalons(Exception):
    """A new call's agent and called number lead to two different salons: it is opened for neither."""


@dataclass(frozen=True)
class CallRef:
    """Who is calling whom, as the envelope (or the X-Call-Id / X-Agent-* headers) says."""

    call_id: str
    agent_id: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    full: bool = True  # False for args_at_root bodies: call id and agent from headers, no caller


MISMATCH = "Entschuldigung, diesen Anruf kann ich gerade keinem Salon zuordnen."


@dataclass
class _Progress:
    """How far one function call got: what the budget's end has to answer and undo."""

    deadline: float
    tenant_id: int | None = None
    canonical: dict[str, Any] = field(default_factory=dict)
    key: str | None = None  # an idempotency key we hold
    write_started: bool = False


@dataclass
class Outcome:
    """The HTTP status and reply, plus what to trace after the reply is sent."""

    status: int
    reply: Reply
    tenant_id: int | None = None
    args: dict[str, Any] = field(default_factory=dict)
    replayed: bool = False
    flags: dict[str, Any] | None = None  # the feature-flag decisions taken for it


class FunctionRunner:
    """Runs the agent's function calls against the booking use cases."""

    def __init__(
        self,
        *,
        calls: Calls,
        bookings: Bookings,
        clock: Clock,
        finder: AppointmentFinder,
        callers: CallerId,
        flags: FlagBook,
        budget: float = BUDGET_SECONDS,
    ) -> None:
        self.flags = flags
        self.budget = budget
        self.calls = calls
        self.bookings = bookings
        self.clock = clock
        self.finder = finder
        self.callers = callers
        self.idempotency = calls.replies

    async def run(
        self, name: str, ref: CallRef, raw_args: dict[str, Any], *, signature: str | None = None
    ) -> Outcome:
        """One function call, start to reply, within the time budget; never an exception. The
        feature flags are decided for this call, and the decisions go with the outcome (its trace).

        `signature`: a read's signed-request digest, recorded with the call's read; a request seen
        before is refused (409) without running (a write's replay gets its stored reply instead)."""
        with recording(ref.call_id) as decisions, call_span(f"function {name}", ref.call_id) as span:
            await self.flags.fresh()
            outcome = await self._run_in_budget(name, ref, raw_args, signature)
            span.set_attribute("rezeption.salon", self.flags.slug(outcome.tenant_id) or "-")
            span.set_attribute("rezeption.outcome", outcome_label(outcome.reply))
        outcome.flags = as_trace(decisions)
        return outcome

    async def _run_in_budget(
        self, name: str, ref: CallRef, raw_args: dict[str, Any], signature: str | None
    ) -> Outcome:
        entry = HANDLERS.get(name)
        if entry is None:
            return Outcome(404, reply(False, "Diese Funktion gibt es bei uns nicht.", "unknown_function"))
        progress = _Progress(deadline=asyncio.get_running_loop().time() + self.budget)
        try:
            return await within(self.budget, self._run(name, entry, ref, raw_args, progress, signature))
        except SeenBefore:
            log.warning("retell.refused", function=name, call_id=ref.call_id, reason="replayed_request")
            return Outcome(409, SEEN_BEFORE)
        except BudgetSpent:
            log.warning("retell.over_budget", function=name, call_id=ref.call_id, budget_s=self.budget)
            await self._give_back(progress)
            return Outcome(200, over_budget(progress.write_started), progress.tenant_id, progress.canonical)
        except Exception as error:  # the call record, the claim: everything around the handler
            failure = classify(error)
            log.warning(
                "retell.function_failed", function=name, call_id=ref.call_id, error=type(error).__name__
            )
            if failure.transient:
                await self._give_back(progress)
            return Outcome(200, failure.reply, progress.tenant_id, progress.canonical)

    async def _give_back(self, progress: _Progress) -> None:
        """Release a claimed key so a retry does the work (bounded: the budget is spent)."""
        if progress.key is None:
            return
        try:
            await within(RELEASE_PATIENCE, self.idempotency.release(progress.key))
        except Exception as error:  # the lease runs out by itself; the retry takes it over then
            log.warning("retell.release_failed", error=type(error).__name__)

    async def _run(
        self,
        name: str,
        entry: tuple[Handler, bool],
        ref: CallRef,
        raw_args: dict[str, Any],
        progress: _Progress,
        signature: str | None,
    ) -> Outcome:
        handler, writes = entry
        try:
            args: Arguments | None = TOOLS[name].model_validate(raw_args)
            problems: list[str] = []
        except ValidationError as error:
            args = None
            problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()]
        canonical = args.model_dump(exclude_none=True) if args is not None else {}
        base = base_key(ref.call_id, name, canonical) if writes and args is not None else None
        key = base  # generation 0's; the call's memory may name a later one (`request_keys`)
        await self.idempotency.settle(ref.call_id)  # this call's queued memory, stored before it is read
        try:
            call, claimed = await self._call_record(ref, key, scope=name, signature=signature)
        except EnvelopeMixesSalons:
            log.warning("retell.refused", function=name, call_id=ref.call_id, reason="envelope_mixes_salons")
            return Outcome(403, reply(False, MISMATCH, "call_mismatch"))
        if claimed:
            progress.key = key  # ours from here on: given back if the work cannot go on
        if call is None or call.tenant_id is None:
            log.warning("retell.refused", function=name, call_id=ref.call_id, reason="unknown_call_or_tenant")
            return Outcome(200, reply(False, MISMATCH, "unknown_call"))
        if not await self.calls.agrees(
            call,
            agent_id=ref.agent_id,
            to_number=ref.to_number,
            from_number=normalize_phone(ref.from_number),
            check_caller=ref.full,
        ):
            log.warning(
                "retell.refused", function=name, call_id=ref.call_id, reason="envelope_disagrees_with_call"
            )
            await self._give_back(progress)
            return Outcome(403, reply(False, MISMATCH, "call_mismatch"))
        tenant_id = progress.tenant_id = call.tenant_id
        bind_request(salon=self.flags.slug(tenant_id))
        if args is None:
            message = (
                "Entschuldigung, das habe ich nicht richtig verstanden. Können Sie das bitte wiederholen?"
            )
            return Outcome(200, reply(False, message, "invalid_arguments", fehler=problems), tenant_id)
        progress.canonical = canonical
        step = generation(base, call.memory) if base is not None else 0
        if base is not None and step > 0:  # asked after a change in this call: a key of its own
            if claimed:  # the base key, claimed together with the call: not this request's
                await self._give_back(progress)
                progress.key, claimed = None, False
            key = in_generation(base, step)
        if key is None:
            answer, learned = await self._call(handler, name, call, args, None)
            if learned:
                await self.calls.remember(ref.call_id, learned)
            return Outcome(200, answer, tenant_id, canonical)
        if not claimed:
            patience = max(0.0, progress.deadline - asyncio.get_running_loop().time() - WORK_RESERVE)
            claim = await self.idempotency.wait(
                key, scope=name, tenant_id=tenant_id, call_id=ref.call_id, patience=patience
            )
            if not claim.owned:
                if claim.reply is None:
                    message = "Einen Moment bitte, ich bin noch mit Ihrer vorigen Anfrage beschäftigt."
                    return Outcome(200, reply(False, message, "busy"), tenant_id, canonical)
                return Outcome(200, claim.reply, tenant_id, canonical, replayed=True)
        progress.key = key
        progress.write_started = True
        async with self.idempotency.holding(key):
            answer, learned = await self._call(handler, name, call, args, f"retell:{key}")
        if answer.get("reason") in TRANSIENT | LIFTED_IN_THE_CALL:
            await self.idempotency.release(key)
            if learned:
                await self.calls.remember(ref.call_id, learned)
        elif base is not None and changed_something(answer):
            learned = {**learned, **counted(base, step)}
            await self._store_change(name, key, answer, ref.call_id, learned)
        else:
            await self.idempotency.finish_soon(key, answer, call_id=ref.call_id, learned=learned)
        progress.key = None
        return Outcome(200, answer, tenant_id, canonical)

    async def _store_change(
        self, name: str, key: str, answer: Reply, call_id: str, learned: dict[str, Any]
    ) -> None:
        """A change's reply, with the call's count of changes. A cancel or a move stores it before
        the reply is sent: lost with a batch (our process killed in its 50 ms), the count would
        let the same words as before the change replay a reply it made untrue ("gebucht" for a
        booking cancelled since, "verlegt auf 11 Uhr" for one moved back). A booking's count waits
        for the batch: losing it only lets a later repeat of the booking replay its own reply."""
        if name in STORED_AT_ONCE:
            await self.idempotency.finish_now(
                key, answer, call_id=call_id, learned=learned, patience=STORE_PATIENCE
            )
        else:
            await self.idempotency.finish_soon(key, answer, call_id=call_id, learned=learned)

    async def _call_record(
        self, ref: CallRef, key: str | None, *, scope: str, signature: str | None = None
    ) -> tuple[CallRecord | None, bool]:
        """The call as we know it, and whether `key` (a write's) is now ours: both in one round trip
        where the store can; a read's `signature` is recorded in its call's read (SeenBefore when
        it came before). A first function call of an unknown call is recorded by its route."""
        if key is None or not ref.full:  # a read, or call id and agent from headers only
            if signature is None:
                known = await self.calls.get(ref.call_id)  # a known call: one plain SELECT
            else:
                known = await self._call_at_first_sight(ref.call_id, signature)
            if known is not None and known.tenant_id is not None:
                return known, False
            if not ref.full:
                return None, False
        from_number = normalize_phone(ref.from_number)
        tenant_id = await self.calls.tenant_for(agent_id=ref.agent_id, to_number=ref.to_number)
        if tenant_id is not None and await self.calls.leads_elsewhere(
            tenant_id, agent_id=ref.agent_id, to_number=ref.to_number
        ):
            raise EnvelopeMixesSalons()  # refused before anything is written: no call, no key
        call, claimed = await self.idempotency.claim_in_call(
            key,
            scope=scope,
            call_id=ref.call_id,
            tenant_id=tenant_id,
            agent_id=ref.agent_id,
            from_number=from_number,
            to_number=ref.to_number,
            unless_remembered=CHANGES,  # after a change, the key is the generation's (`_run`)
        )
        if (call is not None and call.tenant_id is not None) or tenant_id is None:
            return call, claimed
        # a call stored without its salon, or opened by a concurrent request a moment ago
        opened = await self.calls.open(
            ref.call_id,
            tenant_id=tenant_id,
            at=self.clock.now(),
            agent_id=ref.agent_id,
            from_number=from_number,
            to_number=ref.to_number,
        )
        return opened, False

    async def _call_at_first_sight(self, call_id: str, signature: str) -> CallRecord | None:
        """The call, with the read's signature recorded; SeenBefore for a replay. When the record
        cannot be written in `REPLAY_CHECK` (SQLite's writer busy, a lock, a database that only
        reads), the call is read alone and the request taken as new: a replay check must not take
        the call down with it."""
        try:
            known, first = await within(
                REPLAY_CHECK, self.calls.get_at_first_sight(call_id, signature, now=self.clock.now())
            )
        except Exception as error:
            log.warning("retell.replay_check_failed", call_id=call_id, error=type(error).__name__)
            return await self.calls.get(call_id)
        if not first:
            raise SeenBefore()
        return known

    async def _call(
        self, handler: Handler, name: str, call: CallRecord, args: Arguments, key: str | None
    ) -> tuple[Reply, dict[str, Any]]:
        assert call.tenant_id is not None
        now = self.clock.now()
        catalog = await self.bookings.current_catalog(call.tenant_id, now)
        ctx = CallContext(
            tenant_id=call.tenant_id,
            catalog=catalog,
            call_id=call.retell_call_id,
            caller_number=call.from_number,
            memory=dict(call.memory),
            now=now.astimezone(catalog.tenant.zone),
            bookings=self.bookings,
            finder=self.finder,
            callers=self.callers,
            idempotency_key=key,
        )
        try:
            answer = await handler(ctx, args)
        except Clarify as question:
            answer = reply(False, question.message, question.reason, **question.facts)
        except BookingError as refused:
            answer = refusal(catalog, refused, ctx.today)
        except Exception as error:
            failure = classify(error)
            if failure.kind == "bug":
                log.exception("retell.function_failed", function=name, call_id=call.retell_call_id)
            else:
                log.warning(
                    "retell.function_failed",
                    function=name,
                    call_id=call.retell_call_id,
                    failure=failure.kind,
                    error=type(error).__name__,
                )
            return failure.reply, {}
        return answer, ctx.learned
