"""What every function handler gets: the salon, the call, its memory, and the salon's "now"."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from rezeption.booking.bookings import Bookings
from rezeption.booking.caller_id import CallerId
from rezeption.booking.lookup import AppointmentFinder
from rezeption.domain.model import Catalog


@dataclass
class CallContext:
    """One function call's world."""

    tenant_id: int
    catalog: Catalog
    call_id: str
    caller_number: str | None
    memory: dict[str, Any]
    now: datetime
    bookings: Bookings
    finder: AppointmentFinder
    callers: CallerId
    idempotency_key: str | None = None
    learned: dict[str, Any] = field(default_factory=dict)

    @property
    def today(self) -> date:
        """Today in the salon's zone."""
        return self.now.date()

    def learn(self, **facts: Any) -> None:
        """Remember facts the caller told us (stored on the call after the reply is built)."""
        self.learned.update({k: v for k, v in facts.items() if v is not None})
        self.memory.update(self.learned)
