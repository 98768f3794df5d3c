"""A database that refuses, hangs, is locked, behind or out of disk: the server still starts within
seconds, /health answers, /ready answers 503 within ~2 s (only "not ready" in production), and no
database wait lasts longer than its setting (a voice tool call must get its answer within ~8 s).

Before (issue 11): /ready answered 500 on a refused connection; a hanging PostgreSQL held start-up
for 60 s and /ready for 60 s; an SQLite writer waited 30 s for another process's lock; /ready said
200 with the database locked or its disk full.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import namedtuple
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from tests.faults import HangingServer, serve_app, sqlite_write_lock

from rezeption.app import create_app
from rezeption.ops import readiness
from rezeption.settings import Settings
from rezeption.store import migrate
from rezeption.store.db import WRITER_PATIENCE, Database, Timeouts, is_unavailable

STRONG_KEY = "rk_7Qm2vXz9LpR4tW8yB3nF6hJ"
STRONG_ADMIN = "as_K5dG1sV7cN0qE2uY9iO4pL"
DiskUsage = namedtuple("DiskUsage", "total used free")


def settings_for(url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": url,
        "environment": "test",
        "embedded_worker": "off",
        "retell_api_key": STRONG_KEY,
        "admin_secret": STRONG_ADMIN,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated SQLite file of this test's own."""
    path = tmp_path / "trouble.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


def timed_get(url: str) -> tuple[httpx.Response, float]:
    began = time.monotonic()
    response = httpx.get(url, timeout=30)
    return response, time.monotonic() - began


@pytest.mark.parametrize("fault", ["refusing", "hanging"])
@pytest.mark.parametrize("environment", ["test", "production"])
def test_the_server_starts_is_alive_and_says_not_ready_when_postgres_is_dead(
    fault: str, environment: str, request: pytest.FixtureRequest
) -> None:
    url: str = request.getfixturevalue(f"{fault}_postgres_url")
    app = create_app(settings_for(url, environment=environment))
    with serve_app(app, start_within=10) as served:
        assert served.started_in < 5.0, f"start-up waited {served.started_in:.1f} s on a {fault} database"
        health, _ = timed_get(f"{served.url}/health")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        ready, seconds = timed_get(f"{served.url}/ready")
        assert ready.status_code == 503
        assert seconds < 3.0, f"/ready took {seconds:.1f} s"
        if environment == "production":
            assert ready.json() == {"status": "not ready"}
        else:
            assert ready.json()["status"] == "not ready" and ready.json()["problem"]
        docs = 404 if environment == "production" else 200
        for path in ("/docs", "/openapi.json", "/redoc"):
            assert httpx.get(f"{served.url}{path}").status_code == docs


async def test_a_hanging_postgres_fails_a_connect_after_the_connect_timeout(
    hanging_server: HangingServer,
) -> None:
    database = Database.from_url(
        f"postgresql+asyncpg://postgres@127.0.0.1:{hanging_server.port}/x", timeouts=Timeouts(connect=0.5)
    )
    began = time.monotonic()
    try:
        with pytest.raises((TimeoutError, OperationalError, OSError)):
            async with database.statement() as conn:
                await conn.execute(text("SELECT 1"))
    finally:
        await database.dispose()
    assert time.monotonic() - began < 2.0
    assert hanging_server.connections >= 1, "it really connected to the hanging server"


@pytest.mark.postgres
async def test_a_slow_statement_is_cancelled_after_the_statement_timeout(postgres_migrated: str) -> None:
    database = Database.from_url(postgres_migrated, timeouts=Timeouts(statement=0.5))
    began = time.monotonic()
    try:
        with pytest.raises(DBAPIError, match="statement timeout") as raised:
            async with database.statement() as conn:
                await conn.execute(text("SELECT pg_sleep(10)"))
        assert is_unavailable(raised.value), "answered as the database's trouble, not a bug"
        async with database.statement() as conn:  # the connection is usable again at once
            assert await conn.scalar(text("SELECT 1")) == 1
    finally:
        await database.dispose()
    assert time.monotonic() - began < 3.0


@pytest.mark.postgres
async def test_an_exhausted_pool_gives_up_after_the_pool_timeout(postgres_migrated: str) -> None:
    database = Database.from_url(postgres_migrated, pool_size=1, timeouts=Timeouts(pool=0.5))
    hold = asyncio.Event()
    holding = [asyncio.Event(), asyncio.Event()]

    async def holder(mine: asyncio.Event) -> None:
        async with database.statement() as conn:
            await conn.execute(text("SELECT 1"))
            mine.set()
            await hold.wait()

    holders = [asyncio.create_task(holder(mine)) for mine in holding]  # pool_size 1 + overflow 1
    await asyncio.gather(*(mine.wait() for mine in holding))
    began = time.monotonic()
    try:
        with pytest.raises(PoolTimeout):
            async with database.statement() as conn:
                await conn.execute(text("SELECT 1"))
        assert time.monotonic() - began < 2.0
    finally:
        hold.set()
        await asyncio.gather(*holders)
        await database.dispose()


def test_the_settings_bound_every_database_wait_by_default() -> None:
    timeouts = Settings().timeouts
    assert (timeouts.connect, timeouts.statement, timeouts.pool, timeouts.busy) == (3.0, 5.0, 3.0, 2.0)
    assert WRITER_PATIENCE + timeouts.busy <= 4.0, "an SQLite writer waits at most ~4 s in all"


async def test_an_sqlite_writer_gives_up_on_another_process_lock_within_the_busy_timeout(
    sqlite_url: str,
) -> None:
    database = Database.from_url(sqlite_url)  # the default timeouts, as the server has them
    path = database.sqlite_file
    assert path is not None
    began = time.monotonic()
    try:
        with sqlite_write_lock(path), pytest.raises(OperationalError, match="locked"):
            async with database.statement(writes=True) as conn:
                await conn.execute(text("DELETE FROM tenants WHERE id = -1"))
    finally:
        await database.dispose()
    waited = time.monotonic() - began
    assert 1.5 < waited < 3.5, f"waited {waited:.1f} s (busy timeout 2 s; 30 s before)"


async def test_an_sqlite_writer_queued_behind_a_stuck_writer_gives_up_after_its_patience(
    sqlite_url: str,
) -> None:
    database = Database.from_url(sqlite_url)
    inside, release = asyncio.Event(), asyncio.Event()

    async def stuck() -> None:
        async with database.transaction() as conn:
            await conn.execute(text("DELETE FROM tenants WHERE id = -1"))
            inside.set()
            await release.wait()

    task = asyncio.create_task(stuck())
    await inside.wait()
    began = time.monotonic()
    try:
        with pytest.raises(TimeoutError):
            async with database.statement(writes=True) as conn:
                await conn.execute(text("DELETE FROM tenants WHERE id = -2"))
    finally:
        release.set()
        await task
        await database.dispose()
    waited = time.monotonic() - began
    assert 1.5 < waited < 2.5, f"waited {waited:.1f} s (patience 2 s; 30 s before)"


def test_ready_is_503_while_another_process_holds_the_sqlite_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    app = create_app(settings_for(f"sqlite+aiosqlite:///{path}", warmup=False))
    with serve_app(app) as served:
        assert httpx.get(f"{served.url}/ready").status_code == 200
        with sqlite_write_lock(path):
            locked, seconds = timed_get(f"{served.url}/ready")
            assert locked.status_code == 503 and seconds < 3.0
            assert "locked" in locked.json()["problem"]
        assert httpx.get(f"{served.url}/ready").status_code == 200


def test_ready_is_503_on_a_schema_that_is_missing_or_behind(tmp_path: Path) -> None:
    path = tmp_path / "behind.db"
    url = f"sqlite+aiosqlite:///{path}"
    app = create_app(settings_for(url, warmup=False))
    with serve_app(app) as served:
        empty = httpx.get(f"{served.url}/ready")
        assert empty.status_code == 503 and "no schema" in empty.json()["problem"]
        migrate.upgrade(url)
        migrate.downgrade(url, "-1")
        behind = httpx.get(f"{served.url}/ready")
        assert behind.status_code == 503 and "newest schema" in behind.json()["problem"]
        migrate.upgrade(url)
        ready = httpx.get(f"{served.url}/ready")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "schema": migrate.head_revision()}


def test_production_ready_says_only_ready_or_not_ready(tmp_path: Path) -> None:
    path = tmp_path / "prod.db"
    url = f"sqlite+aiosqlite:///{path}"
    app = create_app(settings_for(url, warmup=False, environment="production"))
    with serve_app(app) as served:
        behind = httpx.get(f"{served.url}/ready")
        assert (behind.status_code, behind.json()) == (503, {"status": "not ready"})
        migrate.upgrade(url)
        ready = httpx.get(f"{served.url}/ready")
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
        assert migrate.head_revision() not in ready.text
        for path_ in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
            assert httpx.get(f"{served.url}{path_}").status_code == 404, path_


def test_production_serves_the_docs_only_when_asked_to(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'docs.db'}"
    app = create_app(settings_for(url, warmup=False, environment="production", docs=True))
    with serve_app(app) as served:
        assert httpx.get(f"{served.url}/docs").status_code == 200
        assert httpx.get(f"{served.url}/openapi.json").json()["info"]["title"] == "rezeption"


async def test_ready_notices_a_nearly_full_disk_under_the_sqlite_file(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The free-space check, with a disk that reports 5 MB free (a real full disk: tests/e2e)."""
    database = Database.from_url(sqlite_url)
    try:
        await _nearly_full_disk_is_noticed(database, monkeypatch)
    finally:
        await database.dispose()


async def _nearly_full_disk_is_noticed(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    assert await readiness.problem(database) is None
    seen: list[Path] = []

    def nearly_full(where: str | Path) -> DiskUsage:
        seen.append(Path(where))
        return DiskUsage(10 << 30, (10 << 30) - (5 << 20), 5 << 20)

    monkeypatch.setattr(shutil, "disk_usage", nearly_full)
    problem = await readiness.problem(database, min_free_bytes=64 << 20)
    assert problem is not None and "5 MB free" in problem
    assert database.sqlite_file is not None and seen == [database.sqlite_file.parent]
    assert await readiness.problem(database, min_free_bytes=1 << 20) is None


async def test_ready_is_never_an_exception(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_where: object) -> DiskUsage:
        raise PermissionError("no statfs for you")

    monkeypatch.setattr(shutil, "disk_usage", broken)
    problem = await readiness.problem(database)
    if database.is_sqlite:
        assert problem == "the database cannot be read (PermissionError)"
    else:
        assert problem is None
