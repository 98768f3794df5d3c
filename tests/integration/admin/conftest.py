"""The web admin under test: our server under uvicorn on 127.0.0.1 (the Retell adapter's fixtures,
so a test can book by phone and look at the page), users of both roles, a second salon for the
tenant-isolation cases, and Debian's chromium driven by Playwright (installed when missing)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright
from tests.conftest import ROOT
from tests.integration.lookup.world import import_second_salon
from tests.integration.retell_adapter.conftest import app, retell, server  # noqa: F401 (fixtures)
from tests.tools import ensure_command

from rezeption.domain.clock import FixedClock
from rezeption.store.admin import create_user
from rezeption.store.db import Database

OWNER = ("inhaberin@friseur1.de", "Scheren-und-Kamm-2025")
STAFF = ("team@friseur1.de", "Foehn-und-Buerste-2025")
OTHER_OWNER = ("chef@friseur2.de", "Anderer-Salon-2025!")
SCREENSHOTS = ROOT / "var" / "test-output"


@pytest.fixture
async def users(database: Database, clock: FixedClock, salon_id: int) -> dict[str, tuple[str, str]]:
    await import_second_salon(database, clock.now())
    await create_user(database, *OWNER, role="owner", salons=["friseur1"], now=clock.now())
    await create_user(database, *STAFF, role="staff", salons=["friseur1"], now=clock.now())
    await create_user(database, *OTHER_OWNER, role="owner", salons=["friseur2"], now=clock.now())
    return {"owner": OWNER, "staff": STAFF, "other": OTHER_OWNER}


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = ensure_command("chromium", "chromium")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A tablet-sized page. Tests name `server` before `page`: the page then closes before the server
    stops (an open keep-alive connection holds the server's graceful shutdown for its timeout)."""
    context = await browser.new_context(viewport={"width": 1180, "height": 820}, locale="de-DE")  # a tablet
    opened = await context.new_page()
    yield opened
    await context.close()


async def log_in(page: Page, base: str, who: tuple[str, str]) -> None:
    await page.goto(f"{base}/admin/login")
    await page.fill("input[name=email]", who[0])
    await page.fill("input[name=password]", who[1])
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/admin/")


def screenshot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / name
