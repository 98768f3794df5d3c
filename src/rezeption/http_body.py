"""Reading a request body with a limit: refused as soon as it is known to be too long or too slow.

A declared Content-Length over the limit is refused before a byte is read; a chunked body is read
only until it passes the limit, and the rest is never read. Each route maps `BodyTooLarge` to its
own 413 answer. A request admission let in on a bulk turn carries a deadline for its body
(`BODY_DEADLINE` in the ASGI scope); past it, `BodyTooSlow` (408).
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request

BODY_DEADLINE = "rezeption.body_deadline"
"""ASGI scope key: the event loop time by which the whole body must have arrived (or absent)."""


class BodyTooSlow(Exception):
    """The body did not arrive by its deadline."""


class BodyTooLarge(Exception):
    """The body is longer than the route accepts."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body larger than {limit} bytes")
        self.limit = limit


async def read_bounded(request: Request, limit: int) -> bytes:
    """The body of `request`, at most `limit` bytes; BodyTooLarge as soon as it is longer."""
    declared = request.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    deadline = request.scope.get(BODY_DEADLINE)
    try:
        async with asyncio.timeout_at(deadline):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge(limit)
                chunks.append(chunk)
    except TimeoutError as error:  # only the deadline's own timeout (none without a deadline)
        raise BodyTooSlow() from error
    return b"".join(chunks)
