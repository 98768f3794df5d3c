"""GDPR: export everything we hold about a customer, erase (anonymize) them, purge old transcripts.

A customer is named by id or by phone number (any spelling; all of that number's customers, at one
salon or at every salon). What belongs to them: their customer rows, their appointments, the calls
linked to them (by customer, by their number, or as the call that booked one of their appointments)
and the function-call traces of those calls. Erasing blanks the personal fields and keeps the rows,
so appointment statistics (times, services, statuses) survive; it writes no names or numbers to logs.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from rezeption.domain.clock import require_aware
from rezeption.language import normalize_phone
from rezeption.store.db import Database
from rezeption.store.tables import (
    AppointmentRow,
    CallRow,
    CustomerRow,
    FunctionCallTraceRow,
    ServiceRow,
    StaffRow,
    TenantRow,
)

DEFAULT_RETENTION_DAYS = 90


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
                "memory": c.memory,
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


async def erase_customer(
    database: Database, ref: str, *, now: datetime, tenant_slug: str | None = None
) -> dict[str, int]:
    """Anonymize the customer(s) `ref` names and their calls; keep appointments for statistics. Counts."""
    now = require_aware(now)
    async with database.write() as session, session.begin():
        customers = await find_customers(session, ref, tenant_slug=tenant_slug)
        if not customers:
            return {"customers": 0, "appointments": 0, "calls": 0, "function_calls": 0}
        ids = [c.id for c in customers]
        calls = [c.retell_call_id for c in await _calls(session, customers)]
        anonymous = {
            "name": None,
            "name_normalized": None,
            "name_phonetic": None,
            "phone_e164": None,
            "email": None,
        }
        await session.execute(
            update(CustomerRow)
            .where(CustomerRow.id.in_(ids))
            .values(**anonymous, caller_id_consent_at=None, consent_call_id=None, updated_at=now)
        )
        appointments = await session.execute(
            update(AppointmentRow)
            .where(AppointmentRow.customer_id.in_(ids))
            .values(spoken_name=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        erased_calls = await session.execute(
            update(CallRow)
            .where(CallRow.retell_call_id.in_(calls))
            .values(from_number=None, transcript=None, memory={})
            .execution_options(synchronize_session=False)
        )
        traces = await session.execute(
            update(FunctionCallTraceRow)
            .where(FunctionCallTraceRow.retell_call_id.in_(calls))
            .values(args={}, reply={})
            .execution_options(synchronize_session=False)
        )
        return {
            "customers": len(ids),
            "appointments": appointments.rowcount,  # type: ignore[attr-defined]
            "calls": erased_calls.rowcount,  # type: ignore[attr-defined]
            "function_calls": traces.rowcount,  # type: ignore[attr-defined]
        }


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
