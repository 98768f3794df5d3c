"""Operator commands against a database that was never migrated, or is behind: one line, exit code 2.

`availability`, `reconcile`, `worker`, `customers export|erase` and `tenants load` say what is wrong
and what to run instead of printing an SQL traceback, on a fresh SQLite file and on a fresh
PostgreSQL database (whose URL carries a password that must never be printed).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from tests.conftest import DEMO_SALON, create_postgres_database, drop_postgres_database

from rezeption.store.migrate import head_revision

REZEPTION = [sys.executable, "-m", "rezeption.cli"]
PASSWORD = "s3cret-pw"
NO_SCHEMA = re.compile(
    r"rezeption: the database (sqlite\+aiosqlite|postgresql\+asyncpg)://\S+ has no schema "
    r"\(never migrated\): run `rezeption db upgrade` first"
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of an operator whose database exists but holds no schema."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    else:
        url = create_postgres_database()
    with_password = make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)
    try:
        yield {**os.environ, "REZEPTION_DATABASE_URL": with_password, "REZEPTION_ENVIRONMENT": "development"}
    finally:
        if request.param == "postgres":
            drop_postgres_database(url)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*REZEPTION, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def assert_refused(done: subprocess.CompletedProcess[str], line: re.Pattern[str] = NO_SCHEMA) -> None:
    """Exit code 2, nothing on stdout, exactly one line on stderr, no traceback, no password."""
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert line.fullmatch(done.stderr.strip()), done.stderr
    assert "Traceback" not in done.stderr and PASSWORD not in done.stderr


def test_availability_on_a_database_never_migrated(env: dict[str, str]) -> None:
    assert_refused(
        cli(env, "availability", "--tenant", "friseur1", "--service", "Färben", "--date", "2099-01-01")
    )


def test_reconcile_on_a_database_never_migrated(env: dict[str, str]) -> None:
    assert_refused(cli(env, "reconcile"))
    assert_refused(cli(env, "reconcile", "--tenant", "friseur1"))


def test_the_worker_on_a_database_never_migrated(env: dict[str, str]) -> None:
    assert_refused(cli(env, "worker", "--once"))
    assert_refused(cli(env, "worker", "--dead"))


def test_customers_export_and_erase_on_a_database_never_migrated(env: dict[str, str]) -> None:
    assert_refused(cli(env, "customers", "export", "+4915112345678"))
    assert_refused(cli(env, "customers", "erase", "42", "--yes"))
    assert_refused(cli(env, "customers", "erase", "42"))  # before asking anything


def test_tenants_load_on_a_database_never_migrated(env: dict[str, str]) -> None:
    assert_refused(cli(env, "tenants", "load", "--if-empty", str(DEMO_SALON)))


def test_a_database_behind_the_newest_migration_names_both_revisions_until_upgraded(
    env: dict[str, str],
) -> None:
    assert cli(env, "db", "upgrade", "0003").returncode == 0
    behind = re.compile(
        r"rezeption: the database \S+ is at revision 0003, not the newest "
        + re.escape(head_revision())
        + r": run `rezeption db upgrade` first"
    )
    assert_refused(cli(env, "tenants", "load", str(DEMO_SALON)), behind)
    assert_refused(cli(env, "reconcile"), behind)
    assert cli(env, "db", "upgrade").returncode == 0
    loaded = cli(env, "tenants", "load", str(DEMO_SALON))
    assert loaded.returncode == 0 and "created" in loaded.stdout, loaded.stderr
    assert cli(env, "reconcile").returncode == 0


def test_an_unreachable_database_is_one_line_too_and_shows_no_password() -> None:
    url = f"postgresql+asyncpg://rezeption:{PASSWORD}@127.0.0.1:1/rezeption"
    env = {**os.environ, "REZEPTION_DATABASE_URL": url, "REZEPTION_ENVIRONMENT": "development"}
    unreachable = re.compile(
        r"rezeption: cannot open the database postgresql\+asyncpg://rezeption@127\.0\.0\.1:1/rezeption: .+"
    )
    assert_refused(cli(env, "reconcile"), unreachable)
