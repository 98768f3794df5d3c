"""`rezeption monitor`: a live terminal view of the last hour for the engineer on call (Rich).

Bookings per minute and their success, p50/p95 per function, caller-ID outcomes, outbox, callback
requests and pending rows, the latest failures with their reasons; with `--metrics-url` also the
counters only the servers keep (orphans found, compensations, deadlocks). Redraws every
`--interval` seconds until Ctrl-C, or for `--seconds`; `--once` prints one frame and exits (for
a script or a ticket). The times are shown in Europe/Berlin.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.columns import Columns
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from rezeption.bootstrap import Services
from rezeption.cli.support import load_settings, run_command, services_ready
from rezeption.ops.monitor_data import BOOK, Snapshot, scrape, snapshot

BERLIN = ZoneInfo("Europe/Berlin")
BARS = " ▁▂▃▄▅▆▇█"
console = Console()


def monitor(
    salon: Annotated[str | None, typer.Option(help="Only this salon (its slug).")] = None,
    interval: Annotated[float, typer.Option(min=0.5, max=300, help="Seconds between redraws.")] = 5.0,
    seconds: Annotated[float | None, typer.Option(min=1, help="Stop after this long (else Ctrl-C).")] = None,
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit.")] = False,
    metrics_url: Annotated[
        str | None, typer.Option(help="A server's /metrics, for the counters only servers keep.")
    ] = None,
) -> None:
    """Live view of the last hour: bookings, latency, caller ID, outbox, failures."""
    settings = load_settings()
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None

    async def frame(services: Services) -> Snapshot:
        counters = None
        if metrics_url:
            try:
                counters = await scrape(metrics_url, token)
            except Exception as error:  # the view goes on without them, and says so
                counters = {f"/metrics nicht erreichbar: {type(error).__name__}": float("nan")}
        return await snapshot(services.database, services.clock.now(), salon=salon, metrics=counters)

    async def run() -> None:
        async with services_ready(settings) as services:
            if once:
                console.print(render(await frame(services)))
                return
            stop_at = time.monotonic() + seconds if seconds else None
            with Live(console=console, refresh_per_second=2, screen=False) as live:
                while stop_at is None or time.monotonic() < stop_at:
                    live.update(render(await frame(services)))
                    await asyncio.sleep(interval)

    try:
        run_command(run)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def render(shot: Snapshot) -> Group:
    """One frame."""
    local = shot.now.astimezone(BERLIN)
    success = shot.booking_success
    headline = Text(f"rezeption · letzte Stunde bis {local:%H:%M:%S} ({local:%d.%m.%Y})  ", style="bold")
    if success is None:
        headline.append("Buchungserfolg: —", style="dim")
    else:
        style = "green" if success >= 0.95 else "yellow" if success >= 0.90 else "bold red"
        headline.append(f"Buchungserfolg: {success:.1%}", style=style)
    return Group(
        headline,
        Columns([_bookings(shot), _outbox(shot), _caller_id(shot)], expand=False),
        _functions(shot),
        _failures(shot),
        *([_counters(shot)] if shot.counters is not None else []),
    )


def _bookings(shot: Snapshot) -> Panel:
    per_minute = shot.bookings_per_minute[-30:]
    top = max((ok + failed for _, ok, failed in per_minute), default=0)
    spark = "".join(
        BARS[min(8, round(8 * (ok + failed) / top))] if top else " " for _, ok, failed in per_minute
    )
    stats = shot.functions.get(BOOK)
    body = Text(spark or "keine Buchungen", style="cyan")
    if stats is not None:
        body.append(f"\n{stats.ok} gebucht, {stats.failed} fehlgeschlagen\n{stats.calls} Versuche")
        body.append(f"\n{stats.calls / 60:.2f} pro Minute im Schnitt")
    return Panel(body, title="Buchungen pro Minute", width=40)


def _outbox(shot: Snapshot) -> Panel:
    facts = shot.facts
    if not facts.get("rezeption_metrics_database_up"):
        return Panel(Text("Datenbank antwortet nicht", style="bold red"), title="Outbox", width=44)
    table = Table.grid(padding=(0, 1))
    rows = [
        ("Outbox-Jobs offen", facts.get("rezeption_outbox_jobs", 0), None),
        ("ältester Job", facts.get("rezeption_outbox_oldest_job_age_seconds", 0), 900),
        ("Rückrufwünsche", facts.get("rezeption_callback_requests_waiting", 0), None),
        ("ältester Rückruf", facts.get("rezeption_callback_request_oldest_age_seconds", 0), 3600),
        ("pending Termine", facts.get("rezeption_pending_appointments", 0), None),
        ("ältester pending", facts.get("rezeption_pending_appointment_oldest_age_seconds", 0), 900),
    ]
    for label, value, limit in rows:
        shown = _age(value) if limit is not None else f"{value:.0f}"
        style = "bold red" if limit is not None and value > limit else ""
        table.add_row(label, Text(shown, style=style))
    return Panel(table, title="Outbox, Rückrufe, pending", width=44)


def _caller_id(shot: Snapshot) -> Panel:
    table = Table.grid(padding=(0, 1))
    names = {"known": "erkannt", "unknown": "unbekannt", "shared": "geteilte Nummer", "disabled": "Flag aus"}
    for outcome, count in shot.caller_id.most_common():
        table.add_row(names.get(outcome, outcome), str(count))
    return Panel(table if shot.caller_id else Text("keine Anrufe", style="dim"), title="Caller ID", width=32)


def _functions(shot: Snapshot) -> Table:
    table = Table(title="Funktionen", title_justify="left")
    for column in ("Funktion", "Aufrufe", "ok", "Fehler", "p50 ms", "p95 ms"):
        table.add_column(column, justify="left" if column == "Funktion" else "right")
    for name, stats in shot.functions.items():
        table.add_row(
            name,
            str(stats.calls),
            str(stats.ok),
            Text(str(stats.failed), style="red" if stats.failed else ""),
            f"{stats.p50_ms:.0f}",
            Text(f"{stats.p95_ms:.0f}", style="yellow" if stats.p95_ms > 1000 else ""),
        )
    return table


def _failures(shot: Snapshot) -> Table:
    table = Table(title="Letzte Fehler", title_justify="left")
    for column in ("Zeit", "Salon", "Funktion", "Grund", "ms"):
        table.add_column(column)
    for failure in shot.failures:
        table.add_row(
            f"{failure.at.astimezone(BERLIN):%H:%M:%S}",
            failure.salon,
            failure.function,
            failure.reason,
            str(failure.latency_ms),
        )
    if not shot.failures:
        table.add_row("—", "", "keine Fehler in der letzten Stunde", "", "")
    return table


def _counters(shot: Snapshot) -> Panel:
    table = Table.grid(padding=(0, 1))
    for name, value in sorted((shot.counters or {}).items()):
        table.add_row(name, "—" if value != value else f"{value:.0f}")
    return Panel(table, title="Zähler der Server (seit ihrem Start)")


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
