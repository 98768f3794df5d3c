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

Every wait is bounded (`Timeouts`), well inside the time a voice platform waits for a tool: a dead
or hanging PostgreSQL fails a connect after 3 s, a statement after 5 s, a checkout from an
exhausted pool after 3 s; an SQLite writer waits at most 2 s for this process's other writers and
2 s more for another process's lock. The errors are raised (OperationalError, TimeoutError) for the
caller to answer; nothing waits a minute. Errors never carry the statement's parameters
(`hide_parameters`): they hold phone numbers and names.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

WRITE_OPTION = "rezeption_write"
UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08", "53", "57", "58"})
"""PostgreSQL error classes that mean the server, not the request: connection exception (08),
insufficient resources such as a full disk (53), operator intervention such as a statement
timeout or a shutdown (57), system error (58)."""


def is_unavailable(error: BaseException) -> bool:
    """Whether `error` says the database is away, locked, full or too slow (it may pass), rather
    than that the request was wrong. A statement timeout on PostgreSQL is a plain DBAPIError
    (SQLSTATE 57014); SQLite's "locked" and "disk is full" are OperationalErrors."""
    if isinstance(error, OperationalError | InterfaceError | PoolTimeout | OSError | TimeoutError):
        return True
    if isinstance(error, DBAPIError):
        code = str(getattr(error.orig, "sqlstate", None) or "")
        return bool(error.connection_invalidated) or code[:2] in UNAVAILABLE_SQLSTATE_CLASSES
    return False


def is_sqlite(url: str) -> bool:
    """Whether `url` names an SQLite database."""
    return make_url(url).get_backend_name() == "sqlite"


@dataclass(frozen=True)
class Timeouts:
    """How long the database may keep us waiting, in seconds (settings `REZEPTION_DB_*_TIMEOUT`)."""

    connect: float = 3.0
    """PostgreSQL: opening a connection (TCP, TLS, start-up and login) to a dead or hanging server."""
    statement: float | None = 5.0
    """PostgreSQL: one statement (the server's `statement_timeout`; the client gives up 1 s later
    if even the cancel gets no answer). None: no limit (migrations)."""
    pool: float = 3.0
    """Waiting for a free connection when the pool is exhausted (both backends)."""
    busy: float = 2.0
    """SQLite: waiting for another process's write lock (the busy timeout), and again for this
    process's other writers (the writer queue): a writer waits at most twice this."""


MIGRATION_TIMEOUTS = Timeouts(connect=10.0, statement=None, pool=30.0, busy=30.0)
"""For schema migrations run by an operator: no statement limit, patient with locks."""


def create_engine(
    url: str, *, pool_size: int = 10, echo: bool = False, timeouts: Timeouts | None = None
) -> AsyncEngine:
    """An async engine for `url`, set up for safe concurrent booking on its backend."""
    timeouts = timeouts or Timeouts()
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url,
            echo=echo,
            hide_parameters=True,
            pool_timeout=timeouts.pool,
            connect_args={"timeout": timeouts.busy},
        )
        _configure_sqlite(engine, busy_ms=round(timeouts.busy * 1000))
        return engine
    connect_args: dict[str, Any] = {"timeout": timeouts.connect}
    if timeouts.statement is not None:
        connect_args["command_timeout"] = timeouts.statement + 1.0
        connect_args["server_settings"] = {"statement_timeout": str(round(timeouts.statement * 1000))}
    # No pre-ping: it costs a round trip on every checkout (it doubled a 2 ms lookup). A connection
    # that died with the server is invalidated on its first error and the pool reconnects; recycling
    # bounds how long an idle connection is trusted.
    engine = create_async_engine(
        url,
        echo=echo,
        hide_parameters=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        pool_recycle=300,
        pool_timeout=timeouts.pool,
        connect_args=connect_args,
    )
    event.listen(engine.sync_engine, "checkout", _replace_closed)
    return engine


def _replace_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection asyncpg closed while it waited (the cancel of a timed-out statement
    failed, the server went away) is replaced at checkout instead of failing its first statement:
    the pool discards it and takes another. A flag check, no round trip (unlike a pre-ping)."""
    if dbapi_connection._connection.is_closed():
        raise DisconnectionError("a pooled connection was closed while it waited")


def _configure_sqlite(engine: AsyncEngine, *, busy_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return
        immediate = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


WRITER_PATIENCE = Timeouts.busy
"""Seconds a writer waits for this process's other writers by default (then SQLite's busy timeout
for other processes): both together stay well inside a voice tool's time budget."""


class QueuedWriter:
    """SQLite's one writer per process, handed over in arrival order (see the module docstring)."""

    def __init__(self, patience: float | None = None) -> None:
        self._lock = asyncio.Lock()
        self.patience = patience

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold the write turn; TimeoutError after `patience` (default WRITER_PATIENCE): a writer
        that never finishes, or more writers queued than the database serves in that time."""
        patience = WRITER_PATIENCE if self.patience is None else self.patience
        await asyncio.wait_for(self._lock.acquire(), patience)
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

    def __init__(self, engine: AsyncEngine, *, writer_patience: float | None = None) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self.reader = async_sessionmaker(engine, expire_on_commit=False)
        self.writing_engine = engine.execution_options(**{WRITE_OPTION: True})
        self.queued_writer = QueuedWriter(writer_patience) if self.is_sqlite else None
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
        self._statements = (
            None if self.autocommit is None else async_sessionmaker(self.autocommit, expire_on_commit=False)
        )

    @classmethod
    def from_url(cls, url: str, *, timeouts: Timeouts | None = None, **kwargs: Any) -> Database:
        """Build a Database for `url` (default `Timeouts()`; `kwargs` go to `create_engine`)."""
        return cls(
            create_engine(url, timeouts=timeouts, **kwargs),
            writer_patience=timeouts.busy if timeouts is not None else None,
        )

    @property
    def sqlite_file(self) -> Path | None:
        """The SQLite database's file; None on PostgreSQL and for an in-memory database."""
        name = self.engine.url.database if self.is_sqlite else None
        if not name or name == ":memory:" or name.startswith("file:"):
            return None
        return Path(name)

    def read(self) -> AsyncSession:
        """A session for queries only. On PostgreSQL its statements run without BEGIN and ROLLBACK:
        under READ COMMITTED each statement takes its own snapshot inside a transaction too, so
        the transaction bought nothing but two round trips per read."""
        if self._statements is not None:
            return self._statements()
        return self.reader()

    def write(self) -> AsyncSession:
        """A session whose transaction holds the write lock on SQLite (BEGIN IMMEDIATE)."""
        session: AsyncSession = self.writer()
        return session

    def statements(self) -> AsyncSession:
        """PostgreSQL: a session whose every statement commits on its own (autocommit)."""
        if self._statements is None:
            raise RuntimeError("autocommit sessions are for PostgreSQL; SQLite writes in transactions")
        session: AsyncSession = self._statements()
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
