"""A load generator that calls like Retell (`rezeption loadtest`): N phone calls, at most C at once,
each a signed call_inbound, call_started, function calls with think time between them, and a signed
call_ended. Each call is drawn from a scenario mix (book 70 %, reschedule 15 %, cancel 10 %, only ask
5 % by default) with German phrases from a scenario file; the days and times are few on purpose, so
callers compete for the same slots and take the offered alternatives as a caller would.

A cancel or reschedule caller changes an appointment made in an *earlier* call, as the salon's
customers call days after booking: before the run, `LoadTest.book_earlier` makes one call per such
caller from the same number under the same name that books (those calls are the run's preparation,
reported apart), and the run's call finds that appointment by number and name in a call of its own,
the lookup across calls the old system lacked. So the run's calls are the issue's mix exactly: seven
in ten book, a quarter change what an earlier call booked, one in twenty only asks.

It only talks to 127.0.0.1 / localhost, stops after its calls or its deadline, and counts what each
caller heard. What really happened is counted by `ops.loadcheck` from the database afterwards, not
from the server's own counters. A write whose answer never came (a timeout, a connection dropped by a
dying server) leaves its call *uncertain*: it may or may not have happened, and the checker allows
either, but never two.

For a salon on Cal.com, `CALCOM_FAULT_PROFILES` are the named fault sets the run puts on the Cal.com
emulator (`POST /_emulator/faults`): about a second per request, as Cal.com answers, and for
`faulty` also 5xx (JSON and HTML), slow and lost answers and stolen slots. None of them touches the
emulator's rate limit (Cal.com's 120 requests a minute per key).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import yaml

from rezeption.emulators.retell.caller import RetellPhone
from rezeption.ops.metrics import SYSTEM_FAILURES
from rezeption.retell.tools import TOOL_TIMEOUT_MS

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
NOT_OURS = frozenset(
    {
        *SYSTEM_FAILURES,
        "availability_unchecked",
        "internal_error",
        "over_budget",
        "server_busy",
        "http_error",
        "timeout",
    }
)
"""Outcomes that are our failure (or the calendar's), not a refusal the caller's ask deserved."""
CALENDAR_FAILURES = frozenset({"calendar_unavailable", "calendar_busy", "availability_unchecked"})
"""Failures the external calendar caused (down, 5xx on every try, its rate limit): the requests it
could not serve. The emulator's fault counters say how many faults it injected."""
REDELIVERIES = 3
"""Retell delivers call_inbound and the call webhooks again, up to 3 times, when it got no 2xx
(retell.md §2.1-2.2; the phone keeps ringing for call_inbound, a call goes on past its webhooks).
Function calls are not sent again (the agent's tools are configured without retries: `max_retry` 0
for writes)."""
REDELIVERY_PAUSE = (1.0, 5.0)
"""Seconds before a redelivery: Retell does not document its backoff, so the generator waits what
our 503 asks (Retry-After), at least 1 s and at most 5 s."""
UNCERTAIN_WHEN_UNANSWERED = frozenset({"book_appointment", "cancel_appointment"})
"""Writes that change how many appointments a call holds; a move keeps exactly one either way."""
CHANGES = ("cancel", "reschedule")
"""Scenarios that change an appointment an earlier call of the same caller booked."""

_SECOND = {"min": 0.8, "max": 1.2}
_SLOW: list[dict[str, Any]] = [{"mode": "latency", "method": "*", "path": "/v2/*", "params": _SECOND}]
CALCOM_FAULT_PROFILES: dict[str, list[dict[str, Any]]] = {
    "none": [],
    "slow": _SLOW,
    "faulty": [
        *_SLOW,
        {"mode": "server_error", "method": "POST", "path": "/v2/bookings", "probability": 0.05,
         "params": {"kind": "json", "status": 500}},
        {"mode": "server_error", "method": "POST", "path": "/v2/bookings", "probability": 0.05,
         "params": {"kind": "html", "status": 503}},
        {"mode": "latency", "method": "POST", "path": "/v2/bookings", "probability": 0.05,
         "params": {"seconds": 2.5}},
        {"mode": "lost_response", "method": "POST", "path": "/v2/bookings", "probability": 0.01},
        {"mode": "slot_stolen", "method": "POST", "path": "/v2/bookings", "probability": 0.01},
        {"mode": "server_error", "method": "POST", "path": "/v2/bookings/*", "probability": 0.05,
         "params": {"kind": "json", "status": 500}},
    ],
}  # fmt: skip
"""Fault sets for the Cal.com emulator: `slow` is every request at 0.8-1.2 s; `faulty` adds to
creates 5 % JSON 500, 5 % HTML 503, 5 % answers after 2.5 s, 1 % lost answers (booked, reply
dropped), 1 % stolen slots, and 5 % JSON 500 to cancels and reschedules."""


class NotLocal(ValueError):
    """The load test sends traffic to 127.0.0.1 only."""


@dataclass(frozen=True)
class Scenarios:
    """The phrases and the mix (`bench/loadtest_scenarios.yaml`)."""

    mix: dict[str, int]
    services: list[str]
    days: list[str]
    times: list[str]
    first_names: list[str]
    last_names: list[str]

    @classmethod
    def load(cls, path: str | Path) -> Scenarios:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        mix = {str(k): int(v) for k, v in doc["mix"].items()}
        if set(mix) - {"book", "reschedule", "cancel", "ask"} or sum(mix.values()) <= 0:
            raise ValueError("mix: weights for book, reschedule, cancel, ask")
        return cls(
            mix, list(doc["services"]), list(doc["days"]), list(doc["times"]),
            list(doc["first_names"]), list(doc["last_names"]),
        )  # fmt: skip

    def name(self, n: int) -> str:
        """The n-th caller's name: first and last names combined, so one name recurs only every
        len(first) x len(last) calls (the per-name booking limit stays out of a plain load test)."""
        first = self.first_names[n % len(self.first_names)]
        return f"{first} {self.last_names[(n // len(self.first_names)) % len(self.last_names)]}"


@dataclass(frozen=True)
class Plan:
    """How much load: `calls` calls, at most `concurrency` at once, `think` seconds between two
    function calls on average (exponential), at most `deadline` seconds in all. The first
    `concurrency` calls ring at random moments within the first `think` seconds (an open loop, as
    phones ring), each later one when a line is free."""

    calls: int
    concurrency: int
    think: float = 2.0
    deadline: float = 600.0
    seed: int = 7
    to_number: str = "+493012345670"
    agent_id: str | None = "agent_friseur1"
    function_patience: float = TOOL_TIMEOUT_MS / 1000  # Retell's own wait: a later reply is a timeout
    first_caller: int = 0  # callers' names and numbers start here (successive runs on one database)


@dataclass
class CallResult:
    """What one caller did and heard."""

    call_id: str
    scenario: str
    booked: bool = False
    cancelled: bool = False  # the caller cancelled what they booked (their own wish)
    moved: bool = False  # the caller moved what they booked
    booking_attempts: int = 0
    uncertain: bool = False  # a write's answer never came: it may have happened or not
    failures: list[str] = field(default_factory=list)  # our failures (reason codes) the caller heard
    refusals: list[str] = field(default_factory=list)  # refusals the ask deserved (slot_taken, ...)
    latencies: list[tuple[str, float, float]] = field(default_factory=list)  # function, ms, sent at (s)
    redeliveries: int = 0  # call_inbound and webhooks sent again after no 2xx (as Retell does)
    webhooks_lost: int = 0  # call webhooks that got no 2xx in any delivery
    http_errors: list[str] = field(default_factory=list)  # "function: status or transport error"
    ring_ms: float | None = None  # from call_inbound's first delivery to its answer (None: never)
    earlier_call: str | None = None  # the call that booked what this one changes (cancel, reschedule)
    heard_at: str | None = None  # "2026-12-08T10:30", salon time: what the caller heard booked or moved to
    move_unanswered: bool = False  # a move's answer never came: the appointment's time is unknown


@dataclass
class LoadResult:
    """Every call's result and the run's length."""

    calls: list[CallResult]
    seconds: float
    generator_lag_ms: list[float] = field(default_factory=list)
    """How late the generator's own event loop woke, sampled every `LAG_TICK` s: a request sent or
    answered while it was late counts that lateness as latency, though the server had no part."""
    earlier: list[CallResult] = field(default_factory=list)
    """The calls that booked, before the run, what its cancel and reschedule callers change. Every
    figure of the result is the run's calls'; these count only in `expected_active` (and
    `earlier_figures`)."""

    def latency_percentiles(self, *, sent_after: float = 0.0) -> dict[str, dict[str, float]]:
        """p50/p95/p99 per function, of the requests sent `sent_after` seconds into the run or later
        (after the phones' ring-in, say)."""
        by_function: dict[str, list[float]] = {}
        for call in self.calls:
            for name, ms, at in call.latencies:
                if at >= sent_after:
                    by_function.setdefault(name, []).append(ms)
        return {name: _percentiles(values) for name, values in sorted(by_function.items())}

    def lag_figures(self) -> dict[str, float]:
        """p99 and most of the generator's lateness (ms): latency it may have added to a request."""
        if not self.generator_lag_ms:
            return {"generator_lag_p99_ms": 0.0, "generator_lag_max_ms": 0.0}
        lag = _percentiles(self.generator_lag_ms)
        return {"generator_lag_p99_ms": lag["p99_ms"], "generator_lag_max_ms": round(lag["max_ms"], 1)}

    def ring_figures(self) -> dict[str, float | int]:
        """How long call_inbound took to be answered (p99 and most, ms, redeliveries included), how
        many call_inbound and webhook deliveries were sent again after no 2xx, and how many
        webhooks got no 2xx at all."""
        rang = [c.ring_ms for c in self.calls if c.ring_ms is not None]
        figures = _percentiles(rang) if rang else {"p99_ms": 0.0, "max_ms": 0.0}
        return {
            "ring_p99_ms": figures["p99_ms"],
            "ring_max_ms": round(figures["max_ms"], 1),
            "redeliveries": sum(c.redeliveries for c in self.calls),
            "webhooks_lost": sum(c.webhooks_lost for c in self.calls),
        }

    def expected_active(self) -> dict[str, int | None]:
        """Per call (the earlier ones too), the active appointments made in it that its caller was
        told of: 1 after a booking (moved or not), 0 after a cancellation or none; None when a
        write's answer never came (0 or 1). A call that changed an earlier call's appointment holds
        none itself (a move keeps the appointment with the call that made it); the earlier call
        holds 0 once it was cancelled, and 0 or 1 when the cancel's answer never came."""
        expected = {c.call_id: _told(c) for c in self.earlier}
        for call in self.calls:
            if call.earlier_call is None:
                expected[call.call_id] = _told(call)
                continue
            expected[call.call_id] = 0
            if call.cancelled or call.moved:  # heard "storniert" / "verlegt": whatever the booking heard
                expected[call.earlier_call] = 0 if call.cancelled else 1
            elif call.uncertain and expected.get(call.earlier_call) == 1:
                expected[call.earlier_call] = None
        return expected

    def expected_starts(self) -> dict[str, str]:
        """Per call expected to hold one appointment (`expected_active`), when it starts in salon
        time ("2026-12-08T10:30"): what its caller heard booked, or what the caller who moved it
        later heard; left out when a move's answer never came (the old time or the new)."""
        expected = self.expected_active()
        heard = {c.call_id: c.heard_at for c in self.earlier + self.calls if c.earlier_call is None}
        for call in self.calls:
            if call.earlier_call is not None and (call.moved or call.move_unanswered):
                heard[call.earlier_call] = None if call.move_unanswered else call.heard_at
        return {c: at for c, at in heard.items() if at is not None and expected.get(c) == 1}

    def changes(self) -> dict[str, int]:
        """Of the run's calls that change what an earlier call booked: how many cancelled, moved."""
        changing = [c for c in self.calls if c.earlier_call is not None]
        return {
            "cancelled": sum(c.cancelled for c in changing),
            "moved": sum(c.moved for c in changing),
            "of": len(changing),
        }

    @property
    def all_calls(self) -> list[CallResult]:
        """The earlier calls and the run's (a crash run's kills land in either)."""
        return self.earlier + self.calls

    def earlier_figures(self) -> dict[str, int]:
        """The earlier calls (the run's preparation): how many, booked, our failures heard."""
        return {
            "earlier_calls": len(self.earlier),
            "earlier_booked": sum(c.booked for c in self.earlier),
            "earlier_failures": sum(len(c.failures) for c in self.earlier),
        }

    def http_errors(self) -> dict[str, int]:
        """What each "http_error" was (a function call's, or a call_inbound or webhook that got no
        2xx in any delivery), by function or event and status or transport error."""
        return dict(sorted(Counter(d for call in self.calls for d in call.http_errors).items()))

    def failure_reasons(self) -> dict[str, int]:
        """How often callers heard each failure (our own or the calendar's)."""
        return dict(sorted(Counter(r for call in self.calls for r in call.failures).items()))

    @property
    def success_rate(self) -> float:
        """Calls that booked / calls that tried and were not refused for their ask."""
        tried = [c for c in self.calls if c.booking_attempts and (c.booked or c.failures)]
        return sum(c.booked for c in tried) / len(tried) if tried else 1.0

    @property
    def servable_success_rate(self) -> float:
        """Like `success_rate`, leaving out the calls whose only failures the external calendar
        caused (`CALENDAR_FAILURES`: it could not serve them)."""
        tried = [
            c for c in self.calls
            if c.booking_attempts and (c.booked or set(c.failures) - CALENDAR_FAILURES)
        ]  # fmt: skip
        return sum(c.booked for c in tried) / len(tried) if tried else 1.0


def _heard_at(reply: dict[str, Any]) -> str | None:
    return f"{reply['datum']}T{reply['uhrzeit']}" if reply.get("datum") and reply.get("uhrzeit") else None


def _told(call: CallResult) -> int | None:
    return None if call.uncertain else int(call.booked and not call.cancelled)


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {
        "count": len(ordered),
        "p50_ms": at(0.50),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
        "max_ms": ordered[-1],
    }


CALLS_PER_CLIENT = 50
"""Calls sharing one HTTP client (and its connection pool) in the load generator."""
LAG_TICK = 0.02


class LagWatch:
    """Samples the event loop's lateness: sleeps `LAG_TICK` s again and again and records how much
    later than asked it woke (ms). The generator shares the machine's cores with the server."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(LAG_TICK)
            self.samples.append(max(0.0, (time.perf_counter() - asked - LAG_TICK) * 1000))

    def __enter__(self) -> LagWatch:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The generator is not under test: a full collection of a thousand calls' objects stops its
    event loop, and every request in flight would count that pause as the server's latency. The run
    is bounded (its calls and its deadline), so its cyclic garbage waits until it ends."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def require_local(url: str) -> None:
    host = urlparse(url).hostname
    if host not in LOCAL_HOSTS:
        raise NotLocal(f"the load test sends traffic to 127.0.0.1 only, not to {host!r}")


class LoadTest:
    """Runs a `Plan` against the server at `base_url` (signed with its Retell key)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        plan: Plan,
        scenarios: Scenarios,
        *,
        now_ms: Callable[[], int] | None = None,
        on_call_done: Callable[[CallResult], None] | None = None,
    ) -> None:
        require_local(base_url)
        self.plan = plan
        self.scenarios = scenarios
        self.random = random.Random(plan.seed)
        self.run_id = f"{plan.seed:x}{int(time.time()) % 100000:05d}"
        # One HTTP client per CALLS_PER_CLIENT calls: one client holding 2,000 connections spent
        # more CPU than the server spent on the calls (measured at 1,000 calls at once), most likely
        # in its connection pool's search through its connections for every request.
        lines = max(1, -(-plan.concurrency // CALLS_PER_CLIENT))
        per_line = -(-plan.concurrency // lines)
        self.clients = [
            httpx.AsyncClient(
                timeout=plan.function_patience, limits=httpx.Limits(max_connections=per_line * 2)
            )
            for _ in range(lines)
        ]
        timing = {"now_ms": now_ms} if now_ms else {}
        self.phones = [RetellPhone(base_url, api_key, http=client, **timing) for client in self.clients]
        self.on_call_done = on_call_done
        self._began = time.perf_counter()
        self._webhooks: set[asyncio.Task[None]] = set()
        self.draws = [self._draw(n) for n in range(plan.calls)]
        self._earlier: list[CallResult] | None = None
        self._ends_at: float | None = None

    async def book_earlier(self) -> list[CallResult]:
        """Make the earlier calls, once: for each cancel or reschedule caller of the run, a call
        from the same number under the same name that books the draw's service, day and time (taking
        an offered alternative, as any caller). `run` makes them first unless this was called
        before (a benchmark does, to count the run's own Cal.com requests from after them)."""
        if self._earlier is None:
            todo: list[tuple[str, dict[str, Any], str | None]] = [
                (f"load-{self.run_id}-earlier-{n}", {**draw, "kind": "book"}, None)
                for n, draw in enumerate(self.draws)
                if draw["kind"] in CHANGES
            ]
            try:
                self._earlier = await self._phase(todo, notify=False)
            except BaseException:  # the deadline, or cancelled: `run` will not follow to close them
                await self._close()
                raise
        return self._earlier

    async def run(self) -> LoadResult:
        """The earlier calls (unless made before), then the run's calls; its HTTP clients close."""
        try:
            earlier = await self.book_earlier()
            started = time.monotonic()
            self._began = time.perf_counter()
            todo = [
                (
                    f"load-{self.run_id}-{n}",
                    draw,
                    f"load-{self.run_id}-earlier-{n}" if draw["kind"] in CHANGES else None,
                )
                for n, draw in enumerate(self.draws)
            ]
            with LagWatch() as lag:
                results = await self._phase(todo, notify=True)
        finally:
            await self._close()
        return LoadResult(results, time.monotonic() - started, lag.samples, earlier)

    async def _close(self) -> None:
        for client in self.clients:
            await client.aclose()

    async def _phase(
        self, todo: list[tuple[str, dict[str, Any], str | None]], *, notify: bool
    ) -> list[CallResult]:
        """Make the calls `todo` (call id, draw, earlier call), at most `concurrency` at once,
        within what is left of the plan's deadline (which bounds both phases together)."""
        if self._ends_at is None:
            self._ends_at = time.monotonic() + self.plan.deadline
        gate = asyncio.Semaphore(self.plan.concurrency)

        async def one(n: int, call_id: str, draw: dict[str, Any], earlier: str | None) -> CallResult:
            async with gate:  # a line first: a later call waits for one of the first to end
                if n < self.plan.concurrency and self.plan.think > 0:
                    await asyncio.sleep(draw["ring_after"])  # phones ring spread out, not at once
                result = await self._call(call_id, draw, earlier)
            if notify and self.on_call_done is not None:
                self.on_call_done(result)
            return result

        async def everything() -> list[CallResult]:
            results = await asyncio.gather(*(one(n, *item) for n, item in enumerate(todo)))
            await asyncio.gather(*self._webhooks)  # the last calls' call_ended, redeliveries too
            return results

        try:
            with collector_paused():
                return list(await asyncio.wait_for(everything(), self._ends_at - time.monotonic()))
        finally:
            for task in self._webhooks:
                task.cancel()

    def _draw(self, n: int) -> dict[str, Any]:
        kinds, weights = zip(*self.scenarios.mix.items(), strict=True)
        pick = self.random.choice
        return {
            "kind": self.random.choices(kinds, weights)[0],
            "service": pick(self.scenarios.services),
            "day": pick(self.scenarios.days),
            "time": pick(self.scenarios.times),
            "name": self.scenarios.name(n + self.plan.first_caller),
            "move_day": pick(self.scenarios.days),
            "move_time": pick(self.scenarios.times),
            "from": f"+49151{n + self.plan.first_caller:08d}",
            "ring_after": self.random.uniform(0, self.plan.think),
            "line": n % len(self.phones),
        }

    async def _think(self) -> None:
        if self.plan.think > 0:
            await asyncio.sleep(min(self.random.expovariate(1 / self.plan.think), self.plan.think * 5))

    def _envelope(self, call_id: str, draw: dict[str, Any]) -> dict[str, Any]:
        return {"call_id": call_id, "agent_id": self.plan.agent_id, "from_number": draw["from"],
                "to_number": self.plan.to_number}  # fmt: skip

    async def _function(
        self, result: CallResult, draw: dict[str, Any], name: str, args: dict[str, Any]
    ) -> dict[str, Any]:
        body = {"name": name, "call": self._envelope(result.call_id, draw), "args": args}
        # a cancel without a reference only reads the appointment back: unanswered, it changed nothing
        writes = name in UNCERTAIN_WHEN_UNANSWERED and (name != "cancel_appointment" or "referenz" in args)
        started = time.perf_counter()
        try:
            # Retell's wait is for the whole reply; httpx's timeout is per phase (connect, pool, read)
            response = await asyncio.wait_for(
                self.phones[draw["line"]].post(f"/retell/functions/{name}", body),
                self.plan.function_patience,
            )
        except TimeoutError:
            result.failures.append("timeout")
            result.uncertain |= writes
            return {"ok": False, "reason": "timeout"}
        except httpx.ConnectError as error:  # nothing reached the server (it is down): nothing happened
            result.failures.append("http_error")
            result.http_errors.append(f"{name}: {type(error).__name__}")
            return {"ok": False, "reason": "http_error"}
        except httpx.TimeoutException:
            result.failures.append("timeout")
            result.uncertain |= writes
            return {"ok": False, "reason": "timeout"}
        except httpx.HTTPError as error:
            result.failures.append("http_error")
            result.http_errors.append(f"{name}: {type(error).__name__}")
            result.uncertain |= writes
            return {"ok": False, "reason": "http_error"}
        result.latencies.append((name, (time.perf_counter() - started) * 1000, started - self._began))
        if response.status_code != 200:
            result.failures.append("http_error")
            result.http_errors.append(f"{name}: {response.status_code}")
            result.uncertain |= writes and response.status_code >= 500
            return {"ok": False, "reason": "http_error"}
        reply: dict[str, Any] = response.json()
        if not reply.get("ok"):
            reason = str(reply.get("reason", "other"))
            (result.failures if reason in NOT_OURS else result.refusals).append(reason)
        return reply

    async def _call(self, call_id: str, draw: dict[str, Any], earlier_call: str | None) -> CallResult:
        result = CallResult(call_id, str(draw["kind"]), earlier_call=earlier_call)
        envelope = self._envelope(result.call_id, draw)
        phone = self.phones[draw["line"]]
        ringing = time.perf_counter()
        inbound = await self._deliver(
            result, phone, "/retell/inbound", {"event": "call_inbound", "call_inbound": envelope}
        )
        if inbound is not None:
            result.ring_ms = (time.perf_counter() - ringing) * 1000
        else:
            result.failures.append("http_error")
            await self._think()  # the caller listens to a line that does not answer, then hangs up
            return result
        self._webhook(result, phone, {"event": "call_started", "call": envelope})
        await self._think()
        if draw["kind"] == "ask":
            await self._function(result, draw, "list_services", {})
            await self._think()
            await self._function(result, draw, "get_opening_hours", {})
        elif draw["kind"] in CHANGES:
            await self._change(result, draw)  # what an earlier call booked: found by number and name
        else:
            await self._book(result, draw)
        self._webhook(result, phone, {"event": "call_ended", "call": envelope})
        return result

    async def _book(self, result: CallResult, draw: dict[str, Any]) -> None:
        when = {"datum": draw["day"], "uhrzeit": draw["time"]}
        for _ in range(3):  # the asked time, then an offered alternative, twice at most
            ask = {"dienstleistung": draw["service"], **when}
            checked = await self._function(result, draw, "check_availability", ask)
            if not checked.get("frei"):
                offered = checked.get("alternativen") or []
                if not offered:
                    return
                when = {"datum": offered[0]["datum"], "uhrzeit": offered[0]["uhrzeit"]}
                await self._think()
                continue
            await self._think()
            result.booking_attempts += 1
            booked = await self._function(result, draw, "book_appointment", {**ask, "name": draw["name"]})
            if booked.get("gebucht") or booked.get("angefragt"):
                result.booked, result.heard_at = True, _heard_at(booked)
                return
            offered = booked.get("alternativen") or []
            if not offered:
                return
            when = {"datum": offered[0]["datum"], "uhrzeit": offered[0]["uhrzeit"]}

    async def _change(self, result: CallResult, draw: dict[str, Any]) -> None:
        """Cancel or move the caller's appointment: ask without a reference (it is read back), then
        again with the reference read out; a move to a taken time takes an offered one, twice at
        most, as `_book` does."""
        name = "cancel_appointment" if draw["kind"] == "cancel" else "reschedule_appointment"
        args: dict[str, Any] = {"name": draw["name"]}
        if name == "reschedule_appointment":
            args.update(neues_datum=draw["move_day"], neue_uhrzeit=draw["move_time"])
        read_back = await self._function(result, draw, name, args)
        referenz = read_back.get("referenz")
        if not referenz:
            return
        for _ in range(3):
            await self._think()
            done = await self._function(result, draw, name, {**args, "referenz": referenz})
            if done.get("ok"):
                result.cancelled = name == "cancel_appointment"
                result.moved = name == "reschedule_appointment"
                result.heard_at = _heard_at(done) if result.moved else None
                return
            if done.get("reason") in ("timeout", "http_error"):
                result.move_unanswered = name == "reschedule_appointment"
                return
            offered = done.get("alternativen") or []
            if name == "cancel_appointment" or not offered:
                return
            args.update(neues_datum=offered[0]["datum"], neue_uhrzeit=offered[0]["uhrzeit"])

    def _webhook(self, result: CallResult, phone: RetellPhone, body: dict[str, Any]) -> None:
        """Send a call webhook without holding up the call, as Retell does ("triggered in order,
        but not blocking"): the conversation goes on while it is delivered, again if need be."""

        async def deliver() -> None:
            if await self._deliver(result, phone, "/retell/webhook", body) is None:
                result.webhooks_lost += 1

        task = asyncio.create_task(deliver())
        self._webhooks.add(task)
        task.add_done_callback(self._webhooks.discard)

    async def _deliver(
        self, result: CallResult, phone: RetellPhone, path: str, body: dict[str, Any]
    ) -> httpx.Response | None:
        """POST a call_inbound or webhook as Retell does: again after any answer but a 2xx, or
        none, up to `REDELIVERIES` times (each signed anew); None when no delivery got a 2xx, and
        what the last one got is kept in `result.http_errors` ("call_inbound: 503")."""
        pause, last = REDELIVERY_PAUSE[0], ""
        for attempt in range(1 + REDELIVERIES):
            if attempt:
                result.redeliveries += 1
                await asyncio.sleep(pause)
            pause = REDELIVERY_PAUSE[0]
            try:
                response = await phone.post(path, body)
            except httpx.HTTPError as error:
                last = type(error).__name__
                continue
            if response.is_success:
                return response
            pause, last = _retry_after(response, pause), str(response.status_code)
        result.http_errors.append(f"{body['event']}: {last}")
        return None


def _retry_after(response: httpx.Response, default: float) -> float:
    """The seconds a 503's Retry-After asks for, within `REDELIVERY_PAUSE`."""
    asked = response.headers.get("retry-after", "")
    seconds = float(asked) if asked.replace(".", "", 1).isdigit() else default
    return min(max(seconds, REDELIVERY_PAUSE[0]), REDELIVERY_PAUSE[1])
