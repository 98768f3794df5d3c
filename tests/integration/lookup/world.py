"""A small salon world for lookup tests: two salons, customers and appointments written straight to the store.

Customers go through the real `upsert_customer` (so their search keys are filled the way bookings
fill them); appointments are inserted as rows with a free stylist chosen here, any status, any time
(also in the past), which the booking use cases would rightly refuse to create.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tests.conftest import BERLIN, DEMO_SALON

from rezeption.domain.model import Catalog, Interval
from rezeption.domain.schedule import block_of
from rezeption.store.db import Database
from rezeption.store.salon_file import parse_salon
from rezeption.store.salon_import import import_salon
from rezeption.store.tables import AppointmentRow
from rezeption.store.uow import SqlUnitOfWork


async def import_second_salon(database: Database, now: datetime) -> int:
    """A copy of Friseur 1 under another slug, number and agent id (salon "b")."""
    text = DEMO_SALON.read_text(encoding="utf-8")
    text = text.replace("slug: friseur1", "slug: friseur2").replace("+493012345670", "+493012345679")
    text = text.replace("agent_friseur1", "agent_friseur2")
    return (await import_salon(database, parse_salon(text), now=now)).tenant_id


def local(text: str) -> datetime:
    """ "2025-11-04 10:00" in Berlin."""
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN)


@dataclass
class World:
    """What was written: appointment keys <-> ids, customer ids by person key."""

    tenants: dict[str, int]
    appointment_ids: dict[str, int] = field(default_factory=dict)
    customer_ids: dict[str, int] = field(default_factory=dict)
    busy: dict[int, list[Interval]] = field(default_factory=dict)

    def key_of(self, appointment_id: int) -> str:
        """The world key of an appointment id."""
        return {v: k for k, v in self.appointment_ids.items()}[appointment_id]


async def build_world(
    database: Database, tenants: dict[str, int], people: list[dict[str, Any]], now: datetime
) -> World:
    """Write `people` (see tests/data/lookup_cases.yaml) into the salons `tenants` ("a", "b")."""
    world = World(tenants)
    uow = SqlUnitOfWork(database)
    async with uow.writing() as tx:
        catalogs: dict[str, Catalog] = {k: await tx.load_catalog(t) for k, t in tenants.items()}
        for person in people:
            salon = person.get("tenant", "a")
            tenant_id, catalog = tenants[salon], catalogs[salon]
            customer_id = await tx.upsert_customer(
                tenant_id, name=person["name"], phone_e164=person.get("phone"), at=now
            )
            world.customer_ids[person["key"]] = customer_id
            for entry in person["appointments"]:
                row = _row(world, catalog, entry, customer_id, person, now)
                tx.session.add(row)
                await tx.session.flush()
                world.appointment_ids[entry["key"]] = row.id
        await tx.commit()
    return world


def _row(
    world: World,
    catalog: Catalog,
    entry: dict[str, Any],
    customer_id: int,
    person: dict[str, Any],
    now: datetime,
) -> AppointmentRow:
    service = next(s for s in catalog.services if s.key == entry["service"])
    start = local(entry["at"])
    block = block_of(service, start)
    staff_id = next(
        staff.id
        for staff in catalog.qualified_staff(service)
        if not any(block.overlaps(other) for other in world.busy.get(staff.id, []))
    )
    world.busy.setdefault(staff_id, []).append(block)
    return AppointmentRow(
        tenant_id=catalog.tenant.id,
        customer_id=customer_id,
        service_id=service.id,
        staff_id=staff_id,
        starts_at=start,
        ends_at=start + service.duration,
        block_starts_at=block.start,
        block_ends_at=block.end,
        status=entry.get("status", "confirmed"),
        source="phone",
        provider="local",
        call_id=person.get("call"),
        spoken_name=person["name"],
        version=1,
        created_at=now - timedelta(days=1),
        updated_at=now - timedelta(days=1),
    )
