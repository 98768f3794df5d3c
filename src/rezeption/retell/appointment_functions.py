"""find_appointments, cancel_appointment, reschedule_appointment, record_consent: existing bookings.

Which appointment the caller means, and whether this caller may hear of it, is the lookup's and the
disclosure policy's job (`booking.lookup`, `booking.disclosure`): the line the call comes from is
the call's, a number the caller says is only a claim. Cancel and move never act on words alone:
without a `referenz` they read the appointment back and ask; only a second call with the reference
read out in this call changes it.
"""

from __future__ import annotations

from typing import Any

from rezeption.booking.lookup_model import FoundAppointment, LookupQuery, LookupResult
from rezeption.language.names import usable_name
from rezeption.retell.availability_functions import spoken_appointment
from rezeption.retell.context import CallContext
from rezeption.retell.replies import Reply, reply
from rezeption.retell.tools import (
    CancelAppointmentArgs,
    FindAppointmentsArgs,
    RecordConsentArgs,
    RescheduleAppointmentArgs,
)
from rezeption.retell.understanding import Clarify, instant, resolve_moment


def _facts(found: FoundAppointment) -> dict[str, str]:
    return {
        "referenz": found.reference,
        "datum": found.local_date.isoformat(),
        "uhrzeit": found.local_time.strftime("%H:%M"),
        "dienstleistung": found.service,
        "mitarbeiter": found.staff,
    }


MISSES = "lookup_misses"  # call memory: lookups from another line that named a person and a fact, in vain


def _query(ctx: CallContext, args: FindAppointmentsArgs) -> LookupQuery:
    return LookupQuery(
        tenant_id=ctx.tenant_id,
        call_id=ctx.call_id,
        caller_number=ctx.caller_number,
        name=args.name or ctx.memory.get("name"),
        said_phone=args.telefon,
        date_words=args.datum or "",
        time_words=args.uhrzeit or "",
        service_words=args.dienstleistung or "",
        misses=int(ctx.memory.get(MISSES, 0)),
    )


async def _find(ctx: CallContext, args: FindAppointmentsArgs) -> LookupResult:
    result = await ctx.finder.find_appointments(_query(ctx, args))
    if result.missed:
        ctx.learn(**{MISSES: int(ctx.memory.get(MISSES, 0)) + 1})
    return result


def _lookup_reply(result: LookupResult) -> Reply:
    facts: dict[str, Any] = {"termine": [_facts(a) for a in result.appointments]}
    if result.kind == "one":
        return reply(True, result.message, **facts)
    reason = result.reason or ("ambiguous_appointment" if result.kind == "several" else "not_found")
    return reply(False, result.message, reason, **facts)


async def find_appointments(ctx: CallContext, args: FindAppointmentsArgs) -> Reply:
    """The caller's future appointments matching the fields: none, one, or several to choose from."""
    return _lookup_reply(await _find(ctx, args))


async def _target(ctx: CallContext, args: CancelAppointmentArgs) -> FoundAppointment | LookupResult:
    """The appointment the reference names, or (no reference) the lookup to read back and confirm."""
    if not args.referenz:
        return await _find(ctx, args)
    keyed = ctx.idempotency_key is not None  # a retry of a change made: its use case replays it
    pick = await ctx.finder.pick(_query(ctx, args), reference=args.referenz, keyed=keyed)
    assert pick.appointment_id is not None
    return pick.lookup.appointments[0]


def _confirm(result: LookupResult, question: str, reason: str, **facts: Any) -> Reply:
    """Read the one found appointment back and ask before changing it; otherwise the lookup's answer."""
    if result.kind != "one":
        return _lookup_reply(result)
    found = result.appointments[0]
    return reply(False, f"{result.message} {question}", reason, **_facts(found), **facts)


async def cancel_appointment(ctx: CallContext, args: CancelAppointmentArgs) -> Reply:
    """Cancel the appointment read out in this call (by its reference); without one, ask first."""
    target = await _target(ctx, args)
    if isinstance(target, LookupResult):
        return _confirm(target, "Soll ich ihn stornieren?", "confirm_cancel", storniert=False)
    await ctx.bookings.cancel(
        tenant_id=ctx.tenant_id, appointment_id=target.appointment_id, idempotency_key=ctx.idempotency_key
    )
    when = spoken_appointment(target.local_date, target.local_time, ctx.today)
    return reply(
        True, f"Ich habe Ihren Termin storniert: {target.service} {when}.", storniert=True, **_facts(target)
    )


async def reschedule_appointment(ctx: CallContext, args: RescheduleAppointmentArgs) -> Reply:
    """Move the appointment read out in this call (by its reference); the old one stays unless the
    new one is booked. Without a reference: read it back and ask."""
    target = await _target(ctx, args)
    if isinstance(target, LookupResult):
        if target.kind != "one" or not (args.neues_datum or args.neue_uhrzeit):
            return _confirm(target, "Auf wann möchten Sie ihn verlegen?", "confirm_reschedule", verlegt=False)
        moment = resolve_moment(ctx, args.neues_datum, args.neue_uhrzeit, None)
        if moment.at is None:
            return _confirm(
                target, "Um welche Uhrzeit möchten Sie kommen?", "confirm_reschedule", verlegt=False
            )
        new = spoken_appointment(moment.day, moment.at, ctx.today)
        return _confirm(target, f"Soll ich ihn auf {new} verlegen?", "confirm_reschedule", verlegt=False)
    if not args.neues_datum and not args.neue_uhrzeit:
        raise Clarify("missing_date", "Auf wann möchten Sie den Termin verlegen?", **_facts(target))
    moment = resolve_moment(ctx, args.neues_datum, args.neue_uhrzeit, None)
    if moment.at is None:
        raise Clarify("missing_time", "Um welche Uhrzeit möchten Sie kommen?", **_facts(target))
    result = await ctx.bookings.reschedule(
        tenant_id=ctx.tenant_id,
        appointment_id=target.appointment_id,
        start=instant(ctx, moment.day, moment.at),
        idempotency_key=ctx.idempotency_key,
    )
    local = result.appointment.starts_at.astimezone(ctx.catalog.tenant.zone)
    when = spoken_appointment(local.date(), local.time(), ctx.today)
    reference = ctx.finder.references.issue(ctx.tenant_id, result.appointment.id, ctx.call_id)
    return reply(
        True,
        f"Ich habe Ihren Termin verlegt: {result.service.name} {when} bei {result.staff.name}.",
        verlegt=True,
        referenz=reference,
        datum=local.date().isoformat(),
        uhrzeit=local.strftime("%H:%M"),
        dienstleistung=result.service.name,
        mitarbeiter=result.staff.name,
    )


async def record_consent(ctx: CallContext, args: RecordConsentArgs) -> Reply:
    """The caller agreed to be recognized by their number next time: store it with time and call."""
    name = args.name or ctx.memory.get("name")
    if not ctx.caller_number:
        return reply(
            False,
            "Ihre Nummer wird leider nicht übertragen, daher kann ich sie mir nicht merken.",
            "no_number",
        )
    if not usable_name(name):
        raise Clarify("missing_name", "Auf welchen Namen darf ich Ihre Nummer speichern?")
    assert name is not None
    ctx.learn(name=name)
    stored = await ctx.callers.record_consent(
        ctx.tenant_id, call_id=ctx.call_id, at=ctx.now, phone=ctx.caller_number, name=name
    )
    if not stored:
        return reply(False, "Das konnte ich leider nicht speichern.", "consent_not_stored")
    return reply(
        True, f"Danke, {name}. Beim nächsten Anruf erkenne ich Sie an Ihrer Nummer.", gespeichert=True
    )
