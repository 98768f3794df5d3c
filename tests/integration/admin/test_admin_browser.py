"""The salon's web admin in a real browser (Playwright driving Debian's chromium) against our server
under uvicorn: the day view shows what the phone booked a moment before, a cancel on the page is
what the phone then hears, an opening-hours edit changes the next availability answer (and a bad one
saves nothing), a flag set on the page decides the next call, and a staff account stays out of the
owner's pages. A screenshot of the day view lands in var/test-output/ for a person to look at."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from playwright.async_api import Page, expect
from tests.integration.admin.conftest import log_in, screenshot_path
from tests.integration.retell_adapter.conftest import CALLER, SALON_NUMBER, RetellClient

from rezeption.domain.clock import FixedClock
from rezeption.domain.flags import CALLER_ID
from rezeption.store import flags as flag_store
from rezeption.store.db import Database

THURSDAY = "2025-11-06"


@pytest.fixture
def database_url(sqlite_template: Path, tmp_path: Path) -> str:
    """The browser tests run on SQLite only: what they prove is the pages; the same routes run on
    PostgreSQL in test_admin_security.py (and the use cases behind them everywhere else)."""
    path = tmp_path / "admin.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


BOOK = {"name": "Peter Schuster", "dienstleistung": "Bartpflege", "datum": "Donnerstag", "uhrzeit": "13 Uhr"}


async def test_the_owner_sees_the_phone_booking_cancels_it_and_the_phone_hears_it(
    server: str, page: Page, retell: RetellClient, users: dict[str, tuple[str, str]]
) -> None:
    booked = await retell.function("book_appointment", BOOK, call_id="call_admin_1")
    assert booked["gebucht"] is True
    await log_in(page, server, users["owner"])
    await page.fill("input[name=tag]", THURSDAY)
    await page.wait_for_url(f"{server}/admin/?salon=friseur1&tag={THURSDAY}")
    card = page.locator("a.appt", has_text="Peter Schuster")
    await expect(card).to_contain_text("13:00")
    await expect(card).to_contain_text("Bartpflege")
    await expect(card).to_contain_text("Telefon")
    await expect(page.locator("section.column", has=card).locator("h2")).to_have_text("Ben")
    await page.screenshot(path=str(screenshot_path("admin-day-view.png")), full_page=True)

    await card.click()
    await expect(page.locator("h1")).to_contain_text("Bartpflege · Peter Schuster")
    await expect(page.locator("table.list")).to_contain_text("confirmed")  # the event log
    await expect(page.locator("a", has_text="call_admin_1")).to_be_visible()
    page.on("dialog", lambda dialog: dialog.accept())
    await page.click("button:has-text('Termin absagen')")
    await expect(page.locator("dd.status")).to_have_text("abgesagt")

    found = await retell.function("find_appointments", {"name": "Peter Schuster"}, call_id="call_admin_2")
    assert found["ok"] is False or not found.get("termine"), found
    free = await retell.function(
        "check_availability", {"dienstleistung": "Bartpflege", "datum": "Donnerstag", "uhrzeit": "13 Uhr"},
        call_id="call_admin_2",
    )  # fmt: skip
    assert free["frei"] is True, "the cancelled slot is free again for the next caller"


async def test_an_opening_hours_edit_changes_the_next_answer_and_a_bad_one_saves_nothing(
    server: str, page: Page, retell: RetellClient, users: dict[str, tuple[str, str]]
) -> None:
    ask = {"dienstleistung": "Bartpflege", "datum": "Donnerstag", "uhrzeit": "13 Uhr"}
    assert (await retell.function("check_availability", ask))["frei"] is True
    await log_in(page, server, users["owner"])
    await page.goto(f"{server}/admin/salon")
    await page.fill("input[name=thu]", "18:00-09:00")
    await page.click("button:has-text('Öffnungszeiten speichern')")
    error = page.locator("p.error")
    await expect(error).to_contain_text("thu")
    await expect(error).to_contain_text("endet nicht nach dem Beginn")
    assert (await retell.function("check_availability", ask))["frei"] is True, "nothing was saved"

    await page.fill("input[name=thu]", "09:00-12:00")
    await page.click("button:has-text('Öffnungszeiten speichern')")
    await expect(page.locator("input[name=thu]")).to_have_value("09:00-12:00")
    after = await retell.function("check_availability", ask)
    assert after["frei"] is False and "12 Uhr" in after["message"], after


async def test_a_flag_set_on_the_page_decides_the_next_call(
    server: str, page: Page, retell: RetellClient, database: Database, users: dict[str, tuple[str, str]]
) -> None:
    await retell.function("book_appointment", BOOK)
    await retell.function("record_consent", {})
    inbound = {"event": "call_inbound", "call_inbound": {"from_number": CALLER, "to_number": SALON_NUMBER}}
    known = (await retell.post("/retell/inbound", inbound)).json()["call_inbound"]["dynamic_variables"]
    assert known["customer_known"] == "true"

    await log_in(page, server, users["owner"])
    await page.goto(f"{server}/admin/betrieb")
    row = page.locator(f"tr[data-flag={CALLER_ID}]")
    await row.locator("select[name=modus]").select_option("aus")
    await row.locator("button").click()
    await expect(page.locator(f"tr[data-flag={CALLER_ID}] td.mine")).to_have_text("aus")
    rules = [(r.scope, r.rule.enabled) for r in await flag_store.list_rules(database) if r.flag == CALLER_ID]
    assert rules == [("friseur1", False)], "for this salon only, never the global rule"
    now = (await retell.post("/retell/inbound", inbound)).json()["call_inbound"]["dynamic_variables"]
    assert now["customer_known"] == "false"


async def test_staff_see_the_day_with_masked_numbers_and_are_refused_owner_pages(
    server: str, page: Page, retell: RetellClient, users: dict[str, tuple[str, str]]
) -> None:
    await retell.function("book_appointment", BOOK)
    await log_in(page, server, users["staff"])
    await page.goto(f"{server}/admin/?tag={THURSDAY}")
    card = page.locator("a.appt", has_text="Peter Schuster")
    await expect(card).to_contain_text("****")
    await expect(card).not_to_contain_text(CALLER[-6:])
    await expect(page.locator("nav")).not_to_contain_text("Betrieb")
    for path in ("/admin/betrieb", "/admin/salon", "/admin/kunden"):
        response = await page.goto(f"{server}{path}")
        assert response is not None and response.status == 403, path
        await expect(page.locator("h1")).to_have_text("Keine Berechtigung")


async def test_a_new_appointment_on_the_page_follows_the_phones_rules(
    server: str, page: Page, retell: RetellClient, users: dict[str, tuple[str, str]], clock: FixedClock
) -> None:
    await retell.function("book_appointment", BOOK)
    await log_in(page, server, users["owner"])
    await page.goto(f"{server}/admin/termine/neu")
    await page.select_option("select[name=leistung]", label="Bartpflege (20 min)")
    await page.fill("input[name=tag]", THURSDAY)
    await page.fill("input[name=zeit]", "13:00")
    await page.fill("input[name=name]", "Eva Engel")
    await page.click("button:has-text('Termin eintragen')")
    await expect(page.locator("p.error")).to_contain_text("Um 13 Uhr ist leider schon belegt")
    await page.fill("input[name=zeit]", "14:00")
    await page.click("button:has-text('Termin eintragen')")
    await expect(page.locator("h1")).to_have_text("Bartpflege · Eva Engel")
    await expect(page.locator("dl.facts")).to_contain_text("Salon")


async def test_calls_show_their_functions_and_customers_are_exported_and_erased_after_confirmation(
    server: str, page: Page, retell: RetellClient, database: Database, users: dict[str, tuple[str, str]]
) -> None:
    call = {"call_id": "call_admin_3", "from_number": CALLER, "to_number": SALON_NUMBER}
    inbound = {"event": "call_inbound", "call_inbound": call}
    assert (await retell.post("/retell/inbound", inbound)).status_code == 200
    await retell.function("book_appointment", BOOK, call_id="call_admin_3")
    await log_in(page, server, users["owner"])

    await page.goto(f"{server}/admin/woche?tag={THURSDAY}")
    await expect(page.locator("table.week")).to_contain_text("13:00 Bartpflege (Peter Schuster)")
    await page.goto(f"{server}/admin/anrufe")
    await page.click("a[href^='/admin/anrufe/call_admin_3']")
    traces = page.locator("table.traces")
    await expect(traces).to_contain_text("book_appointment")
    await expect(traces).to_contain_text("Ich habe Ihren Termin gebucht")
    await expect(traces).to_contain_text("caller_id: an (default)")  # the flag decision of call_inbound
    await page.click("a:has-text('Nr. ')")
    await expect(page.locator("h1")).to_contain_text("Peter Schuster")

    await page.goto(f"{server}/admin/kunden")
    await page.fill("input[name=q]", "schuster")
    await page.click("button:has-text('Suchen')")
    await page.click("a:has-text('Peter Schuster')")
    async with page.expect_download() as download_info:
        await page.click("a:has-text('Daten exportieren')")
    download = await download_info.value
    saved = await download.path()
    exported = json.loads(await asyncio.to_thread(Path(saved).read_text, encoding="utf-8"))
    assert "Peter Schuster" in json.dumps(exported, ensure_ascii=False)

    await page.click("a:has-text('Daten löschen')")
    await expect(page.locator("main")).to_contain_text("1 künftige(r) Termin(e)")
    await page.fill("input[name=bestaetigung]", "löschen bitte")
    await page.click("button:has-text('Endgültig löschen')")
    await expect(page.locator("p.error")).to_contain_text("LÖSCHEN eingeben")
    await page.fill("input[name=bestaetigung]", "LÖSCHEN")
    await page.click("button:has-text('Endgültig löschen')")
    await expect(page.locator("h1")).to_have_text("Gelöscht")
    found = await retell.function("find_appointments", {"name": "Peter Schuster"}, call_id="call_admin_4")
    assert not found.get("termine"), found


async def test_a_move_on_the_page_is_what_the_phone_finds_and_a_taken_time_is_refused_in_german(
    server: str, page: Page, retell: RetellClient, users: dict[str, tuple[str, str]]
) -> None:
    await retell.function("book_appointment", BOOK)
    other = {**BOOK, "name": "Eva Engel", "uhrzeit": "14 Uhr"}
    assert (await retell.function("book_appointment", other, call_id="call_other"))["gebucht"] is True
    await log_in(page, server, users["owner"])
    await page.goto(f"{server}/admin/?tag={THURSDAY}")
    await page.locator("a.appt", has_text="Peter Schuster").click()
    await page.fill("input[name=zeit]", "14:00")
    await page.click("button:has-text('Verschieben')")
    await expect(page.locator("p.error")).to_contain_text("Um 14 Uhr ist leider schon belegt")
    await expect(page.locator("dd.status")).to_have_text("bestätigt")
    await page.fill("input[name=zeit]", "15:00")
    await page.click("button:has-text('Verschieben')")
    await expect(page.locator("dl.facts")).to_contain_text("15:00–15:20 Uhr")
    found = await retell.function("find_appointments", {"name": "Peter Schuster"}, call_id="call_admin_5")
    assert "15 Uhr" in found["message"], found
