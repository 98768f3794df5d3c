"""Finding the appointment a caller means, for the Retell functions.

Until the multi-field lookup lands (its own issue), an appointment is found by the references this
adapter hands out and by the appointments booked in the current call. References are opaque and
tamper-proof: an HMAC over salon and appointment id, so a forged reference or one from another salon
is refused.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from rezeption.domain.model import Appointment
from rezeption.retell.context import CallContext
from rezeption.retell.replies import Reply, reply
from rezeption.retell.tools import FindAppointmentsArgs

REFERENCE_KEY = b"rezeption-appointment-reference"


@dataclass(frozen=True)
class Found:
    """An appointment with what a reply says about it."""

    appointment: Appointment
    service_name: str
    reference: str


def _mac(tenant_id: int, appointment_id: int) -> str:
    return hmac.new(REFERENCE_KEY, f"{tenant_id}:{appointment_id}".encode(), hashlib.sha256).hexdigest()[:12]


def reference_for(ctx: CallContext, appointment: Appointment) -> str:
    """The opaque reference the agent passes back: "T-<id>-<mac>"."""
    return f"T-{appointment.id}-{_mac(ctx.tenant_id, appointment.id)}"


def _found(ctx: CallContext, appointment: Appointment) -> Found:
    service = ctx.catalog.service_by_id(appointment.service_id)
    return Found(appointment, service.name, reference_for(ctx, appointment))


async def resolve_reference(ctx: CallContext, reference: str) -> Found | Reply:
    """The appointment behind a reference, or a spoken refusal (forged, foreign, gone, past)."""
    parts = reference.strip().split("-")
    unknown = reply(False, "Diesen Termin kann ich leider nicht zuordnen.", "unknown_reference")
    if len(parts) != 3 or parts[0] != "T" or not parts[1].isdigit():
        return unknown
    appointment_id = int(parts[1])
    if not hmac.compare_digest(parts[2], _mac(ctx.tenant_id, appointment_id)):
        return unknown
    async with ctx.bookings.uow.reading() as tx:
        appointment = await tx.appointment(ctx.tenant_id, appointment_id)
    if appointment is None:
        return unknown
    return _found(ctx, appointment)


async def find_for_call(ctx: CallContext, _args: FindAppointmentsArgs) -> list[Found]:
    """The caller's future active appointments booked in this call."""
    ids = [int(i) for i in ctx.memory.get("booked", [])]
    found = []
    async with ctx.bookings.uow.reading() as tx:
        for appointment_id in ids:
            appointment = await tx.appointment(ctx.tenant_id, appointment_id)
            if appointment is not None and appointment.active and appointment.starts_at > ctx.now:
                found.append(_found(ctx, appointment))
    return found
