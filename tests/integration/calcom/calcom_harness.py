"""Test harness for the Cal.com tests: fake client clock, admin helpers of a running emulator."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

API_KEY = "cal_test_rezeption"
# Monday 2025-10-20, 08:00 in Berlin (CEST): the salon opens at 09:00.
EMULATOR_NOW = datetime(2025, 10, 20, 6, 0, tzinfo=UTC)


@dataclass
class FakeClock:
    """The client's clock: a settable aware instant."""

    now: datetime = EMULATOR_NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class RunningEmulator:
    """A live emulator and sync helpers for its admin API."""

    url: str
    admin: httpx.Client = field(repr=False)

    def add_faults(self, *rules: dict[str, Any]) -> list[dict[str, Any]]:
        response = self.admin.post("/_emulator/faults", json={"rules": list(rules)})
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = self.admin.get("/_emulator/state").raise_for_status().json()
        return result

    def requests(self, method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.admin.get("/_emulator/requests").raise_for_status().json()
        return [
            e
            for e in entries
            if (method is None or e["method"] == method) and (path is None or e["path"] == path)
        ]

    def set_clock(self, now: datetime | None = None, advance_seconds: float = 0.0) -> None:
        body: dict[str, Any] = {"advance_seconds": advance_seconds}
        if now is not None:
            body["now"] = now.isoformat()
        self.admin.post("/_emulator/clock", json=body).raise_for_status()

    def walk_in(self, event_type_id: int, start: datetime, **extra: Any) -> dict[str, Any]:
        body = {"eventTypeId": event_type_id, "start": start.isoformat(), **extra}
        result: dict[str, Any] = self.admin.post("/_emulator/bookings", json=body).raise_for_status().json()
        return result
