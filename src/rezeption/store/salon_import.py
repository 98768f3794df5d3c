"""Writes a validated salon file into the store, creating or updating the salon in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from rezeption.store.db import Database
from rezeption.store.salon_file import Absence, SalonFile, SalonFileError, hours_doc, ranges_doc
from rezeption.store.tables import (
    ClosureRow,
    ServiceRow,
    ServiceStaffRow,
    StaffAbsenceRow,
    StaffRow,
    TenantRouteRow,
    TenantRow,
)


@dataclass(frozen=True)
class ImportReport:
    """What loading a salon file did."""

    tenant_id: int
    slug: str
    created: bool
    services: int
    staff: int


def absence_span(absence: Absence, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The absence as aware UTC instants; whole days run from local midnight to the next midnight."""
    if isinstance(absence.start, datetime) and isinstance(absence.end, datetime):
        return absence.start.astimezone(UTC), absence.end.astimezone(UTC)
    assert isinstance(absence.start, date) and isinstance(absence.end, date)
    start = datetime.combine(absence.start, time(0), tzinfo=zone)
    end = datetime.combine(absence.end + timedelta(days=1), time(0), tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


async def count_tenants(database: Database) -> int:
    """How many salons the store holds."""
    async with database.read() as session:
        return int((await session.scalar(select(func.count()).select_from(TenantRow))) or 0)


async def import_salon(database: Database, salon: SalonFile, *, now: datetime) -> ImportReport:
    """Create or update the salon described by `salon`; all or nothing."""
    async with database.write() as session, session.begin():
        tenant = (await session.scalars(select(TenantRow).where(TenantRow.slug == salon.slug))).first()
        created = tenant is None
        if tenant is None:
            tenant = TenantRow(slug=salon.slug, created_at=now, catalog_version=0)
            session.add(tenant)
        tenant.name = salon.name
        tenant.timezone = salon.timezone
        tenant.holiday_state = salon.holiday_state
        tenant.opening_hours = hours_doc(salon.opening_hours)
        tenant.settings = salon.booking.model_dump()
        tenant.calendar_provider = salon.calendar.provider
        tenant.calendar_settings = salon.calendar.settings
        tenant.transfer_number = salon.transfer_number
        tenant.updated_at = now
        tenant.catalog_version += 1  # tells every process's catalog cache to reload
        await session.flush()
        await _routes(session, tenant.id, salon)
        await _closures(session, tenant.id, salon)
        staff_ids = await _staff(session, tenant.id, salon)
        await _services(session, tenant.id, salon, staff_ids)
        return ImportReport(tenant.id, salon.slug, created, len(salon.services), len(salon.staff))


async def _routes(session: AsyncSession, tenant_id: int, salon: SalonFile) -> None:
    wanted = [("agent", a) for a in salon.retell_agent_ids] + [("number", n) for n in salon.phone_numbers]
    for kind, value in wanted:
        owner = await session.scalar(
            select(TenantRouteRow.tenant_id).where(TenantRouteRow.kind == kind, TenantRouteRow.value == value)
        )
        if owner is not None and owner != tenant_id:
            raise SalonFileError(f"{kind} {value!r} already belongs to another salon")
    await session.execute(delete(TenantRouteRow).where(TenantRouteRow.tenant_id == tenant_id))
    session.add_all(TenantRouteRow(tenant_id=tenant_id, kind=kind, value=value) for kind, value in wanted)
    await session.flush()


async def _closures(session: AsyncSession, tenant_id: int, salon: SalonFile) -> None:
    """The file's closures replace the file's earlier ones; those added by command stay."""
    await session.execute(
        delete(ClosureRow).where(ClosureRow.tenant_id == tenant_id, ClosureRow.origin == "file")
    )
    session.add_all(
        ClosureRow(
            tenant_id=tenant_id,
            first_day=entry.date,
            last_day=entry.last_day,
            hours=ranges_doc(entry.hours),
            reason=entry.reason,
            yearly=entry.yearly,
            origin="file",
        )
        for entry in salon.closures
    )
    await session.flush()


async def _staff(session: AsyncSession, tenant_id: int, salon: SalonFile) -> dict[str, int]:
    existing = {
        r.key: r for r in await session.scalars(select(StaffRow).where(StaffRow.tenant_id == tenant_id))
    }
    for row in existing.values():
        row.active = False
    zone = ZoneInfo(salon.timezone)
    await session.execute(  # the file's absences are replaced; time blocked by command stays
        delete(StaffAbsenceRow).where(
            StaffAbsenceRow.tenant_id == tenant_id, StaffAbsenceRow.origin == "file"
        )
    )
    ids: dict[str, int] = {}
    for position, entry in enumerate(salon.staff):
        row = existing.get(entry.key) or StaffRow(tenant_id=tenant_id, key=entry.key)
        row.name = entry.name
        row.working_hours = hours_doc(entry.hours)
        row.breaks = hours_doc(entry.breaks)
        row.position = position
        row.active = entry.active
        row.external_ref = entry.external_ref
        session.add(row)
        await session.flush()
        ids[entry.key] = row.id
        for absence in entry.absences:
            start, end = absence_span(absence, zone)
            session.add(
                StaffAbsenceRow(
                    tenant_id=tenant_id,
                    staff_id=row.id,
                    starts_at=start,
                    ends_at=end,
                    reason=absence.reason,
                    origin="file",
                )
            )
    await session.flush()
    return ids


async def _services(
    session: AsyncSession, tenant_id: int, salon: SalonFile, staff_ids: dict[str, int]
) -> None:
    existing = {
        r.key: r for r in await session.scalars(select(ServiceRow).where(ServiceRow.tenant_id == tenant_id))
    }
    for row in existing.values():
        row.active = False
    for position, entry in enumerate(salon.services):
        row = existing.get(entry.key) or ServiceRow(tenant_id=tenant_id, key=entry.key)
        row.name = entry.name
        row.aliases = list(entry.aliases)
        row.duration_minutes = entry.duration
        row.buffer_before_minutes = entry.buffer_before
        row.buffer_after_minutes = entry.buffer_after
        row.price_cents = round(entry.price * 100) if entry.price is not None else None
        row.active = entry.active
        row.position = position
        row.external_ref = entry.external_ref
        session.add(row)
        await session.flush()
        await session.execute(delete(ServiceStaffRow).where(ServiceStaffRow.service_id == row.id))
        session.add_all(ServiceStaffRow(service_id=row.id, staff_id=staff_ids[key]) for key in entry.staff)
    await session.flush()
