"""After a load run, count from the database what really happened — not from the server's counters
nor from what the callers heard: double bookings (two active appointments of one stylist whose
blocks overlap), pending rows left behind, and for every call how many active appointments were made
in it against what its caller heard (one after "gebucht" or a move, none after a cancellation).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import and_, func, select
from sqlalchemy.orm import aliased

from rezeption.store.db import Database
from rezeption.store.tables import AppointmentRow

ACTIVE = ("pending", "confirmed")


@dataclass(frozen=True)
class Check:
    """What the database holds after the run."""

    double_bookings: int
    pending_left: int
    mismatched_calls: list[str]  # calls whose active appointments are not what the caller heard
    appointments: int


async def check(database: Database, expected: Mapping[str, int], *, call_prefix: str = "") -> Check:
    """Count doubles and pending rows (of calls starting with `call_prefix`), and which calls do not
    hold the active appointments `expected` says their callers were told of (call id -> 0 or 1)."""
    a, b = aliased(AppointmentRow), aliased(AppointmentRow)
    overlap = (
        select(func.count())
        .select_from(a)
        .join(
            b,
            and_(
                a.staff_id == b.staff_id,
                a.tenant_id == b.tenant_id,
                a.id < b.id,
                a.block_starts_at < b.block_ends_at,
                b.block_starts_at < a.block_ends_at,
            ),
        )
        .where(a.status.in_(ACTIVE), b.status.in_(ACTIVE))
    )
    async with database.read() as session:
        doubles = int(await session.scalar(overlap) or 0)
        pending = int(
            await session.scalar(
                select(func.count()).where(
                    AppointmentRow.status == "pending", AppointmentRow.call_id.like(f"{call_prefix}%")
                )
            )
            or 0
        )
        made: dict[str | None, int] = dict(
            (
                await session.execute(
                    select(AppointmentRow.call_id, func.count())
                    .where(
                        AppointmentRow.call_id.like(f"{call_prefix}%"),
                        AppointmentRow.status.in_(ACTIVE),
                    )
                    .group_by(AppointmentRow.call_id)
                )
            ).all()
        )
        total = int(await session.scalar(select(func.count()).select_from(AppointmentRow)) or 0)
    mismatched = sorted(c for c, n in expected.items() if made.get(c, 0) != n)
    mismatched += sorted(c for c in made if c is not None and c not in expected)
    return Check(doubles, pending, mismatched, total)
