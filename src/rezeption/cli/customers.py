"""`rezeption customers export|erase PHONE|ID`: the GDPR requests an operator runs from a terminal.

Mounted in `rezeption.cli` as the `customers` sub-app (a composition-level module: it wires the
services with `rezeption.bootstrap.build`, as the other commands do). Export prints (or writes) JSON
with everything we hold; erase says how many customers it names and how many of their appointments
ahead it will cancel, asks (or `--yes`), cancels those appointments through the booking use case
(so Cal.com is cancelled too, via the outbox), erases, and prints only counts: never a name or number.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from rezeption.bootstrap import build
from rezeption.cli.support import load_settings
from rezeption.ops.erasure import erase_customer_data
from rezeption.ops.schema_check import require_schema, run_with_schema
from rezeption.store.db import Database
from rezeption.store.gdpr import CustomerRefError, ErasurePlan, erasure_plan, export_customer

customers_app = typer.Typer(help="Customers: GDPR export and erasure.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)
log = logging.getLogger(__name__)
T = TypeVar("T")

Ref = Annotated[str, typer.Argument(help="Customer id, or a phone number (all customers with it).")]
Tenant = Annotated[str | None, typer.Option("--tenant", help="Only this salon (slug); default: every salon.")]


def run_checked(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """`run_with_schema`, and a reference that is neither an id nor a number ends with exit code 2."""
    try:
        return run_with_schema(work)
    except CustomerRefError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(2) from error


def _run(work: Callable[[Database], Awaitable[T]]) -> T:
    settings = load_settings()

    async def run() -> T:
        database = Database.from_url(settings.database_url)
        try:
            await require_schema(database)
            return await work(database)
        finally:
            await database.dispose()

    return run_checked(run)


@customers_app.command("export")
def export(
    ref: Ref,
    tenant: Tenant = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the JSON to this file.")] = None,
) -> None:
    """Everything we hold about a customer, as JSON."""
    now = load_settings().clock().now()
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
    """Erase a customer's personal data; their future appointments are cancelled, past ones stay
    (without the name) for statistics."""
    plan: ErasurePlan = _run(
        lambda db: erasure_plan(db, ref, now=load_settings().clock().now(), tenant_slug=tenant)
    )
    if plan.customers == 0:
        err.print("no such customer")
        raise typer.Exit(1)
    if not yes:
        typer.confirm(
            f"Erase the personal data of {plan.customers} customer(s) for good, and cancel their "
            f"{len(plan.future)} future appointment(s) (also in the salon's calendar)?",
            abort=True,
        )
    counts = _erase(ref, tenant)
    typer.echo(
        f"erased: {counts['customers']} customer(s); {counts['future_cancelled']} future appointment(s) "
        f"cancelled; {counts['appointments']} appointment(s) kept for statistics without the name"
    )
    typer.echo(
        f"calls: {counts['calls_erased']} erased, {counts['calls_redacted']} shared and redacted; "
        f"function calls: {counts['function_calls_erased']} erased, "
        f"{counts['function_calls_redacted']} redacted; stored replies: {counts['replies_erased']} "
        f"erased, {counts['replies_redacted']} redacted; call-back requests dropped: "
        f"{counts['callback_requests_dropped']}"
    )
    if counts["future_left_active"]:
        typer.echo(
            f"warning: {counts['future_left_active']} future appointment(s) were booked during the "
            "erasure and are still active without a name: cancel them in the salon's calendar",
            err=True,
        )


def _erase(ref: str, tenant: str | None) -> dict[str, int]:
    settings = load_settings()

    async def run() -> dict[str, int]:
        services = build(settings)
        try:
            await require_schema(services.database)
            return await erase_customer_data(services.database, services.bookings, ref, tenant_slug=tenant)
        finally:
            await services.close()

    return run_checked(run)
