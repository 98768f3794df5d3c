"""Errors of the Cal.com API v2 client, and the mapping from an HTTP answer to one of them.

Owns the exception hierarchy and the parser for the four error shapes Cal.com answers with
(Nest ``HttpException`` envelope, Prisma envelope, ``ErrorWithCode`` envelope, the bare
``{"statusCode", "message"}`` body) plus non-JSON bodies (Cloudflare HTML on 5xx).

Hierarchy::

    CalcomError
    ├── CalcomUnavailable           no trustworthy answer: timeout, reset, connect error, 5xx, HTML
    │   │                           (``outcome_unknown`` is True when a write may have been applied)
    │   ├── CalcomTimeout           the call ran past its timeout
    │   ├── CalcomServerError       5xx answer (JSON or HTML); ``status_code``
    │   ├── CalcomCircuitOpen       refused locally by the circuit breaker; nothing was sent
    │   └── CalcomOutcomeUnknown    a write was ambiguous and reading back failed too
    ├── CalcomRateLimited           429, or refused locally while the rate-limit block lasts
    ├── CalcomRejected              Cal.com answered and refused; nothing was changed
    │   ├── CalcomAuthError         401 / 403
    │   ├── CalcomNotFound          404
    │   ├── CalcomBadRequest        400 and other 4xx not listed here (a bug on our side)
    │   ├── CalcomSlotUnavailable   400 "already has booking" / "not available"
    │   ├── CalcomOutOfBounds       400 too soon, too far ahead, or in the past
    │   ├── CalcomAlreadyCancelled  400 the booking was cancelled (or rescheduled) already
    │   ├── CalcomConflict          409 (duplicate insert, slot reserved by someone else)
    │   └── CalcomHoldConflict      422 on reservations (slot booked or held)
    └── CalcomNotApplied            a write's ambiguous outcome was read back: it did not happen
        └── CalcomNothingBooked     ... for a create: no booking carries our token

Messages never contain request bodies, attendee names, e-mail addresses or phone numbers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CalcomAlreadyCancelled",
    "CalcomAuthError",
    "CalcomBadRequest",
    "CalcomCircuitOpen",
    "CalcomConflict",
    "CalcomError",
    "CalcomHoldConflict",
    "CalcomNotApplied",
    "CalcomNotFound",
    "CalcomNothingBooked",
    "CalcomOutOfBounds",
    "CalcomOutcomeUnknown",
    "CalcomRateLimited",
    "CalcomRejected",
    "CalcomServerError",
    "CalcomSlotUnavailable",
    "CalcomTimeout",
    "CalcomUnavailable",
    "ErrorBody",
    "error_from_response",
    "parse_error_body",
]


class CalcomError(Exception):
    """Base of every error the Cal.com client raises."""

    def __init__(
        self, message: str, *, status_code: int | None = None, code: str | None = None, path: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.path = path


class CalcomUnavailable(CalcomError):
    """Cal.com gave no trustworthy answer. For a write, ``outcome_unknown`` says it may have happened."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        path: str = "",
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message, status_code=status_code, code=code, path=path)
        self.outcome_unknown = outcome_unknown


class CalcomTimeout(CalcomUnavailable):
    """The call did not finish within its timeout."""


class CalcomServerError(CalcomUnavailable):
    """Cal.com (or the CDN in front of it) answered 5xx."""


class CalcomCircuitOpen(CalcomUnavailable):
    """The circuit breaker is open: the call was refused locally and never sent."""


class CalcomOutcomeUnknown(CalcomUnavailable):
    """A write's outcome was ambiguous and reading it back failed as well; reconcile later."""


class CalcomRateLimited(CalcomError):
    """429 from Cal.com, or a call refused locally until the rate-limit window resets."""

    def __init__(
        self,
        message: str,
        *,
        retry_after_seconds: float,
        limit: int | None = None,
        remaining: int | None = None,
        sent: bool = True,
        status_code: int | None = 429,
        code: str | None = None,
        path: str = "",
    ) -> None:
        super().__init__(message, status_code=status_code, code=code, path=path)
        self.retry_after_seconds = retry_after_seconds
        self.limit = limit
        self.remaining = remaining
        self.sent = sent


class CalcomRejected(CalcomError):
    """Cal.com answered with a definite refusal; the request changed nothing."""


class CalcomAuthError(CalcomRejected):
    """401 or 403: the API key is missing, invalid, expired, or lacks a permission."""


class CalcomNotFound(CalcomRejected):
    """404: unknown booking, event type, route, or a wrong ``cal-api-version``."""


class CalcomBadRequest(CalcomRejected):
    """400 (or another 4xx) that is not about availability: our request was malformed."""


class CalcomSlotUnavailable(CalcomRejected):
    """The host already has a booking at this time or is not available then."""


class CalcomOutOfBounds(CalcomRejected):
    """The start is too soon (minimum notice), too far ahead (booking window) or in the past."""


class CalcomAlreadyCancelled(CalcomRejected):
    """The booking was cancelled (or cancelled and rescheduled) already."""


class CalcomConflict(CalcomRejected):
    """409: a concurrent identical booking won, or someone else reserved the slot first."""


class CalcomHoldConflict(CalcomRejected):
    """422 on a slot reservation: the slot is booked or held by someone else."""


class CalcomNotApplied(CalcomError):
    """After an ambiguous write, reading back showed the write did not take effect."""


class CalcomNothingBooked(CalcomNotApplied):
    """After an ambiguous create, no booking carrying our token exists: nothing was booked."""


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """The useful part of an error body, whatever its shape."""

    message: str
    code: str | None
    shape: str  # "A" (HttpException), "B"/"C" (code envelope), "D" (bare), "html", "empty"


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False)


def parse_error_body(content: bytes, content_type: str) -> ErrorBody:
    """Extract message and code from any of the four JSON error shapes, or describe a non-JSON body."""
    if not content.strip():
        return ErrorBody(message="empty response body", code=None, shape="empty")
    try:
        body = json.loads(content)
    except ValueError:
        kind = content_type.split(";")[0].strip() or "unknown content type"
        return ErrorBody(message=f"non-JSON response body ({kind})", code=None, shape="html")
    if not isinstance(body, dict):
        return ErrorBody(message="unexpected JSON error body", code=None, shape="empty")
    error = body.get("error")
    if isinstance(error, dict):
        message = _text(error.get("message") or body.get("message"))
        code = error.get("code")
        shape = "A" if isinstance(code, str) and code.endswith("Exception") else "B"
        if "message" in body and shape == "B":
            shape = "C"
        return ErrorBody(message=message, code=code if isinstance(code, str) else None, shape=shape)
    if "statusCode" in body or "message" in body:
        return ErrorBody(message=_text(body.get("message")), code=None, shape="D")
    return ErrorBody(message="unexpected JSON error body", code=None, shape="empty")


def _header_number(headers: Mapping[str, str], prefix: str) -> float | None:
    """First ``X-RateLimit-<prefix>-*`` header value as a number (the suffix names the limit)."""
    wanted = f"x-ratelimit-{prefix}".lower()
    for name, value in headers.items():
        if name.lower().startswith(wanted):
            try:
                return float(value)
            except ValueError:
                return None
    return None


def rate_limit_numbers(headers: Mapping[str, str]) -> tuple[int | None, int | None, float | None]:
    """(limit, remaining, reset seconds) from the ``X-RateLimit-*`` headers, if present."""
    limit = _header_number(headers, "limit")
    remaining = _header_number(headers, "remaining")
    reset = _header_number(headers, "reset")
    if reset is not None and reset > 10 * 365 * 24 * 3600:
        reset = None  # a Unix timestamp instead of seconds: the caller treats it defensively
    return (
        int(limit) if limit is not None else None,
        int(remaining) if remaining is not None else None,
        reset,
    )


_SLOT_TAKEN = ("already has booking", "not available")
_OUT_OF_BOUNDS = ("can't be booked at the", "in the past")
_CANCELLED = ("cancelled already", "has been cancelled", "because it has been cancelled")


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    *,
    path: str,
    write: bool,
    default_block_seconds: float = 60.0,
) -> CalcomError:
    """Map a non-2xx answer to the most specific error: by status first, then by message."""
    body = parse_error_body(content, headers.get("content-type", ""))
    text = f"Cal.com {status} on {path}: {body.message}"
    kwargs: dict[str, Any] = {"status_code": status, "code": body.code, "path": path}
    lowered = body.message.lower()
    if status == 429:
        limit, remaining, reset = rate_limit_numbers(headers)
        return CalcomRateLimited(
            text,
            retry_after_seconds=reset if reset is not None else default_block_seconds,
            limit=limit,
            remaining=remaining,
            **kwargs,
        )
    if status >= 500:
        return CalcomServerError(text, outcome_unknown=write, **kwargs)
    if status in (401, 403):
        return CalcomAuthError(text, **kwargs)
    if status == 404:
        return CalcomNotFound(text, **kwargs)
    if status == 409:
        return CalcomConflict(text, **kwargs)
    if status == 422:
        return CalcomHoldConflict(text, **kwargs)
    if status == 400:
        if any(marker in lowered for marker in _SLOT_TAKEN):
            return CalcomSlotUnavailable(text, **kwargs)
        if any(marker in lowered for marker in _OUT_OF_BOUNDS):
            return CalcomOutOfBounds(text, **kwargs)
        if any(marker in lowered for marker in _CANCELLED):
            return CalcomAlreadyCancelled(text, **kwargs)
    return CalcomBadRequest(text, **kwargs)
