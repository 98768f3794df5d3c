"""A faithful local Cal.com API v2 emulator with fault injection (calcom.md 10.2, 10.3).

Owns the composition: ``create_app(config)`` wires state, fault rules, rate limiter, request log,
the v2 routes, the ``/_emulator`` admin routes and the error rendering into one FastAPI app;
``run_emulator(host, port, config_path)`` serves it with uvicorn (the CLI's ``calcom-emulator``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from rezeption.emulators.calcom.admin import build_admin_router
from rezeption.emulators.calcom.config import EmulatorConfig, load_config
from rezeption.emulators.calcom.faults import FaultBook
from rezeption.emulators.calcom.middleware import CalcomTransportMiddleware, RateLimiter, RequestLog
from rezeption.emulators.calcom.routes import build_router
from rezeption.emulators.calcom.state import EmulatorState
from rezeption.emulators.calcom.wire import ApiError, error_response

__all__ = ["EmulatorConfig", "create_app", "load_config", "run_emulator"]


def create_app(config: EmulatorConfig | dict[str, Any] | str | Path | None = None) -> FastAPI:
    """The emulator as an ASGI app, seeded from ``config`` (model, dict, YAML path, or defaults)."""
    cfg = load_config(config)
    state = EmulatorState(cfg)
    faults = FaultBook(cfg.seed)
    faults.reset(cfg.seed, list(cfg.faults))
    log = RequestLog()
    limiter = RateLimiter(cfg.rate_limit)

    app = FastAPI(title="Cal.com API v2 emulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.calcom = state
    app.state.faults = faults
    app.state.requests = log
    app.state.limiter = limiter
    app.include_router(build_router())
    app.include_router(build_admin_router())
    app.add_middleware(CalcomTransportMiddleware, state=state, faults=faults, log=log, limiter=limiter)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return error_response(exc, path=request.url.path, now=state.now())

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/_emulator"):
            return error_response(
                ApiError(exc.status_code, str(exc.detail)), path=request.url.path, now=state.now()
            )
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        error = ApiError(404, f"Cannot {request.method} {target}")
        return error_response(error, path=request.url.path, now=state.now())

    return app


def run_emulator(host: str, port: int, config: str | dict[str, Any] | None) -> None:
    """Serve the emulator with uvicorn until interrupted (blocking); `config` is a YAML path, a
    config as a dict, or None for the defaults."""
    uvicorn.run(create_app(config), host=host, port=port, log_level="info")
