"""Transport-level behaviour of the Cal.com emulator, as a pure ASGI middleware.

Owns what happens around a v2 request before and after its handler: ``X-Request-Id`` echo, the
request log (for tests: "the emulator saw exactly one create"), rate limiting with
``X-RateLimit-*-Default`` headers and 429, and the transport faults: latency, JSON/HTML 5xx,
connection reset, forced 429, and *lost response* (the handler commits, then the answer is
dropped after an optional delay, so the client times out or sees a reset).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rezeption.emulators.calcom.config import RateLimitConfig
from rezeption.emulators.calcom.faults import ActiveFault, FaultBook
from rezeption.emulators.calcom.state import EmulatorState
from rezeption.emulators.calcom.wire import ApiError, error_response, html_error_response

__all__ = ["CalcomTransportMiddleware", "RateLimiter", "RequestLog"]

THROTTLED = "CustomThrottlerGuard - Too many requests. Please try again later."


@dataclass
class RequestLog:
    """Every v2 request the emulator received, in order (no bodies, no query strings)."""

    entries: list[dict[str, Any]] = field(default_factory=list)

    def add(self, method: str, path: str, faults: list[ActiveFault]) -> dict[str, Any]:
        """Record a request; the returned dict is updated with its outcome."""
        entry: dict[str, Any] = {
            "seq": len(self.entries) + 1,
            "method": method,
            "path": path,
            "status": None,
            "faults": [f.mode for f in faults],
            "dropped": False,
        }
        self.entries.append(entry)
        return entry


@dataclass
class _Window:
    started: datetime
    count: int = 0
    blocked_until: datetime | None = None


class RateLimiter:
    """Fixed-window limiter per tracker (API key or client address), with a block after excess."""

    def __init__(self, config: RateLimitConfig) -> None:
        self.config = config
        self._windows: dict[str, _Window] = {}

    def reset(self) -> None:
        """Forget all counters."""
        self._windows = {}

    def hit(self, tracker: str, now: datetime) -> tuple[dict[str, str], bool]:
        """Count one request: (headers to add, whether it is refused)."""
        cfg = self.config
        window = self._windows.get(tracker)
        if window is None or now - window.started >= timedelta(seconds=cfg.window_seconds):
            blocked = window.blocked_until if window is not None else None
            window = _Window(started=now, blocked_until=blocked)
            self._windows[tracker] = window
        if window.blocked_until is not None and window.blocked_until > now:
            left = (window.blocked_until - now).total_seconds()
            return self._headers(0, left), True
        window.blocked_until = None
        window.count += 1
        if window.count > cfg.limit:
            window.blocked_until = now + timedelta(seconds=cfg.block_seconds)
            return self._headers(0, cfg.block_seconds), True
        left = (window.started + timedelta(seconds=cfg.window_seconds) - now).total_seconds()
        return self._headers(cfg.limit - window.count, left), False

    def _headers(self, remaining: int, reset_seconds: float) -> dict[str, str]:
        return {
            "X-RateLimit-Limit-Default": str(self.config.limit),
            "X-RateLimit-Remaining-Default": str(max(0, remaining)),
            "X-RateLimit-Reset-Default": str(max(0, math.ceil(reset_seconds))),
        }


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            text: str = value.decode("latin-1")
            return text
    return None


async def _buffered(receive: Receive) -> Receive:
    """Read the request body now; replay it to the app later (then report a disconnect)."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break

    async def replay() -> Message:
        if messages:
            return messages.pop(0)
        return {"type": "http.disconnect"}

    return replay


def _with_headers(message: Message, extra: dict[str, str]) -> Message:
    if message["type"] != "http.response.start":
        return message
    headers = list(message.get("headers", []))
    headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
    return {**message, "headers": headers}


class CalcomTransportMiddleware:
    """Wraps the FastAPI app; leaves ``/_emulator`` admin routes alone."""

    def __init__(
        self, app: ASGIApp, *, state: EmulatorState, faults: FaultBook, log: RequestLog, limiter: RateLimiter
    ) -> None:
        self.app = app
        self.state = state
        self.faults = faults
        self.log = log
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_emulator"):
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        active = self.faults.select(method, path)
        scope["calcom_faults"] = active
        entry = self.log.add(method, path, active)
        modes = {f.mode: f for f in active}
        auth = _header(scope, b"authorization") or ""
        client = scope.get("client") or ("unknown", 0)
        tracker = auth[7:].strip() if auth.lower().startswith("bearer ") else f"ip:{client[0]}"
        rate_headers, limited = self.limiter.hit(tracker, self.state.clock.running())
        extra = {"X-Request-Id": _header(scope, b"x-request-id") or "unknown-request-id", **rate_headers}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
            await send(_with_headers(message, extra))

        if "latency" in modes:
            # Like a real server, take the whole request first: a client that gives up during the
            # delay does not stop the write from happening afterwards.
            receive = await _buffered(receive)
            await asyncio.sleep(self._latency_seconds(modes["latency"]))
        if "reset" in modes:
            entry["dropped"] = True
            await self._drop(send_with_headers, status=200, body=b'{"status":"success"}')
            return
        early = self._early_response(modes, path, limited, extra)
        if early is not None:
            await early(scope, receive, send_with_headers)
            return
        lost = modes.get("lost_response")
        if lost is None:
            await self.app(scope, receive, send_with_headers)
            return
        captured: list[Message] = []

        async def capture(message: Message) -> None:
            captured.append(message)

        await self.app(scope, receive, capture)  # the handler runs and commits
        entry["dropped"] = True
        start = next((m for m in captured if m["type"] == "http.response.start"), None)
        entry["status"] = start["status"] if start else None
        delay = float(lost.params.get("delay", 0.0))
        if delay > 0:
            await asyncio.sleep(delay)
        body = b"".join(m.get("body", b"") for m in captured if m["type"] == "http.response.body")
        await self._drop(send, status=start["status"] if start else 200, body=body)

    def _latency_seconds(self, fault: ActiveFault) -> float:
        if "seconds" in fault.params:
            return float(fault.params["seconds"])
        low = float(fault.params.get("min", 2.0))
        high = float(fault.params.get("max", 15.0))
        return self.faults.rng.uniform(low, high)

    def _early_response(
        self, modes: dict[str, ActiveFault], path: str, limited: bool, extra: dict[str, str]
    ) -> Response | None:
        now = self.state.now()
        if "server_error" in modes:
            params = modes["server_error"].params
            kind = str(params.get("kind", "json"))
            status = int(params.get("status", 500 if kind != "html" else 502))
            if kind == "html":
                return html_error_response(status)
            if kind == "prisma":
                message = "There was an error, please try again later."
                return error_response(ApiError(status, message, shape="B"), path=path, now=now)
            if kind == "with_code":
                return error_response(ApiError(status, "Internal error", shape="C"), path=path, now=now)
            return error_response(ApiError(status, "Internal server error", shape="D"), path=path, now=now)
        if "rate_limited" in modes or limited:
            if "rate_limited" in modes:
                reset = modes["rate_limited"].params.get("reset_seconds", self.limiter.config.block_seconds)
                extra["X-RateLimit-Remaining-Default"] = "0"
                extra["X-RateLimit-Reset-Default"] = str(int(reset))
            return error_response(ApiError(429, THROTTLED), path=path, now=now)
        return None

    @staticmethod
    async def _drop(send: Send, *, status: int, body: bytes) -> None:
        """Start a response, send half of its body, and stop: the server closes the connection."""
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body) + 64).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
