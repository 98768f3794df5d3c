"""The ports the booking use cases need, as small Protocols; adapters live elsewhere.

`UnitOfWork` opens a `BookingTx` for reading or writing (a writing one is the single writer on
SQLite and rolls back unless committed). `CalendarProvider` is where a booking really lives: our own
database (`calendars.local`) or an external calendar such as Cal.com (`calendars.calcom`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from rezeption.domain.clock import Clock
from rezeption.domain.model import Appointment, AppointmentStatus, Catalog, Interval, Service, Slot, Staff

__all__ = [
    "BookingTx",
    "CalendarDirectory",
    "CalendarProvider",
    "Clock",
    "ExternalBooking",
    "KeyAlreadyUsed",
    "NewAppointment",
    "SlotClaimFailed",
    "UnitOfWork",
]


class SlotClaimFailed(Exception):
    """The database refused the claim: another active appointment overlaps this stylist's block."""


class KeyAlreadyUsed(Exception):
    """A concurrent request committed an appointment under the same idempotency key first."""


@dataclass(frozen=True)
class NewAppointment:
    """What a use case asks the store to insert."""

    tenant_id: int
    service_id: int
    staff_id: int
    customer_id: int | None
    starts_at: datetime
    ends_at: datetime
    block_starts_at: datetime
    block_ends_at: datetime
    status: AppointmentStatus
    source: str
    provider: str
    call_id: str | None
    idempotency_key: str | None
    spoken_name: str | None
    rescheduled_from_id: int | None = None
    pending_until: datetime | None = None


class BookingTx(Protocol):
    """One transaction's view of the store."""

    async def load_catalog(self, tenant_id: int) -> Catalog: ...

    async def catalog_version(self, tenant_id: int) -> int:
        """Bumped whenever the salon's catalog changes; UnknownTenant if there is no such salon."""
        ...

    async def tenant_id_by_slug(self, slug: str) -> int | None: ...

    async def busy(
        self, tenant_id: int, staff_ids: Sequence[int], window: Interval
    ) -> dict[int, list[Interval]]:
        """Blocks of active appointments per stylist that overlap `window`."""
        ...

    async def appointment(self, tenant_id: int, appointment_id: int) -> Appointment | None: ...

    async def appointment_by_key(self, idempotency_key: str) -> Appointment | None: ...

    async def insert_appointment(self, new: NewAppointment, *, at: datetime) -> Appointment:
        """Insert; SlotClaimFailed on an overlap, KeyAlreadyUsed on a duplicate idempotency key."""
        ...

    async def set_status(
        self, appointment: Appointment, status: AppointmentStatus, *, at: datetime
    ) -> Appointment:
        """Change the status if the row is still at `appointment.version` (else SlotClaimFailed)."""
        ...

    async def add_event(
        self,
        appointment: Appointment,
        kind: str,
        *,
        at: datetime,
        idempotency_key: str | None = None,
        recovery_point: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None: ...

    async def last_event(self, appointment_id: int, kind: str) -> tuple[str | None, dict[str, Any]] | None:
        """The idempotency key and data of the newest event of `kind`, if any."""
        ...

    async def upsert_customer(
        self, tenant_id: int, *, name: str | None, phone_e164: str | None, at: datetime
    ) -> int:
        """Find the customer with this phone and name (or create one); return the id."""
        ...

    async def commit(self) -> None: ...


class UnitOfWork(Protocol):
    """Opens transactions; leaving the block without `commit()` rolls back."""

    def reading(self) -> AbstractAsyncContextManager[BookingTx]: ...

    def writing(self) -> AbstractAsyncContextManager[BookingTx]: ...


@dataclass(frozen=True)
class ExternalBooking:
    """What the calendar provider answered for a booking (uid None for our own calendar)."""

    uid: str | None
    start: datetime
    end: datetime


class CalendarProvider(Protocol):
    """Where bookings really live. `external` False means the local row itself is the booking."""

    name: str
    external: bool

    async def free_slots(
        self, catalog: Catalog, service: Service, staff: Sequence[Staff], window: Interval
    ) -> list[Slot]: ...

    async def create(self, catalog: Catalog, appointment: Appointment) -> ExternalBooking: ...

    async def cancel(self, catalog: Catalog, appointment: Appointment) -> None: ...


class CalendarDirectory(Protocol):
    """Which calendar a salon's bookings live in (its salon file says: local or calcom)."""

    def for_tenant(self, catalog: Catalog) -> CalendarProvider: ...
