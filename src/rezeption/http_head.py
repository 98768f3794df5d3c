"""uvicorn's fast HTTP parser (httptools) with a bound on the request head.

uvicorn bounds an incomplete request head only with h11 (`h11_max_incomplete_event_size`); with
httptools a client can stream a head of any size into memory. h11 costs about a tenth of a booking's
CPU, so `rezeption serve` runs httptools with the same bound, taken from the same setting
(REZEPTION_HTTP_MAX_HEAD_BYTES): the bytes that arrive while a request head is still incomplete
are counted after each read, and past the bound the connection gets a 431 and is closed before the
parser buffers more. No library offers this hook: a small subclass of uvicorn's own protocol.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 30\r\n"
    b"connection: close\r\n\r\n"
    b"request head larger than bound"
)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that refuses a request head longer than `h11_max_incomplete_event_size`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_limit = int(self.config.h11_max_incomplete_event_size or 16 * 1024)
        self._in_head = True  # a connection starts with a request head
        self._head_bytes = 0
        self._completed = False  # a request ended within the current read

    def data_received(self, data: bytes) -> None:
        self._completed = False
        super().data_received(data)
        if not self._in_head or self._completed or self.transport.is_closing():
            return  # the head was whole after this read (a read's start of the next head is not counted)
        self._head_bytes += len(data)
        if self._head_bytes > self._head_limit:
            self.logger.warning("Request head larger than %d bytes refused.", self._head_limit)
            self.transport.write(TOO_LARGE)
            self.transport.close()

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes, self._completed = True, 0, True  # the next request's head
