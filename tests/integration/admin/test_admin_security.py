"""The web admin's locks, tried from the outside over HTTP against our server under uvicorn: wrong
passwords are rate-limited per account (and the right one waits too), every form needs its CSRF
token, a salon's user cannot reach another salon's pages or ids (refused, nothing leaked), a logout
ends the session, and an edit that breaks a rule names the field and saves nothing."""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy import select, update
from tests.integration.retell_adapter.conftest import RetellClient

from rezeption.domain.clock import FixedClock
from rezeption.store import outbox
from rezeption.store.db import Database
from rezeption.store.tables import AppointmentRow, OutboxJobRow, ServiceRow, StaffRow

BOOK = {"name": "Peter Schuster", "dienstleistung": "Bartpflege", "datum": "Donnerstag", "uhrzeit": "13 Uhr"}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def login(
    server: str, who: tuple[str, str], password: str | None = None
) -> tuple[httpx.AsyncClient, httpx.Response]:
    client = httpx.AsyncClient(base_url=server, timeout=20, follow_redirects=False)
    form = await client.get("/admin/login")
    token = CSRF.search(form.text)
    assert token is not None
    answer = await client.post(
        "/admin/login", data={"email": who[0], "password": password or who[1], "csrf": token.group(1)}
    )
    return client, answer


async def csrf_of(client: httpx.AsyncClient, path: str = "/admin/") -> str:
    page = await client.get(path)
    found = CSRF.search(page.text)
    assert found is not None, page.text[:300]
    return found.group(1)


async def status_of(database: Database, appointment_id: int) -> str:
    async with database.read() as session:
        return str(
            await session.scalar(select(AppointmentRow.status).where(AppointmentRow.id == appointment_id))
        )


async def test_wrong_passwords_lock_the_account_for_a_while_and_the_message_never_says_which(
    server: str, users: dict[str, tuple[str, str]]
) -> None:
    for attempt in range(5):
        client, answer = await login(server, users["owner"], password=f"falsch-{attempt}")
        assert answer.status_code == 401 and "E-Mail-Adresse oder Passwort ist falsch." in answer.text
        await client.aclose()
    client, unknown = await login(server, ("niemand@nirgends.de", "irgendwas-langes"))
    assert unknown.status_code == 401 and "E-Mail-Adresse oder Passwort ist falsch." in unknown.text
    await client.aclose()
    client, locked = await login(server, users["owner"])  # the right password, after five wrong ones
    assert locked.status_code == 429 and "Zu viele Anmeldeversuche" in locked.text
    assert "rezeption_admin" not in locked.cookies
    await client.aclose()
    client, other = await login(server, users["staff"])  # another account from the same address
    assert other.status_code == 303 and other.headers["location"] == "/admin/"
    cookie = other.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/admin" in cookie
    await client.aclose()


async def test_a_login_without_its_form_token_is_refused(
    server: str, users: dict[str, tuple[str, str]]
) -> None:
    async with httpx.AsyncClient(base_url=server, follow_redirects=False) as client:
        answer = await client.post(
            "/admin/login", data={"email": users["owner"][0], "password": users["owner"][1]}
        )
    assert answer.status_code == 403 and "rezeption_admin" not in answer.headers.get("set-cookie", "")


async def test_every_form_needs_the_sessions_csrf_token(
    server: str, retell: RetellClient, database: Database, users: dict[str, tuple[str, str]]
) -> None:
    booked = await retell.function("book_appointment", BOOK)
    appointment_id = int(booked["termin_nr"]) if "termin_nr" in booked else await _only_appointment(database)
    client, _ = await login(server, users["owner"])
    for data in ({}, {"csrf": "falsch"}):
        refused = await client.post(f"/admin/termine/{appointment_id}/absagen", data=data)
        assert refused.status_code == 403 and "Keine Berechtigung" in refused.text
        flag = await client.post("/admin/betrieb/flags", data={**data, "flag": "caller_id", "modus": "aus"})
        assert flag.status_code == 403
    assert await status_of(database, appointment_id) == "confirmed"
    token = await csrf_of(client)
    done = await client.post(f"/admin/termine/{appointment_id}/absagen", data={"csrf": token})
    assert done.status_code == 303 and await status_of(database, appointment_id) == "cancelled"
    await client.aclose()


async def _only_appointment(database: Database) -> int:
    async with database.read() as session:
        return int((await session.scalars(select(AppointmentRow.id))).one())


async def test_another_salons_user_reaches_nothing_of_this_salon(
    server: str, retell: RetellClient, database: Database, users: dict[str, tuple[str, str]]
) -> None:
    await retell.function("book_appointment", BOOK, call_id="call_isolation")
    appointment_id = await _only_appointment(database)
    owner, _ = await login(server, users["owner"])
    page = await owner.get(f"/admin/termine/{appointment_id}")
    assert page.status_code == 200 and "Peter Schuster" in page.text
    customer_id = re.search(r"/admin/kunden/(\d+)", page.text)
    assert customer_id is not None
    await owner.aclose()

    other, _ = await login(server, users["other"])
    token = await csrf_of(other)
    attempts: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", f"/admin/termine/{appointment_id}", None),
        ("GET", "/admin/anrufe/call_isolation", None),
        ("GET", f"/admin/kunden/{customer_id.group(1)}", None),
        ("GET", f"/admin/kunden/{customer_id.group(1)}/export", None),
        ("GET", f"/admin/kunden/{customer_id.group(1)}/loeschen", None),
        ("GET", "/admin/?salon=friseur1", None),
        ("POST", f"/admin/termine/{appointment_id}/absagen", {"csrf": token}),
        (
            "POST",
            f"/admin/termine/{appointment_id}/verschieben",
            {"csrf": token, "tag": "2025-11-07", "zeit": "13:00"},
        ),
        (
            "POST",
            f"/admin/kunden/{customer_id.group(1)}/loeschen",
            {"csrf": token, "bestaetigung": "LÖSCHEN"},
        ),
    ]
    for method, path, data in attempts:
        answer = await other.request(method, path, data=data)
        assert answer.status_code == 404, (method, path, answer.status_code)
        assert (
            "Peter" not in answer.text
            and "Schuster" not in answer.text
            and "4915123456789" not in answer.text
        )
    calls = await other.get("/admin/anrufe")
    assert "call_isolation" not in calls.text
    day = await other.get("/admin/?tag=2025-11-06")
    assert day.status_code == 200 and "Peter" not in day.text
    await other.aclose()
    assert await status_of(database, appointment_id) == "confirmed"


async def test_a_logout_ends_the_session_for_good(server: str, users: dict[str, tuple[str, str]]) -> None:
    client, answer = await login(server, users["owner"])
    cookie = answer.cookies["rezeption_admin"]
    token = await csrf_of(client)
    assert (await client.post("/admin/logout", data={"csrf": token})).status_code == 303
    async with httpx.AsyncClient(
        base_url=server, follow_redirects=False, cookies={"rezeption_admin": cookie}
    ) as replay:
        again = await replay.get("/admin/")
    assert again.status_code == 303 and again.headers["location"] == "/admin/login"
    await client.aclose()


async def test_an_edit_that_breaks_a_rule_names_the_field_and_saves_nothing(
    server: str, database: Database, users: dict[str, tuple[str, str]], salon_id: int
) -> None:
    async with database.read() as session:
        service = (await session.scalars(select(ServiceRow).where(ServiceRow.tenant_id == salon_id))).first()
    assert service is not None
    before = (service.duration_minutes, service.price_cents)
    client, _ = await login(server, users["owner"])
    token = await csrf_of(client, "/admin/salon")
    for duration, price, reason in (("-15", "20", "muss größer als 0"), ("30", "-5", "darf nicht negativ"),
                                    ("viel", "20", "ganze Zahl")):  # fmt: skip
        answer = await client.post(
            f"/admin/salon/leistungen/{service.id}", data={"csrf": token, "dauer": duration, "preis": price}
        )
        assert answer.status_code == 400 and reason in answer.text, (duration, price)
    hours = await client.post("/admin/salon/oeffnungszeiten", data={"csrf": token, "mon": "9 bis 5"})
    assert hours.status_code == 400 and "keine Zeitspanne" in hours.text
    async with database.read() as session:
        after = await session.get(ServiceRow, service.id)
    assert after is not None and (after.duration_minutes, after.price_cents) == before
    await client.aclose()


async def test_a_name_with_markup_is_shown_as_text_never_run(
    server: str, users: dict[str, tuple[str, str]]
) -> None:
    client, _ = await login(server, users["owner"])
    token = await csrf_of(client, "/admin/termine/neu")
    form = {"csrf": token, "leistung": "", "tag": "2025-11-06", "zeit": "15:00",
            "name": "<script>alert(1)</script> Engel", "nonce": "markup-1"}  # fmt: skip
    new = await client.get("/admin/termine/neu")
    service = re.search(r'<option value="(\d+)"', new.text)
    assert service is not None
    answer = await client.post("/admin/termine/neu", data={**form, "leistung": service.group(1)})
    assert answer.status_code == 303, answer.text[:500]
    day = await client.get("/admin/?tag=2025-11-06")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Engel" in day.text and "<script>alert" not in day.text
    await client.aclose()


async def test_the_operations_page_closes_and_retries_only_this_salons_jobs(
    server: str, database: Database, clock: FixedClock, users: dict[str, tuple[str, str]], salon_id: int
) -> None:
    async with database.write() as session, session.begin():
        made = [("callback_request", salon_id, "cb-1"), ("calendar_cancel", salon_id, "dead-1"),
                ("callback_request", None, "cb-other")]  # fmt: skip
        for kind, tenant, key in made:
            await outbox.enqueue(session, kind, {"reason": "calendar_unavailable"}, at=clock.now(),
                                 tenant_id=tenant, dedupe_key=key)  # fmt: skip
        await session.execute(
            update(OutboxJobRow).where(OutboxJobRow.dedupe_key == "dead-1").values(status="dead", attempts=8)
        )
    jobs = {j.kind + ("-other" if j.tenant_id is None else ""): j.id for j in await outbox.jobs(database)}
    client, _ = await login(server, users["owner"])
    page = await client.get("/admin/betrieb")
    assert page.status_code == 200 and "Rückruf" in page.text and "aufgegeben" in page.text
    token = await csrf_of(client, "/admin/betrieb")
    other = await client.post(
        f"/admin/betrieb/jobs/{jobs['callback_request-other']}/erledigt", data={"csrf": token}
    )
    assert other.status_code == 404
    done = await client.post(f"/admin/betrieb/jobs/{jobs['callback_request']}/erledigt", data={"csrf": token})
    retried = await client.post(
        f"/admin/betrieb/jobs/{jobs['calendar_cancel']}/wiederholen", data={"csrf": token}
    )
    assert done.status_code == retried.status_code == 303
    status = {j.id: j.status for j in await outbox.jobs(database)}
    assert status[jobs["callback_request"]] == "done" and status[jobs["calendar_cancel"]] == "pending"
    assert status[jobs["callback_request-other"]] == "pending"
    staff, _ = await login(server, users["staff"])
    assert (await staff.post(f"/admin/betrieb/jobs/{jobs['callback_request-other']}/erledigt",
                             data={"csrf": await csrf_of(staff)})).status_code == 403  # fmt: skip
    await client.aclose()
    await staff.aclose()


async def test_a_stylists_hours_edit_changes_the_next_answer(
    server: str, retell: RetellClient, database: Database, users: dict[str, tuple[str, str]], salon_id: int
) -> None:
    ask = {"dienstleistung": "Bartpflege", "datum": "Donnerstag", "uhrzeit": "13 Uhr", "mitarbeiter": "Ben"}
    assert (await retell.function("check_availability", ask))["frei"] is True
    async with database.read() as session:
        query = select(StaffRow).where(StaffRow.tenant_id == salon_id, StaffRow.name == "Ben")
        ben = (await session.scalars(query)).one()
    client, _ = await login(server, users["owner"])
    token = await csrf_of(client, "/admin/salon")
    path = f"/admin/salon/mitarbeiter/{ben.id}"
    bad = await client.post(path, data={"csrf": token, "zeiten-thu": "12:00-12:00"})
    assert bad.status_code == 400 and f"mitarbeiter-{ben.id}-thu" in bad.text
    assert (await retell.function("check_availability", ask))["frei"] is True
    good = await client.post(path, data={"csrf": token, "zeiten-thu": "09:00-12:00"})
    assert good.status_code == 303
    after = await retell.function("check_availability", ask)
    assert after["frei"] is False, after
    await client.aclose()


async def test_an_address_trying_many_accounts_is_locked_too(
    server: str, users: dict[str, tuple[str, str]]
) -> None:
    """The liar who rotates accounts: twenty wrong tries from one address, each for another e-mail,
    lock that address, even for the right password of a real account."""
    for n in range(20):
        client, answer = await login(server, (f"versuch{n}@nirgends.de", "irgendein-passwort"))
        assert answer.status_code == 401
        await client.aclose()
    client, locked = await login(server, users["owner"])
    assert locked.status_code == 429 and "rezeption_admin" not in locked.cookies
    await client.aclose()
