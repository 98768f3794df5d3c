"""What the Cal.com emulator puts on the wire: envelopes, the four error shapes, time strings.

Owns ``ApiError`` (raised anywhere in the emulator, rendered here), the success envelope, the
error bodies of calcom.md 1.3 (shape A ``HttpException``, B Prisma, C ``ErrorWithCode``, D bare
``{"statusCode","message"}``), Cloudflare-style HTML 5xx pages, and ISO formatting/parsing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from starlette.responses import HTMLResponse, JSONResponse, Response

__all__ = [
    "ApiError",
    "error_response",
    "html_error_response",
    "iso_ms",
    "parse_iso",
    "success",
]

Shape = Literal["A", "B", "C", "D"]

_EXCEPTION_NAMES = {
    400: "BadRequestException",
    401: "UnauthorizedException",
    403: "ForbiddenException",
    404: "NotFoundException",
    409: "ConflictException",
    422: "UnprocessableEntityException",
    429: "ThrottlerException",
    500: "InternalServerErrorException",
}
_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
}
_PRISMA_CODES = {409: "CONFLICT", 404: "NOT_FOUND", 400: "BAD_REQUEST", 500: "INTERNAL_SERVER_ERROR"}


@dataclass(eq=False)
class ApiError(Exception):
    """An error answer: HTTP status, message and the body shape Cal.com would use."""

    status: int
    message: str
    shape: Shape = "A"
    code: str | None = None


def iso_ms(value: datetime, zone: ZoneInfo | None = None) -> str:
    """``2025-03-07T09:00:00.000Z`` (UTC) or with the zone's offset when ``zone`` is given."""
    if zone is None:
        utc = value.astimezone(UTC)
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    return value.astimezone(zone).isoformat(timespec="milliseconds")


def parse_iso(text: str) -> datetime:
    """An ISO 8601 string as an aware UTC datetime; offset-less is UTC, date-only is 00:00Z."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def success(data: Any, status: int = 200, **extra: Any) -> JSONResponse:
    """``{"status": "success", "data": …}`` plus extra top-level keys (e.g. pagination)."""
    return JSONResponse({"status": "success", "data": data, **extra}, status_code=status)


def _timestamp(now: datetime) -> str:
    return iso_ms(now)


def error_response(error: ApiError, *, path: str, now: datetime) -> JSONResponse:
    """Render ``error`` in its shape."""
    body: dict[str, Any]
    if error.shape == "D":
        body = {"statusCode": error.status, "message": error.message}
    elif error.shape == "B":
        body = {
            "status": "error",
            "timestamp": _timestamp(now),
            "path": path,
            "error": {
                "code": error.code or _PRISMA_CODES.get(error.status, "INTERNAL_SERVER_ERROR"),
                "message": error.message,
            },
        }
    elif error.shape == "C":
        body = {
            "status": "error",
            "timestamp": _timestamp(now),
            "path": path,
            "error": {"code": error.code or "InternalServerError", "message": error.message},
            "message": error.message,
        }
    else:
        body = {
            "status": "error",
            "timestamp": _timestamp(now),
            "path": path,
            "error": {
                "code": error.code or _EXCEPTION_NAMES.get(error.status, "HttpException"),
                "message": error.message,
                "details": {
                    "message": error.message,
                    "error": _REASONS.get(error.status, "Error"),
                    "statusCode": error.status,
                },
            },
        }
    return JSONResponse(body, status_code=error.status)


def html_error_response(status: int) -> Response:
    """A Cloudflare-style HTML error page (no JSON at all)."""
    titles = {502: "Bad gateway", 503: "Service unavailable", 504: "Gateway time-out"}
    title = titles.get(status, "Internal server error")
    page = (
        "<!DOCTYPE html><html><head><title>api.cal.com | "
        f"{status}: {title}</title></head><body><h1>{title}</h1>"
        f"<p>Error code {status}</p><p>Cloudflare Ray ID: 0000000000000000</p></body></html>"
    )
    return HTMLResponse(page, status_code=status)
