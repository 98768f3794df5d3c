"""A salon described in one file: validated precisely, loaded and reloaded in place."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from tests.conftest import BERLIN, DEMO_SALON

from rezeption.domain.clock import FixedClock
from rezeption.store.db import Database
from rezeption.store.salon_file import SalonFileError, parse_salon, read_salon
from rezeption.store.salon_import import import_salon
from rezeption.store.tables import ServiceRow, StaffAbsenceRow, TenantRouteRow
from rezeption.store.uow import SqlUnitOfWork

MINIMAL = """
slug: mini
name: Mini Salon
opening_hours: {tue: [["09:00", "12:00"]]}
staff: [{key: eva, name: Eva, hours: {tue: [["09:00", "12:00"]]}}]
services: [{key: schnitt, name: Schnitt, duration: 30, staff: [eva]}]
"""


def test_the_demo_salon_file_describes_friseur_1() -> None:
    salon = read_salon(DEMO_SALON)
    assert salon.name == "Friseur 1" and salon.timezone == "Europe/Berlin" and salon.holiday_state == "BE"
    assert salon.retell_agent_ids == ["agent_friseur1"] and salon.phone_numbers == ["+493012345670"]
    assert set(salon.opening_hours) == {"tue", "wed", "thu", "fri", "sat"}
    assert len(salon.staff) == 3
    assert {s.key for s in salon.services} >= {
        "herrenhaarschnitt",
        "damenhaarschnitt",
        "faerben",
        "bartpflege",
    }
    assert all(s.aliases for s in salon.services)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("slug: [", "not valid YAML"),
        ("- a list", "expected a mapping"),
        (MINIMAL.replace("duration: 30", "duration: 0"), "services.0.duration"),
        (MINIMAL.replace("staff: [eva]}", "staff: [otto]}"), "unknown staff: otto"),
        (
            MINIMAL.replace('"09:00", "12:00"]]}\nstaff', '"12:00", "09:00"]]}\nstaff'),
            "must end after it starts",
        ),
        (MINIMAL + "timezone: Mars/Olympus\n", "unknown time zone"),
        (MINIMAL + "colour: blue\n", "colour: Extra inputs are not permitted"),
        (MINIMAL + "phone_numbers: ['030 1234']\n", "phone_numbers.0"),
        (MINIMAL.replace("slug: mini", "slug: Mini Salon!"), "slug"),
    ],
)
def test_a_broken_salon_file_is_refused_with_where_and_why(text: str, message: str) -> None:
    with pytest.raises(SalonFileError, match=message):
        parse_salon(text, "test.yaml")


async def test_reloading_updates_in_place_and_deactivates_what_was_removed(
    database: Database, clock: FixedClock
) -> None:
    first = await import_salon(database, parse_salon(MINIMAL), now=clock.now())
    changed = MINIMAL.replace(
        "services: [{key: schnitt, name: Schnitt, duration: 30, staff: [eva]}]",
        "services: [{key: bart, name: Bart, duration: 20, staff: [eva]}]",
    ).replace(
        'hours: {tue: [["09:00", "12:00"]]}}]',
        'hours: {tue: [["09:00", "12:00"]]}, absences: [{start: 2025-12-22, end: 2025-12-23}]}]',
    )
    second = await import_salon(database, parse_salon(changed), now=clock.now())
    assert first.created and not second.created and first.tenant_id == second.tenant_id
    async with database.read() as session:
        services = {r.key: r.active for r in await session.scalars(select(ServiceRow))}
        absence = (await session.scalars(select(StaffAbsenceRow))).one()
    assert services == {"schnitt": False, "bart": True}
    assert absence.starts_at.astimezone(BERLIN).isoformat() == "2025-12-22T00:00:00+01:00"
    assert absence.ends_at.astimezone(BERLIN).isoformat() == "2025-12-24T00:00:00+01:00"
    async with SqlUnitOfWork(database).reading() as tx:
        catalog = await tx.load_catalog(first.tenant_id)
    assert [s.key for s in catalog.services if s.active] == ["bart"]
    assert len(catalog.staff[0].absences) == 1


async def test_a_number_or_agent_can_belong_to_one_salon_only(database: Database, clock: FixedClock) -> None:
    salon = read_salon(DEMO_SALON)
    await import_salon(database, salon, now=clock.now())
    thief = salon.model_copy(update={"slug": "zweiter", "retell_agent_ids": ["agent_other"]})
    with pytest.raises(SalonFileError, match="already belongs to another salon"):
        await import_salon(database, thief, now=clock.now())
    async with database.read() as session:
        routes = {(r.kind, r.value) for r in await session.scalars(select(TenantRouteRow))}
    assert routes == {("agent", "agent_friseur1"), ("number", "+493012345670")}
