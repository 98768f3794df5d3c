"""find_appointments, cancel_appointment, reschedule_appointment: the caller's existing bookings.

Which appointment the caller means is found by `resolve_target`: a reference from
find_appointments, else the lookup fields, else the appointments booked in this very call. When
more than one fits, nothing is changed and the candidates are read out.
"""

from __future__ import annotations

from collections.abc import Sequence

from rezeption.language import join_alternatives, speak_time
from rezeption.retell.availability_functions import spoken_appointment
from rezeption.retell.context import CallContext
from rezeption.retell.lookup_bridge import Found, find_for_call, reference_for, resolve_reference
from rezeption.retell.replies import Reply, reply
from rezeption.retell.tools import CancelAppointmentArgs, FindAppointmentsArgs, RescheduleAppointmentArgs
from rezeption.retell.understanding import Clarify, instant, resolve_moment, resolve_staff


def _describe(ctx: CallContext, found: Found) -> str:
    local = found.appointment.starts_at.astimezone(ctx.catalog.tenant.zone)
    return f"{found.service_name} {spoken_appointment(local.date(), local.time(), ctx.today)}"


def _facts(ctx: CallContext, found: Found) -> dict[str, str]:
    local = found.appointment.starts_at.astimezone(ctx.catalog.tenant.zone)
    return {
        "referenz": found.reference,
        "datum": local.date().isoformat(),
        "uhrzeit": local.strftime("%H:%M"),
        "dienstleistung": found.service_name,
    }


def _choose(ctx: CallContext, candidates: Sequence[Found]) -> Reply:
    spoken = [
        f"{speak_time(c.appointment.starts_at.astimezone(ctx.catalog.tenant.zone).time())} {c.service_name}"
        if len({x.appointment.starts_at.astimezone(ctx.catalog.tenant.zone).date() for x in candidates}) == 1
        else _describe(ctx, c)
        for c in candidates
    ]
    return reply(
        False,
        f"Ich habe {len(candidates)} Termine gefunden: {join_alternatives(spoken, 'und')}. "
        "Welchen meinen Sie?",
        "ambiguous_appointment",
        termine=[_facts(ctx, c) for c in candidates],
    )


async def find_appointments(ctx: CallContext, args: FindAppointmentsArgs) -> Reply:
    """The caller's future appointments matching the fields: none, one, or several to choose from."""
    found = await find_for_call(ctx, args)
    if not found:
        return reply(
            False, "Ich habe keinen Termin gefunden. Unter welchem Namen haben Sie gebucht?", "not_found"
        )
    if len(found) == 1:
        return reply(
            True,
            f"Ich habe Ihren Termin gefunden: {_describe(ctx, found[0])}.",
            termine=[_facts(ctx, found[0])],
        )
    return _choose(ctx, found)


async def _target(ctx: CallContext, args: CancelAppointmentArgs) -> Found | Reply:
    if args.referenz:
        return await resolve_reference(ctx, args.referenz)
    found = await find_for_call(ctx, args)
    if not found:
        return reply(
            False, "Ich habe keinen Termin gefunden. Unter welchem Namen haben Sie gebucht?", "not_found"
        )
    if len(found) > 1:
        return _choose(ctx, found)
    return found[0]


async def cancel_appointment(ctx: CallContext, args: CancelAppointmentArgs) -> Reply:
    """Cancel exactly one appointment; ambiguous lookups change nothing."""
    target = await _target(ctx, args)
    if isinstance(target, dict):
        return target
    result = await ctx.bookings.cancel(
        tenant_id=ctx.tenant_id, appointment_id=target.appointment.id, idempotency_key=ctx.idempotency_key
    )
    return reply(
        True,
        f"Ich habe Ihren Termin storniert: {_describe(ctx, target)}.",
        storniert=True,
        **_facts(ctx, Found(result.appointment, target.service_name, target.reference)),
    )


async def reschedule_appointment(ctx: CallContext, args: RescheduleAppointmentArgs) -> Reply:
    """Move exactly one appointment; the old one stays unless the new one is booked."""
    target = await _target(ctx, args)
    if isinstance(target, dict):
        return target
    if not args.neues_datum and not args.neue_uhrzeit:
        raise Clarify("missing_date", "Auf wann möchten Sie den Termin verlegen?")
    moment = resolve_moment(ctx, args.neues_datum, args.neue_uhrzeit, None)
    if moment.at is None:
        raise Clarify("missing_time", "Um welche Uhrzeit möchten Sie kommen?")
    staff = resolve_staff(ctx.catalog, None)
    result = await ctx.bookings.reschedule(
        tenant_id=ctx.tenant_id,
        appointment_id=target.appointment.id,
        start=instant(ctx, moment.day, moment.at),
        staff=staff.id if staff else None,
        idempotency_key=ctx.idempotency_key,
    )
    moved = Found(result.appointment, target.service_name, reference_for(ctx, result.appointment))
    return reply(
        True,
        f"Ich habe Ihren Termin verlegt: {_describe(ctx, moved)} bei {result.staff.name}.",
        verlegt=True,
        **_facts(ctx, moved),
    )
