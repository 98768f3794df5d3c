"""Free slots of an external calendar, cached per salon, event type and local day.

Owns the cache stores: `MemorySlotCache` (one process) and `RedisSlotCache` (replicas share it, when
`REZEPTION_REDIS_URL` is set). Entries live `ttl` seconds and are dropped by our own writes and by
Cal.com webhooks (`forget`). A day's entry is one hash `slots:<scope>:<day>` with one field per event
type, so forgetting a day (or a whole salon) is one delete. Values are lists of (start, end) instants.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import date, datetime
from typing import Protocol

from redis.asyncio import Redis

__all__ = ["MemorySlotCache", "RedisSlotCache", "SlotCache", "SlotSpans", "slot_cache_from_url"]

SlotSpans = list[tuple[datetime, datetime]]


class SlotCache(Protocol):
    """Where fetched free slots wait for the next caller."""

    async def get(self, scope: str, day: date, event_type_id: int) -> SlotSpans | None: ...

    async def put(self, scope: str, day: date, event_type_id: int, spans: SlotSpans, ttl: float) -> None: ...

    async def forget(self, scope: str, days: Sequence[date] | None = None) -> None:
        """Drop the salon's entries of `days` (all of its days when None)."""
        ...


class MemorySlotCache:
    """In-process cache (monotonic expiry; no wall clock involved)."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, date, int], tuple[float, SlotSpans]] = {}

    async def get(self, scope: str, day: date, event_type_id: int) -> SlotSpans | None:
        """The cached spans, or None when missing or expired."""
        entry = self._entries.get((scope, day, event_type_id))
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    async def put(self, scope: str, day: date, event_type_id: int, spans: SlotSpans, ttl: float) -> None:
        """Keep `spans` for `ttl` seconds."""
        self._entries[(scope, day, event_type_id)] = (time.monotonic() + ttl, list(spans))

    async def forget(self, scope: str, days: Sequence[date] | None = None) -> None:
        """Drop entries of the salon (of `days`, or all)."""
        wanted = None if days is None else set(days)
        for key in [k for k in self._entries if k[0] == scope and (wanted is None or k[1] in wanted)]:
            self._entries.pop(key, None)


class RedisSlotCache:
    """Shared cache in Redis: one hash per salon and day, expiring after the TTL."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    @staticmethod
    def _key(scope: str, day: date) -> str:
        return f"rezeption:slots:{scope}:{day.isoformat()}"

    async def get(self, scope: str, day: date, event_type_id: int) -> SlotSpans | None:
        """The cached spans, or None."""
        raw = await self.redis.hget(self._key(scope, day), str(event_type_id))
        if raw is None:
            return None
        return [(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in json.loads(raw)]

    async def put(self, scope: str, day: date, event_type_id: int, spans: SlotSpans, ttl: float) -> None:
        """Store `spans`; the day's hash expires `ttl` seconds after its newest write."""
        key = self._key(scope, day)
        value = json.dumps([[a.isoformat(), b.isoformat()] for a, b in spans])
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, str(event_type_id), value)
            pipe.expire(key, max(int(ttl), 1))
            await pipe.execute()

    async def forget(self, scope: str, days: Sequence[date] | None = None) -> None:
        """Delete the salon's day hashes."""
        if days is not None:
            keys = [self._key(scope, d) for d in days]
        else:
            keys = [k async for k in self.redis.scan_iter(match=f"rezeption:slots:{scope}:*", count=500)]
        if keys:
            await self.redis.delete(*keys)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.redis.aclose()


def slot_cache_from_url(redis_url: str | None) -> SlotCache:
    """Redis when a URL is configured, else the in-process cache."""
    if redis_url:
        return RedisSlotCache(Redis.from_url(redis_url, socket_timeout=2.0, socket_connect_timeout=2.0))
    return MemorySlotCache()
