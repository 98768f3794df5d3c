"""`rezeption loadtest`: N phone calls against a running server on this machine, as Retell makes
them (`ops.loadtest`), a progress bar while they run, then a table and a JSON file; with `--check`
the database is read afterwards (`ops.loadcheck`) for doubles, pending rows and calls whose
appointments are not what their callers heard. Traffic goes to 127.0.0.1 only; bounded in calls and
time. Exit 1 when the check finds anything.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from rezeption.cli.support import fail, load_settings, run_command, services_ready
from rezeption.ops.loadcheck import check

if TYPE_CHECKING:
    from rezeption.ops.loadtest import LoadResult, Plan

console = Console()
DEFAULT_SCENARIOS = Path("bench/loadtest_scenarios.yaml")


def loadtest(
    calls: Annotated[int, typer.Option(min=1, max=20_000, help="How many phone calls.")] = 50,
    concurrency: Annotated[int, typer.Option(min=1, max=2_000, help="At most this many at once.")] = 20,
    think: Annotated[float, typer.Option(min=0, max=60, help="Mean seconds between two functions.")] = 2.0,
    deadline: Annotated[float, typer.Option(min=1, max=3_600, help="Stop after this many seconds.")] = 600.0,
    url: Annotated[str | None, typer.Option(help="The server (default: REZEPTION_HOST:PORT).")] = None,
    scenarios: Annotated[Path, typer.Option(help="Mix and phrases.")] = DEFAULT_SCENARIOS,
    out: Annotated[Path | None, typer.Option(help="Write the figures as JSON here.")] = None,
    check_database: Annotated[bool, typer.Option("--check", help="Read the database afterwards.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed of the draws.")] = 7,
) -> None:
    """Simulate phone calls against a running server and report what callers heard and got."""
    # imported here: the load generator plays Retell (emulators), which the server never loads
    from rezeption.ops.loadtest import LoadTest, NotLocal, Plan, Scenarios

    settings = load_settings()
    base = url or f"http://{settings.host}:{settings.port}"
    try:
        mix = Scenarios.load(scenarios)
    except (OSError, ValueError, KeyError) as error:
        raise fail(f"rezeption: cannot use {scenarios}: {error}") from error
    plan = Plan(calls=calls, concurrency=concurrency, think=think, deadline=deadline, seed=seed)

    async def run() -> dict[str, Any]:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("Anrufe", total=calls)
            try:
                clock = settings.clock()  # sign at the server's time (REZEPTION_CLOCK_START moves it)
                test = LoadTest(
                    base, settings.retell_api_key.get_secret_value(), plan, mix,
                    now_ms=lambda: int(clock.now().timestamp() * 1000),
                    on_call_done=lambda _: progress.advance(task),
                )  # fmt: skip
            except NotLocal as error:
                raise fail(f"rezeption: {error}") from error
            result = await test.run()
        report = summary(result, plan)
        if check_database:
            async with services_ready(settings) as services:
                found = await check(
                    services.database, result.expected_active(), call_prefix=f"load-{test.run_id}-"
                )
            report.update(double_bookings=found.double_bookings, pending_left=found.pending_left,
                          mismatched_calls=len(found.mismatched_calls))  # fmt: skip
        return report

    report = run_command(run) if check_database else asyncio.run(run())
    show(report)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if report.get("double_bookings") or report.get("pending_left") or report.get("mismatched_calls"):
        raise typer.Exit(1)


def summary(result: LoadResult, plan: Plan) -> dict[str, Any]:
    """The run's figures (from what the callers heard)."""
    latencies = result.latency_percentiles()
    return {
        "concurrent_calls": plan.concurrency,
        "calls": len(result.calls),
        "seconds": round(result.seconds, 1),
        "success_rate": round(result.success_rate, 4),
        "booked": sum(c.booked for c in result.calls),
        "refusals": sum(len(c.refusals) for c in result.calls),
        "failures": sum(len(c.failures) for c in result.calls),
        "p99_ms": max((v["p99_ms"] for v in latencies.values()), default=0.0),
        "per_function": latencies,
    }


def show(report: dict[str, Any]) -> None:
    table = Table(
        title=f"{report['calls']} Anrufe, {report['concurrent_calls']} gleichzeitig, {report['seconds']} s"
    )
    for column in ("Funktion", "Aufrufe", "p50 ms", "p95 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "Funktion" else "right")
    for name, figures in report["per_function"].items():
        table.add_row(
            name,
            str(figures["count"]),
            str(figures["p50_ms"]),
            str(figures["p95_ms"]),
            str(figures["p99_ms"]),
        )
    console.print(table)
    console.print(
        f"gebucht {report['booked']}, Erfolgsquote {report['success_rate']:.2%}, Absagen (belegt u. ä.) "
        f"{report['refusals']}, Fehler {report['failures']}"
    )
    if "double_bookings" in report:
        console.print(
            f"Datenbank: Doppelbuchungen {report['double_bookings']}, pending {report['pending_left']}, "
            f"Anrufe mit falschem Stand {report['mismatched_calls']}"
        )
