"""Operator commands refuse a database without the newest schema in one line, not an SQL traceback.

`rezeption availability`, `reconcile`, `worker`, `tenants load` and `customers export|erase` run
`run_with_schema(work)`: before `work` touches a table, the database must answer and be at the
newest migration (`store.migrate.schema_problem`); otherwise one line goes to stderr, e.g.
"rezeption: the database sqlite+aiosqlite:///var/rezeption.db has no schema (never migrated): run
`rezeption db upgrade` first", and the command exits with code 2. The URL is printed without its
password. `serve` (whose /ready answers 503 instead) and `db ...` do not use this.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import typer

from rezeption.store import migrate
from rezeption.store.db import Database

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
