"""Reading a request body with a limit: refused as soon as it is known to be too long.

A declared Content-Length over the limit is refused before a byte is read; a chunked body is read
only until it passes the limit, and the rest is never read. Each route maps `BodyTooLarge` to its
own 413 answer.
"""

from __future__ import annotations

from starlette.requests import Request


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
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)
