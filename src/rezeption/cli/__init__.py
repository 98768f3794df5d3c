"""The command line (Typer): `rezeption` and its sub-commands, one module per concept in this package
(salons, appointments, jobs, availability, customers, try); here the server, migrations, the
worker, reconcile, parse and the Cal.com emulator."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from rezeption.bootstrap import build
from rezeption.cli.admin import admin_app
from rezeption.cli.agent import agent_app
from rezeption.cli.appointments import appointments_app
from rezeption.cli.call import call
from rezeption.cli.customers import customers_app
from rezeption.cli.flags import flags_app
from rezeption.cli.jobs import jobs_app
from rezeption.cli.loadtest import loadtest
from rezeption.cli.monitor import monitor
from rezeption.cli.salons import TenantOption, closures_app, tenants_app
from rezeption.cli.support import load_settings
from rezeption.cli.try_call import try_function
from rezeption.ops.schema_check import (
    EXIT_NOT_READY,
    require_reachable,
    require_schema,
    run_with_schema,
    serving_problem,
)
from rezeption.settings import GENERATE
from rezeption.store import migrate
from rezeption.store.db import Database
from rezeption.store.salon_file import SalonFileError, read_salon

app = typer.Typer(help="rezeption: the backend of a voice AI receptionist.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(tenants_app, name="tenants")
app.add_typer(closures_app, name="closures")
app.add_typer(appointments_app, name="appointments")
app.add_typer(jobs_app, name="jobs")
app.add_typer(customers_app, name="customers")
app.add_typer(agent_app, name="agent")
app.add_typer(flags_app, name="flags")
app.add_typer(admin_app, name="admin")
app.command("try")(try_function)
app.command("call")(call)
app.command("monitor")(monitor)
app.command("loadtest")(loadtest)
console = Console()
err = Console(stderr=True)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default REZEPTION_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default REZEPTION_PORT).")] = None,
    workers: Annotated[int, typer.Option(help="Server worker processes.")] = 1,
    migrate_first: Annotated[
        bool, typer.Option("--migrate", help="Bring the database to the newest schema first.")
    ] = False,
) -> None:
    """Start the web server (uvicorn).

    A database that answers without the newest schema is refused in one line (exit 2) unless
    `--migrate` brings it there first; one that does not answer does not stop the start (/ready 503).

    Beyond loopback it refuses (exit 2) to start with weak or equal secrets, in any environment.
    uvicorn bounds what it can: the request head (REZEPTION_HTTP_MAX_HEAD_BYTES, both parsers), idle
    keep-alive connections, concurrent connections and the graceful shutdown. It has no timeout for
    a client that sends its headers or body slowly: put a reverse proxy in front (see the README).
    """
    import structlog
    import uvicorn

    from rezeption.http_head import BoundedHttpToolsProtocol
    from rezeption.ops.logging import configure_logging

    settings = load_settings()
    host, port = host or settings.host, port or settings.port
    problems = settings.exposure_problems(host)
    if problems:
        typer.echo(
            f"rezeption: refusing to serve on {host} with weak secrets: {' | '.join(problems)} ({GENERATE})",
            err=True,
        )
        raise typer.Exit(2)
    if migrate_first:
        require_reachable(settings.database_url)
        migrate.upgrade(settings.database_url)
    problem = asyncio.run(serving_problem(settings.database_url))
    if problem is not None:
        hint = " (or start with `rezeption serve --migrate`)" if "db upgrade" in problem else ""
        typer.echo(f"rezeption: refusing to serve: {problem}{hint}", err=True)
        raise typer.Exit(EXIT_NOT_READY)
    configure_logging(settings.log_level, as_json=settings.log_json)
    structlog.get_logger("rezeption.serve").info(
        f"rezeption serves on http://{host}:{port}",
        health="/health",
        ready="/ready",
        docs="/docs" if settings.docs_enabled else None,
    )
    uvicorn.run(
        "rezeption.app:create_app",
        factory=True,
        log_config=None,  # uvicorn's lines go through our one format (ops.logging, in each worker too)
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        http=BoundedHttpToolsProtocol if settings.http_parser == "httptools" else "h11",
        h11_max_incomplete_event_size=settings.http_max_head_bytes,
        timeout_keep_alive=settings.http_keep_alive_timeout,
        limit_concurrency=settings.http_max_concurrency,
        timeout_graceful_shutdown=settings.http_graceful_shutdown,
    )


@app.command()
def parse(
    date_words: Annotated[str, typer.Argument(help='The date as said, e.g. "übermorgen".')],
    time_words: Annotated[str, typer.Argument(help='The time as said, e.g. "halb drei".')] = "",
    now: Annotated[str | None, typer.Option("--now", help="Reference time, ISO with offset.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Resolve a caller's date and time words the way the receptionist does (with the calendar date
    they mean); words the receptionist would refuse print the caller's sentence and exit 1."""
    from rezeption.language.cli import resolve_command

    try:
        text, refused = resolve_command(
            date_words, time_words, now, as_json, now=load_settings().clock().now()
        )
    except ValueError as error:
        err.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from error
    typer.echo(text, err=refused and not as_json)
    if refused:
        raise typer.Exit(1)


@app.command("calcom-emulator")
def calcom_emulator(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8765,
    host: Annotated[str, typer.Option(help="Bind address (keep it on loopback).")] = "127.0.0.1",
    config: Annotated[Path | None, typer.Option(help="Emulator config (YAML).")] = None,
    salon: Annotated[
        Path | None, typer.Option(help="Mirror this Cal.com salon file (users, schedules, event types).")
    ] = None,
) -> None:
    """Run the local Cal.com API v2 emulator (a development tool: tests, demos, trying the Cal.com path).

    With --salon it is set up as that salon's Cal.com account (Cal.com's real 120 requests a minute);
    with REZEPTION_CLOCK_START its clock stands at that instant.
    """
    from rezeption.emulators.calcom import run_emulator
    from rezeption.emulators.calcom.from_salon import emulator_config

    if config is not None and salon is not None:
        typer.echo("rezeption: give --config or --salon, not both", err=True)
        raise typer.Exit(2)
    source: str | dict[str, Any] | None = str(config) if config else None
    if salon is not None:
        try:
            source = emulator_config(read_salon(salon), load_settings().clock_start)
        except (SalonFileError, ValueError) as error:
            typer.echo(f"rezeption: {error}", err=True)
            raise typer.Exit(2) from error
    console.print(f"Cal.com emulator on http://{host}:{port}/v2  (admin: /_emulator/state)")
    run_emulator(host, port, source)


@app.command("retell-emulator")
def retell_emulator(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8770,
    salon: Annotated[Path, typer.Option(help="Seed the salon's agent and phone numbers.")] = Path(
        "salons/friseur1.yaml"
    ),
    api_key: Annotated[str, typer.Option(help="The API key it accepts.")] = "key_retell_emulated",
) -> None:
    """Run a small emulation of Retell's management API (agents, versions, phone numbers) on
    127.0.0.1, to try `rezeption agent publish|versions|rollback` without a Retell account."""
    import uvicorn

    from rezeption.emulators.retell import RetellState, create_app

    try:
        salon_file = read_salon(salon)
    except SalonFileError as error:
        typer.echo(f"rezeption: {error}", err=True)
        raise typer.Exit(2) from error
    state = RetellState(api_key=api_key)
    for agent_id in salon_file.retell_agent_ids[:1]:
        state.seed_agent(agent_id, f"llm_{salon_file.slug}", list(salon_file.phone_numbers))
    console.print(f"Retell management emulation on http://127.0.0.1:{port} (key {api_key})")
    uvicorn.run(create_app(state), host="127.0.0.1", port=port, log_level="warning")


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Migrate the database up (to the newest schema by default)."""
    settings = load_settings()
    require_reachable(settings.database_url)
    migrate.upgrade(settings.database_url, revision)
    console.print(f"database at {migrate.head_revision() if revision == 'head' else revision}")


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument(help="Target revision, e.g. base or -1.")]) -> None:
    """Migrate the database down to `revision`."""
    url = load_settings().database_url
    require_reachable(url)
    migrate.downgrade(url, revision)
    console.print(f"database downgraded to {revision}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's schema revision and the newest one."""

    async def run() -> str | None:
        database = Database.from_url(load_settings().database_url)
        try:
            return await migrate.current_revision(database.engine)
        finally:
            await database.dispose()

    url = load_settings().database_url
    require_reachable(url)
    current = asyncio.run(run())
    head = migrate.head_revision()
    console.print(
        f"current: {current or '(none)'}  head: {head}  {'up to date' if current == head else 'BEHIND'}"
    )
    if current != head:
        raise typer.Exit(1)


@app.command()
def availability(
    service: Annotated[str, typer.Option(help="Service name or alias, e.g. Herrenhaarschnitt.")],
    day: Annotated[
        str, typer.Option("--date", help='A day as said: "morgen", "Freitag", "24.12.", "nächste Woche".')
    ],
    at: Annotated[str | None, typer.Option("--time", help='A time as said: "halb drei", "10 Uhr".')] = None,
    staff: Annotated[str | None, typer.Option(help="A stylist's name (default: anyone).")] = None,
    days: Annotated[int, typer.Option(min=1, max=31, help="How many days from --date to show.")] = 1,
    tenant: TenantOption = None,
) -> None:
    """Free times as the receptionist sees them. With --time: is it free, else why not and the
    nearest alternatives (exit 1). Without: every free start of the day(s) (none: why, exit 1)."""
    from rezeption.cli.availability import show_availability

    show_availability(service=service, day=day, at=at, staff=staff, days=days, tenant=tenant)


@app.command()
def worker(
    once: Annotated[bool, typer.Option(help="Run one batch of due jobs and exit.")] = False,
    dead: Annotated[bool, typer.Option(help="List dead jobs and exit.")] = False,
    poll: Annotated[float, typer.Option(help="Seconds between polls when idle.")] = 1.0,
    reconcile_every: Annotated[
        float, typer.Option(help="Seconds between reconcile runs (overdue pending rows).")
    ] = 60.0,
    list_every: Annotated[
        float, typer.Option(help="Seconds between listings of Cal.com's bookings (orphans, walk-ins).")
    ] = 600.0,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve this worker's /metrics (orphans, compensations, jobs) on this port."),
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Bind address of --metrics-port.")] = "127.0.0.1",
) -> None:
    """Run the outbox worker (jobs and the scheduled reconcile) until interrupted."""
    import signal

    from rezeption.ops.tracing import configure_tracing, shutdown_tracing
    from rezeption.ops.worker import WorkerOptions, run_once, run_worker
    from rezeption.store import outbox

    settings = load_settings()

    async def run() -> None:
        services = build(settings)
        try:
            await require_schema(services.database)
            if dead:
                jobs = await outbox.jobs(services.database, status="dead")
                for job in jobs:
                    typer.echo(f"{job.id}  {job.kind}  attempts={job.attempts}  {job.last_error or ''}")
                typer.echo(f"{len(jobs)} dead job(s)")
                return
            options = WorkerOptions(poll_seconds=poll, reconcile_every=reconcile_every, list_every=list_every)
            if once:
                console.print(f"ran {await run_once(services, options)} jobs")
                return
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            if metrics_port is not None:  # no token here: keep the port on the internal network
                from prometheus_client import start_http_server

                start_http_server(metrics_port, addr=metrics_host)
            engines = [services.database.engine.sync_engine]
            configure_tracing(settings.otlp_endpoint, engines=engines, service="rezeption-worker")
            await run_worker(services, stop=stop, options=options)
        finally:
            await services.close()
            shutdown_tracing()

    run_with_schema(run)


@app.command()
def reconcile(
    tenant: Annotated[str | None, typer.Option(help="Salon slug (default: every Cal.com salon).")] = None,
) -> None:
    """Make our database and Cal.com agree: resolve overdue pending rows, cancel orphans, import walk-ins."""

    settings = load_settings()

    async def run() -> tuple[str, list[str]]:
        services = build(settings)
        try:
            await require_schema(services.database)
            if tenant:
                async with services.uow.reading() as tx:
                    tenant_id = await tx.tenant_id_by_slug(tenant)
                if tenant_id is None:
                    raise typer.BadParameter(f"no salon {tenant!r}")
                report = await services.reconciler.reconcile_tenant(tenant_id)
            else:
                report = await services.reconciler.reconcile_all()
        finally:
            await services.close()
        summary = (
            f"pending resolved: {report.pending_failed}  orphans cancelled: {report.orphans_cancelled}  "
            f"imported: {report.imported}  cancelled here: {report.cancelled_here}  "
            f"conflicts: {report.conflicts}  errors: {len(report.errors)}"
        )
        return summary, report.errors

    summary, errors = run_with_schema(run)
    typer.echo(summary)
    for problem in errors:  # each failed step with its cause; the run went on past it
        typer.echo(f"error: {problem}", err=True)
    if errors:
        raise typer.Exit(1)
