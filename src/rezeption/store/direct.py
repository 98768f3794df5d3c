"""The hot statements on PostgreSQL, run by asyncpg itself on SQLAlchemy's connection.

SQLAlchemy's async layer costs several times asyncpg's own work per statement (a greenlet hop, an
execution context, parameter and result objects): measured in-process, half of a booking's CPU was
inside it, for eight statements. `rows`, `first` and `scalar` take the same Core statement a caller
would pass to `AsyncConnection.execute`, compile it once per statement for asyncpg (`$n`
placeholders, SQLAlchemy's bind processors such as the UTC check and JSON), and run it through the
asyncpg connection SQLAlchemy checked out: in its transaction (begun first, as SQLAlchemy would,
unless the connection is in autocommit), under its execute lock. Errors come back as SQLAlchemy's
(IntegrityError, DBAPIError, ...), and a connection lost with the server is invalidated, so callers
handle both paths alike. Other databases (SQLite), and an engine whose statement events somebody
listens to (OpenTelemetry's SQLAlchemy instrumentation, a test counting statements), take
SQLAlchemy's path unchanged, so every statement is still traced and seen.

Statements for this path have no bound lists (`in_` of parameters): an IN over constants is
written `op("IN")` over a literal list, and a parameter list is a PostgreSQL array (`any_`).

It leans on SQLAlchemy's asyncpg adapter (its `_execute_mutex`, `_transaction` and
`_start_transaction`); tests/integration/test_direct_statements.py pins the behaviour, including
transactions and errors, so a SQLAlchemy release that changes them fails there first. No library
offers this; it is kept to the few functions below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import bindparam, exc, exists, func, select, true
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable


class Row(asyncpg.Record):  # type: ignore[misc]  # asyncpg has no type stubs
    """An asyncpg record that also answers attribute access, like SQLAlchemy's Row."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]
    constants: Mapping[str, Any]  # values bound in the statement itself (a LIMIT 1)


_compiled: dict[int, tuple[Executable, _Compiled]] = {}


def _compile(statement: Executable, dialect: Dialect) -> _Compiled:
    known = _compiled.get(id(statement))
    if known is not None and known[0] is statement:
        return known[1]
    compiled: Any = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    if "POSTCOMPILE" in compiled.string:
        raise ValueError("a statement for rezeption.store.direct may not bind a list (use any_ or op('IN'))")
    names = tuple(compiled.positiontup)
    processors = tuple(compiled._bind_processors.get(name) for name in names)
    constants = {name: bind.value for name, bind in compiled.binds.items() if not bind.required}
    result = _Compiled(compiled.string, names, processors, constants)
    _compiled[id(statement)] = (statement, result)  # statements are module constants: few, kept
    return result


def relaxed_commit(statement: Any) -> Any:
    """PostgreSQL: `statement` (a SELECT, UPDATE or DELETE run on its own, in autocommit) made to
    commit without waiting for its WAL to reach the disk: the statement itself sets
    `synchronous_commit = off` for its own transaction (`set_config(..., is_local => true)` in a
    CTE its WHERE asks for), so it costs no extra round trip and the connection keeps its setting.

    Only for writes that a retry recovers (a function call's key claim, its stored reply): a crash
    of PostgreSQL itself (not of ours) can lose the last moments of such writes, never reorder them.
    Every later durable commit flushes the WAL before it, so a booking that followed such a write
    is never on disk without it. Never for a statement inside a larger transaction: the setting
    would relax the whole transaction."""
    setting = func.set_config("synchronous_commit", "off", true()).label("relaxed")
    relaxed = select(setting).cte("relaxed_commit")
    made = statement.where(exists(select(relaxed.c.relaxed)))
    _relaxed.add(id(made))  # module constants: `rows` refuses them inside a transaction
    return made


_relaxed: set[int] = set()


def placeholders(table: Any, names: Sequence[str]) -> dict[str, Any]:
    """One typed placeholder per column in `names`, for `insert(table).values(...)`: a statement
    compiled once needs its columns fixed (an INSERT given a dict per call takes them from it)."""
    return {name: bindparam(name, type_=table.c[name].type) for name in names}


def insert_once(table: Any, names: Sequence[str], returning: Any) -> dict[str, Executable]:
    """Per dialect name, `INSERT ... ON CONFLICT DO NOTHING RETURNING returning` of the columns
    `names` (typed placeholders): the row's first writer gets `returning` back, a later one nothing."""
    return {
        dialect: dialect_insert(table)
        .values(placeholders(table, names))
        .on_conflict_do_nothing()
        .returning(returning)
        for dialect, dialect_insert in (("sqlite", sqlite_insert), ("postgresql", pg_insert))
    }


async def rows(conn: AsyncConnection, statement: Executable, params: Mapping[str, Any]) -> Sequence[Any]:
    """All rows of `statement` with `params` (attribute and index access)."""
    sync = conn.sync_connection
    watched = sync is not None and bool(
        sync.dispatch.before_cursor_execute or sync.dispatch.after_cursor_execute
    )
    if conn.dialect.name != "postgresql" or watched:
        executed = await conn.execute(statement, params)
        return executed.all() if executed.returns_rows else []
    if id(statement) in _relaxed:
        options = sync.get_execution_options() if sync is not None else {}
        if options.get("isolation_level") != "AUTOCOMMIT":
            raise ValueError(
                "a relaxed-commit statement runs on its own (autocommit): in a transaction it relaxes all"
            )
    compiled = _compile(statement, conn.dialect)
    args = []
    for name, process in zip(compiled.names, compiled.processors, strict=True):
        value = params[name] if name in params else compiled.constants[name]
        args.append(process(value) if process is not None else value)
    live = sync is not None and not sync.closed and not sync.invalidated
    # a live connection's pooled DBAPI connection is at hand; otherwise SQLAlchemy revalidates it
    fairy = sync.connection if live and sync is not None else await conn.get_raw_connection()
    adapted: Any = fairy.dbapi_connection  # one closed while it waited in the pool was replaced at
    # checkout (`store.db`), for this path and SQLAlchemy's alike
    try:
        async with adapted._execute_mutex:
            if adapted._transaction is None:
                await adapted._start_transaction()  # a no-op in autocommit
            result: Sequence[Any] = await adapted._connection.fetch(compiled.sql, *args, record_class=Row)
            return result
    except Exception as error:
        translated = await _translated(conn, adapted, compiled.sql, error)
        if translated is error:
            raise
        raise translated from error
    except BaseException:
        # Cancelled mid-statement (a budget ran out): the connection's state is unknown. As
        # SQLAlchemy does, invalidate it (asyncpg's terminate, outside a greenlet: no wait).
        if conn.sync_connection is not None and not conn.sync_connection.invalidated:
            conn.sync_connection.invalidate()
        raise


async def first(conn: AsyncConnection, statement: Executable, params: Mapping[str, Any]) -> Any | None:
    """The first row, or None."""
    found = await rows(conn, statement, params)
    return found[0] if found else None


async def scalar(conn: AsyncConnection, statement: Executable, params: Mapping[str, Any]) -> Any | None:
    """The first column of the first row, or None."""
    row = await first(conn, statement, params)
    return None if row is None else row[0]


async def _translated(conn: AsyncConnection, adapted: Any, sql: str, error: Exception) -> Exception:
    """`error` as SQLAlchemy's execute would raise it; the connection invalidated when it is lost."""
    try:
        adapted._handle_exception(error)  # asyncpg's error -> the adapter's DBAPI error (always raises)
    except Exception as translated:
        dbapi_error = translated
    dbapi = conn.dialect.loaded_dbapi
    if not isinstance(dbapi_error, dbapi.Error):
        return dbapi_error  # a timeout or a cancellation: as SQLAlchemy lets them through
    lost = conn.dialect.is_disconnect(dbapi_error, adapted, None)
    if lost:
        await conn.invalidate()
    return exc.DBAPIError.instance(
        sql,
        None,
        dbapi_error,
        dbapi.Error,
        hide_parameters=True,
        connection_invalidated=lost,
        dialect=conn.dialect,
    )
