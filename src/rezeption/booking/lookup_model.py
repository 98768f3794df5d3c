"""The lookup's values and its store port: what was asked, what was found, what the store answers.

`LookupQuery` is what the caller said and where the call comes from; `AppointmentHit`/`CustomerHit`
are rows as the store gives them (`store.lookup.SqlLookupStore` implements `LookupStore`);
`LookupResult` and `Pick` are the answers. Whether a said name is a stored person's, and what may
be read out to whom, is `booking.disclosure`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, Literal, Protocol

Windows = tuple[tuple[datetime, datetime], ...]


@dataclass(frozen=True)
class AppointmentHit:
    """An appointment row as the lookup sees it (store -> use case)."""

    id: int
    tenant_id: int
    customer_id: int | None
    service_id: int
    staff_id: int
    starts_at: datetime
    status: str
    call_id: str | None
    spoken_name: str | None
    customer_name: str | None
    customer_phone: str | None


@dataclass(frozen=True)
class CustomerHit:
    """A customer behind a phone number, with their caller-ID consent (None: not given)."""

    id: int
    name: str | None
    consent_at: datetime | None


class LookupStore(Protocol):
    """The queries the lookup needs (implemented by `store.lookup.SqlLookupStore`)."""

    async def by_phone(
        self, tenant_id: int, phone_e164: str, *, after: datetime, windows: Windows = ..., limit: int = ...
    ) -> list[AppointmentHit]: ...

    async def by_name(
        self, tenant_id: int, name: str, *, after: datetime, windows: Windows = ..., limit: int = ...
    ) -> list[AppointmentHit]: ...

    async def by_call(
        self, tenant_id: int, call_id: str, *, after: datetime, windows: Windows = ..., limit: int = ...
    ) -> list[AppointmentHit]: ...

    async def appointment(self, tenant_id: int, appointment_id: int) -> AppointmentHit | None: ...

    async def customers_by_phone(self, tenant_id: int, phone_e164: str) -> list[CustomerHit]: ...


@dataclass(frozen=True)
class LookupQuery:
    """What the caller told us (all optional) and where the call comes from.

    Tenant, call and `caller_number` (the line the call comes from, as the network transmits it)
    come from the call, never from words; `said_phone` is a number the caller *says*, a claim like a
    name. `misses` counts this call's earlier lookups that named a person and a fact and found
    nothing (`LookupResult.missed`).
    """

    tenant_id: int
    call_id: str | None = None
    caller_number: str | None = None
    name: str | None = None
    said_phone: str | None = None
    date_words: str = ""
    time_words: str = ""
    service_words: str = ""
    misses: int = 0


@dataclass(frozen=True)
class FoundAppointment:
    """One appointment as the agent may speak of it; `reference` is what it passes back."""

    reference: str
    appointment_id: int
    starts_at: datetime
    local_date: date
    local_time: time
    service: str
    staff: str

    def as_dict(self) -> dict[str, Any]:
        """JSON facts for the agent (no ids)."""
        return {
            "reference": self.reference,
            "date": self.local_date.isoformat(),
            "time": self.local_time.strftime("%H:%M"),
            "service": self.service,
            "staff": self.staff,
        }


@dataclass(frozen=True)
class LookupResult:
    """none (`message` asks a question), one (`message` summarizes) or several (`message` lists)."""

    kind: Literal["none", "one", "several"]
    message: str
    appointments: tuple[FoundAppointment, ...] = ()
    reason: str | None = None
    missed: bool = False  # a person and a fact were named and nothing fit: counts toward the limit

    def as_dict(self) -> dict[str, Any]:
        """A reply body: ok only for exactly one, the sentence to speak, the references."""
        return {
            "ok": self.kind == "one",
            "found": self.kind,
            "message": self.message,
            "reason": self.reason,
            "appointments": [a.as_dict() for a in self.appointments],
        }


@dataclass(frozen=True)
class Pick:
    """`appointment_id` when exactly one appointment is meant; else None and `lookup` says what to ask."""

    appointment_id: int | None
    lookup: LookupResult
