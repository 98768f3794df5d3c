"""Caller ID at the start of a call: recognize a customer by number, only with their consent.

`find_caller(tenant_id, raw_from_number)` answers one of:
- ``known``: exactly one person at this salon has this number and that person consented -> their name
  and their next appointments, spoken briefly;
- ``shared``: two or more people (different names) have this number -> never a name;
- ``unknown``: withheld, invalid or new number, or nobody who consented;
- ``disabled``: the kill switch (feature flag "caller_id", global or per salon) is off.
Nameless customer rows (a booking without a name) identify nobody and are ignored. `record_consent`
stores the consent with its time and call. Numbers are logged masked only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

import structlog

from rezeption.booking.catalog import CatalogCache
from rezeption.booking.lookup_model import AppointmentHit, CustomerHit
from rezeption.booking.lookup_speech import speak_day_time
from rezeption.booking.ports import Clock, UnitOfWork
from rezeption.domain.clock import require_aware
from rezeption.domain.flags import CALLER_ID as CALLER_ID_FLAG
from rezeption.domain.flags import FlagBook
from rezeption.language import join_alternatives, mask_phone, normalize_name, normalize_phone
from rezeption.ops.metrics import CALLER_ID

log = structlog.get_logger(__name__)
NEXT_APPOINTMENTS = 2


class CallerStore(Protocol):
    """The queries caller ID needs (implemented by `store.lookup.SqlLookupStore`)."""

    async def customers_by_phone(self, tenant_id: int, phone_e164: str) -> list[CustomerHit]: ...

    async def by_customers(
        self, tenant_id: int, customer_ids: list[int], *, after: datetime, limit: int = ...
    ) -> list[AppointmentHit]: ...

    async def record_consent(
        self,
        tenant_id: int,
        *,
        call_id: str | None,
        at: datetime,
        customer_id: int | None = ...,
        phone_e164: str | None = ...,
        name: str | None = ...,
    ) -> list[int]: ...


@dataclass(frozen=True)
class CallerMatch:
    """Who is calling, as far as we may say."""

    status: Literal["known", "shared", "unknown", "disabled"]
    phone_e164: str | None = None
    customer_id: int | None = None
    name: str | None = None
    next_appointments: str = ""

    def dynamic_variables(self) -> dict[str, str]:
        """Retell dynamic variables (strings only): customer_known, shared_number, name, appointments."""
        known = self.status == "known"
        return {
            "customer_known": "true" if known else "false",
            "shared_number": "true" if self.status == "shared" else "false",
            "customer_name": (self.name or "") if known else "",
            "next_appointments": self.next_appointments if known else "",
        }


@dataclass(frozen=True)
class CallerQuestion:
    """The number whose customers recognize a caller, or the answer when none are to be read."""

    phone: str | None
    answer: CallerMatch | None = None
    outcome: str | None = None  # the metric's outcome of that answer, counted when it is given


@dataclass
class CallerId:
    """Caller recognition over a store, a unit of work (for service names), and a clock."""

    store: CallerStore
    uow: UnitOfWork
    clock: Clock
    flags: FlagBook
    catalogs: CatalogCache = field(default_factory=CatalogCache)

    async def find_caller(self, tenant_id: int, raw_from_number: str | None) -> CallerMatch:
        """Recognize the caller by number (see the module rules); never a name for a shared number."""
        question, found = await self.customers_at(tenant_id, raw_from_number)
        return await self.recognize(tenant_id, question, found)

    async def customers_at(
        self, tenant_id: int, raw_from_number: str | None
    ) -> tuple[CallerQuestion, list[CustomerHit]]:
        """What recognizing this caller reads, without answering (nor counting) it: the question
        and the salon's customers at its number (none when the question answers itself)."""
        question = await self.question(tenant_id, raw_from_number)
        found = await self.store.customers_by_phone(tenant_id, question.phone) if question.phone else []
        return question, found

    async def question(self, tenant_id: int, raw_from_number: str | None) -> CallerQuestion:
        """What recognizing this caller needs: the salon's customers at their number, or nothing
        (no usable number, or caller ID switched off for the salon: answered at once)."""
        phone = normalize_phone(raw_from_number)
        if phone is None:
            return CallerQuestion(None, CallerMatch("unknown"), "no_number")
        await self.flags.fresh()
        if not self.flags.on(CALLER_ID_FLAG, tenant_id=tenant_id):
            return CallerQuestion(None, CallerMatch("disabled", phone), "disabled")
        return CallerQuestion(phone)

    async def recognize(
        self, tenant_id: int, question: CallerQuestion, customers: list[CustomerHit]
    ) -> CallerMatch:
        """The caller `question` asked about: its answer when it had one, else from the salon's
        `customers` at its number, read in whichever statement suits the caller of this method."""
        if question.answer is not None or question.phone is None:
            if question.outcome is not None:  # counted here, not when asked: a replay asks too
                CALLER_ID.labels(question.outcome).inc()
            return question.answer or CallerMatch("unknown")
        phone = question.phone
        people: dict[str, list[CustomerHit]] = {}
        for customer in customers:
            if customer.name and normalize_name(customer.name):
                people.setdefault(normalize_name(customer.name), []).append(customer)
        if len(people) > 1:
            log.info("caller_id", outcome="shared", phone=mask_phone(phone), people=len(people))
            CALLER_ID.labels("shared").inc()
            return CallerMatch("shared", phone)
        rows = next(iter(people.values()), [])
        consented = [c for c in rows if c.consent_at is not None]
        if not consented:
            CALLER_ID.labels("no_consent" if rows else "unknown").inc()
            return CallerMatch("unknown", phone)
        chosen = max(consented, key=lambda c: (c.consent_at, c.id))
        spoken = await self._next_appointments(tenant_id, [c.id for c in rows])
        log.info("caller_id", outcome="known", phone=mask_phone(phone))
        CALLER_ID.labels("matched").inc()
        return CallerMatch("known", phone, chosen.id, chosen.name, spoken)

    async def _next_appointments(self, tenant_id: int, customer_ids: list[int]) -> str:
        now = self.clock.now()
        hits = await self.store.by_customers(tenant_id, customer_ids, after=now, limit=NEXT_APPOINTMENTS)
        if not hits:
            return ""
        catalog = await self.catalogs.current(self.uow, tenant_id, now.date())
        zone = catalog.tenant.zone
        today = now.astimezone(zone).date()
        items = []
        for hit in hits:
            local = hit.starts_at.astimezone(zone)
            service = catalog.service_by_id(hit.service_id).name
            items.append(f"{service} {speak_day_time(local.date(), local.time(), today)}")
        return join_alternatives(items, "und")

    async def record_consent(
        self,
        tenant_id: int,
        *,
        call_id: str | None,
        at: datetime | None = None,
        customer_id: int | None = None,
        phone: str | None = None,
        name: str | None = None,
    ) -> list[int]:
        """Store the caller's consent to be recognized by number (time and call); the customers' ids.

        Give the customer's id, or the number (any spelling) and the name said; without either
        nothing is stored and the list is empty.
        """
        when = require_aware(at) if at is not None else self.clock.now()
        phone_e164 = normalize_phone(phone) if phone else None
        ids = await self.store.record_consent(
            tenant_id, call_id=call_id, at=when, customer_id=customer_id, phone_e164=phone_e164, name=name
        )
        log.info("caller_id_consent", call_id=call_id, phone=mask_phone(phone_e164), customers=len(ids))
        return ids
