"""The two README commands' parts, as an operator runs them: CLI migrations, salon loading,
availability at a terminal, and the server under uvicorn answering /health and /ready."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays
import httpx
import pytest
from tests.conftest import DEMO_SALON

REZEPTION = [sys.executable, "-m", "rezeption.cli"]


def next_working_wednesday() -> str:
    """A Wednesday at least two days ahead that is no Berlin holiday (the CLI runs on the real clock)."""
    day = datetime.now(ZoneInfo("Europe/Berlin")).date() + timedelta(days=2)
    while day.weekday() != 2 or day in holidays.country_holidays("DE", subdiv="BE", years=day.year):
        day += timedelta(days=1)
    return day.isoformat()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "REZEPTION_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'rezeption.db'}",
        "REZEPTION_ENVIRONMENT": "development",
        "REZEPTION_DEV_SECRETS_FILE": str(tmp_path / "dev-secrets.json"),
    }


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*REZEPTION, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_serve_refuses_an_unmigrated_database_in_one_line(env: dict[str, str]) -> None:
    """Before (issue 13): `serve` started, then logged a warm-up traceback and a worker error every second."""
    refused = cli(env, "serve", "--port", str(free_port()))
    assert refused.returncode == 2 and refused.stdout == ""
    (line,) = refused.stderr.splitlines()
    assert line.startswith("rezeption: refusing to serve: the database ") and "has no schema" in line
    assert "rezeption serve --migrate" in line and "Traceback" not in refused.stderr


def test_serve_migrate_brings_the_schema_and_serves(env: dict[str, str]) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*REZEPTION, "serve", "--migrate", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):  # at most ~20 s
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        assert ready.json()["status"] == "ready"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_operator_migrates_loads_the_demo_salon_once_and_reads_free_slots(env: dict[str, str]) -> None:
    assert cli(env, "db", "current").returncode == 1  # not migrated yet
    assert cli(env, "db", "upgrade").returncode == 0
    assert cli(env, "db", "current").returncode == 0
    loaded = cli(env, "tenants", "load", "--if-empty", str(DEMO_SALON))
    assert "created" in loaded.stdout
    again = cli(env, "tenants", "load", "--if-empty", str(DEMO_SALON))
    assert "nothing loaded" in again.stdout
    wednesday = next_working_wednesday()
    slots = cli(env, "availability", "--tenant", "friseur1", "--service", "Haare färben", "--date", wednesday)
    assert slots.returncode == 0, slots.stderr
    assert f"({wednesday})" in slots.stdout and "Mittwoch, dem" in slots.stdout
    assert "freie Startzeiten" in slots.stdout and "Clara" in slots.stdout


def test_operator_errors_are_precise_and_exit_non_zero(env: dict[str, str], tmp_path: Path) -> None:
    assert cli(env, "db", "upgrade").returncode == 0
    broken = tmp_path / "broken.yaml"
    broken.write_text("slug: x\nname: X\n", encoding="utf-8")
    refused = cli(env, "tenants", "load", str(broken))
    assert refused.returncode == 2
    assert "opening_hours" in refused.stderr and "Field required" in refused.stderr
    cli(env, "tenants", "load", str(DEMO_SALON))
    unknown = cli(env, "availability", "--service", "Dauerwelle", "--date", next_working_wednesday())
    assert unknown.returncode == 1 and "bieten wir leider nicht an" in unknown.stderr
    past = cli(env, "availability", "--service", "Bart", "--date", "gestern")
    assert past.returncode == 1 and "liegt in der Vergangenheit" in past.stderr
    nonsense = cli(env, "availability", "--service", "Bart", "--date", "blau")
    assert nonsense.returncode == 1 and "nicht verstanden" in nonsense.stderr
    no_salon = cli(env, "availability", "--tenant", "friseur9", "--service", "Bart", "--date", "morgen")
    assert no_salon.returncode == 2 and "no salon 'friseur9'" in no_salon.stderr
    assert "Traceback" not in unknown.stderr + past.stderr + nonsense.stderr + no_salon.stderr


def test_production_refuses_placeholder_secrets(env: dict[str, str]) -> None:
    refused = cli({**env, "REZEPTION_ENVIRONMENT": "production"}, "db", "current")
    assert refused.returncode == 2
    assert "REZEPTION_RETELL_API_KEY" in refused.stderr and "REZEPTION_ADMIN_SECRET" in refused.stderr


def test_reconcile_with_cal_com_away_names_the_cause_and_exits_non_zero(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Before (issue 12): `rezeption reconcile --tenant SLUG` crashed with a traceback."""
    with socket.socket() as s:  # a port nothing listens on: Cal.com is away
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    salon = (DEMO_SALON.parent / "friseur1-calcom.yaml").read_text(encoding="utf-8")
    salon_file = tmp_path / "calcom.yaml"
    salon_file.write_text(
        salon.replace("http://127.0.0.1:8765", f"http://127.0.0.1:{port}"), encoding="utf-8"
    )
    assert cli(env, "db", "upgrade").returncode == 0
    assert cli(env, "tenants", "load", str(salon_file)).returncode == 0

    done = cli(env, "reconcile", "--tenant", "friseur1-calcom")

    assert done.returncode == 1
    assert "errors: 1" in done.stdout
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: listing the calendar's bookings: CalendarUnavailable")
    assert "ConnectError" in line and "Traceback" not in done.stderr


def test_parse_shows_the_date_meant_and_a_refusal_exits_non_zero(env: dict[str, str]) -> None:
    """Before (issue 13): no date was printed, and a refusal exited 0."""
    now = "2025-11-05T10:00:00+01:00"
    meant = cli(env, "parse", "übermorgen", "halb drei", "--now", now)
    assert meant.returncode == 0 and meant.stdout.strip().endswith("→ Freitag, 07.11.2025, 14:30")
    refused = cli(env, "parse", "gestern", "--now", now)
    assert refused.returncode == 1 and refused.stdout == ""
    assert (
        refused.stderr.strip() == "past_date: Dieser Tag liegt in der Vergangenheit. Welchen Tag meinen Sie?"
    )


def test_worker_dead_says_how_many_there_are_even_none(env: dict[str, str]) -> None:
    """Before (issue 13): `worker --once --dead` printed nothing at all."""
    assert cli(env, "db", "upgrade").returncode == 0
    listed = cli(env, "worker", "--dead")
    assert listed.returncode == 0 and listed.stdout.strip() == "0 dead job(s)"
