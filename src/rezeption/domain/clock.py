"""Clocks: the one place that reads the wall clock, so every rule can be tested at any moment.

Code that needs "now" takes a `Clock` (anything with `now() -> aware datetime`). `SystemClock` is the
real one; `StartedClock` runs from a chosen instant (trying a given day in development); `FixedClock`
is the test double (settable, advanceable). All answer in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Tells the current instant, timezone-aware."""

    def now(self) -> datetime: ...


class SystemClock:
    """The machine's clock, in UTC."""

    def now(self) -> datetime:
        """Return the current instant in UTC."""
        return datetime.now(UTC)


class StartedClock:
    """A clock that starts at a chosen instant and runs on at the machine's pace (to try a given day
    in development: `REZEPTION_CLOCK_START`)."""

    def __init__(self, start: datetime) -> None:
        self._offset = require_aware(start).astimezone(UTC) - datetime.now(UTC)

    def now(self) -> datetime:
        """The chosen start plus the time that has passed since."""
        return datetime.now(UTC) + self._offset


class FixedClock:
    """A clock that stands still until told to move (tests, benchmarks, replays)."""

    def __init__(self, at: datetime) -> None:
        self._at = require_aware(at).astimezone(UTC)

    def now(self) -> datetime:
        """Return the set instant."""
        return self._at

    def set(self, at: datetime) -> None:
        """Move the clock to `at`."""
        self._at = require_aware(at).astimezone(UTC)

    def advance(self, by: timedelta) -> None:
        """Move the clock forward by `by`."""
        self._at += by


def require_aware(at: datetime) -> datetime:
    """Return `at` if it carries a zone; naive datetimes are a bug, so they raise."""
    if at.tzinfo is None or at.tzinfo.utcoffset(at) is None:
        raise ValueError(f"naive datetime {at.isoformat()} where an aware one is required")
    return at
