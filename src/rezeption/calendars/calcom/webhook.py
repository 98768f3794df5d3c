"""Cal.com webhooks: verified hints that something changed there, answered by a targeted re-read.

Owns `POST /calcom/webhooks/{tenant_slug}` and reading a delivery's booking times. The
`X-Cal-Signature-256` header must be the hex HMAC-SHA256 of the raw body under the salon's
`calendar.settings.webhook_secret` (compared in constant time, before any parsing). A valid delivery
updates the salon's cached free slots at once, as our own writes do (`BOOKING_CREATED`/`REQUESTED`
takes the booking's time, `CANCELLED`/`REJECTED` gives it back, `RESCHEDULED` both: the old
`rescheduleStartTime` back, the new time taken; a booking delivery without readable times makes the
whole salon stale), so a booking made directly in Cal.com is out of the picture without a slot
read. It then queues a `calcom_reread` job for the booking's uid with its trigger (deduplicated per
trigger, uid and creation time); the worker reads the booking back and follows it, unless our
database already agrees (the echo of our own writes). No booking is ever written from the payload
itself; the cached slots are a hint too, checked by Cal.com at every booking.

In this order, each step before the next costs anything: a declared body over `MAX_BODY` is 413
unread; a missing or malformed signature header is 401 unread; the salon's secret comes from
memory (`WebhookSecrets`: read from the database once a minute per salon, so forged deliveries
cost no query); the body is read only up to `MAX_BODY` (a longer chunked body: 413, the rest never
read); the signature is checked; only then is anything parsed or written.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from rezeption.booking.reconcile import GIVES_TIME_BACK, TAKES_TIME
from rezeption.booking.saga import JOB_REREAD
from rezeption.calendars.calcom.models import parse_instant
from rezeption.calendars.calcom.provider import CalcomCalendar
from rezeption.domain.model import Catalog
from rezeption.http_body import BodyTooLarge, BodyTooSlow, read_bounded

__all__ = ["MAX_BODY", "WebhookSecrets", "build_calcom_webhook_router", "signature_for"]

MAX_BODY = 1024 * 1024
"""Bytes: Cal.com's booking payloads are a few kilobytes; nothing longer is read."""
CLOSE = {"Connection": "close"}
"""On a refusal before the body was read: the server closes the connection instead of reading
(and dropping) the rest of the body to keep it alive."""
SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")
UID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
PLAIN = re.compile(r"[A-Za-z0-9._:+-]{1,64}")  # a trigger name or a timestamp, as Cal.com sends them


def signature_for(secret: str, body: bytes) -> str:
    """The signature Cal.com sends for `body`."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class _Known:
    tenant_id: int | None  # None: no such salon
    secret: str
    loaded: float


class WebhookSecrets:
    """Each salon's webhook secret by slug, kept in memory so that verifying costs no query.

    An entry is re-read after `ttl` seconds, and at most every `recheck` seconds when a signature
    does not match it (a rotated secret works within seconds). Unknown slugs are remembered too
    (up to `max_entries`), so a flood of made-up slugs costs one query each per `ttl`.
    """

    def __init__(self, *, ttl: float = 60.0, recheck: float = 5.0, max_entries: int = 10_000) -> None:
        self.ttl, self.recheck, self.max_entries = ttl, recheck, max_entries
        self._known: dict[str, _Known] = {}

    async def get(self, services: Any, slug: str, *, fresher_than: float | None = None) -> _Known:
        """The salon and secret for `slug`, from memory unless older than `ttl` (or `fresher_than`)."""
        known = self._known.get(slug)
        age_limit = self.ttl if fresher_than is None else fresher_than
        if known is not None and time.monotonic() - known.loaded < age_limit:
            return known
        async with services.uow.reading() as tx:
            tenant_id = await tx.tenant_id_by_slug(slug)
            catalog = (
                await services.bookings.catalogs.get(tx, tenant_id, services.clock.now().date())
                if tenant_id
                else None
            )
        settings = catalog.tenant.calendar_settings if catalog is not None else {}
        known = _Known(tenant_id, str(settings.get("webhook_secret") or ""), time.monotonic())
        if len(self._known) >= self.max_entries:
            self._known.clear()
        self._known[slug] = known
        return known

    async def verify(self, services: Any, slug: str, body: bytes, given: str) -> int | None:
        """The salon's id when `given` signs `body` under its secret; None otherwise."""
        known = await self.get(services, slug)
        if _signed(known, body, given):
            return known.tenant_id
        if known.tenant_id is not None:  # the secret may have been rotated: look once more
            known = await self.get(services, slug, fresher_than=self.recheck)
            if _signed(known, body, given):
                return known.tenant_id
        return None


def _signed(known: _Known, body: bytes, given: str) -> bool:
    if known.tenant_id is None or not known.secret:
        return False
    return hmac.compare_digest(signature_for(known.secret, body), given.lower())


def build_calcom_webhook_router() -> APIRouter:
    """The router; it finds the wired services at `request.app.state.services`."""
    router = APIRouter(tags=["calcom"])
    secrets = WebhookSecrets()

    @router.post("/calcom/webhooks/{tenant_slug}")
    async def calcom_webhook(tenant_slug: str, request: Request) -> dict[str, Any]:
        services = request.app.state.services
        given = request.headers.get("x-cal-signature-256", "")
        if not SIGNATURE.fullmatch(given):
            raise HTTPException(status_code=401, detail="invalid signature", headers=CLOSE)
        try:
            body = await read_bounded(request, MAX_BODY)
        except BodyTooLarge as error:
            raise HTTPException(status_code=413, detail=str(error), headers=CLOSE) from error
        except BodyTooSlow as error:
            raise HTTPException(
                status_code=408, detail="the request body came too slowly", headers=CLOSE
            ) from error
        tenant_id = await secrets.verify(services, tenant_slug, body, given)
        if tenant_id is None:
            raise HTTPException(status_code=401, detail="invalid signature")
        try:
            event = json.loads(body)
            payload = event.get("payload") or {}
            uid = payload.get("uid") or ""
        except (ValueError, AttributeError, RecursionError) as error:
            raise HTTPException(status_code=400, detail="not a Cal.com webhook") from error
        if not isinstance(uid, str) or (uid and not UID.fullmatch(uid)):
            raise HTTPException(status_code=400, detail="not a Cal.com booking uid")
        catalog = await services.bookings.current_catalog(tenant_id, services.clock.now())
        trigger, created = (_plain(event.get(name)) for name in ("triggerEvent", "createdAt"))
        _note(services.calendars.for_tenant(catalog), catalog, trigger, payload)
        if not uid:
            return {"ok": True, "queued": False}
        now = services.clock.now()
        dedupe = f"{JOB_REREAD}:{uid}:{trigger}:{created}"
        job = {"uid": uid, "trigger": trigger} if trigger else {"uid": uid}
        async with services.uow.writing() as tx:
            await tx.enqueue_job(
                JOB_REREAD, job, at=now, tenant_id=catalog.tenant.id, dedupe_key=dedupe[:255]
            )
            await tx.commit()
        return {"ok": True, "queued": True}

    return router


def _note(provider: Any, catalog: Catalog, trigger: str, payload: Any) -> None:
    """Tell the salon's cached free slots what the delivery says changed (see the module)."""
    if not isinstance(provider, CalcomCalendar) or trigger not in TAKES_TIME | GIVES_TIME_BACK:
        return
    try:
        raw_type = payload.get("eventTypeId")
        event_type = int(raw_type) if raw_type is not None else None
        organizer = payload.get("organizer") or {}
        hosts = [int(organizer["id"])] if isinstance(organizer, dict) and organizer.get("id") else []
        start, end = parse_instant(payload["startTime"]), parse_instant(payload["endTime"])
        moved_from = payload.get("rescheduleStartTime"), payload.get("rescheduleEndTime")
    except (KeyError, TypeError, ValueError, AttributeError):
        provider.forget_slots(catalog)  # a booking changed, we cannot tell when
        return
    if all(moved_from):
        try:
            old = parse_instant(str(moved_from[0])), parse_instant(str(moved_from[1]))
        except ValueError:
            provider.forget_slots(catalog)
        else:
            provider.note_booking(
                catalog, event_type_id=event_type, host_ids=hosts, start=old[0], end=old[1], active=False
            )
    provider.note_booking(
        catalog, event_type_id=event_type, host_ids=hosts, start=start, end=end, active=trigger in TAKES_TIME
    )


def _plain(value: Any) -> str:
    """`value` for the dedupe key when it looks like what Cal.com sends there; else empty."""
    text = str(value)  # None as "None", as the keys were before
    return text if PLAIN.fullmatch(text) else ""
