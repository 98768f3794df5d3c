"""Engines and sessions for SQLite (the embedded default) and PostgreSQL (production).

SQLite gets WAL, foreign keys, a busy timeout and explicit transactions: a session opened for
writing starts with BEGIN IMMEDIATE, so one writer at a time holds the database while it checks
and claims a slot; reading sessions start with a plain BEGIN and never block writers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

WRITE_OPTION = "rezeption_write"


def is_sqlite(url: str) -> bool:
    """Whether `url` names an SQLite database."""
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    """An async engine for `url`, set up for safe concurrent booking on its backend."""
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})
        _configure_sqlite(engine)
        return engine
    # No pre-ping: it costs a round trip on every checkout (it doubled a 2 ms lookup). A connection
    # that died with the server is invalidated on its first error and the pool reconnects; recycling
    # bounds how long an idle connection is trusted.
    return create_async_engine(
        url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False, pool_recycle=300
    )


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """One engine with two session factories: for reading, and for writing (a claimed writer)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self.reader = async_sessionmaker(engine, expire_on_commit=False)
        self.writer = async_sessionmaker(
            engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Database:
        """Build a Database for `url`."""
        return cls(create_engine(url, **kwargs))

    def read(self) -> AsyncSession:
        """A session for queries only."""
        return self.reader()

    def write(self) -> AsyncSession:
        """A session whose transaction holds the write lock on SQLite (BEGIN IMMEDIATE)."""
        return self.writer()

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
