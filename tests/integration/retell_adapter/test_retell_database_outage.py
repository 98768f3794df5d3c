"""The database goes away or stops answering in the middle of the day (PostgreSQL behind a proxy we can cut).

Retell waits 8 s for a function (the tool timeout our agent definition sets) and gives up after
that; the client here waits no longer. Every answer must be a 200 the agent can speak (or, for a
webhook, a 503 Retell delivers again), and call_inbound still tells the agent about the salon.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from tests.integration.retell_adapter.conftest import API_KEY, CALLER, SALON_NUMBER, RetellClient
from tests.proxy import TcpProxy

from rezeption.app import create_app
from rezeption.domain.clock import FixedClock
from rezeption.settings import Settings

pytestmark = pytest.mark.postgres
RETELL_WAITS = 8.0
INBOUND = {"event": "call_inbound", "call_inbound": {"from_number": CALLER, "to_number": SALON_NUMBER}}


@pytest.fixture
def database_url(postgres_migrated: str) -> str:
    """PostgreSQL only: the proxy sits in front of a real server."""
    return postgres_migrated


@pytest.fixture
def proxy(database_url: str) -> Iterator[TcpProxy]:
    url = make_url(database_url)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as running:
        yield running


@pytest.fixture
def app(database_url: str, salon_id: int, clock: FixedClock, proxy: TcpProxy) -> FastAPI:
    settings = Settings(database_url=proxy.url_for(database_url), retell_api_key=API_KEY, environment="test")
    return create_app(settings, clock=clock)


async def as_retell(retell: RetellClient, path: str, body: dict[str, Any]) -> httpx.Response:
    """Post like Retell does, and give up when Retell gives up (httpx raises then)."""
    raw = httpx.Request("POST", "http://x", json=body).content
    headers = {"X-Retell-Signature": retell.sign(raw), "Content-Type": "application/json"}
    return await retell.http.post(path, content=raw, headers=headers, timeout=RETELL_WAITS)


def function(name: str, args: dict[str, Any], call_id: str = "call_1") -> dict[str, Any]:
    call = {
        "call_id": call_id,
        "agent_id": "agent_friseur1",
        "from_number": CALLER,
        "to_number": SALON_NUMBER,
    }
    return {"name": name, "call": call, "args": args}


BOOK = {"name": "Peter Schuster", "dienstleistung": "Bartpflege", "datum": "Donnerstag", "uhrzeit": "13 Uhr"}


@pytest.mark.parametrize("trouble", ["refuse", "hang"])
async def test_a_database_that_goes_away_gets_spoken_apologies_within_retells_wait(
    retell: RetellClient, proxy: TcpProxy, trouble: str, capfd: pytest.CaptureFixture[str]
) -> None:
    warm = await as_retell(retell, "/retell/inbound", INBOUND)
    assert warm.json()["call_inbound"]["dynamic_variables"]["salon_name"] == "Friseur 1"
    assert (await as_retell(retell, "/retell/functions/list_services", function("list_services", {}))).json()[
        "ok"
    ]
    getattr(proxy, trouble)()

    for name, args in (("book_appointment", BOOK), ("find_appointments", {"name": "Peter Schuster"})):
        response = await as_retell(retell, f"/retell/functions/{name}", function(name, args, "call_2"))
        body = response.json()
        assert response.status_code == 200 and body["ok"] is False, body
        assert body["reason"] in {"unavailable", "over_budget"}, body
        assert body["message"] and "Traceback" not in body["message"]
        assert body["ergebnis"] in {"nichts_geaendert", "wird_geprueft"}

    inbound = await as_retell(retell, "/retell/inbound", INBOUND)
    variables = inbound.json()["call_inbound"]["dynamic_variables"]
    assert inbound.status_code == 200 and variables["salon_name"] == "Friseur 1"
    assert variables["customer_known"] == "false"

    event = {"event": "call_ended", "call": function("x", {})["call"]}
    webhook = await as_retell(retell, "/retell/webhook", event)
    assert webhook.status_code == 503

    logged = "".join(capfd.readouterr())
    assert "retell.function" in logged  # the failures were logged ...
    assert CALLER[3:] not in logged and "Schuster" not in logged  # ... without a number or a name

    proxy.heal()
    again = await as_retell(
        retell, "/retell/functions/book_appointment", function("book_appointment", BOOK, "call_2")
    )
    assert again.json()["ok"] is True, again.json()  # the key was released: the retry books
