"""The web application: FastAPI app factory with health and readiness probes.

Routes come from `rezeption.retell.routes` (Retell) and `rezeption.calendars.calcom_webhook`
(Cal.com webhooks); on SQLite the outbox worker runs inside the server. This file only composes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from rezeption.bootstrap import Services, build
from rezeption.calendars.calcom_webhook import build_calcom_webhook_router
from rezeption.domain.clock import Clock
from rezeption.ops.logging import configure_logging
from rezeption.ops.warmup import warm_up
from rezeption.ops.worker import embedded_worker
from rezeption.retell.functions import FunctionRunner
from rezeption.retell.routes import build_router
from rezeption.retell.traces import TraceWriter
from rezeption.settings import Settings
from rezeption.store.migrate import current_revision, head_revision


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    """Build the app; the database is opened on start-up and closed on shutdown."""
    settings = settings or Settings()
    configure_logging(settings.log_level, as_json=settings.log_json)  # also in each uvicorn worker process

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = build(settings, clock=clock)
        app.state.services = services
        app.state.retell_runner = FunctionRunner(
            database=services.database,
            bookings=services.bookings,
            clock=services.clock,
            finder=services.finder,
            callers=services.callers,
            routes=services.routes,
        )
        app.state.retell_traces = traces = TraceWriter(services.database)
        traces.start()
        if settings.warmup:
            await warm_up(services, connections=settings.db_pool_size)
        async with AsyncExitStack() as stack:
            if settings.embedded_worker == "on" or (
                settings.embedded_worker == "auto" and services.database.is_sqlite
            ):
                # The embedded default runs its outbox and reconciler in-process; PostgreSQL
                # deployments run `rezeption worker` instead (any number, SKIP LOCKED).
                await stack.enter_async_context(embedded_worker(services))
            try:
                yield
            finally:
                await traces.close()
        await services.close()

    app = FastAPI(title="rezeption", version="0.1.0", lifespan=lifespan)
    app.include_router(build_router())
    app.include_router(build_calcom_webhook_router())

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, str]:
        """Alive: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["ops"])
    async def ready() -> JSONResponse:
        """Ready: the database answers and its schema is at the newest migration."""
        services: Services = app.state.services
        current = await current_revision(services.database.engine)
        head = head_revision()
        ok = current == head
        body = {
            "status": "ready" if ok else "not ready",
            "database": current or "unreachable or empty",
            "head": head,
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    return app
