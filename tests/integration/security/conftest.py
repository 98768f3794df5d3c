"""Security tests: our server under uvicorn (the Retell adapter's fixtures and signing client) over one
database holding three salons: the demo salon Friseur 1 ("A"), a second salon "B" that looks like it
as closely as a neighbour could (the same services, other stylists' names, one service of its own,
open on Mondays), and the demo salon on Cal.com (for its signed webhook). /metrics asks for a bearer
token; nothing runs in the background, so every row written was written by a request."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI
from tests.conftest import DEMO_SALON, ROOT
from tests.integration.retell_adapter.conftest import API_KEY, retell, server  # noqa: F401 (fixtures)

from rezeption.app import create_app
from rezeption.domain.clock import FixedClock
from rezeption.settings import Settings
from rezeption.store.admin import create_user
from rezeption.store.db import Database
from rezeption.store.salon_file import parse_salon, read_salon
from rezeption.store.salon_import import import_salon

SALON_B, SALON_B_NUMBER, SALON_B_AGENT = "salon-b", "+493098765430", "agent_salon_b"
SALON_B_STYLISTS = ("Zora", "Yusuf", "Xenia")  # in place of Anna, Ben and Clara
SALON_B_ONLY_SERVICE = "Dauerwelle"
CALCOM_SALON, CALCOM_SECRET = "friseur1-calcom", "whsec_friseur1_demo"
METRICS_TOKEN = "scrape-7Qm2vXz9LpR4tW8yB3nF6hJ"
OWNER = ("inhaberin@friseur1.de", "Scheren-und-Kamm-2025")
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def salon_b_file() -> str:
    """Friseur 1's file as salon B: its own slug, number, agent, stylists, a service and Mondays."""
    text = DEMO_SALON.read_text(encoding="utf-8")
    for old, new in (
        ("slug: friseur1", f"slug: {SALON_B}"),
        ("name: Friseur 1", "name: Haarwerk Süd"),
        ("+493012345670", SALON_B_NUMBER),
        ("agent_friseur1", SALON_B_AGENT),
        ("name: Anna", f"name: {SALON_B_STYLISTS[0]}"),
        ("name: Ben", f"name: {SALON_B_STYLISTS[1]}"),
        ("name: Clara", f"name: {SALON_B_STYLISTS[2]}"),
        ("opening_hours:\n", 'opening_hours:\n  mon: [["09:00", "18:00"]]\n'),
        ("    hours:\n      wed:", '    hours:\n      mon: [["09:00", "18:00"]]\n      wed:'),  # Clara's
    ):
        assert old in text, old
        text = text.replace(old, new, 1)
    return text + (
        f"  - key: dauerwelle\n    name: {SALON_B_ONLY_SERVICE}\n    aliases: [Locken]\n"
        "    duration: 90\n    price: 79.00\n    staff: [clara]\n"
    )


@pytest.fixture
async def salon_b(database: Database, clock: FixedClock, salon_id: int) -> int:
    """Salon B (see the module docstring), in the same database as Friseur 1."""
    return (await import_salon(database, parse_salon(salon_b_file()), now=clock.now())).tenant_id


@pytest.fixture
async def calcom_salon(database: Database, clock: FixedClock, salon_id: int) -> int:
    """The demo salon on Cal.com (its webhook secret is known), never called here."""
    salon = read_salon(ROOT / "salons" / "friseur1-calcom.yaml")
    return (await import_salon(database, salon, now=clock.now())).tenant_id


@pytest.fixture
def app(database_url: str, salon_id: int, salon_b: int, calcom_salon: int, clock: FixedClock) -> FastAPI:
    """The application with every salon loaded before it starts and a /metrics token."""
    settings = Settings(
        database_url=database_url,
        retell_api_key=API_KEY,
        environment="test",
        metrics_token=METRICS_TOKEN,
        embedded_worker="off",
        slot_refresher=False,
    )
    return create_app(settings, clock=clock)


@pytest.fixture
async def owner(database: Database, clock: FixedClock, salon_id: int) -> tuple[str, str]:
    """An owner of Friseur 1 for the web admin."""
    await create_user(database, *OWNER, role="owner", salons=["friseur1"], now=clock.now())
    return OWNER


async def logged_in(base: str, who: tuple[str, str]) -> tuple[httpx.AsyncClient, str]:
    """A client with a session of `who` (redirects not followed) and the session's CSRF token."""
    client = httpx.AsyncClient(base_url=base, timeout=20, follow_redirects=False)
    form = await client.get("/admin/login")
    token = CSRF.search(form.text)
    assert token is not None
    answer = await client.post(
        "/admin/login", data={"email": who[0], "password": who[1], "csrf": token.group(1)}
    )
    assert answer.status_code == 303, answer.text[:300]
    page = await client.get("/admin/")
    csrf = CSRF.search(page.text)
    assert csrf is not None, page.text[:300]
    return client, csrf.group(1)
