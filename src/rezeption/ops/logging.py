"""Structured logging (structlog): one line per event, JSON in production, with no personal data."""

from __future__ import annotations

import logging

import structlog


def configure_logging(level: str = "info", *, as_json: bool = False) -> None:
    """Route structlog and stdlib logging to stderr at `level`."""
    logging.basicConfig(format="%(message)s", level=level.upper())
    # Plain tracebacks, never Rich's: rendering one with local variables took seconds on the event
    # loop (every caller waited) and would print personal data held in locals.
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info if as_json else structlog.processors.StackInfoRenderer(),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )
