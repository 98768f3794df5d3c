"""A small circuit breaker for calls to Cal.com.

Owns the closed → open → half-open cycle: after ``failure_threshold`` consecutive failures the
breaker opens and refuses calls; once ``cooldown`` has passed it lets exactly one probe through
(half-open) up to ``half_open_probes`` at a time; a probe's success closes it, its failure opens it
again. The transport keeps one breaker for reads and one for writes, so failing slot reads never
refuse a booking that would work. Time comes from an
injected clock (a callable returning an aware datetime), so tests can move it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from rezeption.calendars.calcom.errors import CalcomCircuitOpen

__all__ = ["BreakerState", "CircuitBreaker"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class BreakerState(enum.Enum):
    """Where the breaker is in its cycle."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts consecutive failures and refuses calls while open."""

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        cooldown: timedelta = timedelta(seconds=10),
        half_open_probes: int = 3,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: datetime | None = None
        self.half_open_probes = max(1, half_open_probes)
        self._probes = 0

    @property
    def state(self) -> BreakerState:
        """The current state, taking the cooldown into account."""
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.cooldown:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    @property
    def consecutive_failures(self) -> int:
        """Failures since the last success."""
        return self._failures

    def before_call(self, path: str = "") -> None:
        """Admit a call or raise ``CalcomCircuitOpen``; in half-open, admit a few probes."""
        state = self.state
        if state is BreakerState.CLOSED:
            return
        if state is BreakerState.HALF_OPEN and self._probes < self.half_open_probes:
            self._probes += 1
            return
        raise CalcomCircuitOpen("Cal.com circuit breaker is open: call refused without sending it", path=path)

    def record_success(self) -> None:
        """A call got a trustworthy answer: close the breaker."""
        self._failures = 0
        self._opened_at = None
        self._probes = 0

    def record_failure(self) -> None:
        """A call got no trustworthy answer: count it, open (again) at the threshold."""
        self._failures += 1
        if self._probes or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
        self._probes = 0

    def release_probe(self) -> None:
        """The admitted call ended without telling anything about Cal.com's health."""
        self._probes = max(0, self._probes - 1)
