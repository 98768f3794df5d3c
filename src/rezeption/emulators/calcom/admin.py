"""Admin API of the Cal.com emulator (``/_emulator/*``), for tests and demos; no API key needed.

Owns: fault rules at run time, the state snapshot and request log, reset to the config, the
clock, and "walk-in" bookings made directly in Cal.com (they skip every availability check).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from rezeption.emulators.calcom.config import FaultRule
from rezeption.emulators.calcom.faults import FaultBook
from rezeption.emulators.calcom.middleware import RateLimiter, RequestLog
from rezeption.emulators.calcom.slots import Interval
from rezeption.emulators.calcom.state import EmulatorState
from rezeption.emulators.calcom.wire import ApiError, iso_ms, parse_iso

__all__ = ["build_admin_router"]


class FaultsBody(BaseModel):
    """``POST /_emulator/faults``."""

    model_config = ConfigDict(extra="forbid")
    rules: list[FaultRule]
    replace: bool = False


class ClockBody(BaseModel):
    """``POST /_emulator/clock``: freeze at ``now`` and/or move by ``advance_seconds``."""

    model_config = ConfigDict(extra="forbid")
    now: datetime | None = None
    advance_seconds: float = 0.0


class WalkInBody(BaseModel):
    """``POST /_emulator/bookings``: a booking made directly in Cal.com (by the salon)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    event_type_id: int = Field(alias="eventTypeId")
    start: str
    length_in_minutes: int | None = Field(default=None, alias="lengthInMinutes")
    status: str = "accepted"
    attendee: dict[str, Any] = Field(
        default_factory=lambda: {
            "name": "Walk-in",
            "email": "walkin@salon.example",
            "timeZone": "Europe/Berlin",
        }
    )
    metadata: dict[str, str] = Field(default_factory=dict)


def build_admin_router() -> APIRouter:
    """The ``/_emulator`` routes."""
    router = APIRouter(prefix="/_emulator")

    def parts(request: Request) -> tuple[EmulatorState, FaultBook, RequestLog, RateLimiter]:
        app_state = request.app.state
        return app_state.calcom, app_state.faults, app_state.requests, app_state.limiter

    @router.get("/state")
    async def snapshot(request: Request) -> dict[str, Any]:
        state, faults, log, _ = parts(request)
        return {
            "now": iso_ms(state.now()),
            "bookings": [{**state.booking_json(b), "source": b.source} for b in state.bookings.values()],
            "reservations": [r.to_json() for r in state.reservations.values()],
            "event_types": sorted(state.event_types),
            "faults": faults.describe(),
            "requests": log.entries,
        }

    @router.get("/requests")
    async def requests(request: Request) -> list[dict[str, Any]]:
        return parts(request)[2].entries

    @router.get("/faults")
    async def list_faults(request: Request) -> list[dict[str, Any]]:
        return parts(request)[1].describe()

    @router.post("/faults")
    async def add_faults(request: Request, body: FaultsBody) -> list[dict[str, Any]]:
        faults = parts(request)[1]
        if body.replace:
            faults.clear()
        return faults.add(body.rules)

    @router.delete("/faults")
    async def clear_faults(request: Request) -> dict[str, str]:
        parts(request)[1].clear()
        return {"status": "success"}

    @router.post("/reset")
    async def reset(request: Request) -> dict[str, str]:
        state, faults, log, limiter = parts(request)
        state.reset()
        faults.reset(state.config.seed, list(state.config.faults))
        log.entries.clear()
        limiter.reset()
        return {"status": "success", "now": iso_ms(state.now())}

    @router.post("/clock")
    async def clock(request: Request, body: ClockBody) -> dict[str, str]:
        state = parts(request)[0]
        if body.now is not None:
            if body.now.tzinfo is None:
                raise ApiError(400, "now must carry a zone")
            state.clock.set(body.now)
        if body.advance_seconds:
            state.clock.advance(body.advance_seconds)
        return {"now": iso_ms(state.now())}

    @router.post("/bookings", status_code=201)
    async def walk_in(request: Request, body: WalkInBody) -> dict[str, Any]:
        state = parts(request)[0]
        event_type = state.event_type(body.event_type_id, "Event type with id {id} not found.")
        start = parse_iso(body.start)
        length = body.length_in_minutes or event_type.length
        span = Interval(start, start + timedelta(minutes=length))
        booking = state.insert(
            event_type, span, dict(body.attendee), dict(body.metadata), status=body.status, source="walk-in"
        )
        return state.booking_json(booking)

    return router
