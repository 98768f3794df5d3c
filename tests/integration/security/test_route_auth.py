"""Every route the app answers asks for what the table in `routes.py` says, and nothing else gets in.

The table is held against `app.routes` (included routers and mounts too): a route added without an
entry fails here, so nobody adds an unauthenticated route silently. Then each protected route is
called against our running server, unauthenticated and with a wrong signature, token, cookie or
CSRF token, with a body that would write if it were let in; it must answer 401/403 or send the
browser to the login, and every table of the database must be exactly as before (a control request
with the right credentials shows that the same body does write). Friseur 1, Monday 3 November 2025,
08:00 in Berlin.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from tests.integration.retell_adapter.conftest import AGENT, API_KEY, CALLER, SALON_NUMBER, RetellClient
from tests.integration.security.conftest import (
    CALCOM_SALON,
    CALCOM_SECRET,
    METRICS_TOKEN,
    SALON_B,
    logged_in,
)
from tests.integration.security.routes import (
    ADMIN,
    ADMIN_FORM,
    CALCOM,
    DOCS,
    LIVE_CALL,
    METRICS,
    PUBLIC,
    RETELL,
    ROUTES,
    Endpoint,
    endpoints,
)
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from rezeption.app import create_app
from rezeption.calendars.calcom.webhook import signature_for
from rezeption.domain.clock import FixedClock
from rezeption.retell.signature import sign
from rezeption.settings import Settings
from rezeption.store import outbox
from rezeption.store.db import Database
from rezeption.store.tables import AppointmentRow, Base, FunctionCallTraceRow, ServiceRow, StaffRow

BOOK = {"name": "Peter Schuster", "dienstleistung": "Bartpflege", "datum": "Donnerstag", "uhrzeit": "13 Uhr"}
CALL = {"call_id": "call_auth", "agent_id": AGENT, "from_number": CALLER, "to_number": SALON_NUMBER}
STRONG = "Vq7mX2pL9rT4wZ8bN3fH6jK1sD5gY0cE"


def by_kind(*kinds: str) -> list[Endpoint]:
    return sorted(e for e, kind in ROUTES.items() if kind in kinds)


def test_every_route_is_in_the_authentication_table() -> None:
    app = create_app(Settings(database_url="sqlite+aiosqlite:///unused.db", environment="test"))
    answered = endpoints(app)
    unlisted = sorted(answered - set(ROUTES))
    assert not unlisted, (
        f"routes without an entry in tests/integration/security/routes.py: {unlisted}. Say there what "
        "each asks of a caller (and protect it), then the tests below call it unauthenticated."
    )
    assert not sorted(set(ROUTES) - answered), "entries for routes the app no longer has"


def test_in_production_the_docs_are_gone_and_every_other_route_is_as_in_the_table() -> None:
    settings = Settings(
        database_url="sqlite+aiosqlite:///unused.db",
        environment="production",
        retell_api_key=STRONG,
        admin_secret=STRONG[::-1],
    )
    assert endpoints(create_app(settings)) == set(ROUTES) - set(DOCS)


async def snapshot(database: Database) -> dict[str, list[str]]:
    """Every row of every table, as text (small test databases): the database's whole state."""
    state: dict[str, list[str]] = {}
    async with database.read() as session:
        for table in Base.metadata.sorted_tables:
            rows = (await session.execute(select(table))).all()
            state[table.name] = sorted(repr(tuple(row)) for row in rows)
    return state


async def traced(database: Database, call_id: str) -> None:
    """Wait (at most ~10 s) until the trace writer has written a trace of `call_id`: it writes in
    batches after the reply. A refused request never gets that far: the signature check and the
    replay record come first, and the replay record is written at once."""
    for _ in range(100):
        async with database.read() as session:
            query = select(FunctionCallTraceRow.id).where(FunctionCallTraceRow.retell_call_id == call_id)
            if (await session.scalars(query)).first() is not None:
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no trace of {call_id} was written")


@pytest.fixture
async def ids(retell: RetellClient, database: Database, clock: FixedClock, salon_id: int) -> dict[str, Any]:
    """Real ids of Friseur 1 for every path parameter: a booked appointment, its customer and call,
    a job, a service, a stylist; and the booking's reference (read out in call_auth)."""
    booked = await retell.function("book_appointment", BOOK, call_id="call_auth")
    assert booked["gebucht"] is True, booked
    async with database.write() as session, session.begin():
        await outbox.enqueue(session, "callback_request", {"reason": "calendar_unavailable"},
                             at=clock.now(), tenant_id=salon_id, dedupe_key="auth-job")  # fmt: skip
    async with database.read() as session:
        appointment = (await session.scalars(select(AppointmentRow))).one()
        service = (await session.scalars(select(ServiceRow).where(ServiceRow.tenant_id == salon_id))).first()
        staff = (await session.scalars(select(StaffRow).where(StaffRow.tenant_id == salon_id))).first()
    assert service is not None and staff is not None
    await traced(database, "call_auth")  # the trace writer's batch, before any snapshot is taken
    (job,) = [j.id for j in await outbox.jobs(database) if j.kind == "callback_request"]
    return {
        "appointment_id": appointment.id,
        "customer_id": appointment.customer_id,
        "call_id": "call_auth",
        "job_id": job,
        "service_id": service.id,
        "staff_id": staff.id,
        "tenant_slug": CALCOM_SALON,
        "name": "drop_everything",  # the catch-all route: a name that is no function
        "referenz": booked["referenz"],
    }


def retell_json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


def retell_body(path: str, ids: dict[str, Any]) -> dict[str, Any]:
    """A body for a Retell route that writes when it is let in."""
    if path == "/retell/inbound":
        return {"event": "call_inbound", "call_inbound": {**CALL, "call_id": "call_forged"}}
    if path == "/retell/webhook":
        return {"event": "call_ended", "call": {**CALL, "transcript": "User: gefälscht",
                                                 "end_timestamp": 1762156800000}}  # fmt: skip
    name = path.rsplit("/", 1)[1].format(**ids)
    args: dict[str, Any] = {
        "book_appointment": {**BOOK, "uhrzeit": "14 Uhr"},
        "cancel_appointment": {"referenz": ids["referenz"]},
        "reschedule_appointment": {
            "referenz": ids["referenz"],
            "neues_datum": "Freitag",
            "neue_uhrzeit": "14 Uhr",
        },
        "record_consent": {"name": "Peter Schuster"},
    }.get(name, {"name": "Peter Schuster"})
    return {"name": name, "call": CALL, "args": args}


async def test_every_retell_route_refuses_unsigned_forged_and_misplaced_signatures_and_writes_nothing(
    retell: RetellClient, database: Database, ids: dict[str, Any]
) -> None:
    before = await snapshot(database)
    for _, path in by_kind(RETELL):
        body = retell_body(path, ids)
        url = path.format(**ids)
        raw = retell_json(body)
        stamp = int(retell.clock.now().timestamp() * 1000)
        attempts = {
            "unsigned": {},
            "another key": {"X-Retell-Signature": sign(raw, "key_someone_else_0123456789", stamp)},
            "another body": {"X-Retell-Signature": sign(b'{"name":"list_services"}', API_KEY, stamp)},
            "malformed": {"X-Retell-Signature": "v=1,d=00"},
        }
        for what, headers in attempts.items():
            answer = await retell.http.post(url, content=raw, headers={"Content-Type": "application/json",
                                                                       **headers})  # fmt: skip
            assert answer.status_code == 401, (path, what, answer.status_code, answer.text[:200])
            assert "Peter" not in answer.text and "Bartpflege" not in answer.text
    assert await snapshot(database) == before, "a refused Retell request wrote something"

    control = await retell.post("/retell/functions/cancel_appointment",
                                retell_body("/retell/functions/cancel_appointment", ids))  # fmt: skip
    assert control.status_code == 200 and control.json()["storniert"] is True, control.text
    assert await snapshot(database) != before


async def test_the_live_call_socket_opens_only_for_a_call_that_is_live(
    server: str, retell: RetellClient, database: Database, ids: dict[str, Any]
) -> None:
    assert by_kind(LIVE_CALL) == [("WS", "/retell/llm/{call_id}")]
    ended = {"event": "call_ended", "call": {**CALL, "end_timestamp": 1762156800000}}
    assert (await retell.post("/retell/webhook", ended)).status_code == 204
    before = await snapshot(database)
    base = server.replace("http", "ws")
    for call_id in ("call_nobody_announced", "call_auth", "x" * 200):  # unknown, ended, absurd
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{base}/retell/llm/{call_id}", open_timeout=10):
                pass
        assert refused.value.response.status_code == 403, call_id
    assert await snapshot(database) == before


def admin_form(path: str) -> dict[str, str]:
    """Form fields that would change something if the request were let in."""
    forms = {
        "/admin/termine/neu": {"leistung": "1", "tag": "2025-11-06", "zeit": "15:00", "name": "Eva Engel"},
        "/admin/termine/{appointment_id}/verschieben": {"tag": "2025-11-07", "zeit": "13:00"},
        "/admin/kunden/{customer_id}/loeschen": {"bestaetigung": "LÖSCHEN"},
        "/admin/betrieb/flags": {"flag": "caller_id", "modus": "aus"},
        "/admin/salon/oeffnungszeiten": {"mon": "09:00-18:00"},
        "/admin/salon/leistungen/{service_id}": {"dauer": "45", "preis": "99"},
        "/admin/salon/mitarbeiter/{staff_id}": {"zeiten-mon": "09:00-18:00"},
    }
    return forms.get(path, {})


async def test_every_admin_page_sends_strangers_to_the_login_and_every_form_needs_its_csrf_token(
    server: str, database: Database, ids: dict[str, Any], owner: tuple[str, str]
) -> None:
    member, csrf = await logged_in(server, owner)
    for method, path in by_kind(ADMIN):  # a control: with the session each page is there
        page = await member.request(method, path.format(**ids))
        assert page.status_code == 200, (path, page.status_code)
    before = await snapshot(database)
    forged = {"rezeption_admin": secrets.token_urlsafe(32)}
    async with httpx.AsyncClient(base_url=server, timeout=20, follow_redirects=False) as stranger:
        for method, path in by_kind(ADMIN, ADMIN_FORM):
            url, data = path.format(**ids), admin_form(path) if method == "POST" else None
            for cookies in ({}, forged):
                stranger.cookies.clear()
                stranger.cookies.update(cookies)
                answer = await stranger.request(method, url, data=data)
                assert answer.status_code == 303, (method, path, cookies, answer.status_code)
                assert answer.headers["location"] == "/admin/login", (method, path)
                assert "Peter" not in answer.text
    for _, path in by_kind(ADMIN_FORM):
        for token in ({}, {"csrf": "falsch"}, {"csrf": csrf[:-1]}):
            answer = await member.post(path.format(**ids), data={**admin_form(path), **token})
            assert answer.status_code == 403, (path, token, answer.status_code)
    assert await snapshot(database) == before, "a refused admin request wrote something"
    assert (await member.get("/admin/")).status_code == 200, "the refused logout ended nothing"
    await member.aclose()


async def test_metrics_ask_for_the_bearer_token(server: str, database: Database) -> None:
    assert by_kind(METRICS) == [("GET", "/metrics")]
    before = await snapshot(database)
    async with httpx.AsyncClient(base_url=server, timeout=20) as client:
        wrong = ("Bearer wrong", METRICS_TOKEN, f"Bearer {METRICS_TOKEN}x", f"Basic {METRICS_TOKEN}")
        for headers in ({}, *({"Authorization": value} for value in wrong)):
            refused = await client.get("/metrics", headers=headers)
            assert refused.status_code == 401 and "rezeption_" not in refused.text, headers
        good = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert good.status_code == 200 and "rezeption_" in good.text
    assert await snapshot(database) == before


async def test_the_calcom_webhook_asks_for_the_salons_signature(
    server: str, database: Database, calcom_salon: int, salon_b: int
) -> None:
    assert by_kind(CALCOM) == [("POST", "/calcom/webhooks/{tenant_slug}")]
    body = b'{"triggerEvent":"BOOKING_CANCELLED","createdAt":"2025-11-03T07:00:00Z","payload":{"uid":"bk_1"}}'
    right = signature_for(CALCOM_SECRET, body)
    attempts = [
        (CALCOM_SALON, {}),
        (CALCOM_SALON, {"X-Cal-Signature-256": "not-hex"}),
        (CALCOM_SALON, {"X-Cal-Signature-256": signature_for("whsec_someone_else", body)}),
        (CALCOM_SALON, {"X-Cal-Signature-256": signature_for(CALCOM_SECRET, body + b" ")}),
        (SALON_B, {"X-Cal-Signature-256": right}),  # a salon without a secret takes no signature
        ("friseur1", {"X-Cal-Signature-256": signature_for("", body)}),
        ("no-such-salon", {"X-Cal-Signature-256": right}),
    ]
    before = await snapshot(database)
    async with httpx.AsyncClient(base_url=server, timeout=20) as client:
        for slug, headers in attempts:
            answer = await client.post(f"/calcom/webhooks/{slug}", content=body, headers=headers)
            assert answer.status_code == 401, (slug, headers, answer.status_code)
        assert await snapshot(database) == before, "a refused webhook wrote something"
        good = await client.post(
            f"/calcom/webhooks/{CALCOM_SALON}", content=body, headers={"X-Cal-Signature-256": right}
        )
    assert good.status_code == 200 and good.json()["queued"] is True
    jobs = [j for j in await outbox.jobs(database) if j.tenant_id == calcom_salon]
    assert len(jobs) == 1


async def test_the_public_routes_answer_without_credentials_and_say_nothing_private(
    server: str, ids: dict[str, Any]
) -> None:
    paths = {"MOUNT": "/admin/static/admin.css"}
    async with httpx.AsyncClient(base_url=server, timeout=20, follow_redirects=False) as client:
        for method, path in by_kind(PUBLIC):
            if (method, path) == ("POST", "/admin/login"):
                continue  # its own lock: tests/integration/admin/test_admin_security.py
            answer = await client.get(paths.get(method, path))
            assert answer.status_code == 200, (path, answer.status_code)
            assert "Peter" not in answer.text and CALLER[3:] not in answer.text, path
