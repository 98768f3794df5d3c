"""Schema migrations as functions: upgrade, downgrade, current revision, and whether we are at head.

Wraps Alembic with the migration scripts shipped inside the package, so `rezeption db upgrade`
works from any directory and in an installed wheel.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import URL, make_url, text
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at our scripts and `url`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` up to `revision` (blocking; call outside an event loop)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    """Migrate the database at `url` down to `revision` (blocking; call outside an event loop)."""
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str:
    """The newest revision the shipped scripts know."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None, "no migrations shipped"
    return head


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one_or_none()
    except (OperationalError, ProgrammingError, DBAPIError):
        return None


def shown_url(url: str) -> str:
    """`url` fit to print: no password, no query (which may carry one)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "(an unreadable database URL)"
    bare = URL.create(parsed.drivername, parsed.username, None, parsed.host, parsed.port, parsed.database)
    return bare.render_as_string(hide_password=False)


async def connect_problem(engine: AsyncEngine) -> str | None:
    """Why the database cannot be opened, in one line (password hidden); None when it opens."""
    try:
        async with engine.connect():
            return None
    except Exception as error:  # refused, unknown host or database, bad login, unopenable file
        cause = getattr(error, "orig", None) or error
        detail = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        where = shown_url(engine.url.render_as_string(hide_password=False))
        return f"cannot open the database {where}: {detail}"


async def schema_problem(engine: AsyncEngine) -> str | None:
    """Why the database cannot serve the commands yet, in one line; None when it is at the newest schema.

    Unreachable, never migrated, behind the newest migration, or at a revision these scripts do not
    know (a newer rezeption migrated it). Operator commands print this and exit 2 instead of failing
    on the first query with an SQL traceback.
    """
    where = shown_url(engine.url.render_as_string(hide_password=False))
    unreachable = await connect_problem(engine)
    if unreachable is not None:
        return unreachable
    current, head = await current_revision(engine), head_revision()
    if current == head:
        return None
    upgrade = "run `rezeption db upgrade` first"
    if current is None:
        return f"the database {where} has no schema (never migrated): {upgrade}"
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    try:
        known = script.get_revision(current) is not None
    except Exception:  # alembic raises several kinds for an unknown revision id
        known = False
    if not known:
        return (
            f"the database {where} is at revision {current}, which this rezeption does not know "
            f"(its newest is {head}): run the rezeption version that migrated it"
        )
    return f"the database {where} is at revision {current}, not the newest {head}: {upgrade}"
