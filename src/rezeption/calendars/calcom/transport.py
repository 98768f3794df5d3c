"""The HTTP layer under the Cal.com client: one request in, parsed JSON or a ``CalcomError`` out.

Owns headers (bearer key, ``cal-api-version`` per resource, ``X-Request-Id``), per-call timeouts,
retries with exponential backoff for reads only (tenacity), two circuit breakers (reads, and writes
with their read-backs), the key's request budget (``budget``: a request the budget refuses
is never sent), rate-limit awareness (a 429 or an exhausted ``X-RateLimit-Remaining`` blocks
further calls locally until the window resets) and log lines that carry no personal data (path
without query, status, timing). A refused key (401/403) is logged at error level for the operator.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from rezeption.calendars.calcom.breaker import BreakerState, CircuitBreaker
from rezeption.calendars.calcom.budget import RequestBudget, current_kind
from rezeption.calendars.calcom.errors import (
    CalcomCircuitOpen,
    CalcomError,
    CalcomRateLimited,
    CalcomTimeout,
    CalcomUnavailable,
    error_from_response,
    rate_limit_numbers,
)
from rezeption.ops.metrics import (
    BREAKER_STATE,
    CALCOM_KEY_REFUSED,
    CALCOM_RATE_REMAINING,
    CALENDAR_ERRORS,
    CALENDAR_SECONDS,
    route_label,
)

__all__ = ["API_VERSIONS", "CalcomTransport", "mask_phone"]

logger = logging.getLogger("rezeption.calendars.calcom")

API_VERSIONS: Mapping[str, str | None] = {
    "/v2/slots": "2024-09-04",
    "/v2/bookings": "2024-08-13",
    "/v2/event-types": "2024-06-14",
    "/v2/schedules": "2024-06-11",
    "/v2/webhooks": None,
    "/v2/me": None,
}
"""``cal-api-version`` by resource prefix (calcom.md 1.2); ``None`` means send no header."""

DEFAULT_BLOCK_SECONDS = 60.0

_PHONE = re.compile(r"\+?\d[\d \-/()]{5,}\d")


def mask_phone(text: str) -> str:
    """Replace anything that looks like a phone number, keeping only its last two digits."""

    def _mask(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group(0))
        return "***" + digits[-2:]

    return _PHONE.sub(_mask, text)


def version_for(path: str) -> str | None:
    """The ``cal-api-version`` a path needs."""
    for prefix, version in API_VERSIONS.items():
        if path == prefix or path.startswith(prefix + "/") or path.startswith(prefix + "?"):
            return version
    return None


def _utc_now() -> datetime:
    return datetime.now(UTC)


_BREAKER_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


def _error_kind(status: int) -> str | None:
    """The metric's error kind of an HTTP status (None for a success)."""
    if status < 400:
        return None
    if status in (401, 403):
        return "key_refused"
    if status == 429:
        return "rate_limited"
    return "http_5xx" if status >= 500 else "http_4xx"


def _is_retryable(error: BaseException) -> bool:
    return isinstance(error, CalcomUnavailable) and not isinstance(error, CalcomCircuitOpen)


class CalcomTransport:
    """Sends one Cal.com request with the cross-cutting rules applied."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
        read_attempts: int = 3,
        backoff_initial: float = 0.25,
        backoff_max: float = 4.0,
        breaker: CircuitBreaker | None = None,
        read_breaker: CircuitBreaker | None = None,
        budget: RequestBudget | None = None,
        clock: Callable[[], datetime] = _utc_now,
        salon: str = "-",
    ) -> None:
        self.salon = salon  # the salon's slug, for metric labels only
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._owns_client = http_client is None
        self._http = http_client or httpx.AsyncClient(transport=transport)
        self.timeout = timeout
        self.read_attempts = max(1, read_attempts)
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._clock = clock
        self.breaker = breaker or CircuitBreaker(clock=clock)  # writes and their read-backs
        self.read_breaker = read_breaker or CircuitBreaker(clock=clock)
        self.budget = budget
        self.key_refused = False  # Cal.com answered 401/403 and no keyed request has worked since
        self._blocked_until: datetime | None = None
        self.last_rate_limit: tuple[int | None, int | None, float | None] = (None, None, None)

    async def aclose(self) -> None:
        """Close the HTTP client if this transport created it."""
        if self._owns_client:
            await self._http.aclose()

    @property
    def blocked_until(self) -> datetime | None:
        """While set and in the future, calls are refused locally (rate limit)."""
        return self._blocked_until

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        call_timeout: float | None = None,
        retry: bool,
    ) -> Any:
        """Send a request and return its decoded JSON body; reads (``retry=True``) are retried."""
        if not retry:
            return await self._send_once(
                method, path, params=params, json=json, call_timeout=call_timeout, write=True
            )
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.read_attempts),
            wait=wait_exponential(multiplier=self._backoff_initial, max=self._backoff_max),
            retry=retry_if_exception(_is_retryable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._send_once(
                    method, path, params=params, json=json, call_timeout=call_timeout, write=False
                )
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    def _check_rate_block(self, path: str) -> None:
        if self._blocked_until is None:
            return
        left = (self._blocked_until - self._clock()).total_seconds()
        if left <= 0:
            self._blocked_until = None
            return
        raise CalcomRateLimited(
            f"Cal.com rate limit: call to {path} refused locally for {left:.0f} s more",
            retry_after_seconds=left,
            sent=False,
            status_code=None,
            path=path,
        )

    def _note_rate_headers(self, headers: httpx.Headers, status: int) -> int | None:
        """Remember Cal.com's rate-limit numbers (block on 429 or none left); the remaining count."""
        limit, remaining, reset = rate_limit_numbers(headers)
        if limit is None and remaining is None and reset is None:
            return None
        self.last_rate_limit = (limit, remaining, reset)
        if status == 429 or remaining == 0:
            seconds = reset if reset is not None else DEFAULT_BLOCK_SECONDS
            self._blocked_until = self._clock() + timedelta(seconds=seconds)
        return remaining

    def _headers(self, path: str, request_id: str) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._api_key}", "X-Request-Id": request_id}
        version = version_for(path)
        if version is not None:
            headers["cal-api-version"] = version
        return headers

    async def _send_once(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None,
        json: Any,
        call_timeout: float | None,
        write: bool,
    ) -> Any:
        self._check_rate_block(path)
        kind = current_kind(write)
        breaker = self.breaker if kind == "write" else self.read_breaker
        breaker.before_call(path)
        route = route_label(path)
        if self.budget is not None and not await self.budget.take(kind):
            breaker.release_probe()
            CALENDAR_ERRORS.labels("calcom", route, "budget").inc()
            raise CalcomRateLimited(
                f"Cal.com request budget spent: {kind} to {path} not sent",
                retry_after_seconds=1.0,
                sent=False,
                status_code=None,
                path=path,
            )
        request_id = uuid.uuid4().hex
        started = time.monotonic()
        try:
            response = await self._http.request(
                method,
                self._base_url + path,
                params=params,
                json=json,
                headers=self._headers(path, request_id),
                timeout=call_timeout if call_timeout is not None else self.timeout,
            )
        except httpx.TransportError as exc:
            breaker.record_failure()
            error = self._transport_error(exc, path, write)
            self._log(method, path, request_id, started, None, type(exc).__name__)
            kind_of_error = "timeout" if isinstance(exc, httpx.TimeoutException) else "unreachable"
            self._observe(route, started, kind_of_error)
            raise error from exc
        except BaseException:
            breaker.release_probe()  # e.g. cancelled: says nothing about Cal.com's health
            raise
        self._log(method, path, request_id, started, response.status_code, None)
        remaining = self._note_rate_headers(response.headers, response.status_code)
        if remaining is not None:
            CALCOM_RATE_REMAINING.labels(self.salon).set(remaining)
            if self.budget is not None:
                await self.budget.observe(remaining)
        if response.status_code >= 500:
            breaker.record_failure()
        else:
            breaker.record_success()
        self._observe(route, started, _error_kind(response.status_code))
        if response.status_code in (401, 403):
            CALCOM_KEY_REFUSED.labels(self.salon).inc()
            self.key_refused = True
            logger.error(
                "calcom key refused: %s on %s (check the salon's Cal.com API key)", response.status_code, path
            )
        if response.is_success and not path.startswith("/v2/slots"):  # slots need no key
            self.key_refused = False
        if response.is_success:
            try:
                return response.json()
            except ValueError as exc:
                raise CalcomUnavailable(
                    f"Cal.com {response.status_code} on {path}: body is not JSON",
                    status_code=response.status_code,
                    path=path,
                    outcome_unknown=write,
                ) from exc
        raise error_from_response(
            response.status_code,
            response.headers,
            response.content,
            path=path,
            write=write,
            default_block_seconds=DEFAULT_BLOCK_SECONDS,
        )

    def _observe(self, route: str, started: float, error: str | None) -> None:
        """Latency, the error kind if any, and both breakers' states, for /metrics."""
        CALENDAR_SECONDS.labels("calcom", route).observe(time.monotonic() - started)
        if error is not None:
            CALENDAR_ERRORS.labels("calcom", route, error).inc()
        for name, breaker in (("write", self.breaker), ("read", self.read_breaker)):
            BREAKER_STATE.labels(self.salon, name).set(_BREAKER_VALUE[breaker.state])

    @staticmethod
    def _transport_error(exc: httpx.TransportError, path: str, write: bool) -> CalcomError:
        # A request that never left (connect failure, pool exhausted) cannot have been applied.
        never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
        unknown = write and not never_sent
        if isinstance(exc, httpx.TimeoutException):
            return CalcomTimeout(
                f"Cal.com timed out on {path} ({type(exc).__name__})", path=path, outcome_unknown=unknown
            )
        return CalcomUnavailable(
            f"Cal.com unreachable on {path} ({type(exc).__name__})", path=path, outcome_unknown=unknown
        )

    @staticmethod
    def _log(
        method: str, path: str, request_id: str, started: float, status: int | None, failure: str | None
    ) -> None:
        elapsed_ms = (time.monotonic() - started) * 1000
        logger.info(
            "calcom %s %s -> %s in %.0f ms (request %s)",
            method,
            mask_phone(path),
            status if status is not None else failure,
            elapsed_ms,
            request_id,
        )
