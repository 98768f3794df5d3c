"""The request-head bound of `rezeption serve`'s httptools parser (rezeption.http_head), on a real
uvicorn over 127.0.0.1: a head that keeps growing past the bound is refused with 431 and the
connection closed; a normal request, a body far larger than the bound, a head split over many reads
and the next request on a kept-alive connection are all served."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request
from tests.faults import ServedApp, raw_exchange, serve_app

from rezeption.http_head import BoundedHttpToolsProtocol

BOUND = 4096


@pytest.fixture(scope="module")
def served() -> Iterator[ServedApp]:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"body": len(await request.body())}

    with serve_app(app, http=BoundedHttpToolsProtocol, h11_max_incomplete_event_size=BOUND) as running:
        yield running


def _port(served: ServedApp) -> int:
    return int(served.url.rsplit(":", 1)[1])


def _request(body: bytes, *, extra: bytes = b"", close: bool = True) -> bytes:
    connection = b"Connection: close\r\n" if close else b""
    return (
        b"POST /echo HTTP/1.1\r\nHost: x\r\n"
        + extra
        + connection
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


def test_a_head_growing_past_the_bound_is_refused_with_431_and_closed(served: ServedApp) -> None:
    start = b"POST /echo HTTP/1.1\r\nHost: x\r\n"
    pads = [b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(40)]  # 40 KB, one read each
    received = raw_exchange(_port(served), [start, *pads, b"Content-Length: 0\r\n\r\n"], pause=0.01)
    assert received.startswith(b"HTTP/1.1 431"), received[:80]
    assert b"200 OK" not in received


def test_requests_within_the_bound_are_served_however_they_arrive(served: ServedApp) -> None:
    port = _port(served)
    big_body = b"x" * (BOUND * 10)  # arrives with its head in few reads: the body is not head
    assert b'{"body":40960}' in raw_exchange(port, [_request(big_body)])
    head = _request(b"{}", extra=b"".join(b"X-H-%d: %s\r\n" % (i, b"b" * 100) for i in range(20)))
    split = [head[i : i + 300] for i in range(0, len(head), 300)]  # ~2.6 KB head over 9 reads
    assert b'{"body":2}' in raw_exchange(port, split, pause=0.01)


def test_the_bound_counts_each_request_of_a_kept_alive_connection_afresh(served: ServedApp) -> None:
    padding = b"".join(b"X-H-%d: %s\r\n" % (i, b"c" * 100) for i in range(25))  # ~2.9 KB each
    first = _request(b"{}", extra=padding, close=False)
    second = _request(b"{}", extra=padding)
    pieces = [first[i : i + 500] for i in range(0, len(first), 500)]
    pieces += [second[i : i + 500] for i in range(0, len(second), 500)]
    received = raw_exchange(_port(served), pieces, pause=0.01)
    assert received.count(b"HTTP/1.1 200") == 2, received
