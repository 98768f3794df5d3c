"""`rezeption tenants list|show|load` and `rezeption closures list|add|remove`: the salons as an
operator sees them, and salon-wide closures or special hours that apply to availability at once.

Closures added here are kept across salon-file loads (the file's own closures are replaced by each
load); removing one of the file's lasts until the file is loaded again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rezeption.bootstrap import Services
from rezeption.cli.support import (
    fail,
    load_settings,
    on_salon,
    run_command,
    services_ready,
    spoken_day,
)
from rezeption.domain.model import WEEKDAYS, Catalog, TimeRange
from rezeption.language.speech import WEEKDAY_NAMES
from rezeption.ops.schema_check import require_schema, run_with_schema
from rezeption.store.db import Database
from rezeption.store.operator import add_closure, remove_closure, salons
from rezeption.store.salon_file import SalonFileError, read_salon
from rezeption.store.salon_import import count_tenants, import_salon

tenants_app = typer.Typer(help="Salons (tenants): list, show, load from a salon file.", no_args_is_help=True)
closures_app = typer.Typer(help="Salon-wide closures and special hours.", no_args_is_help=True)
console = Console()

TenantOption = Annotated[str | None, typer.Option("--tenant", help="Salon slug (default: the only salon).")]


async def _the_catalog(_services: Services, catalog: Catalog) -> Catalog:
    return catalog


def short_day(day: date) -> str:
    """ "Do 24.12.2026"."""
    return f"{WEEKDAY_NAMES[day.weekday()][:2]} {day:%d.%m.%Y}"


def spans(ranges: Sequence[TimeRange]) -> str:
    """ "09:00-13:00, 14:00-18:00"."""
    return ", ".join(f"{r.start:%H:%M}-{r.end:%H:%M}" for r in ranges)


@tenants_app.command("list")
def tenants_list() -> None:
    """Every salon: slug, name, calendar, staff, services, appointments ahead, how calls find it."""
    settings = load_settings()

    async def run() -> None:
        async with services_ready(settings) as services:
            found = await salons(services.database, now=services.clock.now())
        if not found:
            console.print("Noch kein Salon. Laden: rezeption tenants load salons/friseur1.yaml")
            return
        table = Table(title="Salons")
        for column in ("Slug", "Name", "Kalender", "Team", "Leistungen", "Termine voraus", "Erreichbar über"):
            table.add_column(column)
        for s in found:
            table.add_row(
                s.slug, s.name, s.provider, str(s.staff), str(s.services), str(s.upcoming), " ".join(s.routes)
            )
        console.print(table)

    run_command(run)


@tenants_app.command("show")
def tenants_show(
    slug: Annotated[str | None, typer.Argument(help="Salon slug (default: the only one).")] = None,
) -> None:
    """A salon as availability sees it: hours, closures, team with hours and absences, services."""
    catalog = on_salon(slug, _the_catalog)
    tenant = catalog.tenant
    zone = tenant.zone
    console.print(
        f"[bold]{tenant.name}[/bold] ({tenant.slug}), {tenant.timezone}, Kalender: {tenant.calendar_provider}"
    )
    policy = tenant.policy
    console.print(
        f"Vorlauf {int(policy.min_notice.total_seconds() // 60)} min, buchbar {policy.horizon_days} Tage im "
        f"Voraus, Raster {int(policy.slot_grid.total_seconds() // 60)} min, Änderungen bis "
        f"{int(policy.change_min_notice.total_seconds() // 3600)} h vorher"
    )
    hours = Table(title="Öffnungszeiten")
    hours.add_column("Tag")
    hours.add_column("Geöffnet")
    for index, _ in enumerate(WEEKDAYS):
        hours.add_row(WEEKDAY_NAMES[index], spans(tenant.opening_hours.get(index, ())) or "geschlossen")
    console.print(hours)
    _print_closures(catalog)
    team = Table(title="Team")
    for column in ("Name", "Arbeitszeiten", "Pausen", "Abwesend"):
        team.add_column(column)
    for member in (m for m in catalog.staff if m.active):
        worked = "; ".join(
            f"{WEEKDAY_NAMES[d][:2]} {spans(r)}" for d, r in sorted(member.working_hours.items())
        )
        breaks = "; ".join(f"{WEEKDAY_NAMES[d][:2]} {spans(r)}" for d, r in sorted(member.breaks.items()))
        away = "; ".join(
            f"{a.start.astimezone(zone):%d.%m. %H:%M}-{a.end.astimezone(zone):%d.%m. %H:%M}"
            for a in member.absences
        )
        team.add_row(member.name, worked, breaks or "-", away or "-")
    console.print(team)
    offer = Table(title="Leistungen")
    for column in ("Leistung", "Dauer", "Puffer", "Preis", "Wer"):
        offer.add_column(column)
    for service in (s for s in catalog.services if s.active):
        minutes = int(service.duration.total_seconds() // 60)
        buffers = int((service.buffer_before + service.buffer_after).total_seconds() // 60)
        price = (
            f"{service.price_cents / 100:.2f} €".replace(".", ",") if service.price_cents is not None else "-"
        )
        who = ", ".join(m.name for m in catalog.qualified_staff(service))
        offer.add_row(service.name, f"{minutes} min", f"{buffers} min", price, who)
    console.print(offer)


def _print_closures(catalog: Catalog) -> None:
    if not catalog.closures:
        console.print("Keine Schließtage oder Sonderöffnungszeiten.")
        return
    table = Table(title="Schließtage und Sonderöffnungszeiten")
    for column in ("Nr.", "Von", "Bis", "Geöffnet", "Grund", "Jährlich", "Quelle"):
        table.add_column(column)
    for c in catalog.closures:
        table.add_row(
            str(c.id),
            short_day(c.first_day),
            short_day(c.last_day),
            spans(c.hours) or "geschlossen",
            c.reason or "-",
            "ja" if c.yearly else "nein",
            "Salondatei" if c.origin == "file" else "Befehl",
        )
    console.print(table)


@tenants_app.command("load")
def tenants_load(
    file: Annotated[Path, typer.Argument(help="A salon file (YAML).")],
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Only load when the database has no salon.")
    ] = False,
) -> None:
    """Create or update a salon from its file (loading the same file again changes nothing else)."""
    try:
        salon_file = read_salon(file)
    except SalonFileError as error:
        raise fail(f"salon file rejected: {error}") from error
    settings = load_settings()

    async def run() -> str:
        database = Database.from_url(settings.database_url)
        try:
            await require_schema(database)
            if if_empty and await count_tenants(database) > 0:
                return "database already holds a salon; nothing loaded"
            report = await import_salon(database, salon_file, now=settings.clock().now())
            verb = "created" if report.created else "updated"
            return f"salon {report.slug!r} {verb}: {report.services} services, {report.staff} staff"
        finally:
            await database.dispose()

    try:
        console.print(run_with_schema(run))
    except SalonFileError as error:
        raise fail(f"salon file rejected: {error}") from error


@closures_app.command("list")
def closures_list(tenant: TenantOption = None) -> None:
    """The salon's closures and special hours (from the salon file and from this command)."""
    _print_closures(on_salon(tenant, _the_catalog))


def _hours(text: str | None) -> list[tuple[time, time]]:
    """ "09:00-13:00" or "9-13,14-16" -> [(09:00, 13:00), ...]; None -> closed all day."""
    if not text:
        return []
    ranges = []
    for part in text.split(","):
        try:
            start, end = (piece.strip() for piece in part.split("-"))
            ranges.append((_clock(start), _clock(end)))
        except ValueError as error:
            raise fail(f"--hours must look like 09:00-13:00 (or 9-13,14-16), got {text!r}") from error
    return ranges


def _clock(text: str) -> time:
    return time(int(text)) if text.isdigit() else time.fromisoformat(text)


@closures_app.command("add")
def closures_add(
    day: Annotated[str, typer.Option("--date", help='First day: "24.12.", "2026-12-24", "nächsten Montag".')],
    until: Annotated[str | None, typer.Option(help="Last day (inclusive) of a range.")] = None,
    hours: Annotated[
        str | None, typer.Option(help='Open only then, e.g. "09:00-13:00" (default: closed all day).')
    ] = None,
    reason: Annotated[str | None, typer.Option(help='Spoken to callers: "Betriebsferien".')] = None,
    yearly: Annotated[bool, typer.Option(help="Repeat the month and day every year.")] = False,
    tenant: TenantOption = None,
) -> None:
    """Close the salon (or open it at other hours) on a day or a range; applies to availability at once."""
    ranges = _hours(hours)

    async def run(services: Services, catalog: Catalog) -> str:
        now = services.clock.now()
        first, span = spoken_day(catalog, day, now)
        last = spoken_day(catalog, until, now)[0] if until else (span[1] if span else first)
        if last < first:
            raise fail(f"--until ({last}) lies before --date ({first})")
        closure_id = await add_closure(
            services.database,
            catalog.tenant.id,
            first_day=first,
            last_day=last,
            hours=ranges,
            reason=reason,
            yearly=yearly,
        )
        what = f"geöffnet {', '.join(f'{s:%H:%M}-{e:%H:%M}' for s, e in ranges)}" if ranges else "geschlossen"
        days = short_day(first) if last == first else f"{short_day(first)} bis {short_day(last)}"
        return f"Nr. {closure_id}: {days} {what}{' (jährlich)' if yearly else ''}"

    console.print(on_salon(tenant, run))


@closures_app.command("remove")
def closures_remove(
    closure_id: Annotated[int, typer.Argument(help="The number shown by `closures list`.")],
    tenant: TenantOption = None,
) -> None:
    """Remove a closure (one from the salon file returns with the file's next load)."""

    async def run(services: Services, catalog: Catalog) -> None:
        await remove_closure(services.database, catalog.tenant.id, closure_id)

    on_salon(tenant, run)
    console.print(f"Nr. {closure_id} entfernt")
