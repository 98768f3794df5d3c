"""Readiness: may this process take traffic? The database answers in time, at the newest schema, and
(SQLite) can be written: no other process holds its write lock and its disk has room.

`problem(database)` returns None when ready, else one line for the operator; it never raises and
never takes longer than its `patience` (a hanging database is "not ready", not a hanging probe).
The line names no revision, URL or password; /ready shows it only outside production.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

from rezeption.store.db import Database
from rezeption.store.migrate import current_revision, head_revision

LOCK_PROBE_SECONDS = 0.5  # how long the SQLite write probe waits for another writer's lock


async def problem(database: Database, *, patience: float = 2.0, min_free_bytes: int = 64 << 20) -> str | None:
    """What keeps the database from serving, in one line; None when it is ready."""
    try:
        async with asyncio.timeout(patience):
            return await _check(database, min_free_bytes)
    except TimeoutError:
        return f"the database did not answer within {patience:g} s"
    except Exception as error:  # refused, reset, unreadable file: whatever it is, not ready
        return f"the database cannot be read ({type(error).__name__})"


async def _check(database: Database, min_free_bytes: int) -> str | None:
    current = await _current_revision(database)
    if current is None:
        return "the database has no schema: run `rezeption db upgrade`"
    if current != head_revision():
        return "the database is not at the newest schema: run `rezeption db upgrade`"
    path = database.sqlite_file
    if path is None:
        return None
    free = shutil.disk_usage(path.parent).free
    if free < min_free_bytes:
        return f"the disk of the SQLite database has {free >> 20} MB free (needs {min_free_bytes >> 20} MB)"
    if not await asyncio.to_thread(_can_take_write_lock, path):
        return "the SQLite database is locked by another process"
    return None


async def _current_revision(database: Database) -> str | None:
    """The schema revision; raises (unlike `migrate.current_revision`) when the database is away."""
    async with database.engine.connect():
        pass  # refused, hanging, unopenable: raise here, so it is not mistaken for "no schema"
    return await current_revision(database.engine)


def _can_take_write_lock(path: Path) -> bool:
    """Whether a writer would get SQLite's write lock now (BEGIN IMMEDIATE; ROLLBACK, nothing written).

    A separate, short-lived connection with its own short busy timeout: the pool's connections keep
    theirs, and a probe stuck behind a lock cannot be left running inside the pool.
    """
    try:
        probe = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=LOCK_PROBE_SECONDS, isolation_level=None
        )
    except sqlite3.Error:
        return False
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()
