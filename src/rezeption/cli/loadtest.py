"""`rezeption loadtest`: N phone calls against a running server on this machine, as Retell makes
them (`ops.loadtest`), a progress bar while they run, then a table and a JSON file; with `--check`
the database is read afterwards (`ops.loadcheck`) for doubles, pending rows and calls whose
appointments are not what their callers heard. Traffic goes to 127.0.0.1 only; bounded in calls and
time. Exit 1 when the check finds anything.

For a salon on Cal.com, `--salon` names its file (the number and agent the calls go to) and
`--calcom` the Cal.com emulator it books into: `--faults` puts a fault profile on it before the run,
its request log counts Cal.com requests per call (the run's calls', after the earlier calls that
booked what its cancel and reschedule callers change), and `--check` reconciles (as the worker does after
the pending deadline) and then reads the emulator's bookings for orphans, appointments missing there
and double bookings there.
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
from rezeption.store.salon_file import SalonFileError, read_salon

if TYPE_CHECKING:
    from rezeption.ops.loadcheck import CalcomCheck
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
    salon: Annotated[
        Path | None, typer.Option(help="The salon file whose number and agent are called (default: demo).")
    ] = None,
    calcom: Annotated[
        str | None, typer.Option(help="The Cal.com emulator the salon books into (127.0.0.1).")
    ] = None,
    faults: Annotated[
        str | None, typer.Option(help="Put this fault profile on the emulator first: none, slow, faulty.")
    ] = None,
) -> None:
    """Simulate phone calls against a running server and report what callers heard and got."""
    # imported here: the load generator plays Retell (emulators), which the server never loads
    from rezeption.ops.loadcheck import (
        check,
        check_calcom,
        emulator_requests_seen,
        emulator_state,
        reconcile_after_run,
    )
    from rezeption.ops.loadtest import (
        CALCOM_FAULT_PROFILES,
        LoadTest,
        NotLocal,
        Plan,
        Scenarios,
        require_local,
    )

    settings = load_settings()
    base = url or f"http://{settings.host}:{settings.port}"
    try:
        mix = Scenarios.load(scenarios)
    except (OSError, ValueError, KeyError) as error:
        raise fail(f"rezeption: cannot use {scenarios}: {error}") from error
    if faults is not None and (calcom is None or faults not in CALCOM_FAULT_PROFILES):
        raise fail(f"rezeption: --faults needs --calcom and one of {', '.join(CALCOM_FAULT_PROFILES)}")
    try:
        if calcom is not None:
            require_local(calcom)
    except NotLocal as error:
        raise fail(f"rezeption: {error}") from error
    line: dict[str, Any] = {}
    if salon is not None:
        try:
            salon_file = read_salon(salon)
        except SalonFileError as error:
            raise fail(f"rezeption: {error}") from error
        line = {"to_number": salon_file.phone_numbers[0]} if salon_file.phone_numbers else {}
        line["agent_id"] = salon_file.retell_agent_ids[0] if salon_file.retell_agent_ids else None
    plan = Plan(calls=calls, concurrency=concurrency, think=think, deadline=deadline, seed=seed, **line)

    async def run() -> dict[str, Any]:
        import httpx

        marks: list[int] = []
        if calcom is not None:
            try:
                if faults is not None:
                    await put_faults(calcom, CALCOM_FAULT_PROFILES[faults])
                marks.append(await emulator_requests_seen(calcom))
            except httpx.HTTPError as error:
                raise fail(
                    f"rezeption: the Cal.com emulator at {calcom} does not answer: {error!r}"
                ) from error
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
            earlier = progress.add_task("Frühere Buchungen (für Storno und Verlegung)", total=None)
            await test.book_earlier()
            progress.remove_task(earlier)
            if calcom is not None:  # the run's own Cal.com requests are counted from here
                marks[0] = await emulator_requests_seen(calcom)
            result = await test.run()
        report = summary(result, plan)
        if calcom is not None:
            marks.append(await emulator_requests_seen(calcom))
        if check_database:
            prefix = f"load-{test.run_id}-"
            async with services_ready(settings) as services:
                if calcom is not None:
                    await asyncio.sleep(SETTLE_SECONDS)  # replies nobody waited for any more land
                    mended = await reconcile_after_run(services.uow, services.calendars, services.clock)
                    report["reconciled"] = {"pending_failed": mended.pending_failed,
                                            "orphans_cancelled": mended.orphans_cancelled,
                                            "moves_completed": mended.moves_completed,
                                            "errors": len(mended.errors)}  # fmt: skip
                found = await check(services.database, result.expected_active(), call_prefix=prefix,
                                    starts=result.expected_starts())  # fmt: skip
                report.update(double_bookings=found.double_bookings, pending_left=found.pending_left,
                              mismatched_calls=len(found.mismatched_calls),
                              wrong_time_calls=len(found.wrong_time),
                              lost_confirmed=len(found.lost_confirmed))  # fmt: skip
                if calcom is not None:
                    remote = await check_calcom(
                        services.database, calcom, result.expected_active(), call_prefix=prefix,
                        calls=len(result.calls), requests_from=marks[0], requests_until=marks[1],
                        booked_calls=sum(c.booked for c in result.calls),
                    )  # fmt: skip
                    report.update(calcom_report(remote))
                    report["lost_confirmed"] = len(set(found.lost_confirmed) | set(remote.lost_confirmed))
        elif calcom is not None:
            remote_log = await emulator_state(calcom)
            window = [e for e in remote_log["requests"][marks[0] : marks[1]] if e["path"].startswith("/v2/")]
            report["calcom_requests"] = len(window)
            report["calcom_requests_per_call"] = round(len(window) / len(result.calls), 3)
        return report

    report = run_command(run) if check_database else asyncio.run(run())
    show(report)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if any(report.get(k) for k in FINDINGS):
        raise typer.Exit(1)


FINDINGS = ("double_bookings", "pending_left", "mismatched_calls", "wrong_time_calls", "lost_confirmed",
            "orphans", "missing_at_calcom", "calcom_time_differs", "calcom_double_bookings")  # fmt: skip
"""What `--check` may find; any of them ends the command with exit 1."""
SETTLE_SECONDS = 2.0


async def put_faults(emulator: str, rules: list[dict[str, Any]]) -> None:
    """Replace the emulator's fault rules with `rules` (its rate limit is left alone)."""
    import httpx

    async with httpx.AsyncClient(base_url=emulator, timeout=10) as http:
        response = await http.post("/_emulator/faults", json={"rules": rules, "replace": True})
        response.raise_for_status()


def calcom_report(found: CalcomCheck) -> dict[str, Any]:
    """The emulator side's figures, as `rezeption loadtest --check --calcom` reports them."""
    return {
        "orphans": len(found.orphans),
        "missing_at_calcom": len(found.missing_at_calcom),
        "calcom_time_differs": len(found.time_differs),
        "calcom_double_bookings": found.double_bookings,
        "calcom_requests": found.requests,
        "calcom_requests_per_call": found.requests_per_call,
        "calcom_requests_per_booked_call": found.requests_per_booked_call,
        "calcom_booked_calls": found.booked_calls,
        "calcom_reads": found.reads,
        "calcom_requests_by_kind": found.requests_by_kind,
        "calcom_rate_limited": found.rate_limited,
        "calcom_faults_fired": found.faults_fired,
    }


def summary(result: LoadResult, plan: Plan) -> dict[str, Any]:
    """The run's figures (from what the callers heard)."""
    latencies = result.latency_percentiles()
    # The first wave of calls rings within one think period and makes its first request about one
    # more later: that burst is not the steady state of `concurrency` calls at once.
    steady = result.latency_percentiles(sent_after=2 * plan.think)
    return {
        "concurrent_calls": plan.concurrency,
        "calls": len(result.calls),
        "seconds": round(result.seconds, 1),
        "success_rate": round(result.success_rate, 4),
        "servable_success_rate": round(result.servable_success_rate, 4),
        "booked": sum(c.booked for c in result.calls),
        "refusals": sum(len(c.refusals) for c in result.calls),
        "failures": sum(len(c.failures) for c in result.calls),
        "failure_reasons": result.failure_reasons(),
        "http_errors": result.http_errors(),  # what each "http_error" was
        "uncertain_calls": sum(c.uncertain for c in result.calls),
        "changed": result.changes(),
        **result.earlier_figures(),
        "p99_ms": max((v["p99_ms"] for v in latencies.values()), default=0.0),
        "steady_p99_ms": max((v["p99_ms"] for v in steady.values()), default=0.0),
        **result.lag_figures(),  # the generator's own lateness: it shares the cores
        **result.ring_figures(),  # how long phones rang, redeliveries after our 503 included
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
    changed = report["changed"]
    console.print(
        f"Storno/Verlegung früherer Termine: {changed['cancelled']} storniert, {changed['moved']} verlegt "
        f"von {changed['of']} Anrufen; frühere Buchungsanrufe {report['earlier_calls']} "
        f"(gebucht {report['earlier_booked']}, Fehler {report['earlier_failures']})"
    )
    console.print(
        f"Klingeln bis call_inbound beantwortet: p99 {report['ring_p99_ms']} ms, längstens "
        f"{report['ring_max_ms']} ms; erneut zugestellt (ohne 2xx, wie Retell) {report['redeliveries']}, "
        f"Webhooks ohne 2xx {report['webhooks_lost']}"
    )
    if "double_bookings" in report:
        console.print(
            f"Datenbank: Doppelbuchungen {report['double_bookings']}, pending {report['pending_left']}, "
            f"Anrufe mit falschem Stand {report['mismatched_calls']}, "
            f"Termin zu anderer Zeit als gehört {report['wrong_time_calls']}, "
            f"verlorene Zusagen {report['lost_confirmed']}"
        )
    if "orphans" in report:
        console.print(
            f"Cal.com: verwaiste Buchungen {report['orphans']}, hier bestätigt und dort fehlend "
            f"{report['missing_at_calcom']}, Doppelbuchungen {report['calcom_double_bookings']}"
        )
    if "calcom_requests_per_call" in report:
        console.print(f"Cal.com-Anfragen je Anruf {report['calcom_requests_per_call']}")
