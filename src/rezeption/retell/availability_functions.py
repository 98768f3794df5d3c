"""check_availability and book_appointment: the caller's words in, a short German answer out."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from rezeption.booking.bookings import BookingRequest, BookingResult
from rezeption.domain.model import AppointmentStatus, Slot
from rezeption.language import normalize_phone, speak_time
from rezeption.language.names import match_name, usable_name
from rezeption.language.speech import speak_date, speak_day
from rezeption.retell.context import CallContext
from rezeption.retell.replies import (
    Reply,
    capitalized,
    offer_sentence,
    reply,
    slot_facts,
    speak_slots,
    spoken_day,
    why_not,
)
from rezeption.retell.request_keys import CHANGES
from rezeption.retell.tools import BookAppointmentArgs, CheckAvailabilityArgs
from rezeption.retell.understanding import (
    Clarify,
    Moment,
    instant,
    resolve_moment,
    resolve_service,
    resolve_staff,
)


def spoken_appointment(day: date, at: time, today: date) -> str:
    """Weekday, date and time, always all three: "morgen, am Freitag, dem 7. November, um 9 Uhr"."""
    relative = speak_date(day, today)
    full = f"am {speak_day(day, today)}, um {speak_time(at)}"
    return full if relative.startswith("am ") else f"{relative}, {full}"


async def check_availability(ctx: CallContext, args: CheckAvailabilityArgs) -> Reply:
    """Is the requested time free? Otherwise the one true reason and the nearest alternatives;
    without a time (a day, a part of a day, a week), the options in it."""
    service = resolve_service(ctx, args.dienstleistung)
    staff = resolve_staff(ctx.catalog, args.mitarbeiter)
    moment = resolve_moment(ctx, args.datum, args.uhrzeit, args.wochentag)
    staff_ref = staff.id if staff else None
    if moment.at is None:
        return await _window_options(ctx, service.name, staff_ref, moment)
    answer = await ctx.bookings.availability(
        tenant_id=ctx.tenant_id,
        service=service.id,
        start=instant(ctx, moment.day, moment.at),
        staff=staff_ref,
    )
    facts = {
        "datum": moment.day.isoformat(),
        "uhrzeit": moment.at.strftime("%H:%M"),
        "dienstleistung": service.name,
    }
    if answer.free:
        with_whom = f" bei {staff.name}" if staff else ""
        when = capitalized(spoken_appointment(moment.day, moment.at, ctx.today))
        message = f"{when} ist{with_whom} noch frei. Soll ich den Termin für Sie buchen?"
        free = [answer.catalog.staff_by_id(i).name for i in answer.check.free_staff_ids]
        return reply(True, message, frei=True, mitarbeiter_frei=free, **facts)
    reason = answer.reason or "slot_taken"
    refused = why_not(  # the salon as the answer saw it: a closure added a moment ago included
        answer.catalog, reason, service=service.name, day=moment.day, at=moment.at, today=ctx.today
    )
    if reason in _STAFF_REASONS and staff is not None:
        refused = f"{staff.name} {_STAFF_REASONS[reason]}"
    offer = offer_sentence(ctx.catalog, answer.alternatives, ctx.today, moment.day)
    return reply(
        False,
        f"{refused} {offer}".strip(),
        reason,
        frei=False,
        alternativen=[slot_facts(ctx.catalog, s) for s in answer.alternatives],
        **facts,
    )


_STAFF_REASONS = {
    "staff_absent": "ist an diesem Tag leider nicht im Salon.",
    "staff_not_working": "arbeitet zu dieser Zeit leider nicht.",
    "staff_break": "hat zu dieser Zeit Pause; dafür reicht die Zeit leider nicht.",
}


async def _window_options(
    ctx: CallContext, service_name: str, staff_ref: int | None, moment: Moment
) -> Reply:
    """The free starts of a day, a part of it or a span of days: up to three spread over it, or
    why there are none and the nearest alternatives."""
    answer = await ctx.bookings.day_availability(
        tenant_id=ctx.tenant_id,
        service=service_name,
        first_day=moment.day,
        last_day=moment.last_day,
        staff=staff_ref,
        hours=moment.window,
    )
    span = moment.last_day is not None and moment.last_day != moment.day
    facts: dict[str, Any] = {"datum": moment.day.isoformat(), "dienstleistung": service_name}
    if span and moment.last_day is not None:
        facts["bis_datum"] = moment.last_day.isoformat()
    if answer.slots:
        picks = _spread(list(answer.slots), 3)
        shown_day = None if span else moment.day
        offered = speak_slots(ctx.catalog, picks, ctx.today, shown_day)
        if span:
            message = f"Ich hätte {offered} frei. Was passt Ihnen?"
        else:
            day = spoken_day(moment.day, ctx.today)
            comma = "," if day.startswith("Am ") else ""
            message = f"{day}{comma} hätte ich {offered} frei. Welche Uhrzeit passt Ihnen?"
        return reply(True, message, frei=True, optionen=[slot_facts(ctx.catalog, s) for s in picks], **facts)
    reason = answer.reason or "day_full"
    refused = why_not(
        answer.catalog,
        reason,
        service=service_name,
        day=moment.day,
        at=None,
        today=ctx.today,
        whole_window=span,
    )
    offer = offer_sentence(ctx.catalog, answer.alternatives, ctx.today, None if span else moment.day)
    ask = "" if offer else " Darf es ein anderer Tag sein?"
    return reply(
        False,
        f"{refused} {offer}".strip() + ask,
        reason,
        frei=False,
        alternativen=[slot_facts(ctx.catalog, s) for s in answer.alternatives],
        **facts,
    )


def _spread(slots: list[Slot], limit: int) -> list[Slot]:
    """Up to `limit` distinct starts spread over the day (first, middle, last), in order."""
    unique: dict[object, Slot] = {}
    for slot in slots:
        unique.setdefault(slot.start, slot)
    starts = list(unique.values())
    if len(starts) <= limit:
        return starts
    step = (len(starts) - 1) / (limit - 1)
    return [starts[round(i * step)] for i in range(limit)]


async def book_appointment(ctx: CallContext, args: BookAppointmentArgs) -> Reply:
    """Book once name, service, day and time are known; say "gebucht" only when it is confirmed."""
    name = args.name or ctx.memory.get("name")
    if not usable_name(name):
        raise Clarify("missing_name", "Auf welchen Namen darf ich den Termin eintragen?")
    assert name is not None
    ctx.learn(name=name)
    phone = ctx.caller_number
    if args.telefon:
        phone = normalize_phone(args.telefon)
        if phone is None:
            raise Clarify(
                "invalid_phone",
                "Die Telefonnummer habe ich nicht richtig verstanden. Können Sie sie bitte wiederholen?",
            )
        ctx.learn(phone=phone)
    service = resolve_service(ctx, args.dienstleistung)
    staff = resolve_staff(ctx.catalog, args.mitarbeiter)
    moment = resolve_moment(ctx, args.datum, args.uhrzeit, args.wochentag)
    if moment.at is None:
        raise Clarify("missing_time", "Um welche Uhrzeit möchten Sie kommen?")
    start = instant(ctx, moment.day, moment.at)
    held = await _already_held(ctx, name, service.id, start, staff.id if staff else None)
    if held is not None:
        return held
    result = await ctx.bookings.book(
        BookingRequest(
            tenant_id=ctx.tenant_id,
            service=service.id,
            start=start,
            staff=staff.id if staff else None,
            customer_name=name,
            phone_e164=phone,
            call_id=ctx.call_id,
            source="phone",
            idempotency_key=ctx.idempotency_key,
        )
    )
    return booked_reply(ctx, result, name)


async def _already_held(
    ctx: CallContext, name: str, service_id: int, start: datetime, staff_id: int | None
) -> Reply | None:
    """The same booking said again in other words ("12:00", then "12 Uhr") in the same call: the
    caller's own appointment, answered as theirs, never as taken by someone else."""
    if not ctx.memory.get("booked") and CHANGES not in ctx.memory:  # nothing booked in this call
        return None  # (a call with changes may hold a booking whose reply was lost: look)
    for hit in await ctx.finder.store.by_call(ctx.tenant_id, ctx.call_id, after=ctx.now):
        same = hit.service_id == service_id and hit.starts_at == start
        if not same or (staff_id is not None and hit.staff_id != staff_id):
            continue
        booked_as = hit.customer_name or hit.spoken_name
        if booked_as and match_name(name, booked_as) is None:
            continue
        local = start.astimezone(ctx.catalog.tenant.zone)
        service = ctx.catalog.service_by_id(hit.service_id)
        staff = ctx.catalog.staff_by_id(hit.staff_id)
        when = spoken_appointment(local.date(), local.time(), ctx.today)
        return reply(
            True,
            f"Der Termin ist schon für Sie eingetragen: {service.name} {when} bei {staff.name}.",
            gebucht=True,
            schon_gebucht=True,
            referenz=ctx.finder.references.issue(ctx.tenant_id, hit.id, ctx.call_id),
            datum=local.date().isoformat(),
            uhrzeit=local.strftime("%H:%M"),
            dienstleistung=service.name,
            mitarbeiter=staff.name,
            name=booked_as or name,
        )
    return None


def booked_reply(ctx: CallContext, result: BookingResult, name: str) -> Reply:
    """ "Ich habe Ihren Termin gebucht: ..." with weekday, date, time, service, stylist and name."""
    appointment = result.appointment
    if appointment.status is AppointmentStatus.CANCELLED:  # a retry, replayed by its key, of a
        # booking cancelled or moved since (by the caller, the salon): told so, not promised a call
        return reply(
            False,
            "Dieser Termin gilt so nicht mehr: Er wurde inzwischen storniert oder verlegt. Ich kann gern "
            "nachsehen, welche Termine Sie haben, oder einen anderen Termin suchen.",
            "appointment_not_active",
            gebucht=False,
        )
    local = appointment.starts_at.astimezone(ctx.catalog.tenant.zone)
    booked = list(ctx.memory.get("booked", []))
    if appointment.id not in booked:
        booked.append(appointment.id)
    ctx.learn(booked=booked)
    when = spoken_appointment(local.date(), local.time(), ctx.today)
    facts = {
        "referenz": ctx.finder.references.issue(ctx.tenant_id, appointment.id, ctx.call_id),
        "datum": local.date().isoformat(),
        "uhrzeit": local.strftime("%H:%M"),
        "dienstleistung": result.service.name,
        "mitarbeiter": result.staff.name,
        "name": name,
    }
    if appointment.status is not AppointmentStatus.CONFIRMED:
        return reply(
            False,
            "Ihr Termin ist vorgemerkt, aber noch nicht bestätigt. Wir melden uns bei Ihnen.",
            "pending",
            gebucht=False,
            **facts,
        )
    if result.awaiting_salon:  # held at the calendar until the salon confirms: never "gebucht"
        message = (
            f"Ich habe Ihren Termin angefragt: {result.service.name} {when} bei {result.staff.name}, "
            f"auf den Namen {name}. Der Salon bestätigt ihn noch; falls es nicht klappt, melden wir uns."
        )
        return reply(True, message, gebucht=False, angefragt=True, **facts)
    message = (
        f"Ich habe Ihren Termin gebucht: {result.service.name} {when} bei {result.staff.name}, "
        f"auf den Namen {name}."
    )
    return reply(True, message, gebucht=True, **facts)
