"""Engines and sessions for SQLite (the embedded default) and PostgreSQL (production).

SQLite gets WAL, foreign keys, a busy timeout and explicit transactions: a session opened for
writing starts with BEGIN IMMEDIATE, so one writer at a time holds the database while it checks
and claims a slot; reading sessions start with a plain BEGIN and never block writers.

One process's SQLite writers also queue on an asyncio lock before BEGIN IMMEDIATE: contending in
SQLite itself puts a waiter to sleep in its busy handler (1, 2, 5 ... 100 ms steps), which gave the
embedded default closed-loop p99s over a second; the lock hands over the moment a writer is done.
Writers in other processes still meet SQLite's busy timeout.

Hot paths (a function call's call record, idempotency keys, traces) use Core statements on plain
connections (`statement()`, `transaction()`) instead of ORM sessions: on this machine an ORM
session costs ~0.9 ms of CPU for a one-row SELECT, an autocommit connection ~0.46 ms.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

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
        if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return
        immediate = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


WRITER_PATIENCE = 30.0  # seconds a writer waits for the lock, like SQLite's busy timeout


class QueuedWriter:
    """SQLite's one writer per process, handed over in arrival order (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold the write turn; TimeoutError after WRITER_PATIENCE (a writer that never finishes)."""
        await asyncio.wait_for(self._lock.acquire(), WRITER_PATIENCE)
        try:
            yield
        finally:
            self._lock.release()


class _QueuedSession(AsyncSession):
    """A write session that takes the process's SQLite write turn for its whole `async with`."""

    async def __aenter__(self) -> _QueuedSession:
        writer: QueuedWriter = self.info["queued_writer"]
        self._turn = writer.turn()
        await self._turn.__aenter__()
        try:
            return await super().__aenter__()
        except BaseException:
            await self._turn.__aexit__(None, None, None)
            raise

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await super().__aexit__(*exc)
        finally:
            await self._turn.__aexit__(None, None, None)


class Database:
    """One engine with two session factories: for reading, and for writing (a claimed writer)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self.reader = async_sessionmaker(engine, expire_on_commit=False)
        self.writing_engine = engine.execution_options(**{WRITE_OPTION: True})
        self.queued_writer = QueuedWriter() if self.is_sqlite else None
        self.writer: async_sessionmaker[Any]
        if self.queued_writer is not None:
            self.writer = async_sessionmaker(
                self.writing_engine,
                class_=_QueuedSession,
                expire_on_commit=False,
                info={"queued_writer": self.queued_writer},
            )
        else:
            self.writer = async_sessionmaker(self.writing_engine, expire_on_commit=False)
        # PostgreSQL: a lone statement needs no BEGIN/COMMIT round trips. SQLite keeps its explicit
        # transactions (BEGIN IMMEDIATE for writers), which cost no network round trip there.
        self.autocommit = None if self.is_sqlite else engine.execution_options(isolation_level="AUTOCOMMIT")

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Database:
        """Build a Database for `url`."""
        return cls(create_engine(url, **kwargs))

    def read(self) -> AsyncSession:
        """A session for queries only."""
        return self.reader()

    def write(self) -> AsyncSession:
        """A session whose transaction holds the write lock on SQLite (BEGIN IMMEDIATE)."""
        session: AsyncSession = self.writer()
        return session

    @asynccontextmanager
    async def statement(self, *, writes: bool = False) -> AsyncIterator[AsyncConnection]:
        """A connection for one self-contained Core statement (atomic on its own).

        Autocommit on PostgreSQL; on SQLite a short transaction (the write lock when `writes`),
        committed at the end. Use `transaction()` for more than one statement that must agree.
        """
        if self.autocommit is not None:
            async with self.autocommit.connect() as conn:
                yield conn
            return
        async with self.transaction(writes=writes) as conn:
            yield conn

    @asynccontextmanager
    async def transaction(self, *, writes: bool = True) -> AsyncIterator[AsyncConnection]:
        """A Core connection in one transaction: committed when the block ends, rolled back on error."""
        if writes and self.queued_writer is not None:
            async with self.queued_writer.turn(), self.writing_engine.begin() as conn:
                yield conn
            return
        engine = self.writing_engine if writes else self.engine
        async with engine.begin() as conn:
            yield conn

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
