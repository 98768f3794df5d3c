"""Admission under overload: at most N requests at work, the rest wait in line first come, first
served, and what cannot start in time is turned away at once with a reply, never queued without end.

Why not the database pool's own queue: it is not fair (measured p99 4-13x p50 under contention: a
request that waited may lose its turn to one that just came), it has no bound but its timeout, and
a request that waits in it has already spent the caller's time. Here a request either gets its turn
within `max_wait` seconds, in the order it came, or is shed before anything of it ran: nothing
half-written, the caller hears a polite sentence (functions) or the client gets 503 + Retry-After.

A request's body is read before it gets in line (up to `BODY_CAP` bytes, within `body_timeout`
seconds, else 408): a client that sends its body slowly must not hold a turn while it dawdles. A
body longer than that (declared so, or found so while reading ahead) is read by its route during
its turn, so it takes its turn from a small gate of its own (`bulk`): clients that send large
bodies slowly, before any signature could be checked, hold at most those few turns and never the
ones the calls need, and each for at most `BULK_BODY_SECONDS` (then 408): the routes that read
their bodies themselves (`http_body.read_bounded`: Retell's and Cal.com's, which refuse a missing
signature or a declared length over their limit before reading) get the deadline in the scope,
any other route's body is read here within it. Retell's large bodies are webhooks (a long call's
transcript), which it retries.

Shedding happens on arrival when the line is already longer than `max_waiting` or when the expected
wait (requests ahead / N x the recent service time) exceeds the wait allowed now, and after
`max_wait` for a request that waited its time out. The wait allowed is `max_wait` for a burst, but
once even the shortest wait of a whole `interval` (0.5 s) was over `target` (50 ms), the line is
standing: the load is beyond capacity, not a burst, and only a wait up to `target` is allowed until
no request of a whole interval waited longer than `target` (the idea of CoDel, RFC 8289). Without
it, a sustained overload kept a line of a full `max_wait` and every admitted caller waited that
long (measured: admitted p50 ~1 s at 1-4x capacity, bench/overload.py).

Probes and scrapes (/health, /ready, /metrics) and WebSockets pass without a turn: an overloaded
server must still say how it is. A hand-written pure ASGI middleware: Starlette has no fair
admission with a deadline, and `asyncio.Semaphore` sheds nothing.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from rezeption.http_body import BODY_DEADLINE
from rezeption.ops.metrics import ADMISSION_IN_FLIGHT, ADMISSION_SHED, ADMISSION_WAIT

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Shed = Callable[[Scope, Receive, Send], Awaitable[None]]
"""Answers a request that was turned away (the app decides the words per route)."""
LazyBody = Callable[[str], bool]
"""Whether the route at a path reads its body itself under the scope's deadline (`http_body`), so
it can refuse before reading (a missing signature, a declared length over its limit)."""

UNGATED = ("/health", "/ready", "/metrics")
BODY_CAP = 64 * 1024  # bytes read ahead before the turn (a function call is a few KB); a body
# declared longer is not read ahead at all: its route refuses it (413) or reads it in a bulk turn
BULK_CONCURRENCY = 2
"""Turns for requests with bodies over BODY_CAP: they are read during their turn."""
BULK_WAITING = 16
BULK_BODY_CAP = 2 * 1024 * 1024
"""The most a bulk turn reads of a body for a route that does not read it itself (`lazy_body`);
a longer one is refused by its route from what was read."""
BULK_BODY_SECONDS = 10.0
"""How long a bulk turn waits for its whole body: Retell gives up on a webhook after 10 s, so a
body slower than that serves nobody, and a client that dawdles holds the turn no longer."""


class Overloaded(Exception):
    """No turn: the line is too long or the wait too late (`reason`: full | late | waited)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Waiter:
    turn: asyncio.Future[None]
    since: float


class FairGate:
    """At most `concurrency` holders; waiters get their turn in arrival order within `max_wait` s."""

    def __init__(
        self,
        concurrency: int,
        *,
        max_wait: float,
        max_waiting: int,
        target: float = 0.05,
        interval: float = 0.5,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if concurrency < 1 or max_wait <= 0 or max_waiting < 0 or not 0 < target <= max_wait:
            raise ValueError("admission: concurrency >= 1, 0 < target <= max_wait, max_waiting >= 0")
        self.concurrency, self.max_wait, self.max_waiting = concurrency, max_wait, max_waiting
        self.target, self.interval, self.clock = target, interval, clock
        self.busy = 0
        self._line: collections.deque[_Waiter] = collections.deque()
        self.service_time = 0.02  # seconds, a moving average of the recent requests' work
        self.standing = False  # a standing line: the load is beyond capacity, only `target` allowed
        self._window_end = 0.0
        self._window_shortest = float("inf")
        self._window_longest = 0.0

    def allowed_wait(self) -> float:
        return self.target if self.standing else self.max_wait

    def _note_wait(self, waited: float) -> None:
        """Each interval decides: the line starts standing when even its shortest wait was over the
        target, and stops when even its longest was within it (the load fell below capacity). A
        request that found a free turn amid an overload does not end the standing line alone."""
        self._window_shortest = min(self._window_shortest, waited)
        self._window_longest = max(self._window_longest, waited)
        now = self.clock()
        if now >= self._window_end:
            if self.standing:
                self.standing = self._window_longest > self.target
            else:
                self.standing = self._window_shortest > self.target
            self._window_shortest, self._window_longest = float("inf"), 0.0
            self._window_end = now + self.interval

    @property
    def waiting(self) -> int:
        return len(self._line)

    def expected_wait(self) -> float:
        """Seconds a request arriving now would wait: the line ahead of it, served N at a time."""
        return (len(self._line) + 1) / self.concurrency * self.service_time

    async def enter(self) -> float:
        """Wait for a turn; returns the seconds waited, or raises Overloaded."""
        if self.busy < self.concurrency and not self._line:
            self.busy += 1
            self._note_wait(0.0)
            return 0.0
        if len(self._line) >= self.max_waiting:
            raise Overloaded("full")
        if self.expected_wait() > self.allowed_wait():
            raise Overloaded("late")
        waiter = _Waiter(asyncio.get_running_loop().create_future(), self.clock())
        self._line.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter.turn), self.max_wait)
        except (TimeoutError, asyncio.CancelledError) as error:
            if waiter.turn.done() and not waiter.turn.cancelled():
                self.leave(0.0)  # the turn came as the wait ended: hand it on, unused
            else:
                waiter.turn.cancel()
                self._line.remove(waiter)
            if isinstance(error, asyncio.CancelledError):
                raise
            raise Overloaded("waited") from None
        waited = self.clock() - waiter.since
        self._note_wait(waited)
        return waited

    def leave(self, worked: float) -> None:
        """End a turn after `worked` seconds and hand it to the oldest waiter still waiting."""
        if worked > 0:
            self.service_time += (worked - self.service_time) * 0.1
        while self._line:
            waiter = self._line.popleft()
            if not waiter.turn.done():
                waiter.turn.set_result(None)  # the turn passes on: `busy` stays the same
                return
        self.busy -= 1


class AdmissionMiddleware:
    """Runs each HTTP request inside a `FairGate` turn; a request without one goes to `shed`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        gate: FairGate,
        shed: Shed,
        body_timeout: float = 5.0,
        bulk: FairGate | None = None,
        lazy_body: LazyBody = lambda _path: False,
    ) -> None:
        self.app, self.gate, self.shed, self.body_timeout = app, gate, shed, body_timeout
        self.lazy_body = lazy_body
        self.bulk = bulk or FairGate(BULK_CONCURRENCY, max_wait=gate.max_wait, max_waiting=BULK_WAITING)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNGATED:
            await self.app(scope, receive, send)
            return
        kind = route_kind(scope["path"])
        large = _declared_length(scope) > BODY_CAP
        try:
            if not large:
                receive, whole = await read_ahead(receive, self.body_timeout)
                large = not whole
        except TimeoutError:
            await _too_slow(send, kind)
            return
        gate = self.bulk if large else self.gate
        try:
            waited = await gate.enter()
        except Overloaded as overloaded:
            ADMISSION_SHED.labels(kind, overloaded.reason).inc()
            await self.shed(scope, receive, send)
            return
        ADMISSION_WAIT.labels(kind).observe(waited)
        ADMISSION_IN_FLIGHT.set(self.gate.busy)
        started = time.perf_counter()
        try:
            if large:
                scope[BODY_DEADLINE] = asyncio.get_running_loop().time() + BULK_BODY_SECONDS
            # a route that reads its body itself does so under the deadline, and may refuse it
            # unread; for any other, the body is read here (declared longer: refused unread)
            if large and not self.lazy_body(scope["path"]) and _declared_length(scope) <= BULK_BODY_CAP:
                try:
                    receive, _ = await read_ahead(receive, BULK_BODY_SECONDS, BULK_BODY_CAP)
                except TimeoutError:
                    await _too_slow(send, kind)
                    return
            await self.app(scope, receive, send)
        finally:
            gate.leave(time.perf_counter() - started)
            ADMISSION_IN_FLIGHT.set(self.gate.busy)


async def read_ahead(receive: Receive, patience: float, cap: int = BODY_CAP) -> tuple[Receive, bool]:
    """Read the request body (up to `cap` bytes) within `patience` s: a `receive` that replays it
    and then goes on with the rest, and whether that was the whole body. TimeoutError when the
    client is too slow."""
    buffered: list[Message] = []
    size = 0
    async with asyncio.timeout(patience):
        while size <= cap:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
            size += len(message.get("body", b""))

    last = buffered[-1]
    whole = last["type"] != "http.request" or not last.get("more_body", False)

    async def replay() -> Message:
        return buffered.pop(0) if buffered else await receive()

    return replay, whole


def _declared_length(scope: Scope) -> int:
    """The request's Content-Length (0 without one: a chunked body is read ahead up to the cap)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else BODY_CAP + 1
    return 0


async def _too_slow(send: Send, kind: str) -> None:
    ADMISSION_SHED.labels(kind, "slow_body").inc()
    await _answer(send, 408, b'{"error": "the request body came too slowly"}')


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def route_kind(path: str) -> str:
    """A bounded label for a path: function, inbound, webhook, calcom, admin or other."""
    if path.startswith("/retell/functions/"):
        return "function"
    if path.startswith("/retell/inbound"):
        return "inbound"
    if path.startswith("/retell/"):
        return "webhook"
    if path.startswith("/calcom"):
        return "calcom"
    if path.startswith("/admin"):
        return "admin"
    return "other"
