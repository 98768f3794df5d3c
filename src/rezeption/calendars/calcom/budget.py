"""How many requests we may still send with one Cal.com API key: a token bucket shared by processes.

Cal.com allows 120 requests a minute per key; the request after that gets 429 and the key is
blocked for 60 s. We never get there: every request first takes a token from the key's bucket.
The bucket holds at most `burst` tokens and refills at `per_minute` a minute, so any 60 s hold at
most `burst + per_minute` requests (20 + 96 = 116 by default, under the 120). Three priorities:
- writes (create, cancel, reschedule, and the read-back of an ambiguous write: `write_priority()`)
  may empty the bucket and wait briefly (`write_patience`) for a token;
- a caller's reads stop at `write_reserve` tokens and never wait: a read refused here is answered
  from the slot picture instead;
- background reads (`background()`: the picture's refresh at call_inbound, the reconciler) stop at
  `write_reserve + read_reserve` and wait patiently (`background_patience`) for their turn.
So a busy minute's refreshes never crowd out a caller's read, and no read crowds out a booking.

When Cal.com's own `X-RateLimit-Remaining` says fewer are left than we think (another client on the
same key), the bucket shrinks to match (`observe`).

`MemoryRequestBudget` serves one process; `RedisRequestBudget` keeps the bucket in Redis (one Lua
script, atomic, with Redis's own clock), so several server processes and the worker share it.
Written here rather than taken from a library: the limiters on PyPI (limits, aiolimiter) have no
priorities and no way to follow the server's remaining count.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import time
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
    """The bucket of one API key (the salon file's `calendar.settings.rate_limit`)."""

    per_minute: float = 96.0
    burst: float = 20.0
    write_reserve: float = 4.0
    read_reserve: float = 4.0
    write_patience: float = 1.0  # seconds a write waits for a token before it is refused
    background_patience: float = 30.0

    @property
    def per_second(self) -> float:
        return self.per_minute / 60.0

    def floor(self, kind: Kind) -> float:
        """The tokens a request of `kind` must leave in the bucket."""
        if kind == "write":
            return 0.0
        if kind == "read":
            return self.write_reserve
        return self.write_reserve + self.read_reserve

    def patience(self, kind: Kind) -> float:
        """How long a request of `kind` may wait for a token."""
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
    """One process's bucket (monotonic time)."""

    def __init__(self, config: BudgetConfig | None = None) -> None:
        self.config = config or BudgetConfig()
        self._tokens = self.config.burst
        self._at = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.config.burst, self._tokens + (now - self._at) * self.config.per_second)
        self._at = now

    def _try(self, kind: Kind) -> float:
        """0 when a token was taken, else the seconds until one could be."""
        self._refill()
        floor = self.config.floor(kind)
        if self._tokens - 1 >= floor:
            self._tokens -= 1
            return 0.0
        return (floor + 1 - self._tokens) / self.config.per_second

    async def take(self, kind: Kind) -> bool:
        deadline = time.monotonic() + self.config.patience(kind)
        while (wait := self._try(kind)) > 0.0:
            if time.monotonic() + wait > deadline:
                return False
            await asyncio.sleep(wait)
        return True

    async def observe(self, remaining: int) -> None:
        self._refill()
        self._tokens = min(self._tokens, max(0.0, remaining - self.config.write_reserve / 2))


_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, burst, floor = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil then tokens, at = burst, now end
tokens = math.min(burst, tokens + (now - at) * rate)
local wait = 0
if tokens - 1 >= floor then tokens = tokens - 1 else wait = (floor + 1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], 600)
return tostring(wait)
"""

_CAP = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, burst, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil then tokens, at = burst, now end
tokens = math.min(burst, tokens + (now - at) * rate, cap)
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], 600)
return 1
"""


class RedisRequestBudget:
    """The bucket in Redis, shared by every process that uses the same key."""

    def __init__(self, redis: Redis, api_key: str, config: BudgetConfig | None = None) -> None:
        self.redis = redis
        self.config = config or BudgetConfig()
        digest = hashlib.sha256(api_key.encode()).hexdigest()[:16]  # never the key itself
        self.key = f"rezeption:calcom-budget:{digest}"
        self._take = redis.register_script(_TAKE)
        self._cap = redis.register_script(_CAP)
        self._fallback = MemoryRequestBudget(self.config)  # while Redis is away: this process alone

    async def _try(self, kind: Kind) -> float:
        floor = self.config.floor(kind)
        args = [self.config.per_second, self.config.burst, floor]
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
        cap = max(0.0, remaining - self.config.write_reserve / 2)
        try:
            await self._cap(keys=[self.key], args=[self.config.per_second, self.config.burst, cap])
        except (RedisError, OSError):
            await self._fallback.observe(remaining)


def request_budget_from_url(redis_url: str | None, api_key: str, config: BudgetConfig) -> RequestBudget:
    """Redis when configured (shared by processes), else this process's own bucket."""
    if redis_url:
        redis = Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
        return RedisRequestBudget(redis, api_key, config)
    return MemoryRequestBudget(config)
