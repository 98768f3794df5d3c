"""Structured logging (structlog): one line per event, JSON in production, with no personal data."""

from __future__ import annotations

import logging

import structlog


def configure_logging(level: str = "info", *, as_json: bool = False) -> None:
    """Route structlog and stdlib logging to stderr at `level`."""
    logging.basicConfig(format="%(message)s", level=level.upper())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )
