"""Cal.com webhooks: verified hints that something changed there, answered by a targeted re-read.

Owns `POST /calcom/webhooks/{tenant_slug}`. The `X-Cal-Signature-256` header must be the hex
HMAC-SHA256 of the raw body under the salon's `calendar.settings.webhook_secret` (compared in
constant time, before any parsing). A valid delivery drops the salon's cached slots and queues a
`calcom_reread` job for the booking's uid (deduplicated per trigger, uid and creation time); the
worker reads the booking back and follows it. Nothing is ever written from the payload itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from rezeption.booking.saga import JOB_REREAD

__all__ = ["build_calcom_webhook_router", "signature_for"]


def signature_for(secret: str, body: bytes) -> str:
    """The signature Cal.com sends for `body`."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def build_calcom_webhook_router() -> APIRouter:
    """The router; it finds the wired services at `request.app.state.services`."""
    router = APIRouter(tags=["calcom"])

    @router.post("/calcom/webhooks/{tenant_slug}")
    async def calcom_webhook(tenant_slug: str, request: Request) -> dict[str, Any]:
        services = request.app.state.services
        body = await request.body()
        async with services.uow.reading() as tx:
            tenant_id = await tx.tenant_id_by_slug(tenant_slug)
            catalog = (
                await services.bookings.catalogs.get(tx, tenant_id, services.clock.now().date())
                if tenant_id
                else None
            )
        secret = str((catalog.tenant.calendar_settings if catalog else {}).get("webhook_secret") or "")
        given = request.headers.get("x-cal-signature-256", "")
        if catalog is None or not secret or not hmac.compare_digest(signature_for(secret, body), given):
            raise HTTPException(status_code=401, detail="invalid signature")
        try:
            event = json.loads(body)
            payload = event.get("payload") or {}
            uid = str(payload.get("uid") or "")
        except (ValueError, AttributeError) as error:
            raise HTTPException(status_code=400, detail="not a Cal.com webhook") from error
        services.calendars.for_tenant(catalog).forget_slots(catalog)
        if not uid:
            return {"ok": True, "queued": False}
        now = services.clock.now()
        dedupe = f"{JOB_REREAD}:{uid}:{event.get('triggerEvent')}:{event.get('createdAt')}"
        async with services.uow.writing() as tx:
            await tx.enqueue_job(
                JOB_REREAD, {"uid": uid}, at=now, tenant_id=catalog.tenant.id, dedupe_key=dedupe[:255]
            )
            await tx.commit()
        return {"ok": True, "queued": True}

    return router
