"""Operator commands refuse a database without the newest schema in one line, not an SQL traceback.

`rezeption availability`, `reconcile`, `worker`, `tenants load` and `customers export|erase` run
`run_with_schema(work)`: before `work` touches a table, the database must answer and be at the
newest migration (`store.migrate.schema_problem`); otherwise one line goes to stderr, e.g.
"rezeption: the database sqlite+aiosqlite:///var/rezeption.db has no schema (never migrated): run
`rezeption db upgrade` first", and the command exits with code 2. The URL is printed without its
password. `db ...` does not use this. `serve` checks before it starts (`serving_problem`): a
database that answers without the newest schema is refused in the same one line (`serve --migrate`
migrates first); one that does not answer at all is no reason to stay down (the server starts,
/ready answers 503 until it is back).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import typer

from rezeption.store import migrate
from rezeption.store.db import Database, Timeouts

T = TypeVar("T")
EXIT_NOT_READY = 2


class SchemaNotReady(Exception):
    """The database is unreachable or not at the newest migration (the message says which)."""


async def require_schema(database: Database) -> None:
    """Raise `SchemaNotReady` unless the database answers and is at the newest migration."""
    problem = await migrate.schema_problem(database.engine)
    if problem is not None:
        raise SchemaNotReady(problem)


def run_with_schema(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """`asyncio.run(work())`, where `work` calls `require_schema` first; not ready: one line, exit 2."""
    try:
        return asyncio.run(work())
    except SchemaNotReady as problem:
        typer.echo(f"rezeption: {problem}", err=True)
        raise typer.Exit(EXIT_NOT_READY) from None


async def serving_problem(url: str) -> str | None:
    """Why `serve` must not start on `url`: it answers but is not at the newest schema. None when it
    is ready, and None when it does not answer (a database that is away may come back)."""
    database = _probe_database(url)
    try:
        if await migrate.connect_problem(database.engine) is not None:
            return None
        return await migrate.schema_problem(database.engine)
    finally:
        await database.dispose()


def _probe_database(url: str) -> Database:
    """A one-connection handle for a quick look, with the usual bounded waits."""
    return Database.from_url(url, pool_size=1, timeouts=Timeouts(connect=3.0, statement=5.0, pool=3.0))


def require_reachable(url: str) -> None:
    """One line and exit 2 when the database at `url` cannot be opened (before a migration runs)."""

    async def probe() -> str | None:
        database = _probe_database(url)
        try:
            return await migrate.connect_problem(database.engine)
        finally:
            await database.dispose()

    problem = asyncio.run(probe())
    if problem is not None:
        typer.echo(f"rezeption: {problem}", err=True)
        raise typer.Exit(EXIT_NOT_READY)
