"""The web admin's pages (`/admin/…`, German): login, the day and the week, appointments (new, move,
cancel, detail with the event log), calls with their function traces, customers (GDPR export and
erasure), and for owners the operations page (jobs, pending rows, flags) and the salon's settings.

Every write goes through the use case the phone uses (`Bookings.book|cancel|reschedule`, the GDPR
erasure, the salon file's rules), so the rules, the messages and the event log are the same.
"""

from __future__ import annotations

import json
import secrets
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from rezeption.admin.security import (
    COOKIE,
    MAX_PER_ACCOUNT,
    MAX_PER_ADDRESS,
    WINDOW,
    Forbidden,
    NotFound,
    NotLoggedIn,
    Visitor,
    check_csrf,
    client_address,
    cookie_secure,
    visitor,
)
from rezeption.booking.bookings import BookingRequest
from rezeption.bootstrap import Services
from rezeption.domain.errors import BookingError
from rezeption.domain.flags import FLAGS, Rule
from rezeption.domain.model import Catalog, Interval
from rezeption.language import mask_phone, normalize_phone
from rezeption.language.offers import refusal_sentence
from rezeption.ops.erasure import erase_customer_data
from rezeption.store import admin_views, outbox
from rezeption.store import flags as flag_store
from rezeption.store.admin import check_password, close_session, failures, open_session, record_failure
from rezeption.store.gdpr import erasure_plan, export_customer
from rezeption.store.operator import OperatorError, day_plan, resolve_job, retry_job
from rezeption.store.salon_edit import (
    SalonEditError,
    hours_text,
    parse_hours,
    parse_service,
    set_opening_hours,
    set_service,
    set_staff_hours,
)
from rezeption.store.tables import TenantRow

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
LOGIN_CSRF = "rezeption_login_csrf"
WEEKDAY_NAMES = ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag")
DAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SOURCES = {"phone": "Telefon", "admin": "Salon", "calendar": "Kalender"}
STATUSES = {"confirmed": "bestätigt", "pending": "offen", "cancelled": "abgesagt", "failed": "fehlgeschlagen"}
PIXELS_PER_MINUTE = 2.2
REPAIR_NAMES = {
    "orphan_cancelled": "verwaiste Kalenderbuchung storniert (Abgleich)",
    "compensated": "Kalenderbuchung zurückgenommen",
    "compensation_queued": "Zurücknahme wird wiederholt",
}


def install(app: FastAPI) -> None:
    """Mount the pages, the stylesheet and the answers for a missing login, role or id."""
    app.include_router(router)
    app.mount("/admin/static", StaticFiles(directory=str(HERE / "static")), name="admin-static")

    async def to_login(request: Request, error: Exception) -> Response:
        return RedirectResponse("/admin/login", status_code=303)

    async def refused(request: Request, error: Exception) -> Response:
        return _page(request, "message.html", {"title": "Keine Berechtigung",
                     "text": "Diese Seite ist für Ihr Konto nicht freigegeben."}, status=403)  # fmt: skip

    async def missing(request: Request, error: Exception) -> Response:
        return _page(request, "message.html", {"title": "Nicht gefunden",
                     "text": "Das gibt es hier nicht (oder nicht für Ihren Salon)."}, status=404)  # fmt: skip

    app.add_exception_handler(NotLoggedIn, to_login)
    app.add_exception_handler(Forbidden, refused)
    app.add_exception_handler(NotFound, missing)


router = APIRouter(prefix="/admin", include_in_schema=False)


# --- helpers ------------------------------------------------------------------------------------


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _zone(catalog: Catalog) -> ZoneInfo:
    return ZoneInfo(catalog.tenant.timezone)


def _page(request: Request, name: str, context: dict[str, Any], *, status: int = 200) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {"me": None, **context}, status_code=status)


def _view(
    request: Request, me: Visitor, name: str, context: dict[str, Any], *, status: int = 200
) -> HTMLResponse:
    """A page for a logged-in user: the navigation, the salon switch and the CSRF token."""
    salon_query = f"salon={me.salon}"
    return _page(
        request,
        name,
        {
            "me": me,
            "csrf": me.session.csrf,
            "q": salon_query,
            "salons": list(me.user.salons.values()),
            **context,
        },
        status=status,
    )


def _back(me: Visitor, path: str) -> RedirectResponse:
    separator = "&" if "?" in path else "?"
    return RedirectResponse(f"{path}{separator}salon={me.salon}", status_code=303)


async def _catalog(request: Request, me: Visitor) -> Catalog:
    services = _services(request)
    return await services.bookings.current_catalog(me.tenant_id, services.clock.now())


def _today(request: Request, catalog: Catalog) -> date:
    return _services(request).clock.now().astimezone(_zone(catalog)).date()


def _day(value: str | None, fallback: date) -> date:
    try:
        return date.fromisoformat(value) if value else fallback
    except ValueError:
        return fallback


def _phone(me: Visitor, number: str | None) -> str:
    if not number:
        return ""
    return number if me.user.is_owner else mask_phone(number)


async def _form(request: Request, me: Visitor) -> dict[str, str]:
    form = await request.form()
    values = {k: str(v) for k, v in form.items()}
    check_csrf(me, values.get("csrf"))
    return values


def _local(moment: datetime, catalog: Catalog) -> datetime:
    return moment.astimezone(_zone(catalog))


def _start(catalog: Catalog, day_text: str, time_text: str) -> datetime:
    try:
        return datetime.combine(
            date.fromisoformat(day_text), time.fromisoformat(time_text), tzinfo=_zone(catalog)
        )
    except ValueError as error:
        raise SalonEditError("zeit", "bitte Datum und Uhrzeit angeben") from error


# --- login --------------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> HTMLResponse:
    return _login_page(request, None)


def _login_page(request: Request, error: str | None, *, status: int = 200, email: str = "") -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    page = _page(request, "login.html", {"error": error, "login_csrf": token, "email": email}, status=status)
    secure = cookie_secure(_services(request))
    page.set_cookie(LOGIN_CSRF, token, httponly=True, samesite="strict", secure=secure, path="/admin/login")
    return page


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    services = _services(request)
    form = await request.form()
    email, password = str(form.get("email", "")), str(form.get("password", ""))
    given, expected = str(form.get("csrf", "")), request.cookies.get(LOGIN_CSRF, "")
    if not expected or not secrets.compare_digest(given, expected):
        return _login_page(request, "Das Formular ist abgelaufen. Bitte noch einmal anmelden.", status=403)
    now = services.clock.now()
    address = client_address(request)
    by_account, by_address = await failures(
        services.database, email=email, address=address, since=now - WINDOW
    )
    if by_account >= MAX_PER_ACCOUNT or by_address >= MAX_PER_ADDRESS:
        return _login_page(
            request, "Zu viele Anmeldeversuche. Bitte warten Sie 15 Minuten.", status=429, email=email
        )
    user_id = await check_password(services.database, email, password)
    if user_id is None:
        await record_failure(services.database, email=email, address=address, at=now)
        return _login_page(request, "E-Mail-Adresse oder Passwort ist falsch.", status=401, email=email)
    token = await open_session(services.database, user_id, now=now)
    response = RedirectResponse("/admin/", status_code=303)
    response.set_cookie(
        COOKIE, token, httponly=True, samesite="strict", secure=cookie_secure(services), path="/admin"
    )
    response.delete_cookie(LOGIN_CSRF, path="/admin/login")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    me = await visitor(request)
    await _form(request, me)
    token = request.cookies.get(COOKIE)
    if token:
        await close_session(_services(request).database, token)
    response = RedirectResponse("/admin/login", status_code=303)
    response.delete_cookie(COOKIE, path="/admin")
    return response


# --- the day and the week -----------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
async def day_view(request: Request, tag: str | None = None) -> HTMLResponse:
    me = await visitor(request)
    catalog = await _catalog(request, me)
    zone = _zone(catalog)
    day = _day(tag, _today(request, catalog))
    start = datetime.combine(day, time(0), tzinfo=zone)
    entries = await day_plan(
        _services(request).database, me.tenant_id, Interval(start, start + timedelta(days=1))
    )
    first_hour, last_hour = 8, 20
    for entry in entries:
        local = _local(entry.starts_at, catalog)
        first_hour = min(first_hour, local.hour)
        last_hour = max(last_hour, _local(entry.ends_at, catalog).hour + 1)
    origin = datetime.combine(day, time(first_hour), tzinfo=zone)
    columns: dict[str, list[dict[str, Any]]] = {s.name: [] for s in catalog.staff if s.active}
    for entry in entries:
        top = (entry.starts_at - origin).total_seconds() / 60 * PIXELS_PER_MINUTE
        height = max((entry.ends_at - entry.starts_at).total_seconds() / 60 * PIXELS_PER_MINUTE, 22)
        columns.setdefault(entry.staff, []).append(
            {
                "entry": entry,
                "top": round(top),
                "height": round(height),
                "start": _local(entry.starts_at, catalog).strftime("%H:%M"),
                "end": _local(entry.ends_at, catalog).strftime("%H:%M"),
                "phone": _phone(me, entry.phone),
                "source": SOURCES.get(entry.source or "", entry.source or ""),
                "status": STATUSES.get(entry.status or "", entry.status or ""),
            }
        )
    hours = [(h, round((h - first_hour) * 60 * PIXELS_PER_MINUTE)) for h in range(first_hour, last_hour + 1)]
    return _view(
        request,
        me,
        "day.html",
        {
            "day": day,
            "day_name": f"{WEEKDAY_NAMES[day.weekday()]}, {day:%d.%m.%Y}",
            "previous": day - timedelta(days=1),
            "next": day + timedelta(days=1),
            "columns": columns,
            "hours": hours,
            "height": round((last_hour - first_hour) * 60 * PIXELS_PER_MINUTE),
            "count": sum(1 for e in entries if e.kind == "appointment" and e.status != "cancelled"),
        },
    )


@router.get("/woche", response_class=HTMLResponse)
async def week_view(request: Request, tag: str | None = None) -> HTMLResponse:
    me = await visitor(request)
    catalog = await _catalog(request, me)
    zone = _zone(catalog)
    day = _day(tag, _today(request, catalog))
    monday = day - timedelta(days=day.weekday())
    start = datetime.combine(monday, time(0), tzinfo=zone)
    entries = await day_plan(
        _services(request).database, me.tenant_id, Interval(start, start + timedelta(days=7))
    )
    days = [monday + timedelta(days=n) for n in range(7)]
    grid: dict[str, dict[date, list[str]]] = {
        s.name: {d: [] for d in days} for s in catalog.staff if s.active
    }
    for entry in entries:
        if entry.kind != "appointment" or entry.status == "cancelled":
            continue
        local = _local(entry.starts_at, catalog)
        grid.setdefault(entry.staff, {d: [] for d in days}).setdefault(local.date(), []).append(
            f"{local:%H:%M} {entry.service} ({entry.customer or '—'})"
        )
    return _view(
        request,
        me,
        "week.html",
        {
            "days": [(d, f"{WEEKDAY_NAMES[d.weekday()][:2]} {d:%d.%m.}") for d in days],
            "grid": grid,
            "previous": monday - timedelta(days=7),
            "next": monday + timedelta(days=7),
            "title_range": f"{monday:%d.%m.} – {days[-1]:%d.%m.%Y}",
        },
    )


# --- appointments -------------------------------------------------------------------------------


@router.get("/termine/neu", response_class=HTMLResponse)
async def new_appointment_form(request: Request, tag: str | None = None) -> HTMLResponse:
    me = await visitor(request)
    catalog = await _catalog(request, me)
    return _new_form(request, me, catalog, {"tag": tag or _today(request, catalog).isoformat()}, None)


def _new_form(
    request: Request,
    me: Visitor,
    catalog: Catalog,
    values: dict[str, str],
    error: str | None,
    status: int = 200,
) -> HTMLResponse:
    return _view(
        request,
        me,
        "new.html",
        {
            "services": [s for s in catalog.services if s.active],
            "staff": [s for s in catalog.staff if s.active],
            "values": values,
            "error": error,
            "nonce": values.get("nonce") or secrets.token_urlsafe(12),
        },
        status=status,
    )


@router.post("/termine/neu", response_class=HTMLResponse)
async def new_appointment(request: Request) -> Response:
    me = await visitor(request)
    values = await _form(request, me)
    catalog = await _catalog(request, me)
    phone = values.get("telefon", "").strip()
    number = normalize_phone(phone) if phone else None
    if phone and number is None:
        return _new_form(request, me, catalog, values, "Die Telefonnummer ist keine gültige Nummer.", 400)
    if not values.get("name", "").strip():
        return _new_form(request, me, catalog, values, "Bitte den Namen angeben.", 400)
    try:
        start = _start(catalog, values.get("tag", ""), values.get("zeit", ""))
        result = await _services(request).bookings.book(
            BookingRequest(
                tenant_id=me.tenant_id,
                service=int(values.get("leistung", "0") or 0),
                start=start,
                staff=int(values["mitarbeiter"]) if values.get("mitarbeiter") else None,
                customer_name=values["name"].strip(),
                phone_e164=number,
                source="admin",
                idempotency_key=f"admin:{me.user.id}:{values.get('nonce', '')}"
                if values.get("nonce")
                else None,
            )
        )
    except BookingError as error:
        return _new_form(
            request, me, catalog, values, refusal_sentence(catalog, error, _today(request, catalog)), 400
        )
    except SalonEditError as error:
        return _new_form(request, me, catalog, values, error.reason, 400)
    return _back(me, f"/admin/termine/{result.appointment.id}")


@router.get("/termine/{appointment_id}", response_class=HTMLResponse)
async def appointment_detail(
    request: Request, appointment_id: int, fehler: str | None = None
) -> HTMLResponse:
    me = await visitor(request)
    catalog = await _catalog(request, me)
    found = await admin_views.appointment(_services(request).database, me.tenant_id, appointment_id)
    if found is None:
        raise NotFound
    local, ends = _local(found.starts_at, catalog), _local(found.ends_at, catalog)
    return _view(
        request,
        me,
        "appointment.html",
        {
            "a": found,
            "when": f"{WEEKDAY_NAMES[local.weekday()]}, {local:%d.%m.%Y}, {local:%H:%M}–{ends:%H:%M} Uhr",
            "phone": _phone(me, found.phone),
            "source": SOURCES.get(found.source, found.source),
            "status": STATUSES.get(found.status, found.status),
            "events": [
                (_local(at, catalog).strftime("%d.%m.%Y %H:%M:%S"), kind, data)
                for at, kind, data in found.events
            ],
            "staff": [s for s in catalog.staff if s.active],
            "day": local.date().isoformat(),
            "error": fehler,
        },
    )


@router.post("/termine/{appointment_id}/absagen")
async def cancel_appointment(request: Request, appointment_id: int) -> Response:
    me = await visitor(request)
    await _form(request, me)
    try:
        await _services(request).bookings.cancel(
            tenant_id=me.tenant_id, appointment_id=appointment_id, source="admin"
        )
    except BookingError as error:
        if error.code == "appointment_not_found":
            raise NotFound from error
        return _back(me, f"/admin/termine/{appointment_id}?fehler={_quote(error.message)}")
    return _back(me, f"/admin/termine/{appointment_id}")


@router.post("/termine/{appointment_id}/verschieben")
async def move_appointment(request: Request, appointment_id: int) -> Response:
    me = await visitor(request)
    values = await _form(request, me)
    catalog = await _catalog(request, me)
    try:
        start = _start(catalog, values.get("tag", ""), values.get("zeit", ""))
        result = await _services(request).bookings.reschedule(
            tenant_id=me.tenant_id,
            appointment_id=appointment_id,
            start=start,
            staff=int(values["mitarbeiter"]) if values.get("mitarbeiter") else None,
            source="admin",
        )
    except BookingError as error:
        if error.code == "appointment_not_found":
            raise NotFound from error
        sentence = refusal_sentence(catalog, error, _today(request, catalog))
        return _back(me, f"/admin/termine/{appointment_id}?fehler={_quote(sentence)}")
    except SalonEditError as error:
        return _back(me, f"/admin/termine/{appointment_id}?fehler={_quote(error.reason)}")
    return _back(me, f"/admin/termine/{result.appointment.id}")


def _weekly_text(weekly: Any) -> dict[str, str]:
    """Weekly hours (0 = Monday) as the forms show them: day key -> "09:00-13:00, 14:00-18:00"."""
    return {
        DAY_KEYS[n]: ", ".join(f"{r.start:%H:%M}-{r.end:%H:%M}" for r in weekly.get(n, ())) for n in range(7)
    }


def _quote(text: str) -> str:
    return quote(text)


# --- calls --------------------------------------------------------------------------------------


@router.get("/anrufe", response_class=HTMLResponse)
async def calls(request: Request) -> HTMLResponse:
    me = await visitor(request)
    catalog = await _catalog(request, me)
    found = await admin_views.calls(_services(request).database, me.tenant_id)
    rows = [
        (c, _local(c.created_at, catalog).strftime("%d.%m.%Y %H:%M"), _phone(me, c.from_number))
        for c in found
    ]
    return _view(request, me, "calls.html", {"rows": rows})


@router.get("/anrufe/{call_id}", response_class=HTMLResponse)
async def call_detail(request: Request, call_id: str) -> HTMLResponse:
    me = await visitor(request)
    catalog = await _catalog(request, me)
    found = await admin_views.call(_services(request).database, me.tenant_id, call_id)
    if found is None:
        raise NotFound
    traces = [
        {
            "at": _local(t.at, catalog).strftime("%H:%M:%S"),
            "t": t,
            "args": json.dumps(t.args, ensure_ascii=False, indent=1),
            "reply": json.dumps(t.reply, ensure_ascii=False, indent=1),
            "flags": ", ".join(
                f"{k}: {'an' if v.get('on') else 'aus'} ({v.get('why')})" for k, v in (t.flags or {}).items()
            ),
        }
        for t in found.traces
    ]
    return _view(
        request,
        me,
        "call.html",
        {"c": found, "traces": traces, "phone": _phone(me, found.from_number),
         "when": _local(found.created_at, catalog).strftime("%d.%m.%Y %H:%M")},
    )  # fmt: skip


# --- customers (owner) --------------------------------------------------------------------------


@router.get("/kunden", response_class=HTMLResponse)
async def customers(request: Request, q: str = "") -> HTMLResponse:
    me = await visitor(request, owner=True)
    found = await admin_views.customers(_services(request).database, me.tenant_id, q)
    return _view(request, me, "customers.html", {"query": q, "found": found})


@router.get("/kunden/{customer_id}", response_class=HTMLResponse)
async def customer_detail(request: Request, customer_id: int) -> HTMLResponse:
    me = await visitor(request, owner=True)
    catalog = await _catalog(request, me)
    found = await admin_views.customer(_services(request).database, me.tenant_id, customer_id)
    if found is None:
        raise NotFound
    booked = [
        (i, _local(s, catalog).strftime("%d.%m.%Y %H:%M"), name, STATUSES.get(st, st))
        for i, s, name, st in found.appointments
    ]
    consent = _local(found.consent_at, catalog).strftime("%d.%m.%Y %H:%M") if found.consent_at else None
    return _view(request, me, "customer.html", {"c": found, "booked": booked, "consent": consent})


@router.get("/kunden/{customer_id}/export")
async def customer_export(request: Request, customer_id: int) -> Response:
    me = await visitor(request, owner=True)
    services = _services(request)
    if await admin_views.customer(services.database, me.tenant_id, customer_id) is None:
        raise NotFound
    data = await export_customer(
        services.database, str(customer_id), now=services.clock.now(), tenant_slug=me.salon
    )
    return Response(
        json.dumps(data, ensure_ascii=False, indent=2),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="kunde-{customer_id}.json"'},
    )


@router.get("/kunden/{customer_id}/loeschen", response_class=HTMLResponse)
async def customer_erase_confirm(request: Request, customer_id: int) -> HTMLResponse:
    me = await visitor(request, owner=True)
    services = _services(request)
    found = await admin_views.customer(services.database, me.tenant_id, customer_id)
    if found is None:
        raise NotFound
    plan = await erasure_plan(
        services.database, str(customer_id), now=services.clock.now(), tenant_slug=me.salon
    )
    return _view(request, me, "erase.html", {"c": found, "future": len(plan.future), "done": None})


@router.post("/kunden/{customer_id}/loeschen", response_class=HTMLResponse)
async def customer_erase(request: Request, customer_id: int) -> HTMLResponse:
    me = await visitor(request, owner=True)
    values = await _form(request, me)
    services = _services(request)
    found = await admin_views.customer(services.database, me.tenant_id, customer_id)
    if found is None:
        raise NotFound
    if values.get("bestaetigung") != "LÖSCHEN":
        plan = await erasure_plan(
            services.database, str(customer_id), now=services.clock.now(), tenant_slug=me.salon
        )
        return _view(request, me, "erase.html", {"c": found, "future": len(plan.future), "done": None,
                     "error": "Bitte zur Bestätigung LÖSCHEN eingeben."}, status=400)  # fmt: skip
    counts = await erase_customer_data(
        services.database, services.bookings, str(customer_id), tenant_slug=me.salon
    )
    return _view(request, me, "erase.html", {"c": found, "future": 0, "done": counts})


# --- operations (owner) -------------------------------------------------------------------------


@router.get("/betrieb", response_class=HTMLResponse)
async def operations(request: Request, fehler: str | None = None) -> HTMLResponse:
    me = await visitor(request, owner=True)
    catalog = await _catalog(request, me)
    services = _services(request)
    jobs = await outbox.jobs(services.database, tenant_id=me.tenant_id, limit=500)
    waiting = [
        j
        for j in jobs
        if j.status in ("pending", "dead") and (j.kind == "callback_request" or j.status == "dead")
    ]
    pending = await admin_views.pending(services.database, me.tenant_id)
    repaired = await admin_views.repairs(
        services.database, me.tenant_id, since=services.clock.now() - timedelta(days=7)
    )
    await services.flags.fresh()
    rules = await flag_store.list_rules(services.database)
    flags = []
    for name, known in sorted(FLAGS.items()):
        mine = next((r.rule for r in rules if r.flag == name and r.scope == me.salon), None)
        overall = next((r.rule for r in rules if r.flag == name and r.scope == "global"), None)
        overall_text = overall.describe() if overall else ("an" if known.default else "aus")
        mine_text = mine.describe() if mine else "—"
        flags.append(
            {"name": name, "description": known.description, "mine": mine_text, "overall": overall_text}
        )
    return _view(
        request,
        me,
        "operations.html",
        {
            "jobs": [(j, _local(j.run_after, catalog).strftime("%d.%m.%Y %H:%M")) for j in waiting],
            "pending": [
                (i, _local(s, catalog).strftime("%d.%m.%Y %H:%M"), _local(c, catalog).strftime("%H:%M:%S"))
                for i, s, c in pending
            ],
            "flags": flags,
            "repairs": [
                (_local(at, catalog).strftime("%d.%m.%Y %H:%M"), REPAIR_NAMES.get(k, k), i)
                for at, k, i in repaired
            ],
            "error": fehler,
        },
    )


async def _own_job(request: Request, me: Visitor, job_id: int) -> None:
    if not await outbox.jobs(_services(request).database, tenant_id=me.tenant_id, job_id=job_id, limit=1):
        raise NotFound


@router.post("/betrieb/jobs/{job_id}/wiederholen")
async def job_retry(request: Request, job_id: int) -> Response:
    me = await visitor(request, owner=True)
    await _form(request, me)
    await _own_job(request, me, job_id)
    try:
        await retry_job(_services(request).database, job_id, now=_services(request).clock.now())
    except OperatorError as error:
        return _back(me, f"/admin/betrieb?fehler={_quote(str(error))}")
    return _back(me, "/admin/betrieb")


@router.post("/betrieb/jobs/{job_id}/erledigt")
async def job_resolve(request: Request, job_id: int) -> Response:
    me = await visitor(request, owner=True)
    values = await _form(request, me)
    await _own_job(request, me, job_id)
    try:
        note = (values.get("notiz") or "")[:200] or f"im Web erledigt von Nutzer {me.user.id}"
        await resolve_job(_services(request).database, job_id, now=_services(request).clock.now(), note=note)
    except OperatorError as error:
        return _back(me, f"/admin/betrieb?fehler={_quote(str(error))}")
    return _back(me, "/admin/betrieb")


@router.post("/betrieb/flags")
async def flag_set(request: Request) -> Response:
    """An owner sets a flag for their own salon only (the global rule is the operator's)."""
    me = await visitor(request, owner=True)
    values = await _form(request, me)
    services = _services(request)
    name, mode = values.get("flag", ""), values.get("modus", "")
    if name not in FLAGS:
        return _back(me, f"/admin/betrieb?fehler={_quote('Unbekanntes Flag.')}")
    if mode == "standard":
        await flag_store.clear_rule(services.database, name, scope=me.salon)
    else:
        try:
            percent = int(values.get("prozent", "")) if mode == "prozent" else None
            rule = Rule(mode != "aus", percent) if mode in ("an", "aus", "prozent") else None
        except ValueError:
            rule = None
        if rule is None:
            return _back(
                me,
                "/admin/betrieb?fehler="
                + _quote("Bitte an, aus oder einen Prozentwert von 0 bis 100 wählen."),
            )
        await flag_store.set_rule(services.database, name, rule, at=services.clock.now(), scope=me.salon)
    services.flags.forget()
    return _back(me, "/admin/betrieb")


# --- the salon's settings (owner) ---------------------------------------------------------------


@router.get("/salon", response_class=HTMLResponse)
async def salon_settings(request: Request) -> HTMLResponse:
    me = await visitor(request, owner=True)
    return await _salon_page(request, me, {}, None)


async def _salon_page(
    request: Request,
    me: Visitor,
    hours_values: dict[str, str],
    error: SalonEditError | None,
    status: int = 200,
) -> HTMLResponse:
    catalog = await _catalog(request, me)
    async with _services(request).database.read() as session:
        tenant = await session.get(TenantRow, me.tenant_id)
        stored = dict(tenant.opening_hours) if tenant is not None else {}
    shown = hours_values or hours_text(stored)
    return _view(
        request,
        me,
        "salon.html",
        {
            "days": list(zip(DAY_KEYS, WEEKDAY_NAMES, strict=True)),
            "hours": shown,
            "services": catalog.services,
            "staff": [
                (s, _weekly_text(s.working_hours), _weekly_text(s.breaks)) for s in catalog.staff if s.active
            ],
            "error": error,
        },
        status=status,
    )


@router.post("/salon/oeffnungszeiten", response_class=HTMLResponse)
async def opening_hours(request: Request) -> Response:
    me = await visitor(request, owner=True)
    values = await _form(request, me)
    texts = {day: values.get(day, "") for day in DAY_KEYS}
    try:
        hours = parse_hours(texts)
    except SalonEditError as error:
        return await _salon_page(request, me, texts, error, status=400)
    await set_opening_hours(_services(request).database, me.tenant_id, hours)
    _services(request).bookings.catalogs.forget(me.tenant_id)  # this process at once; others within 1 s
    return _back(me, "/admin/salon")


@router.post("/salon/leistungen/{service_id}", response_class=HTMLResponse)
async def service_edit(request: Request, service_id: int) -> Response:
    me = await visitor(request, owner=True)
    values = await _form(request, me)
    try:
        minutes, cents = parse_service(values.get("dauer", ""), values.get("preis", ""))
    except SalonEditError as error:
        error.field = f"leistung-{service_id}-{error.field}"
        return await _salon_page(request, me, {}, error, status=400)
    if not await set_service(_services(request).database, me.tenant_id, service_id, minutes, cents):
        raise NotFound
    _services(request).bookings.catalogs.forget(me.tenant_id)
    return _back(me, "/admin/salon")


@router.post("/salon/mitarbeiter/{staff_id}", response_class=HTMLResponse)
async def staff_edit(request: Request, staff_id: int) -> Response:
    me = await visitor(request, owner=True)
    values = await _form(request, me)
    try:
        hours = parse_hours({day: values.get(f"zeiten-{day}", "") for day in DAY_KEYS})
        breaks = parse_hours({day: values.get(f"pausen-{day}", "") for day in DAY_KEYS})
    except SalonEditError as error:
        error.field = f"mitarbeiter-{staff_id}-{error.field}"
        return await _salon_page(request, me, {}, error, status=400)
    if not await set_staff_hours(_services(request).database, me.tenant_id, staff_id, hours, breaks):
        raise NotFound
    _services(request).bookings.catalogs.forget(me.tenant_id)
    return _back(me, "/admin/salon")
