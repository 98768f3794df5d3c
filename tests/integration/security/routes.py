"""Every route of the app, and the table of what each one asks of a caller before it does anything.

`endpoints(app)` walks `app.routes`: plain routes, the routers FastAPI includes (also its lazily
resolved included routers), websocket routes and mounts (a mount with its own routes is walked; a
mount of files, such as the admin's stylesheet, is one entry). `ROUTES` is the table the tests
hold the app to: a route missing from it, or an entry no route answers any more, fails.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from starlette.routing import BaseRoute, Mount, WebSocketRoute

RETELL = "Retell signature (X-Retell-Signature over body and time, our Retell key)"
LIVE_CALL = "a live call's id (recorded by a signed call_inbound or function call; not ended)"
ADMIN = "admin session cookie"
ADMIN_FORM = "admin session cookie and the session's CSRF token"
METRICS = "bearer token (REZEPTION_METRICS_TOKEN; open when unset)"
CALCOM = "Cal.com signature (X-Cal-Signature-256 under the salon's webhook secret)"
PUBLIC = "public on purpose"

Endpoint = tuple[str, str]  # (method, or WS / MOUNT; path)

TOOL_NAMES = (
    "list_services",
    "get_opening_hours",
    "check_availability",
    "book_appointment",
    "find_appointments",
    "cancel_appointment",
    "reschedule_appointment",
    "record_consent",
)
DOCS: dict[Endpoint, str] = {
    ("GET", "/openapi.json"): PUBLIC,  # the API's description; off in production (REZEPTION_DOCS)
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
}
ROUTES: dict[Endpoint, str] = {
    **{("POST", f"/retell/functions/{name}"): RETELL for name in TOOL_NAMES},
    ("POST", "/retell/functions/{name}"): RETELL,  # the same runner for any name; unknown: 404 after
    ("POST", "/retell/inbound"): RETELL,
    ("POST", "/retell/webhook"): RETELL,
    ("WS", "/retell/llm/{call_id}"): LIVE_CALL,
    ("POST", "/calcom/webhooks/{tenant_slug}"): CALCOM,
    ("GET", "/metrics"): METRICS,
    ("GET", "/health"): PUBLIC,  # "the process answers", nothing else
    ("GET", "/ready"): PUBLIC,  # ready or not; in production without the reason
    ("GET", "/admin/login"): PUBLIC,
    ("POST", "/admin/login"): PUBLIC,  # its own form token (a cookie) and the rate limit
    ("MOUNT", "/admin/static"): PUBLIC,  # the stylesheet
    ("POST", "/admin/logout"): ADMIN_FORM,
    ("GET", "/admin/"): ADMIN,
    ("GET", "/admin/woche"): ADMIN,
    ("GET", "/admin/termine/neu"): ADMIN,
    ("POST", "/admin/termine/neu"): ADMIN_FORM,
    ("GET", "/admin/termine/{appointment_id}"): ADMIN,
    ("POST", "/admin/termine/{appointment_id}/absagen"): ADMIN_FORM,
    ("POST", "/admin/termine/{appointment_id}/verschieben"): ADMIN_FORM,
    ("GET", "/admin/anrufe"): ADMIN,
    ("GET", "/admin/anrufe/{call_id}"): ADMIN,
    ("GET", "/admin/kunden"): ADMIN,
    ("GET", "/admin/kunden/{customer_id}"): ADMIN,
    ("GET", "/admin/kunden/{customer_id}/export"): ADMIN,
    ("GET", "/admin/kunden/{customer_id}/loeschen"): ADMIN,
    ("POST", "/admin/kunden/{customer_id}/loeschen"): ADMIN_FORM,
    ("GET", "/admin/betrieb"): ADMIN,
    ("POST", "/admin/betrieb/jobs/{job_id}/wiederholen"): ADMIN_FORM,
    ("POST", "/admin/betrieb/jobs/{job_id}/erledigt"): ADMIN_FORM,
    ("POST", "/admin/betrieb/flags"): ADMIN_FORM,
    ("GET", "/admin/salon"): ADMIN,
    ("POST", "/admin/salon/oeffnungszeiten"): ADMIN_FORM,
    ("POST", "/admin/salon/leistungen/{service_id}"): ADMIN_FORM,
    ("POST", "/admin/salon/mitarbeiter/{staff_id}"): ADMIN_FORM,
    **DOCS,
}


def endpoints(app: object) -> set[Endpoint]:
    """Every (method, path) the app answers; HEAD (Starlette's twin of GET) left out."""
    return set(_walk(getattr(app, "routes", []), ""))


def _walk(routes: Iterable[BaseRoute], prefix: str) -> Iterator[Endpoint]:
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)  # FastAPI's included routers
        if contexts is not None:
            for context in contexts():
                original = context.original_route
                path = context.path or getattr(original, "path", "")
                yield from _one(original, prefix + path, set(context.methods))
        else:
            methods = set(getattr(route, "methods", None) or ())
            yield from _one(route, prefix + getattr(route, "path", ""), methods)


def _one(route: BaseRoute, path: str, methods: set[str]) -> Iterator[Endpoint]:
    if isinstance(route, Mount):
        inner = route.routes
        if inner:
            yield from _walk(inner, path)
        else:
            yield ("MOUNT", path)
    elif isinstance(route, WebSocketRoute):  # FastAPI's APIWebSocketRoute too
        yield ("WS", path)
    elif not methods:
        raise AssertionError(f"a route of an unknown kind at {path!r}: {route!r}; teach endpoints() it")
    else:
        for method in methods - {"HEAD"}:
            yield (method, path)
