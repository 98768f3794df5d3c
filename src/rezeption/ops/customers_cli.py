"""`rezeption customers export|erase PHONE|ID`: the GDPR requests an operator runs from a terminal.

Mounted in `rezeption.cli` as the `customers` sub-app. Export prints (or writes) JSON with
everything we hold; erase anonymizes after a confirmation (or `--yes`) and prints only counts.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from rezeption.domain.clock import SystemClock
from rezeption.settings import Settings
from rezeption.store.db import Database
from rezeption.store.gdpr import CustomerRefError, erase_customer, export_customer

customers_app = typer.Typer(help="Customers: GDPR export and erasure.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)
T = TypeVar("T")

Ref = Annotated[str, typer.Argument(help="Customer id, or a phone number (all customers with it).")]
Tenant = Annotated[str | None, typer.Option("--tenant", help="Only this salon (slug); default: every salon.")]


def _run(work: Callable[[Database], Awaitable[T]]) -> T:
    try:
        settings = Settings()
    except ValueError as error:
        err.print(f"[red]configuration error:[/red] {error}")
        raise typer.Exit(2) from error

    async def run() -> T:
        database = Database.from_url(settings.database_url)
        try:
            return await work(database)
        finally:
            await database.dispose()

    try:
        return asyncio.run(run())
    except CustomerRefError as error:
        err.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from error


@customers_app.command("export")
def export(
    ref: Ref,
    tenant: Tenant = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the JSON to this file.")] = None,
) -> None:
    """Everything we hold about a customer, as JSON."""
    now = SystemClock().now()
    doc: dict[str, Any] = _run(lambda db: export_customer(db, ref, now=now, tenant_slug=tenant))
    if not doc["customers"]:
        err.print("no such customer")
        raise typer.Exit(1)
    text = json.dumps(doc, ensure_ascii=False, indent=2)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        console.print(f"written to {out}")


@customers_app.command("erase")
def erase(
    ref: Ref,
    tenant: Tenant = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Anonymize a customer and their calls; appointments stay for statistics, without the name."""
    if not yes:
        typer.confirm("Erase this customer's personal data for good?", abort=True)
    now = SystemClock().now()
    counts = _run(lambda db: erase_customer(db, ref, now=now, tenant_slug=tenant))
    if counts["customers"] == 0:
        err.print("no such customer")
        raise typer.Exit(1)
    console.print(
        f"erased: {counts['customers']} customer(s), {counts['appointments']} appointment(s) anonymized, "
        f"{counts['calls']} call(s), {counts['function_calls']} function call(s)"
    )
