"""Dialog tests: the engine in-process over the real function runner and database (SQLite; a few on
PostgreSQL too), and the socket against our server under uvicorn (fixtures of the Retell adapter)."""

from __future__ import annotations

import pytest
from tests.integration.dialog.phone import Phone
from tests.integration.retell_adapter.conftest import app, retell, server  # noqa: F401  (fixtures)

from rezeption.bootstrap import Services, build
from rezeption.domain.clock import FixedClock
from rezeption.retell.functions import FunctionRunner
from rezeption.settings import Settings


@pytest.fixture
async def services(database_url: str, salon_id: int, clock: FixedClock):  # type: ignore[no-untyped-def]
    wired = build(Settings(database_url=database_url, environment="test"), clock=clock)
    yield wired
    await wired.close()


@pytest.fixture
def phone(services: Services) -> Phone:
    runner = FunctionRunner(
        calls=services.calls,
        bookings=services.bookings,
        clock=services.clock,
        finder=services.finder,
        callers=services.callers,
        flags=services.flags,
    )
    return Phone(services, runner)
