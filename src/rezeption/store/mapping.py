"""Translation between stored JSON shapes and domain values (hours, policy, rows to dataclasses)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import time, timedelta
from typing import Any

from rezeption.domain.model import (
    WEEKDAYS,
    Appointment,
    AppointmentStatus,
    BookingPolicy,
    Closure,
    Interval,
    Service,
    Staff,
    Tenant,
    TimeRange,
    WeeklyHours,
)
from rezeption.store.tables import ClosureRow, ServiceRow, StaffRow, TenantRow


def ranges_from_json(doc: Sequence[Sequence[str]]) -> tuple[TimeRange, ...]:
    """[["09:00", "13:00"]] -> (TimeRange(09:00, 13:00),)."""
    return tuple(TimeRange(time.fromisoformat(start), time.fromisoformat(end)) for start, end in doc)


def closure_from_row(row: ClosureRow) -> Closure:
    """A Closure from its row."""
    return Closure(
        first_day=row.first_day,
        last_day=row.last_day,
        hours=ranges_from_json(row.hours),
        reason=row.reason,
        yearly=row.yearly,
        id=row.id,
        origin=row.origin,
    )


def hours_from_json(doc: Mapping[str, Sequence[Sequence[str]]]) -> WeeklyHours:
    """{"tue": [["09:00", "18:00"]]} -> {1: (TimeRange(09:00, 18:00),)}."""
    hours: dict[int, tuple[TimeRange, ...]] = {}
    for day, ranges in doc.items():
        hours[WEEKDAYS.index(day)] = ranges_from_json(ranges)
    return hours


def hours_to_json(hours: WeeklyHours) -> dict[str, list[list[str]]]:
    """The inverse of `hours_from_json`."""
    return {
        WEEKDAYS[day]: [[r.start.strftime("%H:%M"), r.end.strftime("%H:%M")] for r in ranges]
        for day, ranges in sorted(hours.items())
    }


def policy_from_json(doc: Mapping[str, Any]) -> BookingPolicy:
    """The booking policy stored in a tenant's settings, with defaults for what is missing."""
    default = BookingPolicy()
    return BookingPolicy(
        min_notice=timedelta(minutes=doc.get("min_notice_minutes", default.min_notice.total_seconds() / 60)),
        horizon_days=int(doc.get("horizon_days", default.horizon_days)),
        slot_grid=timedelta(minutes=doc.get("slot_grid_minutes", default.slot_grid.total_seconds() / 60)),
        change_min_notice=timedelta(
            hours=doc.get("change_min_notice_hours", default.change_min_notice.total_seconds() / 3600)
        ),
        max_active_per_caller=int(doc.get("max_active_per_caller", default.max_active_per_caller)),
        max_bookings_per_call=int(doc.get("max_bookings_per_call", default.max_bookings_per_call)),
    )


def tenant_from_row(row: TenantRow) -> Tenant:
    """A Tenant from its row."""
    return Tenant(
        id=row.id,
        slug=row.slug,
        name=row.name,
        timezone=row.timezone,
        holiday_state=row.holiday_state,
        opening_hours=hours_from_json(row.opening_hours),
        policy=policy_from_json(row.settings),
        calendar_provider=row.calendar_provider,
        calendar_settings=dict(row.calendar_settings),
        transfer_number=row.transfer_number,
    )


def service_from_row(row: ServiceRow, staff_ids: frozenset[int]) -> Service:
    """A Service from its row and the stylists who offer it."""
    return Service(
        id=row.id,
        key=row.key,
        name=row.name,
        aliases=tuple(row.aliases),
        duration=timedelta(minutes=row.duration_minutes),
        buffer_before=timedelta(minutes=row.buffer_before_minutes),
        buffer_after=timedelta(minutes=row.buffer_after_minutes),
        price_cents=row.price_cents,
        active=row.active,
        staff_ids=staff_ids,
    )


def staff_from_row(row: StaffRow, absences: Sequence[Interval]) -> Staff:
    """A Staff member from its row and absences."""
    return Staff(
        id=row.id,
        key=row.key,
        name=row.name,
        working_hours=hours_from_json(row.working_hours),
        breaks=hours_from_json(row.breaks),
        absences=tuple(absences),
        active=row.active,
    )


def appointment_from_row(row: Any) -> Appointment:
    """An Appointment from its row (an `AppointmentRow`, or a Core row of the appointments table)."""
    return Appointment(
        id=row.id,
        tenant_id=row.tenant_id,
        service_id=row.service_id,
        staff_id=row.staff_id,
        customer_id=row.customer_id,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        block_starts_at=row.block_starts_at,
        block_ends_at=row.block_ends_at,
        status=AppointmentStatus(row.status),
        source=row.source,
        provider=row.provider,
        external_uid=row.external_uid,
        call_id=row.call_id,
        idempotency_key=row.idempotency_key,
        spoken_name=row.spoken_name,
        version=row.version,
        rescheduled_from_id=row.rescheduled_from_id,
        created_at=row.created_at,
    )
