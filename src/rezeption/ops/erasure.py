"""The GDPR erasure as one use case, for the terminal (`rezeption customers erase`) and the web admin:
the customer's future appointments cancelled through the booking use case (so an external calendar is
cancelled too and the event log says why), then their personal data erased in the store. Counts only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from rezeption.booking.bookings import Bookings
from rezeption.domain.errors import AppointmentInPast, AppointmentNotActive, AppointmentNotFound
from rezeption.store.db import Database
from rezeption.store.gdpr import erase_customer, erasure_plan, future_appointments

log = logging.getLogger(__name__)

GDPR_SOURCE = "gdpr_erase"
"""The `source` of the cancellation events an erasure writes."""


async def erase_customer_data(
    database: Database, bookings: Bookings, ref: str, *, tenant_slug: str | None = None
) -> dict[str, int]:
    """Cancel the future appointments of the customer(s) `ref` names, then erase them (counts only).

    Cancelling goes through `Bookings.cancel` (source "gdpr_erase", past the salon's change notice),
    so an external calendar is cancelled too and the event log says why. The store erase runs after;
    an appointment that was cancelled, moved or started meanwhile is skipped, and one booked between
    the plan and the erase is cancelled after it (what still stays active: `future_left_active`).
    """
    plan = await erasure_plan(database, ref, now=bookings.clock.now(), tenant_slug=tenant_slug)
    cancelled = await _cancel_all(bookings, plan.future)
    counts = await erase_customer(
        database, ref, now=bookings.clock.now(), tenant_slug=tenant_slug, future_cancelled=cancelled
    )
    if counts["future_left_active"]:
        # booked between the plan and the erase: the erased rows take no new bookings, so this ends it
        late = await future_appointments(database, plan.customer_ids, now=bookings.clock.now())
        more = await _cancel_all(bookings, late)
        counts["future_cancelled"] += more
        counts["future_left_active"] = max(counts["future_left_active"] - more, 0)
    log.info("gdpr: erasure done %s", counts)
    return counts


async def _cancel_all(bookings: Bookings, appointments: Sequence[tuple[int, int]]) -> int:
    """Cancel (tenant id, appointment id) pairs for an erasure; how many were cancelled."""
    cancelled = 0
    for tenant_id, appointment_id in appointments:
        try:
            await bookings.cancel(
                tenant_id=tenant_id, appointment_id=appointment_id, source=GDPR_SOURCE, respect_notice=False
            )
        except (AppointmentNotActive, AppointmentNotFound, AppointmentInPast):
            continue  # cancelled, moved or started since it was listed: nothing to cancel any more
        cancelled += 1
    return cancelled
