"""Structured logging (structlog): one line per event in one format for every source (our events,
uvicorn, libraries), JSON in production, with no personal data.

Exceptions are rendered by `safe_traceback` wherever they are logged, by structlog or by the
standard library (uvicorn's "Exception in ASGI application", SQLAlchemy, asyncio): frames and
exception types as usual, but the text of database errors is dropped. That text can quote the
statement's values (asyncpg: `invalid input for query argument $1: '+49151…'`, a unique
violation's `DETAIL: Key (phone)=(+49151…)`, SQLAlchemy's `[parameters: …]`), and those are phone
numbers and names. What stays: the error's class, its SQLSTATE or SQLite error name, the
constraint and table. Validation errors keep where and what, not the input.
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy.exc import StatementError

DRIVER_MODULES = ("asyncpg", "sqlite3", "aiosqlite", "psycopg", "sqlalchemy.dialects")
MAX_MESSAGE = 500
VALUES_AT_DEBUG = ("aiosqlite",)
"""Libraries whose debug lines quote a statement's values (aiosqlite logs every call it runs with
its parameters: phone numbers and names): held at INFO or above whatever the level, so
REZEPTION_LOG_LEVEL=debug does not write every caller's number and name."""


def safe_message(error: BaseException) -> str:
    """The message of `error` fit for a log: database errors without the values they may quote."""
    if isinstance(error, StatementError):
        orig = error.orig
        about = _driver_facts(orig) if orig is not None else ""
        return f"{type(orig).__name__ if orig is not None else 'error'}{about} (statement and values hidden)"
    if _from_driver(error):
        return f"{type(error).__name__}{_driver_facts(error)} (message hidden)"
    if isinstance(error, ValidationError):
        places = "; ".join(
            f"{'.'.join(str(part) for part in e['loc']) or '(root)'}: {e['type']}" for e in error.errors()
        )
        return f"{error.error_count()} validation error(s) for {error.title}: {places}"[:MAX_MESSAGE]
    text = str(error)
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "…"


def _from_driver(error: BaseException) -> bool:
    module = type(error).__module__ or ""
    return any(module == name or module.startswith(name + ".") for name in DRIVER_MODULES)


def _driver_facts(error: BaseException) -> str:
    """The parts of a driver error that name code, not data: SQLSTATE, SQLite's name, constraint."""
    facts = []
    for attribute in ("sqlstate", "sqlite_errorname", "constraint_name", "table_name"):
        value = getattr(error, attribute, None)
        if isinstance(value, str) and value:
            facts.append(f"{attribute}={value}")
    return f" [{', '.join(facts)}]" if facts else ""


def safe_traceback(error: BaseException) -> str:
    """A traceback of `error` and the exceptions it came from, each message through `safe_message`;
    an exception that caused a database error (a driver's TypeError quoting the value it could not
    convert, say) shows its type only."""
    chain: list[tuple[BaseException, str, bool]] = []  # outermost first: (exception, link, hidden)
    seen: set[int] = set()
    current: BaseException | None = error
    link, below_database = "", False
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        below_database = below_database or isinstance(current, StatementError) or _from_driver(current)
        chain.append((current, link, below_database))
        if current.__cause__ is not None:
            current, link = current.__cause__, "The above exception was the direct cause of the following"
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, "During handling of the above exception, another occurred"
        else:
            current = None
    parts: list[str] = []
    for exception, link, hidden in reversed(chain):  # the first cause first, as Python prints them
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_tb(exception.__traceback__))
        kind, module = type(exception), type(exception).__module__
        name = kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"
        message = safe_message(exception)
        if hidden and not (isinstance(exception, StatementError) or _from_driver(exception)):
            message = "(message hidden: it caused a database error)"
        parts.append(f"{name}: {message}\n")
        if link:
            parts.append(f"\n{link}:\n\n")
    return "".join(parts).rstrip("\n")


def _exception_of(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        return exc_info[1] if isinstance(exc_info[1], BaseException) else None
    if exc_info:
        return sys.exc_info()[1]
    return None


def render_exception_safely(_logger: Any, _name: str, event_dict: Any) -> Any:
    """structlog processor: `exc_info` becomes an `exception` string rendered by `safe_traceback`."""
    exception = _exception_of(event_dict.pop("exc_info", None))
    if exception is not None:
        event_dict["exception"] = safe_traceback(exception)
    return event_dict


_standard_factory = logging.getLogRecordFactory()


def _safe_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Every standard-library record with an exception gets its traceback text from `safe_traceback`
    (formatters use a record's `exc_text` when it is set, whatever handler formats it)."""
    record = _standard_factory(*args, **kwargs)
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        record.exc_text = safe_traceback(record.exc_info[1])
    return record


_HANDLER_MARK = "_rezeption_handler"


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time of the record (test captures replace it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(level: str = "info", *, as_json: bool = False) -> None:
    """One format for every line on stderr, at `level`: our structlog events, and the standard
    library's records (uvicorn's server and access lines, SQLAlchemy, asyncio) rendered by the same
    structlog processors; one JSON object per line with `as_json` (production). Exceptions rendered
    safely everywhere. Calling it again (each uvicorn worker process, tests) replaces only our handler.
    """
    logging.setLogRecordFactory(_safe_record)
    # Plain text, never Rich's tracebacks: rendering one with local variables took seconds on the
    # event loop (every caller waited) and would print personal data held in locals.
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            render_exception_safely,
            renderer,
        ],
    )
    handler = _CurrentStderr()
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not getattr(h, _HANDLER_MARK, False)] + [handler]
    root.setLevel(level.upper())
    for name in VALUES_AT_DEBUG:
        logging.getLogger(name).setLevel(max(root.level, logging.INFO))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # through the root handler only
        named = logging.getLogger(name)
        named.handlers = []
        named.propagate = True
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            render_exception_safely,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )


def bind_request(*, call_id: str | None = None, salon: str | None = None) -> None:
    """Put the call id and the salon's slug on every later log line of this request (its task and
    the tasks it starts; uvicorn's access line included). Values that are None are left out."""
    values = {k: v for k, v in (("call_id", call_id), ("salon", salon)) if v}
    if values:
        structlog.contextvars.bind_contextvars(**values)
