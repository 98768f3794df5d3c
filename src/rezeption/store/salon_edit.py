"""Edits of a salon's settings from the web admin, validated by the salon file's own rules
(`store.salon_file`: the same types, bounds and "ends after it starts" check), written in one
transaction with a catalog-version bump so every process answers with the new settings within a
second. A refused edit names the field and the reason, and writes nothing.
"""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy import select, update

from rezeption.domain.model import WEEKDAYS
from rezeption.store.db import Database
from rezeption.store.salon_file import ServiceEntry, StaffEntry, Weekday, hours_doc
from rezeption.store.tables import ServiceRow, StaffRow, TenantRow

HOURS = TypeAdapter(dict[Weekday, list[tuple[time, time]]])
_RANGE = re.compile(r"^\s*(\d{1,2}):?(\d{2})?\s*[-–]\s*(\d{1,2}):?(\d{2})?\s*$")


class SalonEditError(ValueError):
    """An edit that breaks a rule: which field, and why (German, for the form)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def parse_hours(texts: dict[str, str]) -> dict[Weekday, list[tuple[time, time]]]:
    """Weekday -> "09:00-13:00, 14:00-18:00" (empty: closed), checked as the salon file checks."""
    raw: dict[str, list[tuple[str, str]]] = {}
    for day in WEEKDAYS:
        text = texts.get(day, "").strip()
        if not text:
            continue
        ranges = []
        for part in text.split(","):
            match = _RANGE.match(part)
            if match is None:
                raise SalonEditError(day, f"„{part.strip()}“ ist keine Zeitspanne wie 09:00-18:00")
            h1, m1, h2, m2 = match.groups()
            ranges.append((f"{int(h1):02d}:{m1 or '00'}", f"{int(h2):02d}:{m2 or '00'}"))
        raw[day] = ranges
    try:
        hours = HOURS.validate_python(raw)
    except ValidationError as error:
        place = error.errors()[0]["loc"]
        raise SalonEditError(str(place[0]), "ungültige Uhrzeit (00:00 bis 23:59)") from error
    for day, checked in hours.items():
        for start, end in checked:
            if end <= start:
                raise SalonEditError(day, f"{start:%H:%M}-{end:%H:%M} endet nicht nach dem Beginn")
        for (_, end), (start, _) in zip(sorted(checked), sorted(checked)[1:], strict=False):
            if start < end:
                raise SalonEditError(day, "die Zeitspannen überschneiden sich")
    return hours


def hours_text(doc: dict[str, Any] | None) -> dict[str, str]:
    """Stored hours as the form shows them: weekday -> "09:00-13:00, 14:00-18:00"."""
    return {day: ", ".join(f"{a}-{b}" for a, b in (doc or {}).get(day, [])) for day in WEEKDAYS}


async def set_opening_hours(
    database: Database, tenant_id: int, hours: dict[Weekday, list[tuple[time, time]]]
) -> None:
    async with database.write() as session, session.begin():
        await session.execute(
            update(TenantRow)
            .where(TenantRow.id == tenant_id)
            .values(opening_hours=hours_doc(hours), catalog_version=TenantRow.catalog_version + 1)
        )


async def set_staff_hours(
    database: Database,
    tenant_id: int,
    staff_id: int,
    hours: dict[Weekday, list[tuple[time, time]]],
    breaks: dict[Weekday, list[tuple[time, time]]],
) -> bool:
    """A stylist's weekly hours and breaks (False: not one of the salon's stylists)."""
    StaffEntry.model_validate({"key": "x", "name": "x", "hours": hours, "breaks": breaks})
    async with database.write() as session, session.begin():
        found = await session.scalar(
            select(StaffRow.id).where(StaffRow.id == staff_id, StaffRow.tenant_id == tenant_id)
        )
        if found is None:
            return False
        await session.execute(
            update(StaffRow)
            .where(StaffRow.id == staff_id)
            .values(working_hours=hours_doc(hours), breaks=hours_doc(breaks))
        )
        await _bump(session, tenant_id)
    return True


class _ServiceEdit(BaseModel):
    """The editable fields of a service, with the salon file's own bounds."""

    duration: Annotated[int, *ServiceEntry.model_fields["duration"].metadata]
    price: Annotated[float | None, *ServiceEntry.model_fields["price"].metadata]


def parse_service(duration: str, price: str) -> tuple[int, int | None]:
    """Minutes and price in cents from the form, or SalonEditError naming the field."""
    try:
        minutes = int(duration.strip())
    except ValueError as error:
        raise SalonEditError("dauer", "bitte eine ganze Zahl von Minuten") from error
    cleaned = price.strip().replace("€", "").replace(",", ".").strip()
    try:
        euros = float(cleaned) if cleaned else None
    except ValueError as error:
        raise SalonEditError("preis", "bitte einen Betrag wie 25,00") from error
    try:
        checked = _ServiceEdit(duration=minutes, price=euros)
    except ValidationError as error:
        field = str(error.errors()[0]["loc"][0])
        reason = (
            "muss größer als 0 und höchstens 600 sein" if field == "duration" else "darf nicht negativ sein"
        )
        raise SalonEditError("dauer" if field == "duration" else "preis", reason) from error
    return checked.duration, round(checked.price * 100) if checked.price is not None else None


async def set_service(
    database: Database, tenant_id: int, service_id: int, minutes: int, cents: int | None
) -> bool:
    """A service's duration and price (False: not one of the salon's services)."""
    async with database.write() as session, session.begin():
        result = await session.execute(
            update(ServiceRow)
            .where(ServiceRow.id == service_id, ServiceRow.tenant_id == tenant_id)
            .values(duration_minutes=minutes, price_cents=cents)
        )
        if not getattr(result, "rowcount", 0):
            return False
        await _bump(session, tenant_id)
    return True


async def _bump(session: Any, tenant_id: int) -> None:
    await session.execute(
        update(TenantRow)
        .where(TenantRow.id == tenant_id)
        .values(catalog_version=TenantRow.catalog_version + 1)
    )
