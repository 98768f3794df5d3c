"""GDPR: export everything we hold about a customer, erase (anonymize) them, purge old transcripts.

A customer is named by id or by phone number (any spelling; all of that number's customers, at one
salon or at every salon). What belongs to them: their customer rows, their appointments, the calls
linked to them (by customer, by their number, or as the call that booked one of their appointments)
and the function-call traces and stored replies of those calls. Erasing removes their personal data
and only theirs: a call they share with someone else (a mother booking for her son, a family line)
is redacted, not blanked (see `erase_customer`). Appointment rows stay, so statistics (times,
services, statuses) survive; their future appointments are cancelled before, through the booking
use case (`erasure_plan`, `ops.erasure.erase_customer_data`). Nothing here logs a name or number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from rezeption.booking.ports import ERASED
from rezeption.domain.clock import require_aware
from rezeption.language import normalize_phone
from rezeption.language.redaction import Redactor
from rezeption.store.db import Database
from rezeption.store.tables import (
    AppointmentEventRow,
    AppointmentRow,
    CallRow,
    CustomerNameKeyRow,
    CustomerRow,
    FunctionCallTraceRow,
    IdempotencyRecordRow,
    OutboxJobRow,
    ServiceRow,
    StaffRow,
    TenantRow,
)

DEFAULT_RETENTION_DAYS = 90
ACTIVE = ("pending", "confirmed")
JOB_CALLBACK = "callback_request"  # booking.saga.JOB_CALLBACK (the store may not import booking)


class CustomerRefError(ValueError):
    """The reference is neither a customer id nor a valid phone number."""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def find_customers(
    session: AsyncSession, ref: str, *, tenant_slug: str | None = None
) -> list[CustomerRow]:
    """The customer rows `ref` names: an id ("42") or a phone number ("0151 ...", "+49151...")."""
    ref = ref.strip()
    query = (
        select(CustomerRow).join(TenantRow, TenantRow.id == CustomerRow.tenant_id).order_by(CustomerRow.id)
    )
    if tenant_slug is not None:
        query = query.where(TenantRow.slug == tenant_slug)
    if ref.isdigit() and not ref.startswith("0"):
        return list(await session.scalars(query.where(CustomerRow.id == int(ref))))
    phone = normalize_phone(ref)
    if phone is None:
        raise CustomerRefError(f"{ref!r} is neither a customer id nor a valid phone number")
    return list(await session.scalars(query.where(CustomerRow.phone_e164 == phone)))


async def _calls(session: AsyncSession, customers: list[CustomerRow]) -> list[CallRow]:
    ids = [c.id for c in customers]
    booked_in = select(AppointmentRow.call_id).where(
        AppointmentRow.customer_id.in_(ids), AppointmentRow.call_id.is_not(None)
    )
    by_number = [
        (CallRow.tenant_id == c.tenant_id) & (CallRow.from_number == c.phone_e164)
        for c in customers
        if c.phone_e164
    ]
    query = select(CallRow).where(
        or_(CallRow.customer_id.in_(ids), CallRow.retell_call_id.in_(booked_in), *by_number)
    )
    return list(await session.scalars(query.order_by(CallRow.id)))


def _what_was_said(memory: dict[str, Any] | None) -> dict[str, Any]:
    """A call's memory as the customer's data: what the call learned, without our bookkeeping
    (`_events` applied, the `_erased` marker: keys that start with an underscore)."""
    return {key: value for key, value in (memory or {}).items() if not key.startswith("_")}


async def export_customer(
    database: Database, ref: str, *, now: datetime, tenant_slug: str | None = None
) -> dict[str, Any]:
    """Everything we hold about the customer(s) `ref` names, JSON-ready."""
    async with database.read() as session:
        customers = await find_customers(session, ref, tenant_slug=tenant_slug)
        calls = await _calls(session, customers) if customers else []
        call_ids = [c.retell_call_id for c in calls]
        traces = (
            list(
                await session.scalars(
                    select(FunctionCallTraceRow)
                    .where(FunctionCallTraceRow.retell_call_id.in_(call_ids))
                    .order_by(FunctionCallTraceRow.id)
                )
            )
            if call_ids
            else []
        )
        slugs = {t.id: t.slug for t in await session.scalars(select(TenantRow))}
        appointments = (
            await session.execute(
                select(AppointmentRow, ServiceRow.name, StaffRow.name)
                .join(ServiceRow, ServiceRow.id == AppointmentRow.service_id)
                .join(StaffRow, StaffRow.id == AppointmentRow.staff_id)
                .where(AppointmentRow.customer_id.in_([c.id for c in customers]))
                .order_by(AppointmentRow.starts_at)
            )
        ).all()
    return {
        "exported_at": require_aware(now).isoformat(),
        "customers": [
            {
                "id": c.id,
                "salon": slugs.get(c.tenant_id),
                "name": c.name,
                "phone": c.phone_e164,
                "email": c.email,
                "caller_id_consent_at": _iso(c.caller_id_consent_at),
                "consent_call_id": c.consent_call_id,
                "created_at": _iso(c.created_at),
                "updated_at": _iso(c.updated_at),
            }
            for c in customers
        ],
        "appointments": [
            {
                "id": a.id,
                "customer_id": a.customer_id,
                "salon": slugs.get(a.tenant_id),
                "service": service,
                "staff": staff,
                "starts_at": _iso(a.starts_at),
                "ends_at": _iso(a.ends_at),
                "status": a.status,
                "name_given": a.spoken_name,
                "call_id": a.call_id,
                "source": a.source,
                "created_at": _iso(a.created_at),
            }
            for a, service, staff in appointments
        ],
        "calls": [
            {
                "call_id": c.retell_call_id,
                "salon": slugs.get(c.tenant_id) if c.tenant_id else None,
                "from_number": c.from_number,
                "to_number": c.to_number,
                "started_at": _iso(c.started_at),
                "ended_at": _iso(c.ended_at),
                "transcript": c.transcript,
                "memory": _what_was_said(c.memory),
            }
            for c in calls
        ],
        "function_calls": [
            {
                "call_id": t.retell_call_id,
                "function": t.function,
                "args": t.args,
                "reply": t.reply,
                "at": _iso(t.at),
            }
            for t in traces
        ],
    }


@dataclass(frozen=True)
class ErasurePlan:
    """What erasing `ref` will touch, for the operator's confirmation: no names, no numbers."""

    customer_ids: tuple[int, ...]
    future: tuple[tuple[int, int], ...]
    """(tenant id, appointment id) of the customers' active (pending/confirmed) appointments ahead."""

    @property
    def customers(self) -> int:
        """How many customer rows (one per salon and name) the reference names."""
        return len(self.customer_ids)


async def erasure_plan(
    database: Database, ref: str, *, now: datetime, tenant_slug: str | None = None
) -> ErasurePlan:
    """The customers `ref` names, and their active appointments that start after `now`.

    Those appointments are cancelled through the booking use case before `erase_customer` runs
    (the store cannot cancel at the salon's calendar; `ops.erasure.erase_customer_data` does).
    """
    async with database.read() as session:
        customers = await find_customers(session, ref, tenant_slug=tenant_slug)
    ids = tuple(c.id for c in customers)
    return ErasurePlan(ids, await future_appointments(database, ids, now=now))


async def future_appointments(
    database: Database, customer_ids: Sequence[int], *, now: datetime
) -> tuple[tuple[int, int], ...]:
    """(tenant id, appointment id) of these customers' active appointments starting after `now`."""
    if not customer_ids:
        return ()
    async with database.read() as session:
        rows = (
            await session.execute(
                select(AppointmentRow.tenant_id, AppointmentRow.id)
                .where(_future_active(list(customer_ids), require_aware(now)))
                .order_by(AppointmentRow.starts_at, AppointmentRow.id)
            )
        ).all()
    return tuple((int(t), int(a)) for t, a in rows)


def _future_active(customer_ids: list[int], now: datetime) -> ColumnElement[bool]:
    return and_(
        AppointmentRow.customer_id.in_(customer_ids),
        AppointmentRow.status.in_(ACTIVE),
        AppointmentRow.starts_at > now,
    )


def _zero_counts(future_cancelled: int = 0) -> dict[str, int]:
    return {
        "customers": 0,
        "appointments": 0,
        "future_cancelled": future_cancelled,
        "future_left_active": 0,
        "calls_erased": 0,
        "calls_redacted": 0,
        "function_calls_erased": 0,
        "function_calls_redacted": 0,
        "replies_erased": 0,
        "replies_redacted": 0,
        "callback_requests_dropped": 0,
    }


@dataclass
class _Erased:
    """The erased people, per salon: what identifies them, and the numbers others still hold."""

    ids: set[int]
    names: dict[int | None, set[str]] = field(default_factory=dict)
    phones: dict[int | None, set[str]] = field(default_factory=dict)
    emails: dict[int | None, set[str]] = field(default_factory=dict)
    kept_numbers: dict[int | None, dict[str, list[str]]] = field(default_factory=dict)
    """salon -> number -> names of the customers there who keep that number (not erased)."""

    def redactor(self, tenant_id: int | None, keep: list[str | None] | None = None) -> Redactor:
        """Their names, numbers and e-mails at this salon; numbers another customer there has stay."""
        kept = self.kept_numbers.get(tenant_id, {})
        return Redactor.build(
            self.names.get(tenant_id, set()),
            [p for p in self.phones.get(tenant_id, set()) if p not in kept],
            emails=self.emails.get(tenant_id, set()),
            keep=keep or [],
        )

    def number_kept(self, tenant_id: int | None, number: str | None) -> bool:
        """Whether `number` belongs to a customer at this salon who is not being erased."""
        return number is not None and number in self.kept_numbers.get(tenant_id, {})


async def _erased(session: AsyncSession, customers: list[CustomerRow], calls: list[CallRow]) -> _Erased:
    """The people to erase; `kept_numbers` covers their numbers and the numbers their calls came from."""
    erased = _Erased(ids={c.id for c in customers})
    for c in customers:
        erased.names.setdefault(c.tenant_id, set()).add(c.name or "")
        if c.phone_e164:
            erased.phones.setdefault(c.tenant_id, set()).add(c.phone_e164)
        if c.email:
            erased.emails.setdefault(c.tenant_id, set()).add(c.email)
    spoken = await session.execute(
        select(AppointmentRow.tenant_id, AppointmentRow.spoken_name).where(
            AppointmentRow.customer_id.in_(erased.ids), AppointmentRow.spoken_name.is_not(None)
        )
    )
    for tenant_id, name in spoken.all():
        erased.names.setdefault(tenant_id, set()).add(name or "")
    numbers = {p for phones in erased.phones.values() for p in phones}
    numbers |= {c.from_number for c in calls if c.from_number}
    tenants = {c.tenant_id for c in customers} | {c.tenant_id for c in calls if c.tenant_id is not None}
    if numbers:
        others = await session.execute(
            select(CustomerRow.tenant_id, CustomerRow.phone_e164, CustomerRow.name).where(
                CustomerRow.tenant_id.in_(tenants),
                CustomerRow.phone_e164.in_(numbers),
                CustomerRow.id.not_in(erased.ids),
            )
        )
        for tenant_id, phone, name in others.all():
            erased.kept_numbers.setdefault(tenant_id, {}).setdefault(phone or "", []).append(name or "")
    return erased


async def erase_customer(
    database: Database,
    ref: str,
    *,
    now: datetime,
    tenant_slug: str | None = None,
    future_cancelled: int = 0,
) -> dict[str, int]:
    """Erase the customer(s) `ref` names: their personal data, and only theirs. Counts (no names).

    - customers: name, normalized name, number, e-mail and consent blanked; search keys deleted;
    - appointments: the spoken name blanked; times, services and statuses stay for statistics
      (future ones should have been cancelled first: `erasure_plan`; `future_cancelled` is how many
      the caller cancelled, `future_left_active` how many are still active);
    - calls linked to them (see `_calls`) that are theirs alone (every appointment booked in the call
      is theirs, the call's customer is unknown or theirs, and its number belongs to no other
      customer at the salon): transcript, memory and number blanked, the function-call traces'
      arguments and replies blanked, the call's stored idempotent replies deleted;
    - shared calls: their name words and numbers replaced with "[gelöscht]" in the transcript,
      memory, traces and stored replies; the calling number kept only when it is another customer's;
    - stored replies of calls before migration 0004 (no call id) at their salons: redacted;
    - their appointments' event data and outbox jobs: redacted; call-back requests dropped (open or
      closed).
    """
    now = require_aware(now)
    counts = _zero_counts(future_cancelled)
    async with database.write() as session, session.begin():
        customers = await find_customers(session, ref, tenant_slug=tenant_slug)
        if not customers:
            return counts
        calls = await _calls(session, customers)
        erased = await _erased(session, customers, calls)
        ids = list(erased.ids)
        counts["customers"] = len(ids)
        counts["future_left_active"] = int(
            await session.scalar(
                select(func.count()).select_from(AppointmentRow).where(_future_active(ids, now))
            )
            or 0
        )
        await _erase_calls(session, erased, calls, counts)
        await _redact_legacy_replies(session, erased, counts)
        appointments = (
            await session.execute(
                select(AppointmentRow.id, AppointmentRow.tenant_id, AppointmentRow.external_uid).where(
                    AppointmentRow.customer_id.in_(ids)
                )
            )
        ).all()
        await _redact_events(session, erased, {a.id: a.tenant_id for a in appointments})
        await _redact_jobs(
            session,
            erased,
            appointment_ids=[a.id for a in appointments],
            call_ids=[c.retell_call_id for c in calls],
            uids=[a.external_uid for a in appointments if a.external_uid],
            counts=counts,
        )
        await session.execute(
            update(CustomerRow)
            .where(CustomerRow.id.in_(ids))
            .values(
                name=None,
                name_normalized=None,
                phone_e164=None,
                email=None,
                caller_id_consent_at=None,
                consent_call_id=None,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        await session.execute(delete(CustomerNameKeyRow).where(CustomerNameKeyRow.customer_id.in_(ids)))
        anonymized = await session.execute(
            update(AppointmentRow)
            .where(AppointmentRow.customer_id.in_(ids))
            .values(spoken_name=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        counts["appointments"] = anonymized.rowcount  # type: ignore[attr-defined]
    return counts


async def _erase_calls(
    session: AsyncSession, erased: _Erased, calls: list[CallRow], counts: dict[str, int]
) -> None:
    """Blank the calls that are the erased people's alone; redact them out of the shared ones."""
    if not calls:
        return
    call_ids = [c.retell_call_id for c in calls]
    booked = (
        await session.execute(
            select(AppointmentRow.call_id, AppointmentRow.customer_id, AppointmentRow.spoken_name).where(
                AppointmentRow.call_id.in_(call_ids)
            )
        )
    ).all()
    other_ids = {a.customer_id for a in booked if a.customer_id is not None} | {
        c.customer_id for c in calls if c.customer_id is not None
    }
    other_ids -= erased.ids
    other_names = (
        dict(
            (
                await session.execute(
                    select(CustomerRow.id, CustomerRow.name).where(CustomerRow.id.in_(other_ids))
                )
            ).all()
        )
        if other_ids
        else {}
    )
    alone: list[str] = []
    shared: dict[str, Redactor] = {}
    for call in calls:
        in_call = [a for a in booked if a.call_id == call.retell_call_id]
        others_here = [a for a in in_call if a.customer_id not in erased.ids]
        kept_caller = erased.number_kept(call.tenant_id, call.from_number)
        caller_other = call.customer_id is not None and call.customer_id not in erased.ids
        if not others_here and not caller_other and not kept_caller:
            alone.append(call.retell_call_id)
            continue
        keep: list[str | None] = [a.spoken_name for a in others_here]
        keep += [other_names.get(a.customer_id or 0) for a in others_here]
        keep += [other_names.get(call.customer_id or 0)] if caller_other else []
        keep += erased.kept_numbers.get(call.tenant_id, {}).get(call.from_number or "", [])
        redactor = erased.redactor(call.tenant_id, keep)
        shared[call.retell_call_id] = redactor
        transcript = redactor.text(call.transcript) if call.transcript else call.transcript
        memory = redactor.json(call.memory or {})
        if (transcript, memory) != (call.transcript, call.memory or {}) or not kept_caller:
            memory[ERASED] = True  # the erased person was in it: later events bring nothing back
        await session.execute(
            update(CallRow)
            .where(CallRow.id == call.id)
            .values(
                transcript=transcript,
                memory=memory,
                from_number=call.from_number if kept_caller else None,
            )
            .execution_options(synchronize_session=False)
        )
    if alone:
        blanked = await session.execute(
            update(CallRow)
            .where(CallRow.retell_call_id.in_(alone))
            .values(from_number=None, transcript=None, memory={ERASED: True})
            .execution_options(synchronize_session=False)
        )
        counts["calls_erased"] = blanked.rowcount  # type: ignore[attr-defined]
        traces = await session.execute(
            update(FunctionCallTraceRow)
            .where(FunctionCallTraceRow.retell_call_id.in_(alone))
            .values(args={}, reply={})
            .execution_options(synchronize_session=False)
        )
        counts["function_calls_erased"] = traces.rowcount  # type: ignore[attr-defined]
        replies = await session.execute(
            delete(IdempotencyRecordRow)
            .where(IdempotencyRecordRow.call_id.in_(alone))
            .execution_options(synchronize_session=False)
        )
        counts["replies_erased"] = replies.rowcount  # type: ignore[attr-defined]
    counts["calls_redacted"] = len(shared)
    if not shared:
        return
    for trace in await session.scalars(
        select(FunctionCallTraceRow).where(FunctionCallTraceRow.retell_call_id.in_(list(shared)))
    ):
        redactor = shared[trace.retell_call_id or ""]
        args, reply = redactor.json(trace.args), redactor.json(trace.reply)
        if (args, reply) != (trace.args, trace.reply):
            trace.args, trace.reply = args, reply
            counts["function_calls_redacted"] += 1
    for record in await session.scalars(
        select(IdempotencyRecordRow).where(IdempotencyRecordRow.call_id.in_(list(shared)))
    ):
        reply = shared[record.call_id or ""].json(record.reply)
        if reply != record.reply:
            record.reply = reply
            counts["replies_redacted"] += 1
    await session.flush()


async def _redact_legacy_replies(session: AsyncSession, erased: _Erased, counts: dict[str, int]) -> None:
    """Stored replies written before migration 0004 know no call: redact them at the people's salons."""
    tenants = [t for t in erased.names if t is not None]
    records = await session.scalars(
        select(IdempotencyRecordRow).where(
            IdempotencyRecordRow.call_id.is_(None),
            IdempotencyRecordRow.tenant_id.in_(tenants),
            IdempotencyRecordRow.reply.is_not(None),
        )
    )
    for record in records:
        reply = erased.redactor(record.tenant_id).json(record.reply)
        if reply != record.reply:
            record.reply = reply
            counts["replies_redacted"] += 1
    await session.flush()


async def _redact_events(session: AsyncSession, erased: _Erased, appointments: dict[int, int]) -> None:
    """Event data (calendar error details, for one) of their appointments, redacted; the log stays."""
    if not appointments:
        return
    events = await session.scalars(
        select(AppointmentEventRow).where(AppointmentEventRow.appointment_id.in_(list(appointments)))
    )
    for event in events:
        data = erased.redactor(event.tenant_id).json(event.data)
        if data != event.data:
            event.data = data
    await session.flush()


async def _redact_jobs(
    session: AsyncSession,
    erased: _Erased,
    *,
    appointment_ids: list[int],
    call_ids: list[str],
    uids: list[str],
    counts: dict[str, int],
) -> None:
    """Outbox jobs about them: call-back requests dropped, open or closed (nobody calls back an erased
    person), the rest redacted (payloads hold ids only; error texts may quote a calendar)."""
    payload = OutboxJobRow.payload
    about = [payload["customer_id"].as_integer().in_(list(erased.ids))]
    if appointment_ids:
        about.append(payload["appointment_id"].as_integer().in_(appointment_ids))
    if call_ids:
        about.append(payload["call_id"].as_string().in_(call_ids))
    if uids:
        about.append(payload["uid"].as_string().in_(uids))
    tenants = [t for t in erased.names if t is not None]
    jobs = await session.scalars(select(OutboxJobRow).where(OutboxJobRow.tenant_id.in_(tenants), or_(*about)))
    for job in jobs:
        if job.kind == JOB_CALLBACK and job.payload.get("customer_id") in erased.ids:
            # open or closed (the erasure's own cancel closes the appointment's request): a request
            # to call someone back is about that person, and nothing of it is kept
            await session.delete(job)
            counts["callback_requests_dropped"] += 1
            continue
        redactor = erased.redactor(job.tenant_id)
        job_payload = redactor.json(job.payload)
        error = redactor.text(job.last_error) if job.last_error else job.last_error
        if (job_payload, error) != (job.payload, job.last_error):
            job.payload, job.last_error = job_payload, error
    await session.flush()


async def purge_transcripts(database: Database, *, now: datetime) -> int:
    """Blank the transcripts of calls older than each salon's `transcript_retention_days`; how many.

    A worker job calls this daily; a call's age counts from its end (else its start, else its row).
    """
    now = require_aware(now)
    purged = 0
    async with database.write() as session, session.begin():
        for tenant_id, settings in (await session.execute(select(TenantRow.id, TenantRow.settings))).all():
            days = int((settings or {}).get("transcript_retention_days", DEFAULT_RETENTION_DAYS))
            cutoff = now - timedelta(days=days)
            ended = CallRow.ended_at
            started = CallRow.started_at
            result = await session.execute(
                update(CallRow)
                .where(
                    CallRow.tenant_id == tenant_id,
                    CallRow.transcript.is_not(None),
                    or_(
                        ended < cutoff,
                        ended.is_(None) & (started < cutoff),
                        ended.is_(None) & started.is_(None) & (CallRow.created_at < cutoff),
                    ),
                )
                .values(transcript=None)
                .execution_options(synchronize_session=False)
            )
            purged += result.rowcount  # type: ignore[attr-defined]
    return purged
