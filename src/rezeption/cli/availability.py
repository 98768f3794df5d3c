"""`rezeption availability`: free times as the receptionist sees them, in German, from the words a
caller would use; the resolved date is always shown, and a refusal prints the caller's sentence
(with the nearest alternatives) and exits 1."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import typer
from rich.console import Console
from rich.table import Table

from rezeption.bootstrap import Services
from rezeption.cli.salons import short_day
from rezeption.cli.support import (
    EXIT_REFUSED,
    on_salon,
    spoken_day,
    spoken_time,
)
from rezeption.domain.model import Catalog, Slot
from rezeption.language.offers import offer_sentence, why_not
from rezeption.language.speech import speak_day

console = Console()


@dataclass(frozen=True)
class Shown:
    """What `availability` prints: a header, the free starts, or the caller's refusal sentence."""

    catalog: Catalog
    header: str
    service: str
    slots: tuple[Slot, ...] = ()
    free_with: str | None = None
    refusal: str | None = None


def show_availability(
    *, service: str, day: str, at: str | None, staff: str | None, days: int, tenant: str | None
) -> None:
    """Print the answer; exit 1 (the refusal on stderr, as `parse` does) when the time or the days
    asked for hold nothing free."""

    async def run(services: Services, catalog: Catalog) -> Shown:
        now = services.clock.now()
        today = now.astimezone(catalog.tenant.zone).date()
        first, span = spoken_day(catalog, day, now)
        if at is not None:
            start = datetime.combine(first, spoken_time(catalog, first, at, now), tzinfo=catalog.tenant.zone)
            answer = await services.bookings.availability(
                tenant_id=catalog.tenant.id, service=service, start=start, staff=staff
            )
            header = f"{speak_day(first, today)}, {start:%H:%M} Uhr ({first.isoformat()})"
            name = answer.service.name
            if answer.free:
                who = ", ".join(answer.catalog.staff_by_id(i).name for i in answer.check.free_staff_ids)
                return Shown(answer.catalog, header, name, free_with=who)
            sentence = why_not(
                answer.catalog,
                answer.reason or "slot_taken",
                service=name,
                day=first,
                at=start.time(),
                today=today,
            )
            offer = offer_sentence(answer.catalog, answer.alternatives, today, first)
            return Shown(answer.catalog, header, name, refusal=f"{sentence} {offer}".strip())
        last = span[1] if span else first
        if days > 1:
            last = max(last, first + timedelta(days=days - 1))
        window = await services.bookings.day_availability(
            tenant_id=catalog.tenant.id, service=service, first_day=first, last_day=last, staff=staff
        )
        header = speak_day(first, today) if first == last else f"{short_day(first)} bis {short_day(last)}"
        header += f" ({first.isoformat()}{'' if first == last else ' – ' + last.isoformat()})"
        name = window.service.name
        if window.slots:
            return Shown(window.catalog, header, name, slots=window.slots)
        whole = first != last
        sentence = why_not(
            window.catalog,
            window.reason or "day_full",
            service=name,
            day=first,
            at=None,
            today=today,
            whole_window=whole,
        )
        offer = offer_sentence(window.catalog, window.alternatives, today, None if whole else first)
        return Shown(window.catalog, header, name, refusal=f"{sentence} {offer}".strip())

    shown = on_salon(tenant, run)
    console.print(f"[bold]{shown.catalog.tenant.name}[/bold]: {shown.header}")
    if shown.refusal is not None:
        typer.echo(shown.refusal, err=True)
        raise typer.Exit(EXIT_REFUSED)
    if shown.free_with is not None:
        typer.echo(f"{shown.service}: frei bei {shown.free_with}")
        return
    _table(shown.catalog, shown.service, shown.slots)


def _table(catalog: Catalog, service: str, slots: tuple[Slot, ...]) -> None:
    zone = catalog.tenant.zone
    by_start: dict[tuple[date, time], list[str]] = {}
    for slot in slots:
        local = slot.start.astimezone(zone)
        by_start.setdefault((local.date(), local.time()), []).append(catalog.staff_by_id(slot.staff_id).name)
    table = Table(title=f"{service}: {len(by_start)} freie Startzeiten")
    for column in ("Tag", "Uhrzeit", "Mitarbeiter"):
        table.add_column(column)
    for (on, at), names in by_start.items():
        table.add_row(short_day(on), at.strftime("%H:%M"), ", ".join(names))
    console.print(table)
