"""What every operator command shares: settings read once with a one-line error, the wired services
inside the schema check, the salon named by slug (or the only one), and the caller's words for a day
and a time resolved exactly as on the phone (a refusal prints the caller's sentence and exits 1).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import date, datetime, time
from typing import Any, TypeVar

import typer
from pydantic import ValidationError

from rezeption.bootstrap import Services, build
from rezeption.domain.errors import BookingError
from rezeption.domain.model import Catalog
from rezeption.language import resolve_when
from rezeption.language.when import weekly_pairs
from rezeption.ops.schema_check import require_schema, run_with_schema
from rezeption.settings import Settings
from rezeption.store.operator import OperatorError, salon_slugs, salons

T = TypeVar("T")
EXIT_REFUSED = 1
"""The command understood the request, and the salon's rules refuse it (the caller's sentence says why)."""
EXIT_USAGE = 2
"""The command cannot do what was asked: bad input, no such salon, the database not ready."""


def load_settings() -> Settings:
    """The settings from the environment; a bad one prints one line per problem and exits 2."""
    try:
        return Settings()
    except ValidationError as error:
        for problem in error.errors():
            where = ".".join(str(part) for part in problem["loc"])
            message = str(problem["msg"]).removeprefix("Value error, ")
            variable = f"REZEPTION_{where.upper()}: " if where else ""
            typer.echo(f"configuration error: {variable}{message}", err=True)
        raise typer.Exit(EXIT_USAGE) from error


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print `message` as one line on stderr; the caller raises the returned Exit."""
    typer.echo(message, err=True)
    return typer.Exit(code)


@asynccontextmanager
async def services_ready(settings: Settings) -> AsyncIterator[Services]:
    """The wired services on a database at the newest schema (else `SchemaNotReady`)."""
    services = build(settings)
    try:
        await require_schema(services.database)
        yield services
    finally:
        await services.close()


def run_command(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run an operator command: database not ready, a refused booking or operator request each end
    in one line (exit 2, 1, 2), never a traceback."""
    try:
        return run_with_schema(work)
    except BookingError as error:
        raise fail(error.message, EXIT_REFUSED) from error
    except OperatorError as error:
        raise fail(f"rezeption: {error}") from error


def on_salon(tenant: str | None, work: Callable[[Services, Catalog], Awaitable[T]]) -> T:
    """Run an operator command's `work` on the salon named by `tenant` (or the only one), with the
    wired services on a database at the newest schema; refusals end as `run_command` says."""
    settings = load_settings()

    async def run() -> T:
        async with services_ready(settings) as services:
            return await work(services, await salon(services, tenant))

    return run_command(run)


async def salon(services: Services, slug: str | None) -> Catalog:
    """The salon's catalog by slug; without a slug, the only salon (several: say which to name)."""
    if slug is None:
        slugs = await salon_slugs(services.database)
        if len(slugs) != 1:
            known = ", ".join(slugs) or "none (load one with `rezeption tenants load FILE`)"
            raise fail(f"rezeption: name the salon with --tenant (salons: {known})")
        slug = slugs[0]
    async with services.uow.reading() as tx:
        tenant_id = await tx.tenant_id_by_slug(slug)
        if tenant_id is not None:
            return await services.bookings.catalogs.get(tx, tenant_id, services.clock.now().date())
    raise fail(f"rezeption: no salon {slug!r} (see `rezeption tenants list`)")


def spoken_day(catalog: Catalog, words: str, now: datetime) -> tuple[date, tuple[date, date] | None]:
    """A day as said ("morgen", "Freitag", "24.12.", "2026-12-24"); a span ("nächste Woche") comes
    back as (first, last). Words the receptionist would refuse print its sentence and exit 1."""
    when = resolve_when(words, "", now.astimezone(catalog.tenant.zone))
    if when.reason is not None:
        raise fail(when.message or "Das habe ich leider nicht verstanden.", EXIT_REFUSED)
    if when.alternatives:
        raise fail(f"Welcher Tag genau? {words!r} kann mehreres bedeuten.", EXIT_REFUSED)
    if when.date is not None:
        return when.date, None
    if when.window is not None and when.window.first_day and when.window.last_day:
        return when.window.first_day, (when.window.first_day, when.window.last_day)
    raise fail("An welchem Tag genau? Bitte einen Tag nennen.", EXIT_REFUSED)


def spoken_time(catalog: Catalog, day: date, words: str, now: datetime) -> time:
    """A time of day as said ("halb drei", "14:30", "10 Uhr") on `day`, as the receptionist hears it."""
    hours = weekly_pairs(catalog.tenant.opening_hours)
    when = resolve_when(day.isoformat(), words, now.astimezone(catalog.tenant.zone), opening_hours=hours)
    if when.reason is not None:
        raise fail(when.message or "Diese Uhrzeit habe ich nicht verstanden.", EXIT_REFUSED)
    if when.time is None:
        raise fail("Um wie viel Uhr genau? Bitte eine Uhrzeit nennen.", EXIT_REFUSED)
    return when.time


async def salon_route(
    settings: Settings, slug: str | None, option: str = "--tenant"
) -> tuple[str, dict[str, str]]:
    """The salon (by slug, or the only one) and how Retell would name it in a call: its first phone
    number as `to_number`, else its agent id as `agent_id`."""
    async with services_ready(settings) as services:
        found = await salons(services.database, now=services.clock.now())
    chosen = [s for s in found if slug in (None, s.slug)]
    if len(chosen) != 1:
        raise fail(f"name the salon with {option} (salons: {', '.join(s.slug for s in found) or 'none'})")
    routes = dict(r.split(":", 1) for r in reversed(chosen[0].routes))
    if not routes:
        raise fail(f"salon {chosen[0].slug!r} has no phone number or agent id to route a call")
    where = {"to_number": routes["number"]} if "number" in routes else {"agent_id": routes["agent"]}
    return chosen[0].slug, where
