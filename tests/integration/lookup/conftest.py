"""Fixtures for the lookup tests: a second salon, the finder with a test reference key, the store."""

from __future__ import annotations

import pytest
from tests.integration.lookup.world import import_second_salon

from rezeption.booking.lookup import AppointmentFinder
from rezeption.booking.references import References, reference_key
from rezeption.domain.clock import FixedClock
from rezeption.store.db import Database
from rezeption.store.lookup import SqlLookupStore
from rezeption.store.uow import SqlUnitOfWork

SECRET = "test-secret-for-references-0123456789"


@pytest.fixture
async def other_salon_id(database: Database, clock: FixedClock, salon_id: int) -> int:
    """Salon "b": a copy of Friseur 1 under another slug (loaded after the demo salon)."""
    return await import_second_salon(database, clock.now())


@pytest.fixture
def references() -> References:
    """References signed with the test key."""
    return References(reference_key(SECRET))


@pytest.fixture
def lookup_store(database: Database) -> SqlLookupStore:
    """The SQL lookup store."""
    return SqlLookupStore(database)


@pytest.fixture
def finder(
    database: Database, clock: FixedClock, lookup_store: SqlLookupStore, references: References
) -> AppointmentFinder:
    """The lookup use case on the test database and clock."""
    return AppointmentFinder(
        store=lookup_store, uow=SqlUnitOfWork(database), clock=clock, references=references
    )
