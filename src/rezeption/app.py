"""The web application: FastAPI app factory with health and readiness probes.

Routes come from `rezeption.retell.routes` (Retell) and `rezeption.calendars.calcom.webhook`
(Cal.com webhooks); on SQLite the outbox worker runs inside the server. This file only composes.

A dead database never stops the server: start-up bounds its waits (the warm-up gives up after a
few seconds), /health answers regardless, /ready answers 503 within `REZEPTION_READY_TIMEOUT`, and
database trouble that escapes a route is a 503 with Retry-After, never a 500. In production the
API docs are off (unless `REZEPTION_DOCS=true`) and /ready says only "ready" or "not ready".
Overload never queues without bound: `ops.admission` lets a bounded number of requests work at once,
first come, first served, and turns the rest away with a reply before any of their work starts.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from rezeption.admin.pages import install as install_admin
from rezeption.bootstrap import Services, build
from rezeption.calendars.calcom.webhook import build_calcom_webhook_router
from rezeption.domain.clock import Clock
from rezeption.ops import readiness
from rezeption.ops.admission import (
    BULK_CONCURRENCY,
    BULK_WAITING,
    AdmissionMiddleware,
    FairGate,
    Receive,
    Scope,
    Send,
)
from rezeption.ops.logging import configure_logging
from rezeption.ops.metrics import exposition
from rezeption.ops.metrics_db import database_facts
from rezeption.ops.slot_refresher import slot_refresher
from rezeption.ops.tracing import configure_tracing, shutdown_tracing
from rezeption.ops.warmup import warm_up
from rezeption.ops.worker import embedded_worker
from rezeption.retell.failures import server_busy
from rezeption.retell.functions import FunctionRunner
from rezeption.retell.llm_socket import Dialogs, build_llm_router
from rezeption.retell.routes import build_router
from rezeption.retell.traces import TraceWriter
from rezeption.settings import Settings
from rezeption.store.db import is_unavailable
from rezeption.store.migrate import head_revision

log = structlog.get_logger("rezeption.app")
DATABASE_TROUBLE = (DBAPIError, PoolTimeout, OSError, TimeoutError)
"""Exceptions that may mean the database refused, dropped, hung, is locked or full (`is_unavailable`
decides): a route that lets one escape answers 503, not 500."""


def reads_body_itself(path: str) -> bool:
    """Whether the route at `path` reads its body through `http_body.read_bounded` (Retell's and
    Cal.com's): under admission's deadline, after its own checks, so admission does not read it."""
    return path.startswith(("/retell/", "/calcom/"))


async def turned_away(scope: Scope, receive: Receive, send: Send) -> None:
    """A request the admission gate had no turn for: a function call hears that it is busy (and that
    nothing changed), everything else gets 503 with Retry-After (Retell retries call_inbound and the
    webhooks; the phone keeps ringing meanwhile)."""
    if scope["path"].startswith("/retell/functions/"):
        response = JSONResponse(server_busy())
    else:
        body = {"error": "overloaded, try again shortly"}
        response = JSONResponse(body, status_code=503, headers={"Retry-After": "1"})
    await response(scope, receive, send)


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    """Build the app; the database is opened on start-up and closed on shutdown."""
    settings = settings or Settings()
    configure_logging(settings.log_level, as_json=settings.log_json)  # also in each uvicorn worker process

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.bare_args = settings.retell_bare_args
        services = build(settings, clock=clock)
        app.state.services = services
        configure_tracing(settings.otlp_endpoint, engines=[services.database.engine.sync_engine])
        app.state.retell_runner = FunctionRunner(
            calls=services.calls,
            bookings=services.bookings,
            clock=services.clock,
            finder=services.finder,
            callers=services.callers,
            flags=services.flags,
        )
        app.state.retell_traces = traces = TraceWriter(services.calls)
        app.state.llm_dialogs = Dialogs()
        traces.start()
        if settings.warmup:  # bounded: a dead or hanging database delays start-up by seconds at most
            await warm_up(services, connections=settings.db_pool_size)
        async with AsyncExitStack() as stack:
            if settings.embedded_worker == "on" or (
                settings.embedded_worker == "auto" and services.database.is_sqlite
            ):
                # The embedded default runs its outbox and reconciler in-process; PostgreSQL
                # deployments run `rezeption worker` instead (any number, SKIP LOCKED).
                await stack.enter_async_context(embedded_worker(services))
            if settings.slot_refresher:
                await stack.enter_async_context(slot_refresher(services))
            try:
                yield
            finally:
                await traces.close()
        await services.close()
        shutdown_tracing()

    docs = settings.docs_enabled
    app = FastAPI(
        title="rezeption",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.include_router(build_router())
    app.include_router(build_llm_router())
    app.include_router(build_calcom_webhook_router())
    install_admin(app)

    async def database_unavailable(request: Request, error: Exception) -> JSONResponse:
        if not is_unavailable(error):
            raise error  # a bug or a bad statement: a 500, logged by the server as such
        # The type only: the text of a database error may carry the statement's values.
        log.warning("http.database_unavailable", path=request.url.path, error=type(error).__name__)
        return JSONResponse(
            {"error": "database unavailable, try again shortly"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    for trouble in DATABASE_TROUBLE:
        app.add_exception_handler(trouble, database_unavailable)

    gate = FairGate(
        settings.admission_concurrency or settings.db_pool_size,
        max_wait=settings.admission_max_wait,
        max_waiting=settings.admission_max_waiting,
    )
    bulk = FairGate(BULK_CONCURRENCY, max_wait=settings.admission_max_wait, max_waiting=BULK_WAITING)
    app.state.admission, app.state.admission_bulk = gate, bulk
    app.add_middleware(
        AdmissionMiddleware,
        gate=gate,
        shed=turned_away,
        bulk=bulk,
        lazy_body=reads_body_itself,
    )

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Prometheus metrics (a bearer token when REZEPTION_METRICS_TOKEN is set)."""
        token = settings.metrics_token
        if token is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token.get_secret_value()}".encode()):
                return JSONResponse({"error": "a bearer token is required"}, status_code=401)
        services: Services = app.state.services
        facts = await database_facts(services.database, services.clock.now())
        return Response(exposition(facts), media_type=CONTENT_TYPE_LATEST)

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, str]:
        """Alive: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["ops"])
    async def ready() -> JSONResponse:
        """Ready: the database answers in time, is at the newest migration and (SQLite) can be written."""
        services: Services = app.state.services
        problem = await readiness.problem(
            services.database,
            patience=settings.ready_timeout,
            min_free_bytes=settings.db_min_free_mb << 20,
        )
        body: dict[str, str] = {"status": "not ready" if problem else "ready"}
        if problem:
            log.warning("ready.not_ready", problem=problem)
        if settings.environment != "production":  # what is wrong; never the revision in production
            body["problem" if problem else "schema"] = problem or head_revision()
        return JSONResponse(body, status_code=503 if problem else 200)

    return app
