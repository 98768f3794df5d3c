"""`rezeption appointments list|add|cancel|block|unblock`: the day plan, walk-ins and blocked time
from a terminal, through the same booking use cases and rules as the phone (source "admin").

Days and times are taken as a caller says them ("heute", "Freitag", "halb drei"). A booking the
rules refuse prints the sentence a caller would hear, with the nearest alternatives, and exits 1.
Phone numbers are shown masked.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rezeption.booking.bookings import BookingRequest
from rezeption.booking.catalog import find_staff
from rezeption.bootstrap import Services
from rezeption.cli.salons import TenantOption, short_day
from rezeption.cli.support import (
    EXIT_REFUSED,
    fail,
    on_salon,
    spoken_day,
    spoken_time,
)
from rezeption.domain.errors import BookingError
from rezeption.domain.model import Catalog, Interval
from rezeption.language import mask_phone, normalize_phone
from rezeption.language.offers import refusal_sentence
from rezeption.store.operator import PlanEntry, block_time, day_plan, unblock_time

appointments_app = typer.Typer(
    help="Appointments: the day plan, walk-ins, cancellations, blocked time.", no_args_is_help=True
)
console = Console()

STATUS = {"confirmed": "bestätigt", "pending": "offen", "cancelled": "storniert", "failed": "gescheitert"}
SOURCE = {"phone": "Telefon", "admin": "Salon", "calcom": "Cal.com", "gdpr_erase": "DSGVO"}


def _day_window(catalog: Catalog, first: date, last: date) -> Interval:
    zone = catalog.tenant.zone
    start = datetime.combine(first, time(0), tzinfo=zone)
    return Interval(start, datetime.combine(last + timedelta(days=1), time(0), tzinfo=zone))


@appointments_app.command("list")
def appointments_list(
    day: Annotated[
        str, typer.Option("--date", help='A day as said: "heute", "Freitag", "24.12.".')
    ] = "heute",
    staff: Annotated[str | None, typer.Option(help="Only this stylist.")] = None,
    tenant: TenantOption = None,
) -> None:
    """A readable day plan: each appointment and blocked time, by start, with stylist and status."""

    async def run(services: Services, catalog: Catalog) -> tuple[Catalog, date, date, list[PlanEntry]]:
        first, span = spoken_day(catalog, day, services.clock.now())
        last = span[1] if span else first
        members = None
        if staff:
            members = [find_staff(catalog, staff).id]
        entries = await day_plan(
            services.database, catalog.tenant.id, _day_window(catalog, first, last), staff_ids=members
        )
        return catalog, first, last, entries

    catalog, first, last, entries = on_salon(tenant, run)
    zone = catalog.tenant.zone
    title = short_day(first) if first == last else f"{short_day(first)} bis {short_day(last)}"
    if not entries:
        console.print(f"{catalog.tenant.name}, {title}: keine Termine")
        return
    table = Table(title=f"{catalog.tenant.name}, {title}")
    for column in ("Nr.", "Tag", "Zeit", "Mitarbeiter", "Leistung", "Kunde", "Telefon", "Status", "Quelle"):
        table.add_column(column)
    for e in entries:
        start, end = e.starts_at.astimezone(zone), e.ends_at.astimezone(zone)
        clock = f"{start:%H:%M}-{end:%H:%M}" if start.date() == end.date() else f"ab {start:%H:%M}"
        if e.kind == "blocked":
            table.add_row(
                "-", short_day(start.date()), clock, e.staff, "blockiert", e.reason or "-", "", "", ""
            )
            continue
        table.add_row(
            str(e.appointment_id),
            short_day(start.date()),
            clock,
            e.staff,
            e.service or "",
            e.customer or "-",
            mask_phone(e.phone) if e.phone else "-",
            STATUS.get(e.status or "", e.status or ""),
            SOURCE.get(e.source or "", e.source or ""),
        )
    console.print(table)


@appointments_app.command("add")
def appointments_add(
    service: Annotated[str, typer.Option(help="Service name or alias.")],
    day: Annotated[str, typer.Option("--date", help='The day as said: "morgen", "Freitag".')],
    at: Annotated[str, typer.Option("--time", help='The time as said: "10 Uhr", "halb drei".')],
    name: Annotated[str, typer.Option(help="The customer's name.")],
    phone: Annotated[str | None, typer.Option(help="The customer's phone number.")] = None,
    staff: Annotated[str | None, typer.Option(help="A stylist (default: whoever is free).")] = None,
    tenant: TenantOption = None,
) -> None:
    """Book a walk-in or a call taken at the desk, by the phone's rules."""
    number = normalize_phone(phone) if phone else None
    if phone and number is None:
        raise fail(f"--phone: not a phone number: {phone!r}")

    async def run(services: Services, catalog: Catalog) -> str:
        now = services.clock.now()
        first, _ = spoken_day(catalog, day, now)
        start = datetime.combine(first, spoken_time(catalog, first, at, now), tzinfo=catalog.tenant.zone)
        try:
            result = await services.bookings.book(
                BookingRequest(
                    tenant_id=catalog.tenant.id,
                    service=service,
                    start=start,
                    staff=staff,
                    customer_name=name,
                    phone_e164=number,
                    source="admin",
                )
            )
        except BookingError as error:
            today = now.astimezone(catalog.tenant.zone).date()
            raise fail(refusal_sentence(catalog, error, today), EXIT_REFUSED) from error
        appointment = result.appointment
        local = appointment.starts_at.astimezone(catalog.tenant.zone)
        return (
            f"Nr. {appointment.id}: {result.service.name} am {short_day(local.date())} um {local:%H:%M} "
            f"bei {result.staff.name} für {name} ({STATUS.get(appointment.status.value, appointment.status)})"
        )

    console.print(on_salon(tenant, run))


@appointments_app.command("cancel")
def appointments_cancel(
    appointment_id: Annotated[int, typer.Argument(help="The number shown by `appointments list`.")],
    tenant: TenantOption = None,
) -> None:
    """Cancel an appointment (also inside the callers' change notice; never one already begun)."""

    async def run(services: Services, catalog: Catalog) -> str:
        result = await services.bookings.cancel(
            tenant_id=catalog.tenant.id,
            appointment_id=appointment_id,
            source="admin",
            respect_notice=False,
        )
        local = result.appointment.starts_at.astimezone(catalog.tenant.zone)
        when = f"am {short_day(local.date())} um {local:%H:%M}"
        return f"Nr. {appointment_id} storniert: {result.service.name} {when}"

    console.print(on_salon(tenant, run))


@appointments_app.command("block")
def appointments_block(
    staff: Annotated[str, typer.Option(help="The stylist whose time is blocked.")],
    day: Annotated[str, typer.Option("--date", help='The day as said: "morgen", "Freitag".')],
    start: Annotated[str, typer.Option("--from", help='From, e.g. "14 Uhr".')],
    end: Annotated[str, typer.Option("--to", help='Until, e.g. "15:30".')],
    reason: Annotated[str | None, typer.Option(help="Why (shown in the day plan).")] = None,
    tenant: TenantOption = None,
) -> None:
    """Block a stylist's time (a meeting, a private appointment): no booking may touch it."""

    async def run(services: Services, catalog: Catalog) -> str:
        now = services.clock.now()
        first, _ = spoken_day(catalog, day, now)
        zone = catalog.tenant.zone
        begin = datetime.combine(first, spoken_time(catalog, first, start, now), tzinfo=zone)
        finish = datetime.combine(first, spoken_time(catalog, first, end, now), tzinfo=zone)
        if finish <= begin:
            raise fail(f"--to ({finish:%H:%M}) must lie after --from ({begin:%H:%M})")
        member = find_staff(catalog, staff)
        block_id = await block_time(
            services.database, catalog.tenant.id, member.id, Interval(begin, finish), reason
        )
        return f"blockiert (Nr. {block_id}): {member.name} am {short_day(first)} {begin:%H:%M}-{finish:%H:%M}"

    console.print(on_salon(tenant, run))


@appointments_app.command("unblock")
def appointments_unblock(
    block_id: Annotated[int, typer.Argument(help="The number `appointments block` printed.")],
    tenant: TenantOption = None,
) -> None:
    """Free time blocked by `appointments block` again."""

    async def run(services: Services, catalog: Catalog) -> None:
        await unblock_time(services.database, catalog.tenant.id, block_id)

    on_salon(tenant, run)
    console.print(f"Nr. {block_id} freigegeben")
