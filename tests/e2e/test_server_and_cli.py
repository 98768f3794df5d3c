"""The two README commands' parts, as an operator runs them: CLI migrations, salon loading,
availability at a terminal, and the server under uvicorn answering /health and /ready."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
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


@pytest.fixture
def server(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [*REZEPTION, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):  # at most ~10 s
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError("server did not come up")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_server_is_alive_but_not_ready_until_migrated(server: str, env: dict[str, str]) -> None:
    assert httpx.get(f"{server}/health").json() == {"status": "ok"}
    not_ready = httpx.get(f"{server}/ready")
    assert not_ready.status_code == 503
    upgraded = cli(env, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    ready = httpx.get(f"{server}/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


def test_operator_migrates_loads_the_demo_salon_once_and_reads_free_slots(env: dict[str, str]) -> None:
    assert cli(env, "db", "current").returncode == 1  # not migrated yet
    assert cli(env, "db", "upgrade").returncode == 0
    assert cli(env, "db", "current").returncode == 0
    loaded = cli(env, "tenants", "load", "--if-empty", str(DEMO_SALON))
    assert "created" in loaded.stdout
    again = cli(env, "tenants", "load", "--if-empty", str(DEMO_SALON))
    assert "nothing loaded" in again.stdout
    slots = cli(env, "availability", "--tenant", "friseur1", "--service", "Färben", "--date", "2099-01-01")
    assert slots.returncode == 0, slots.stderr
    future = cli(
        env, "availability", "--tenant", "friseur1", "--service", "Haare färben", "--date", "2026-12-01"
    )
    assert future.returncode == 0, future.stderr


def test_operator_errors_are_precise_and_exit_non_zero(env: dict[str, str], tmp_path: Path) -> None:
    assert cli(env, "db", "upgrade").returncode == 0
    broken = tmp_path / "broken.yaml"
    broken.write_text("slug: x\nname: X\n", encoding="utf-8")
    refused = cli(env, "tenants", "load", str(broken))
    assert refused.returncode == 2
    assert "opening_hours" in refused.stderr and "Field required" in refused.stderr
    cli(env, "tenants", "load", str(DEMO_SALON))
    unknown = cli(
        env, "availability", "--tenant", "friseur1", "--service", "Dauerwelle", "--date", "2026-12-01"
    )
    assert unknown.returncode == 2 and "unknown_service" in unknown.stderr
    bad_date = cli(env, "availability", "--tenant", "friseur1", "--service", "Bart", "--date", "1.12.")
    assert bad_date.returncode == 2 and "YYYY-MM-DD" in bad_date.stderr


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
