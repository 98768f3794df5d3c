"""Test fixtures: real databases (a migrated SQLite file per test, a throwaway PostgreSQL database per
run), the demo salon, and a fixed clock.

PostgreSQL comes from REZEPTION_TEST_POSTGRES_URL (default: the local server, user postgres). When it
cannot be reached the run fails with a clear message; only REZEPTION_TEST_SERVICES=off deselects the
tests that need it (CI never sets it).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

# pytest-xdist's workers start with COLUMNS=80, and the CLI's Rich consoles, made at import, would
# keep that width for good; the CLI tests give each command its own COLUMNS (as a terminal does).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.pop("COLUMNS", None)

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from rezeption.booking.bookings import Bookings
from rezeption.calendars.directory import CalendarDirectory
from rezeption.domain.clock import FixedClock
from rezeption.store import migrate
from rezeption.store.db import Database
from rezeption.store.salon_file import read_salon
from rezeption.store.salon_import import import_salon
from rezeption.store.tables import Base
from rezeption.store.uow import SqlUnitOfWork
from tests.faults import HangingServer, postgres_url_at, refusing_port

ROOT = Path(__file__).resolve().parents[1]
DEMO_SALON = ROOT / "salons" / "friseur1.yaml"
BERLIN = ZoneInfo("Europe/Berlin")
POSTGRES_URL = os.environ.get(
    "REZEPTION_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
SERVICES_OFF = os.environ.get("REZEPTION_TEST_SERVICES", "").lower() == "off"
SERVICE_MARKERS = ("postgres", "redis")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With REZEPTION_TEST_SERVICES=off, deselect (and say so) the tests that need PostgreSQL/Redis."""
    if not SERVICES_OFF:
        return
    dropped = [i for i in items if any(i.get_closest_marker(m) for m in SERVICE_MARKERS)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if i not in dropped]
        print(f"\nREZEPTION_TEST_SERVICES=off: {len(dropped)} PostgreSQL/Redis tests deselected")


def redis_url(db: int) -> str:
    """Redis database `db` on 127.0.0.1:6379 for this test process: `make test` runs two worker
    processes (pytest-xdist), and tests flush their database, so each worker takes its own
    (`db`, `db` - 2, ...)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    if not 0 <= db - 2 * index <= 15:
        raise ValueError(f"no Redis database left for worker {worker}")
    return f"redis://127.0.0.1:6379/{db - 2 * index}"


def berlin(*args: int) -> datetime:
    """An aware Europe/Berlin datetime."""
    return datetime(*args, tzinfo=BERLIN)  # type: ignore[misc]


def postgres_url_for(database: str) -> str:
    """The test server's URL with another database name."""
    return make_url(POSTGRES_URL).set(database=database).render_as_string(hide_password=False)


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(POSTGRES_URL), timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_postgres_database() -> str:
    """Create an empty throwaway database and return its URL; fail loudly if the server is away."""
    name = f"rezeption_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        shown = make_url(POSTGRES_URL).render_as_string(hide_password=True)
        pytest.fail(
            f"PostgreSQL is not reachable at {shown}: {error!r}. Start it (see `env`), or point "
            "REZEPTION_TEST_POSTGRES_URL at a server; REZEPTION_TEST_SERVICES=off deselects these tests.",
            pytrace=False,
        )
    return postgres_url_for(name)


def drop_postgres_database(url: str) -> None:
    """Drop a throwaway database, even if connections linger."""
    name = make_url(url).database
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session", autouse=True)
def development_secrets_in_a_temporary_place(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Development settings generate secrets into REZEPTION_DEV_SECRETS_FILE: during the tests (and
    their server subprocesses, which inherit the environment) that is a temporary file, never the
    working copy's var/."""
    before = os.environ.get("REZEPTION_DEV_SECRETS_FILE")
    os.environ["REZEPTION_DEV_SECRETS_FILE"] = str(tmp_path_factory.mktemp("secrets") / "dev-secrets.json")
    yield
    if before is None:
        os.environ.pop("REZEPTION_DEV_SECRETS_FILE", None)
    else:
        os.environ["REZEPTION_DEV_SECRETS_FILE"] = before


@pytest.fixture(scope="session")
def postgres_migrated() -> Iterator[str]:
    """One migrated PostgreSQL database for the whole run (tables emptied before each test)."""
    url = create_postgres_database()
    try:
        migrate.upgrade(url)
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database of each backend."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "test.db"
        shutil.copy(template, path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_migrated")
    return url


async def empty_tables(database: Database) -> None:
    """Remove every row (PostgreSQL shares one database across tests)."""
    if database.is_sqlite:
        return
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with database.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A Database over an empty migrated schema."""
    db = Database.from_url(database_url, pool_size=25)
    await empty_tables(db)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
def hanging_server() -> Iterator[HangingServer]:
    """A TCP server on 127.0.0.1 that accepts and never answers (see tests/faults.py)."""
    with HangingServer() as server:
        yield server


@pytest.fixture
def hanging_postgres_url(hanging_server: HangingServer) -> str:
    """A PostgreSQL URL whose server accepts connections and never answers."""
    return postgres_url_at(hanging_server.port)


@pytest.fixture
def refusing_postgres_url() -> str:
    """A PostgreSQL URL whose server refuses every connection (nothing listens on the port)."""
    return postgres_url_at(refusing_port())


@pytest.fixture
def clock() -> FixedClock:
    """Monday 3 November 2025, 08:00 in Berlin (the salon opens Tuesday)."""
    return FixedClock(berlin(2025, 11, 3, 8, 0))


@pytest.fixture
async def salon_id(database: Database, clock: FixedClock) -> int:
    """The demo salon Friseur 1, loaded from its file."""
    report = await import_salon(database, read_salon(DEMO_SALON), now=clock.now())
    return report.tenant_id


@pytest.fixture
def bookings(database: Database, clock: FixedClock) -> Bookings:
    """The booking use cases on the embedded calendar."""
    uow = SqlUnitOfWork(database)
    return Bookings(uow=uow, calendars=CalendarDirectory(uow), clock=clock)
