"""Database errors never put a caller's number or name into a log line or an exception's text.

Before (issue 11): errors were logged with SQLAlchemy's `[parameters: ...]` (7 phone numbers and
names in one probe's logs), and PostgreSQL's own messages quote values too: a unique violation's
`DETAIL: Key (phone)=(+49...)`, a failed cast's `invalid input syntax for type integer: "+49..."`.
Each failure here is logged the ways the service logs: structlog (console and JSON) and the
standard library (uvicorn's "Exception in ASGI application").
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
import structlog
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from uvicorn.logging import DefaultFormatter

from rezeption.ops.logging import configure_logging, safe_traceback
from rezeption.store.db import Database

PHONE = "+4915123456789"
NAME = "Erika Mustermann"
PERSONAL = (PHONE, "15123456789", NAME, "Mustermann")


@pytest.fixture
def logs(capsys: pytest.CaptureFixture[str]) -> Iterator[io.StringIO]:
    """Everything the service would log, as text (stdlib through uvicorn's formatter, structlog)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(DefaultFormatter("%(levelprefix)s %(message)s", use_colors=False))
    uvicorn_error = logging.getLogger("uvicorn.error")
    # another test file in the same worker process may have left it quiet (a uvicorn.Config with
    # log_level="critical", as the emulators' servers have): the service's own process logs errors
    was = uvicorn_error.disabled, uvicorn_error.level
    uvicorn_error.disabled = False
    uvicorn_error.setLevel(logging.INFO)
    uvicorn_error.addHandler(handler)
    try:
        yield stream
    finally:
        uvicorn_error.removeHandler(handler)
        uvicorn_error.disabled = was[0]
        uvicorn_error.setLevel(was[1])
        structlog.reset_defaults()
        logging.setLogRecordFactory(logging.LogRecord)


def log_everywhere(error: BaseException) -> None:
    """Log `error` as our code and uvicorn do: structlog console and JSON, stdlib with a traceback."""
    for as_json in (False, True):
        configure_logging("info", as_json=as_json)
        structlog.get_logger("rezeption.test").exception("db.failed", call_id="call_1", exc_info=error)
        try:
            raise error
        except DBAPIError:
            structlog.get_logger("rezeption.test").exception("db.failed_in_handler")
    logging.getLogger("uvicorn.error").error("Exception in ASGI application", exc_info=error)


async def failures(database: Database) -> list[DBAPIError]:
    """Database errors whose statements carry a phone number and a name."""
    caught: list[DBAPIError] = []
    async with database.engine.connect() as conn:
        await conn.execute(text("CREATE TEMP TABLE probe (phone VARCHAR(20) PRIMARY KEY, name TEXT)"))
        await conn.commit()
        insert = text("INSERT INTO probe (phone, name) VALUES (:phone, :name)")
        person = {"phone": PHONE, "name": NAME}
        await conn.execute(insert, person)
        attempts = [
            insert,  # a unique violation (PostgreSQL: its DETAIL quotes the key)
            text("SELECT * FROM gone WHERE phone = :phone AND name = :name"),  # a dropped table
        ]
        if not database.is_sqlite:  # asyncpg quotes the argument it could not convert
            attempts.append(text("SELECT CAST(:phone AS integer), :name"))
        for statement in attempts:
            try:
                await conn.execute(statement, person)
            except DBAPIError as error:
                caught.append(error)
            await conn.rollback()
    return caught


async def test_database_errors_leave_no_number_or_name_in_logs(
    database: Database, logs: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    caught = await failures(database)
    assert len(caught) == (2 if database.is_sqlite else 3)
    for error in caught:
        assert "[parameters:" not in str(error), "statements never carry their values (hide_parameters)"
        log_everywhere(error)
    written = capsys.readouterr()
    text_out = written.out + written.err + logs.getvalue()
    for personal in PERSONAL:
        assert personal not in text_out, f"{personal!r} was logged"
    # What an operator needs is still there: which error, where, and the database's code for it.
    assert "IntegrityError" in text_out and "Exception in ASGI application" in text_out
    assert "test_log_privacy.py" in text_out, "the traceback's frames are kept"
    if not database.is_sqlite:
        assert "sqlstate=23505" in text_out and "sqlstate=42P01" in text_out
    assert text_out.count("db.failed") >= 2 * len(caught)


@pytest.mark.postgres
async def test_the_driver_text_itself_quotes_values_so_hiding_parameters_is_not_enough(
    postgres_migrated: str,
) -> None:
    """Why the log renderer drops database errors' text: on PostgreSQL the value is in the message."""
    database = Database.from_url(postgres_migrated)
    try:
        caught = await failures(database)
    finally:
        await database.dispose()
    assert any(PHONE in str(error) for error in caught), "PostgreSQL quotes values in its messages"
    for error in caught:
        assert PHONE not in safe_traceback(error) and NAME not in safe_traceback(error)


def test_validation_errors_keep_where_and_what_but_not_the_input() -> None:
    from pydantic import BaseModel, ValidationError

    class Caller(BaseModel):
        phone: bool
        name: bool

    with pytest.raises(ValidationError) as raised:
        Caller.model_validate({"phone": PHONE, "name": NAME})
    rendered = safe_traceback(raised.value)
    assert "phone: bool_parsing" in rendered and "name: bool_parsing" in rendered
    assert PHONE not in rendered and NAME not in rendered
