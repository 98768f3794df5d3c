"""`rezeption availability`: free times as the receptionist sees them, in German, from the words a
caller would use; the resolved date is always shown, and a refusal prints the caller's sentence
(with the nearest alternatives) and exits 1."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from rezeption.booking.availability import DayAnswer
from rezeption.cli.salons import short_day
from rezeption.cli.support import (
    EXIT_REFUSED,
    load_settings,
    run_command,
    salon,
    services_ready,
    spoken_day,
    spoken_time,
)
from rezeption.domain.model import Catalog, Slot
from rezeption.language.offers import offer_sentence, why_not
from rezeption.language.speech import speak_day

console = Console()


def show_availability(
    *, service: str, day: str, at: str | None, staff: str | None, days: int, tenant: str | None
) -> None:
    """Print the answer; exit 1 when the time or the days asked for hold nothing free."""
    settings = load_settings()

    async def run() -> tuple[Catalog, date, str, bool, Any]:
        async with services_ready(settings) as services:
            catalog = await salon(services, tenant)
            now = services.clock.now()
            today = now.astimezone(catalog.tenant.zone).date()
            first, span = spoken_day(catalog, day, now)
            if at is not None:
                start = datetime.combine(
                    first, spoken_time(catalog, first, at, now), tzinfo=catalog.tenant.zone
                )
                answer = await services.bookings.availability(
                    tenant_id=catalog.tenant.id, service=service, start=start, staff=staff
                )
                local = start.astimezone(catalog.tenant.zone)
                header = f"{speak_day(first, today)}, {local:%H:%M} Uhr ({first.isoformat()})"
                if answer.free:
                    who = ", ".join(catalog.staff_by_id(i).name for i in answer.check.free_staff_ids)
                    return catalog, today, header, True, f"{answer.service.name}: frei bei {who}"
                sentence = why_not(
                    answer.catalog,
                    answer.reason or "slot_taken",
                    service=answer.service.name,
                    day=first,
                    at=local.time(),
                    today=today,
                )
                offer = offer_sentence(catalog, answer.alternatives, today, first)
                return catalog, today, header, False, f"{sentence} {offer}".strip()
            last = span[1] if span else first
            if days > 1:
                last = max(last, date.fromordinal(first.toordinal() + days - 1))
            window = await services.bookings.day_availability(
                tenant_id=catalog.tenant.id, service=service, first_day=first, last_day=last, staff=staff
            )
            header = speak_day(first, today) if first == last else f"{short_day(first)} bis {short_day(last)}"
            header += f" ({first.isoformat()}{'' if first == last else ' – ' + last.isoformat()})"
            return catalog, today, header, bool(window.slots), window

    catalog, today, header, free, answer = run_command(run)
    console.print(f"[bold]{catalog.tenant.name}[/bold]: {header}")
    if isinstance(answer, str):
        typer.echo(answer, err=not free)  # a refusal on stderr, as `parse` does
        if not free:
            raise typer.Exit(EXIT_REFUSED)
        return
    assert isinstance(answer, DayAnswer)
    if not answer.slots:
        span = answer.first_day != answer.last_day
        sentence = why_not(
            answer.catalog or catalog,
            answer.reason or "day_full",
            service=answer.service.name,
            day=answer.first_day,
            at=None,
            today=today,
            whole_window=span,
        )
        offer = offer_sentence(catalog, answer.alternatives, today, None if span else answer.first_day)
        typer.echo(f"{sentence} {offer}".strip(), err=True)
        raise typer.Exit(EXIT_REFUSED)
    _table(catalog, answer.service.name, answer.slots)


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
