"""HTTP routes of the Cal.com emulator (the v2 surface of calcom.md 10.2).

Owns the ``cal-api-version`` dispatch per resource (404 or legacy 400 when wrong), the bearer-key
check (optional-but-validated vs required), and thin handlers: parse → one state operation →
envelope. Handlers read the request's active faults from ``scope["calcom_faults"]``.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from rezeption.emulators.calcom import bookings as desk
from rezeption.emulators.calcom.config import EventTypeConfig
from rezeption.emulators.calcom.faults import ActiveFault
from rezeption.emulators.calcom.requests import (
    parse_booking_filter,
    parse_create_booking,
    parse_reschedule,
    parse_reserve,
    parse_slot_query,
)
from rezeption.emulators.calcom.state import EmulatorState
from rezeption.emulators.calcom.wire import ApiError, iso_ms, success

__all__ = ["NO_AUTH_MESSAGE", "build_router", "check_api_key"]

NO_AUTH_MESSAGE = (
    "ApiAuthStrategy - No authentication method provided. Either pass an API key as 'Bearer' header or "
    "OAuth client credentials as 'x-cal-secret-key' and 'x-cal-client-id' headers"
)
SLOTS_VERSION, BOOKINGS_VERSION, EVENT_TYPES_VERSION = "2024-09-04", "2024-08-13", "2024-06-14"
_LEGACY_BOOKING_MESSAGE = (
    "responses property is wrong,responses must be an object, timeZone property is wrong,timeZone must be "
    "a valid IANA time zone, attendee property is wrong,property attendee should not exist "
)


def _faults(request: Request) -> list[ActiveFault]:
    faults: list[ActiveFault] = request.scope.get("calcom_faults", [])
    return faults


def _state(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.calcom
    return state


def _cannot(request: Request) -> ApiError:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return ApiError(404, f"Cannot {request.method} {target}")


def _require_version(request: Request, wanted: str) -> None:
    """Wrong or missing ``cal-api-version``: 404, or for booking writes the legacy 400."""
    if request.headers.get("cal-api-version") == wanted:
        return
    legacy = request.headers.get("cal-api-version") != SLOTS_VERSION
    if wanted == BOOKINGS_VERSION and legacy and request.method == "POST":
        raise ApiError(400, _LEGACY_BOOKING_MESSAGE)
    raise _cannot(request)


def check_api_key(
    state: EmulatorState, authorization: str | None, *, required: bool, expired: bool
) -> str | None:
    """Validate a bearer key; ``None`` when absent and optional. 401 texts as calcom.md 1.1."""
    if not authorization or not authorization.lower().startswith("bearer "):
        if required:
            raise ApiError(401, NO_AUTH_MESSAGE)
        return None
    key = authorization[7:].strip()
    if expired or key in state.config.expired_api_keys:
        raise ApiError(401, "ApiAuthStrategy - api key - Your api key is expired")
    if key not in state.config.api_keys:
        if key.startswith("cal_"):
            raise ApiError(401, "CustomThrottlerGuard - Invalid API Key")
        raise ApiError(401, "ApiAuthStrategy - api key - Your api key is not valid")
    return key


def _auth(request: Request, *, required: bool) -> str | None:
    expired = any(f.mode == "auth_expired" for f in _faults(request))
    return check_api_key(
        _state(request), request.headers.get("authorization"), required=required, expired=expired
    )


async def _json(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, "Unexpected token in JSON body") from exc


def event_type_json(event_type: EventTypeConfig, state: EmulatorState) -> dict[str, Any]:
    """An event type as the 2024-06-14 API renders it."""
    host = state.host(event_type)
    return {
        "id": event_type.id,
        "title": event_type.title,
        "slug": event_type.slug,
        "lengthInMinutes": event_type.length,
        "lengthInMinutesOptions": list(event_type.length_options),
        "slotInterval": event_type.slot_interval,
        "minimumBookingNotice": event_type.minimum_booking_notice,
        "beforeEventBuffer": event_type.before_buffer,
        "afterEventBuffer": event_type.after_buffer,
        "seatsPerTimeSlot": None,
        "bookingFields": [],
        "locations": [{"type": "address", "address": "Salon", "public": True}],
        "bookingWindow": (
            {"type": "calendarDays", "value": event_type.booking_window_days, "rolling": True}
            if event_type.booking_window_days is not None
            else {}
        ),
        "requiresConfirmation": event_type.requires_confirmation,
        "scheduleId": event_type.schedule_id or host.schedule_id,
        "hidden": event_type.hidden,
        "ownerId": host.id,
        "users": [{"id": host.id, "name": host.name, "username": host.username}],
        "bookingUrl": f"https://cal.com/{host.username}/{event_type.slug}",
    }


def build_router() -> APIRouter:
    """All v2 routes."""
    router = APIRouter()

    @router.get("/v2/slots")
    async def get_slots(request: Request) -> JSONResponse:
        _require_version(request, SLOTS_VERSION)
        _auth(request, required=False)
        state = _state(request)
        query = parse_slot_query(dict(request.query_params))
        if query.event_type_id is not None:
            event_type = state.event_type(query.event_type_id, "Event Type not found")
        else:
            user = next((u for u in state.users.values() if u.username == query.username), None)
            if user is None:
                raise ApiError(404, f"User with username {query.username} not found")
            match = [
                e
                for e in state.event_types.values()
                if e.host_id == user.id and e.slug == query.event_type_slug
            ]
            if not match:
                raise ApiError(404, "Event Type not found")
            event_type = match[0]
        starts = state.slots(query, event_type, _faults(request))
        length = query.duration or event_type.length
        zone: ZoneInfo | None = query.zone
        days: dict[str, list[dict[str, str]]] = {}
        for start in starts:
            key = (start.astimezone(zone) if zone else start).date().isoformat()
            item = {"start": iso_ms(start, zone)}
            if query.range_format:
                item["end"] = iso_ms(start + timedelta(minutes=length), zone)
            days.setdefault(key, []).append(item)
        return success(days)

    @router.post("/v2/slots/reservations")
    async def reserve(request: Request) -> JSONResponse:
        _require_version(request, SLOTS_VERSION)
        key = _auth(request, required=False)
        reservation = _state(request).reserve(
            parse_reserve(await _json(request)), authenticated=key is not None
        )
        return success(reservation.to_json(), status=201)

    @router.get("/v2/slots/reservations/{uid}")
    async def get_reservation(request: Request, uid: str) -> JSONResponse:
        _require_version(request, SLOTS_VERSION)
        _auth(request, required=False)
        found = _state(request).reservations.get(uid)
        return success(found.to_json(with_duration=False) if found else None)

    @router.patch("/v2/slots/reservations/{uid}")
    async def update_reservation(request: Request, uid: str) -> JSONResponse:
        _require_version(request, SLOTS_VERSION)
        key = _auth(request, required=False)
        state = _state(request)
        if uid not in state.reservations:
            raise ApiError(404, f"Slot with uid={uid} not found")
        old = state.reservations.pop(uid)
        try:
            new = state.reserve(parse_reserve(await _json(request)), authenticated=key is not None)
        except ApiError:
            state.reservations[uid] = old
            raise
        del state.reservations[new.uid]
        new.uid = uid
        state.reservations[uid] = new
        return success(new.to_json())

    @router.delete("/v2/slots/reservations/{uid}")
    async def delete_reservation(request: Request, uid: str) -> JSONResponse:
        _require_version(request, SLOTS_VERSION)
        _auth(request, required=False)
        _state(request).reservations.pop(uid, None)
        return JSONResponse({"status": "success"})

    @router.post("/v2/bookings")
    async def create_booking(request: Request) -> JSONResponse:
        _require_version(request, BOOKINGS_VERSION)
        _auth(request, required=False)
        state = _state(request)
        faults = _faults(request)
        supports = not any(f.mode == "reserved_slot_uid_unsupported" for f in faults)
        parsed = parse_create_booking(await _json(request), supports_reserved_slot_uid=supports)
        booking = await desk.create_booking(state, parsed, faults)
        return success(state.booking_json(booking), status=201)

    @router.get("/v2/bookings")
    async def list_bookings(request: Request) -> JSONResponse:
        _require_version(request, BOOKINGS_VERSION)
        _auth(request, required=True)
        state = _state(request)
        flt = parse_booking_filter(dict(request.query_params))
        page, total = state.list(flt)
        current = flt.skip // flt.take + 1
        pages = max(1, -(-total // flt.take))
        pagination = {
            "totalItems": total,
            "remainingItems": max(0, total - flt.skip - len(page)),
            "returnedItems": len(page),
            "itemsPerPage": flt.take,
            "currentPage": current,
            "totalPages": pages,
            "hasNextPage": flt.skip + len(page) < total,
            "hasPreviousPage": flt.skip > 0,
        }
        return success([state.booking_json(b) for b in page], pagination=pagination)

    @router.get("/v2/bookings/{uid}")
    async def get_booking(request: Request, uid: str) -> JSONResponse:
        _require_version(request, BOOKINGS_VERSION)
        _auth(request, required=False)
        state = _state(request)
        booking = state.booking(uid, "Booking with uid={uid} was not found in the database")
        return success(state.booking_json(booking))

    @router.post("/v2/bookings/{uid}/cancel")
    async def cancel_booking(request: Request, uid: str) -> JSONResponse:
        _require_version(request, BOOKINGS_VERSION)
        _auth(request, required=False)
        body = await _json(request)
        reason = str(body.get("cancellationReason") or "") if isinstance(body, dict) else ""
        state = _state(request)
        return success(state.booking_json(desk.cancel_booking(state, uid, reason)))

    @router.post("/v2/bookings/{uid}/reassign/{user_id}")
    async def reassign_booking(request: Request, uid: str, user_id: int) -> JSONResponse:
        _require_version(request, BOOKINGS_VERSION)
        _auth(request, required=True)
        state = _state(request)
        return success(state.booking_json(desk.reassign_booking(state, uid, user_id)))

    @router.post("/v2/bookings/{uid}/reschedule")
    async def reschedule_booking(request: Request, uid: str) -> JSONResponse:
        _require_version(request, BOOKINGS_VERSION)
        _auth(request, required=False)
        state = _state(request)
        new = await desk.reschedule_booking(
            state, uid, parse_reschedule(await _json(request)), _faults(request)
        )
        return success(state.booking_json(new), status=201)

    @router.get("/v2/event-types")
    async def list_event_types(request: Request) -> JSONResponse:
        _require_version(request, EVENT_TYPES_VERSION)
        key = _auth(request, required=False)
        state = _state(request)
        username = request.query_params.get("username")
        slug = request.query_params.get("eventSlug")
        if username is None and key is None:
            return success([])
        chosen = []
        for event_type in state.event_types.values():
            host = state.host(event_type)
            if username is not None and host.username != username:
                continue
            if slug is not None and event_type.slug != slug:
                continue
            if event_type.hidden and key is None:
                continue
            chosen.append(event_type_json(event_type, state))
        return success(chosen)

    @router.get("/v2/event-types/{event_type_id}")
    async def get_event_type(request: Request, event_type_id: str) -> JSONResponse:
        _require_version(request, EVENT_TYPES_VERSION)
        _auth(request, required=True)
        state = _state(request)
        if not event_type_id.isdigit():
            raise ApiError(400, "Validation failed (numeric string is expected)")
        event_type = state.event_type(int(event_type_id), "Event type with id {id} not found")
        return success(event_type_json(event_type, state))

    return router
