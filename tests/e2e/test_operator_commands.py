"""The operator's commands as a terminal runs them (the real Typer app with its own environment, the
real clock), on SQLite and PostgreSQL: salons, the day plan, walk-ins by the phone's rules, blocked
time, closures that apply at once, callback requests and dead jobs, and one clear line when the
database is not there."""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays
import pytest
from sqlalchemy import select
from tests.conftest import DEMO_SALON, empty_tables
from typer.testing import CliRunner

from rezeption.cli import app
from rezeption.store.db import Database
from rezeption.store.tables import AdminUserRow, OutboxJobRow

BERLIN = ZoneInfo("Europe/Berlin")


def next_open(weekday: int) -> date:
    """The next `weekday` at least two days ahead that is no holiday and no Christmas/New Year's Eve."""
    day = datetime.now(BERLIN).date() + timedelta(days=2)
    while (
        day.weekday() != weekday
        or day in holidays.country_holidays("DE", subdiv="BE", years=day.year)
        or (day.month, day.day) in {(12, 24), (12, 31)}
    ):
        day += timedelta(days=1)
    return day


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """The CLI's environment on the test's migrated, empty database (SQLite file or PostgreSQL)."""

    async def emptied() -> None:
        database = Database.from_url(database_url)
        try:
            await empty_tables(database)
        finally:
            await database.dispose()

    asyncio.run(emptied())
    return {
        **os.environ,
        "REZEPTION_DATABASE_URL": database_url,
        "REZEPTION_ENVIRONMENT": "development",
        "REZEPTION_DEV_SECRETS_FILE": str(tmp_path / "dev-secrets.json"),
        "COLUMNS": "200",
    }


@dataclass(frozen=True)
class Done:
    """What a command printed and how it ended."""

    returncode: int
    stdout: str
    stderr: str


def cli(env: dict[str, str], *args: str) -> Done:
    """Run `rezeption ARGS` in this process (the same Typer app the console script runs) with `env`
    as its environment; an exception escaping the command fails the test (it would be a traceback)."""
    runner = CliRunner()
    result = runner.invoke(app, list(args), env=env, catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Done(result.exit_code, result.stdout, result.stderr)


def test_salons_are_listed_and_shown(env: dict[str, str]) -> None:
    empty = cli(env, "tenants", "list")
    assert empty.returncode == 0 and "Noch kein Salon" in empty.stdout
    assert cli(env, "tenants", "load", str(DEMO_SALON)).returncode == 0
    listed = cli(env, "tenants", "list")
    assert "friseur1" in listed.stdout and "Friseur 1" in listed.stdout
    shown = cli(env, "tenants", "show", "friseur1")
    assert shown.returncode == 0, shown.stderr
    for expected in ("Dienstag", "09:00-18:00", "Heiligabend", "Bartpflege", "18,00 €", "Ben"):
        assert expected in shown.stdout, expected
    missing = cli(env, "tenants", "show", "friseur9")
    assert missing.returncode == 2 and "no salon 'friseur9'" in missing.stderr


def test_a_walk_in_is_booked_by_the_phones_rules_and_shows_in_the_day_plan(env: dict[str, str]) -> None:
    cli(env, "tenants", "load", str(DEMO_SALON))
    tuesday = next_open(1).isoformat()
    added = cli(
        env, "appointments", "add", "--service", "Herrenschnitt", "--date", tuesday, "--time", "10 Uhr",
        "--name", "Hans Schuster", "--phone", "0151 23456789", "--staff", "Anna",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    number = re.search(r"Nr\. (\d+)", added.stdout)
    assert number and "Herrenhaarschnitt" in added.stdout and "10:00 bei Anna" in added.stdout
    again = cli(
        env, "appointments", "add", "--service", "Herrenhaarschnitt", "--date", tuesday, "--time", "10 Uhr",
        "--name", "Eva Engel", "--staff", "Anna",
    )  # fmt: skip
    assert again.returncode == 1 and "Um 10 Uhr ist leider schon belegt. Ich hätte um" in again.stderr
    beard = cli(
        env,
        "appointments",
        "add",
        "--service",
        "Bart",
        "--date",
        tuesday,
        "--time",
        "9 Uhr",
        "--name",
        "Olaf",
    )
    assert beard.returncode == 1 and "arbeitet leider niemand, der Bartpflege anbietet" in beard.stderr
    plan = cli(env, "appointments", "list", "--date", tuesday)
    assert plan.returncode == 0, plan.stderr
    assert "Hans Schuster" in plan.stdout and "10:00-10:30" in plan.stdout and "Salon" in plan.stdout
    assert "23456789" not in plan.stdout and "****" in plan.stdout  # the number masked
    assert "Eva" not in plan.stdout
    only_ben = cli(env, "appointments", "list", "--date", tuesday, "--staff", "Ben")
    assert "keine Termine" in only_ben.stdout
    cancelled = cli(env, "appointments", "cancel", number.group(1))
    assert cancelled.returncode == 0 and "storniert" in cancelled.stdout
    assert "storniert" in cli(env, "appointments", "list", "--date", tuesday).stdout
    twice = cli(env, "appointments", "cancel", number.group(1))
    assert twice.returncode == 1 and "bereits storniert" in twice.stderr


def test_blocked_time_refuses_bookings_and_cannot_hide_an_appointment(env: dict[str, str]) -> None:
    cli(env, "tenants", "load", str(DEMO_SALON))
    friday = next_open(4).isoformat()
    blocked = cli(
        env, "appointments", "block", "--staff", "Ben", "--date", friday, "--from", "9 Uhr", "--to", "18 Uhr",
        "--reason", "Schulung",
    )  # fmt: skip
    assert blocked.returncode == 0, blocked.stderr
    block_id = re.search(r"Nr\. (\d+)", blocked.stdout)
    assert block_id
    beard = cli(env, "availability", "--service", "Bartpflege", "--date", friday, "--time", "10 Uhr")
    assert beard.returncode == 1 and "arbeitet leider niemand, der Bartpflege anbietet" in beard.stderr
    assert "Schulung" in cli(env, "appointments", "list", "--date", friday).stdout
    # the salon file loaded again keeps time blocked by command
    cli(env, "tenants", "load", str(DEMO_SALON))
    assert cli(env, "availability", "--service", "Bart", "--date", friday, "--time", "10 Uhr").returncode == 1
    assert cli(env, "appointments", "unblock", block_id.group(1)).returncode == 0
    assert cli(env, "availability", "--service", "Bart", "--date", friday, "--time", "10 Uhr").returncode == 0
    booked = cli(
        env,
        "appointments",
        "add",
        "--service",
        "Bart",
        "--date",
        friday,
        "--time",
        "10 Uhr",
        "--name",
        "Olaf",
    )
    assert booked.returncode == 0, booked.stderr
    over = cli(env, "appointments", "block", "--staff", "Ben", "--date", friday, "--from", "9", "--to", "12")
    assert over.returncode == 2 and "1 appointment(s)" in over.stderr


def test_a_closure_from_the_command_line_applies_at_once_and_survives_a_file_load(
    env: dict[str, str],
) -> None:
    cli(env, "tenants", "load", str(DEMO_SALON))
    wednesday = next_open(2)
    assert cli(env, "availability", "--service", "Damen", "--date", wednesday.isoformat()).returncode == 0
    added = cli(
        env, "closures", "add", "--date", wednesday.isoformat(), "--until",
        (wednesday + timedelta(days=1)).isoformat(), "--reason", "Betriebsausflug",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    closure_id = re.search(r"Nr\. (\d+)", added.stdout)
    assert closure_id
    refused = cli(env, "availability", "--service", "Damen", "--date", wednesday.isoformat())
    assert refused.returncode == 1
    assert "bleibt der Salon leider geschlossen: Betriebsausflug." in refused.stderr
    cli(env, "tenants", "load", str(DEMO_SALON))
    assert "Betriebsausflug" in cli(env, "closures", "list").stdout
    short = cli(
        env, "closures", "add", "--date", wednesday.isoformat(), "--hours", "9-12", "--reason", "Umbau"
    )
    assert short.returncode == 0
    late = cli(env, "availability", "--service", "Damen", "--date", wednesday.isoformat(), "--time", "15 Uhr")
    assert late.returncode == 1 and "von 9 bis 12 Uhr geöffnet" in late.stderr
    bad = cli(env, "closures", "add", "--date", wednesday.isoformat(), "--hours", "abends")
    assert bad.returncode == 2 and "--hours must look like" in bad.stderr
    assert cli(env, "closures", "remove", closure_id.group(1)).returncode == 0
    assert "Betriebsausflug" not in cli(env, "closures", "list").stdout


async def _add_jobs(url: str) -> None:
    database = Database.from_url(url)
    now = datetime.now(BERLIN)
    try:
        async with database.write() as session, session.begin():
            for kind, status in (("callback_request", "pending"), ("calendar_cancel", "dead")):
                session.add(
                    OutboxJobRow(
                        kind=kind, payload={"appointment_id": 7, "reason": "calendar_unavailable"},
                        status=status, attempts=8 if status == "dead" else 0, run_after=now, created_at=now,
                        updated_at=now, last_error="CalendarUnavailable" if status == "dead" else None,
                    )
                )  # fmt: skip
    finally:
        await database.dispose()


async def _jobs(url: str) -> dict[str, OutboxJobRow]:
    database = Database.from_url(url)
    try:
        async with database.read() as session:
            return {row.kind: row for row in (await session.scalars(select(OutboxJobRow))).all()}
    finally:
        await database.dispose()


def test_callback_requests_and_dead_jobs_are_listed_retried_and_resolved(
    env: dict[str, str], database_url: str
) -> None:
    none = cli(env, "jobs", "list")
    assert none.returncode == 0 and none.stdout.startswith("0 Aufgaben")
    dead_count = cli(env, "worker", "--dead")
    assert dead_count.stdout.strip().endswith("0 dead job(s)")
    asyncio.run(_add_jobs(database_url))
    listed = cli(env, "jobs", "list")
    assert "Rückruf" in listed.stdout and "calendar_cancel" in listed.stdout and "aufgegeben" in listed.stdout
    ids = {kind: row.id for kind, row in asyncio.run(_jobs(database_url)).items()}
    assert cli(env, "jobs", "retry", str(ids["calendar_cancel"])).returncode == 0
    resolved = cli(env, "jobs", "resolve", str(ids["callback_request"]), "--note", "zurückgerufen")
    assert resolved.returncode == 0
    rows = asyncio.run(_jobs(database_url))
    assert rows["calendar_cancel"].status == "pending" and rows["calendar_cancel"].attempts == 0
    assert rows["callback_request"].status == "done"
    assert "zurückgerufen" in (rows["callback_request"].last_error or "")
    assert cli(env, "jobs", "list").stdout.startswith("0 Aufgaben")
    again = cli(env, "jobs", "resolve", str(ids["callback_request"]))
    assert again.returncode == 2 and "already done" in again.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["tenants", "list"],
        ["tenants", "show"],
        ["appointments", "list"],
        ["jobs", "list"],
        ["closures", "list"],
        ["availability", "--service", "Bart", "--date", "morgen"],
        ["db", "current"],
        ["db", "upgrade"],
        ["worker", "--dead"],
    ],
)
def test_every_command_says_in_one_line_when_the_database_is_not_there(
    command: list[str], tmp_path: Path, refusing_postgres_url: str
) -> None:
    base = {**os.environ, "REZEPTION_DEV_SECRETS_FILE": str(tmp_path / "s.json")}
    never_migrated = {**base, "REZEPTION_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"}
    unreachable = {**base, "REZEPTION_DATABASE_URL": refusing_postgres_url}
    for env in (never_migrated, unreachable):
        done = cli(env, *command)
        if command == ["db", "upgrade"] and env is never_migrated:
            assert done.returncode == 0  # migrating a new database is what it is for
            continue
        if command == ["db", "current"] and env is never_migrated:
            assert done.returncode == 1 and "current: (none)" in done.stdout and "BEHIND" in done.stdout
            continue
        lines = done.stderr.strip().splitlines()
        assert done.returncode in (1, 2) and len(lines) == 1, done.stderr
        assert lines[0].startswith("rezeption: ") and ("db upgrade" in lines[0] or "cannot open" in lines[0])


def test_flags_are_set_listed_and_cleared_and_bad_input_changes_nothing(env: dict[str, str]) -> None:
    cli(env, "tenants", "load", str(DEMO_SALON))
    assert cli(env, "flags", "set", "caller_id", "--percent", "30").returncode == 0
    salon = cli(env, "flags", "set", "caller_id", "--off", "--salon", "friseur1")
    assert salon.returncode == 0 and "caller_id für friseur1: aus" in salon.stdout
    before = cli(env, "flags", "list").stdout
    assert "global: 30 %" in before and "friseur1: aus" in before and "interim_lines" in before
    for args, why in [
        (("caller_id", "--percent", "130"), "between 0 and 100, not 130"),
        (("caller_id", "--percent", "-5"), "between 0 and 100, not -5"),
        (("caller_idd", "--on"), "unknown flag 'caller_idd'"),
        (("caller_id", "--on", "--salon", "friseur9"), "no salon 'friseur9' (salons: friseur1)"),
        (("caller_id", "--on", "--off"), "exactly one of --on, --off, --percent"),
        (("caller_id",), "exactly one of --on, --off, --percent"),
    ]:
        refused = cli(env, "flags", "set", *args)
        assert refused.returncode == 2 and why in refused.stderr and "nothing changed" in refused.stderr, args
    assert cli(env, "flags", "list").stdout == before
    overridden = cli(env, "flags", "set", "caller_id", "--on")
    assert "Salons mit eigener Regel (gehen vor): friseur1 (aus)" in overridden.stdout
    assert "entfernt" in cli(env, "flags", "clear", "caller_id", "--salon", "friseur1").stdout
    assert "friseur1: aus" not in cli(env, "flags", "list").stdout


def test_admin_users_are_created_from_a_prompt_or_stdin_and_bad_input_creates_nothing(
    env: dict[str, str],
) -> None:
    cli(env, "tenants", "load", str(DEMO_SALON))
    runner = CliRunner()
    prompted = runner.invoke(
        app, ["admin", "create-user", "Inhaberin@Example.de", "--salon", "friseur1", "--role", "owner"],
        env=env, input="lang-genug-123\nlang-genug-123\n",
    )  # fmt: skip
    assert prompted.exit_code == 0, prompted.stderr
    assert "inhaberin@example.de angelegt" in prompted.stdout and "lang-genug" not in prompted.stdout
    for args, stdin, why in [
        (["inhaberin@example.de", "--salon", "friseur1"], "anderes-passwort-1\n", "exists already"),
        (
            ["team@example.de", "--salon", "friseur9"],
            "anderes-passwort-1\n",
            "no salon friseur9 (salons: friseur1)",
        ),
        (["team@example.de", "--salon", "friseur1"], "kurz\n", "at least 10 characters"),
        (
            ["team@example.de", "--salon", "friseur1", "--role", "chef"],
            "anderes-passwort-1\n",
            "role must be",
        ),
    ]:
        refused = runner.invoke(
            app, ["admin", "create-user", *args, "--password-stdin"], env=env, input=stdin
        )
        assert refused.exit_code == 2 and why in refused.stderr and "nothing created" in refused.stderr, args

    async def count() -> int:
        database = Database.from_url(env["REZEPTION_DATABASE_URL"])
        try:
            async with database.read() as session:
                return len((await session.scalars(select(AdminUserRow))).all())
        finally:
            await database.dispose()

    assert asyncio.run(count()) == 1
