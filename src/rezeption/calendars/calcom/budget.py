"""How many requests we may still send with one Cal.com API key: a sliding window shared by processes.

Cal.com allows 120 requests a minute per key; the request after that gets 429 and the key is
blocked for 60 s. We never get there: every request first takes a place in the key's window, which
holds at most `per_minute` requests (116 by default, under the 120) sent in the last
`window_seconds` (60). That is Cal.com's own rule, kept a little tighter, so a busy minute may use
all of it at once: 50 callers booking in the same ten seconds go through (a token bucket with a
small burst, what this was before, refused most of them while Cal.com had 70 requests to spare).
Three priorities:
- writes (create, cancel, reschedule, and the read-back of an ambiguous write: `write_priority()`)
  may fill the window and wait briefly (`write_patience`) for a place;
- a caller's reads stop `write_reserve` places short and never wait: a read refused here is
  answered from the slot picture instead;
- background reads (`background()`: the picture's refresh at call_inbound, the reconciler) stop at
  `write_reserve + read_reserve` short and wait patiently (`background_patience`) for their turn.
So a busy minute's refreshes never crowd out a caller's read, and no read crowds out a booking.

When Cal.com's own `X-RateLimit-Remaining` says fewer are left than we think (another client on the
same key), the window is filled up to match (`observe`).

`MemoryRequestBudget` serves one process; `RedisRequestBudget` keeps the window in Redis (a sorted
set, one Lua script, atomic, with Redis's own clock), so several server processes and the worker
share it. Written here rather than taken from a library: the limiters on PyPI (limits, aiolimiter)
have no priorities and no way to follow the server's remaining count.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Literal, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

__all__ = [
    "BudgetConfig",
    "MemoryRequestBudget",
    "RedisRequestBudget",
    "RequestBudget",
    "background",
    "current_kind",
    "request_budget_from_url",
    "write_priority",
]

Kind = Literal["read", "write", "background"]
_KIND: contextvars.ContextVar[Kind] = contextvars.ContextVar("calcom_request_kind", default="read")


@contextmanager
def _sending_as(kind: Kind) -> Iterator[None]:
    token = _KIND.set(kind)
    try:
        yield
    finally:
        _KIND.reset(token)


def write_priority() -> AbstractContextManager[None]:
    """Every request sent inside the block counts as a write (a safe write and its read-back)."""
    return _sending_as("write")


def background() -> AbstractContextManager[None]:
    """Reads sent inside the block wait their turn behind callers' reads (writes stay writes)."""
    return _sending_as("background")


def current_kind(write: bool) -> Kind:
    """The priority of a request: a write, or a read made on behalf of a write, or a read."""
    return "write" if write else _KIND.get()


@dataclass(frozen=True)
class BudgetConfig:
    """The window of one API key (the salon file's `calendar.settings.rate_limit`)."""

    per_minute: float = 116.0  # requests in any window (Cal.com: 120 a minute)
    window_seconds: float = 60.0
    write_reserve: float = 4.0
    read_reserve: float = 4.0
    write_patience: float = 1.0  # seconds a write waits for a place before it is refused
    background_patience: float = 30.0
    burst: float | None = None  # accepted from older salon files; the sliding window needs none

    def allowed(self, kind: Kind) -> float:
        """How many requests in the window a request of `kind` may find before it."""
        if kind == "write":
            return self.per_minute
        if kind == "read":
            return self.per_minute - self.write_reserve
        return self.per_minute - self.write_reserve - self.read_reserve

    def patience(self, kind: Kind) -> float:
        """How long a request of `kind` may wait for a place."""
        return {"write": self.write_patience, "read": 0.0, "background": self.background_patience}[kind]


class RequestBudget(Protocol):
    """A key's request budget (see the module docstring)."""

    config: BudgetConfig

    async def take(self, kind: Kind) -> bool:
        """Take one token for a request of `kind`; False when the budget says no."""
        ...

    async def observe(self, remaining: int) -> None:
        """Cal.com said `remaining` requests are left in its window: never believe in more."""
        ...


class MemoryRequestBudget:
    """One process's window (monotonic time)."""

    def __init__(self, config: BudgetConfig | None = None) -> None:
        self.config = config or BudgetConfig()
        self._sent: deque[float] = deque()  # when each request in the window was sent

    def _forget_old(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - self.config.window_seconds:
            self._sent.popleft()

    def _try(self, kind: Kind) -> float:
        """0 when a place was taken, else the seconds until one could be."""
        now = time.monotonic()
        self._forget_old(now)
        allowed = int(self.config.allowed(kind))
        if len(self._sent) < allowed:
            self._sent.append(now)
            return 0.0
        if allowed <= 0:
            return self.config.window_seconds
        frees_at = self._sent[len(self._sent) - allowed] + self.config.window_seconds
        return max(frees_at - now, 0.001)

    async def take(self, kind: Kind) -> bool:
        deadline = time.monotonic() + self.config.patience(kind)
        while (wait := self._try(kind)) > 0.0:
            if time.monotonic() + wait > deadline:
                return False
            await asyncio.sleep(wait)
        return True

    async def observe(self, remaining: int) -> None:
        now = time.monotonic()
        self._forget_old(now)
        free = self.config.per_minute - len(self._sent)
        believe = max(0.0, remaining - self.config.write_reserve / 2)
        for _ in range(int(free - believe)):
            self._sent.append(now)  # requests we did not send: another client on the same key


_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window, allowed = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
if used < allowed then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('EXPIRE', KEYS[1], math.ceil(window) * 2)
  return '0'
end
if allowed <= 0 then return tostring(window) end
local oldest = redis.call('ZRANGE', KEYS[1], used - allowed, used - allowed, 'WITHSCORES')
return tostring(math.max(tonumber(oldest[2]) + window - now, 0.001))
"""

_FILL = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window, limit, believe = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
local extra = math.floor(limit - used - believe)
for i = 1, extra do redis.call('ZADD', KEYS[1], now, ARGV[4] .. ':' .. i) end
redis.call('EXPIRE', KEYS[1], math.ceil(window) * 2)
return extra
"""


class RedisRequestBudget:
    """The window in Redis, shared by every process that uses the same key."""

    def __init__(self, redis: Redis, api_key: str, config: BudgetConfig | None = None) -> None:
        self.redis = redis
        self.config = config or BudgetConfig()
        digest = hashlib.sha256(api_key.encode()).hexdigest()[:16]  # never the key itself
        self.key = f"rezeption:calcom-window:{digest}"
        self._take = redis.register_script(_TAKE)
        self._fill = redis.register_script(_FILL)
        self._fallback = MemoryRequestBudget(self.config)  # while Redis is away: this process alone

    async def _try(self, kind: Kind) -> float:
        args: list[str | float] = [
            self.config.window_seconds,
            int(self.config.allowed(kind)),
            uuid.uuid4().hex,
        ]
        try:
            return float(await self._take(keys=[self.key], args=args))
        except (RedisError, OSError):
            return self._fallback._try(kind)

    async def take(self, kind: Kind) -> bool:
        deadline = time.monotonic() + self.config.patience(kind)
        while (wait := await self._try(kind)) > 0.0:
            if time.monotonic() + wait > deadline:
                return False
            await asyncio.sleep(wait)
        return True

    async def observe(self, remaining: int) -> None:
        believe = max(0.0, remaining - self.config.write_reserve / 2)
        args: list[str | float] = [
            self.config.window_seconds,
            self.config.per_minute,
            believe,
            f"observed:{uuid.uuid4().hex}",
        ]
        try:
            await self._fill(keys=[self.key], args=args)
        except (RedisError, OSError):
            await self._fallback.observe(remaining)


def request_budget_from_url(redis_url: str | None, api_key: str, config: BudgetConfig) -> RequestBudget:
    """Redis when configured (shared by processes), else this process's own bucket."""
    if redis_url:
        redis = Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
        return RedisRequestBudget(redis, api_key, config)
    return MemoryRequestBudget(config)
