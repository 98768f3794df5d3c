"""`rezeption jobs list|retry|resolve`: the outbox's work that waits for a person — callback
requests (a caller to ring back) and dead jobs (tried until the worker gave up) — and what an
operator does with it: run a job again, or mark it settled.

Payloads are shown without names or numbers (an appointment or customer number points to them).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rezeption.cli.support import load_settings, run_command, services_ready
from rezeption.store import outbox
from rezeption.store.operator import resolve_job, retry_job

jobs_app = typer.Typer(help="Callback requests and dead jobs: list, retry, resolve.", no_args_is_help=True)
console = Console()

CALLBACK = "callback_request"
SHOWN_FIELDS = ("appointment_id", "customer_id", "start", "reason", "uid", "external_uid")
STATUS = {"pending": "wartet", "running": "läuft", "done": "erledigt", "dead": "aufgegeben"}


@jobs_app.command("list")
def jobs_list(
    status: Annotated[
        str | None, typer.Option(help="pending, running, done or dead (default: what waits for a person).")
    ] = None,
    kind: Annotated[str | None, typer.Option(help="e.g. callback_request, calendar_cancel.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
) -> None:
    """Jobs, newest first; by default the callback requests still open and every dead job."""
    settings = load_settings()

    async def run() -> list[outbox.JobView]:
        async with services_ready(settings) as services:
            if status or kind:
                return await outbox.jobs(services.database, status=status, kind=kind, limit=limit)
            callbacks = await outbox.jobs(services.database, status="pending", kind=CALLBACK, limit=limit)
            dead = await outbox.jobs(services.database, status="dead", limit=limit)
            return sorted([*callbacks, *dead], key=lambda j: -j.id)[:limit]

    found = run_command(run)
    if not found:
        console.print("0 Aufgaben: keine offenen Rückrufe, keine aufgegebenen Jobs")
        return
    table = Table(title=f"{len(found)} Aufgabe(n)")
    for column in ("Nr.", "Art", "Status", "Versuche", "Fällig", "Worum", "Letzter Fehler"):
        table.add_column(column)
    for job in found:
        about = ", ".join(f"{k}={job.payload[k]}" for k in SHOWN_FIELDS if k in job.payload)
        table.add_row(
            str(job.id),
            "Rückruf" if job.kind == CALLBACK else job.kind,
            STATUS.get(job.status, job.status),
            str(job.attempts),
            f"{job.run_after:%d.%m.%Y %H:%M} UTC",
            about,
            (job.last_error or "")[:80],
        )
    console.print(table)


@jobs_app.command("retry")
def jobs_retry(job_id: Annotated[int, typer.Argument(help="The job's number.")]) -> None:
    """Run a dead job again now (attempts start from zero); the worker picks it up."""
    settings = load_settings()

    async def run() -> str:
        async with services_ready(settings) as services:
            return await retry_job(services.database, job_id, now=services.clock.now())

    kind = run_command(run)
    console.print(f"Nr. {job_id} ({kind}) wird erneut ausgeführt")


@jobs_app.command("resolve")
def jobs_resolve(
    job_id: Annotated[int, typer.Argument(help="The job's number.")],
    note: Annotated[
        str | None, typer.Option(help='What was done, e.g. "zurückgerufen, neuer Termin".')
    ] = None,
) -> None:
    """Mark a callback request done (the caller was rung back) or a dead job settled by hand."""
    settings = load_settings()

    async def run() -> str:
        async with services_ready(settings) as services:
            return await resolve_job(services.database, job_id, now=services.clock.now(), note=note)

    kind = run_command(run)
    console.print(f"Nr. {job_id} ({kind}) erledigt")
