"""Free slots of an external calendar: a rolling picture per salon, event type and local day.

Owns the stores: `MemorySlotCache` (one process) and `RedisSlotCache` (replicas share it, when
`REZEPTION_REDIS_URL` is set). An entry is a day's free (start, end) instants for one event type,
stamped with when its fetch began (`Picture.fetched_at`, wall-clock seconds). Entries are kept for
`keep` seconds (an hour by default) as the last known picture; whether one is fresh enough to answer
without asking Cal.com is the caller's decision (`Picture.fresh`).

- `put_days` stores the days of one range fetch (one /v2/slots request covers many days) and notes
  when the event type's whole range was fetched (`range_fetched_at`).
- `claim_refresh` lets one process at a time refresh an event type's range in the background
  (replicas without it each fetched the same range at the same call_inbound burst: measured 117
  slot requests for 60 calls with two servers against 66 with one, and the key's budget ran out).
- `invalidate` marks days (or the whole salon) stale without dropping them: a Cal.com webhook or a
  cancel frees a slot we do not know yet. Stale entries still answer when Cal.com is slow, away or
  over our request budget. A fetch that began before the invalidation does not make a day fresh.
- `remove` takes an interval out of days already known (our own booking): they stay fresh.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from redis.asyncio import Redis

__all__ = ["MemorySlotCache", "Picture", "RedisSlotCache", "SlotCache", "SlotSpans", "slot_cache_from_url"]

SlotSpans = list[tuple[datetime, datetime]]
KEEP_SECONDS = 3600.0


@dataclass(frozen=True)
class Picture:
    """One day's known free spans of one event type, and how old that knowledge is."""

    spans: SlotSpans
    fetched_at: float
    invalidated_at: float = 0.0

    def fresh(self, refresh_seconds: float, now: float | None = None) -> bool:
        """Young enough, and not invalidated since its fetch began."""
        now = time.time() if now is None else now
        return self.fetched_at > self.invalidated_at and now - self.fetched_at < refresh_seconds


class SlotCache(Protocol):
    """Where fetched free slots wait for the next caller."""

    async def get(self, scope: str, day: date, event_type_id: int) -> Picture | None: ...

    async def put_days(
        self,
        scope: str,
        event_type_id: int,
        days: Mapping[date, SlotSpans],
        *,
        fetched_at: float,
        whole_range: bool = False,
    ) -> None: ...

    async def range_fetched_at(self, scope: str, event_type_id: int) -> float: ...

    async def claim_refresh(self, scope: str, event_type_id: int, seconds: float) -> bool:
        """Whether this process may refresh the event type's range now: True for the first to ask
        within `seconds` (one refresh at a time across the processes that share the picture)."""
        ...

    async def invalidate(self, scope: str, days: Sequence[date] | None = None) -> None:
        """Mark the salon's `days` (all of its days when None) stale; they stay as a fallback."""
        ...

    async def remove(
        self, scope: str, day: date, event_type_ids: Iterable[int], start: datetime, end: datetime
    ) -> None:
        """Take [start, end) out of the day's known spans of these event types (our own booking)."""
        ...


def _without(spans: SlotSpans, start: datetime, end: datetime) -> SlotSpans:
    return [(a, b) for a, b in spans if not (a < end and start < b)]


class MemorySlotCache:
    """In-process picture."""

    def __init__(self, keep: float = KEEP_SECONDS) -> None:
        self.keep = keep
        self._entries: dict[tuple[str, date, int], tuple[float, SlotSpans]] = {}
        self._invalid_days: dict[tuple[str, date], float] = {}
        self._invalid_all: dict[str, float] = {}
        self._ranges: dict[tuple[str, int], float] = {}
        self._claims: dict[tuple[str, int], float] = {}  # monotonic time a refresh claim ends

    async def get(self, scope: str, day: date, event_type_id: int) -> Picture | None:
        entry = self._entries.get((scope, day, event_type_id))
        if entry is None or time.time() - entry[0] > self.keep:
            return None
        invalid = max(self._invalid_days.get((scope, day), 0.0), self._invalid_all.get(scope, 0.0))
        return Picture(list(entry[1]), entry[0], invalid)

    async def put_days(
        self,
        scope: str,
        event_type_id: int,
        days: Mapping[date, SlotSpans],
        *,
        fetched_at: float,
        whole_range: bool = False,
    ) -> None:
        for day, spans in days.items():
            self._entries[(scope, day, event_type_id)] = (fetched_at, list(spans))
        if whole_range:
            self._ranges[(scope, event_type_id)] = fetched_at

    async def claim_refresh(self, scope: str, event_type_id: int, seconds: float) -> bool:
        now = time.monotonic()
        if self._claims.get((scope, event_type_id), 0.0) > now:
            return False
        self._claims[(scope, event_type_id)] = now + seconds
        return True

    async def range_fetched_at(self, scope: str, event_type_id: int) -> float:
        at = self._ranges.get((scope, event_type_id), 0.0)
        return 0.0 if at <= self._invalid_all.get(scope, 0.0) else at

    async def invalidate(self, scope: str, days: Sequence[date] | None = None) -> None:
        now = time.time()
        if days is None:
            self._invalid_all[scope] = now
        for day in days or ():
            self._invalid_days[(scope, day)] = now

    async def remove(
        self, scope: str, day: date, event_type_ids: Iterable[int], start: datetime, end: datetime
    ) -> None:
        for event_type in event_type_ids:
            entry = self._entries.get((scope, day, event_type))
            if entry is not None:
                self._entries[(scope, day, event_type)] = (entry[0], _without(entry[1], start, end))


class RedisSlotCache:
    """The picture in Redis: one hash per salon and day (a field per event type), plus one hash of
    invalidation times and one of range fetch times per salon."""

    def __init__(self, redis: Redis, keep: float = KEEP_SECONDS) -> None:
        self.redis = redis
        self.keep = keep

    @staticmethod
    def _key(scope: str, day: date) -> str:
        return f"rezeption:slots:{scope}:{day.isoformat()}"

    @staticmethod
    def _marks(scope: str) -> str:
        return f"rezeption:slots-marks:{scope}"

    @staticmethod
    def _encode(fetched_at: float, spans: SlotSpans) -> str:
        return json.dumps({"at": fetched_at, "spans": [[a.isoformat(), b.isoformat()] for a, b in spans]})

    @staticmethod
    def _decode(raw: bytes | str) -> tuple[float, SlotSpans]:
        value = json.loads(raw)
        spans = [(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in value["spans"]]
        return float(value["at"]), spans

    async def get(self, scope: str, day: date, event_type_id: int) -> Picture | None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(self._key(scope, day), str(event_type_id))
            pipe.hmget(self._marks(scope), f"day:{day.isoformat()}", "all")
            raw, marks = await pipe.execute()
        if raw is None:
            return None
        fetched_at, spans = self._decode(raw)
        invalid = max(float(m) for m in (*marks, 0) if m is not None)
        return Picture(spans, fetched_at, invalid)

    async def put_days(
        self,
        scope: str,
        event_type_id: int,
        days: Mapping[date, SlotSpans],
        *,
        fetched_at: float,
        whole_range: bool = False,
    ) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for day, spans in days.items():
                key = self._key(scope, day)
                pipe.hset(key, str(event_type_id), self._encode(fetched_at, spans))
                pipe.expire(key, int(self.keep))
            if whole_range:
                pipe.hset(self._marks(scope), f"range:{event_type_id}", str(fetched_at))
            pipe.expire(self._marks(scope), int(self.keep))
            await pipe.execute()

    async def claim_refresh(self, scope: str, event_type_id: int, seconds: float) -> bool:
        key = f"rezeption:slots-refresh:{scope}:{event_type_id}"
        return bool(await self.redis.set(key, "1", nx=True, px=max(1, int(seconds * 1000))))

    async def range_fetched_at(self, scope: str, event_type_id: int) -> float:
        at, invalid = await self.redis.hmget(self._marks(scope), f"range:{event_type_id}", "all")
        fetched = float(at) if at is not None else 0.0
        return 0.0 if fetched <= float(invalid or 0.0) else fetched

    async def invalidate(self, scope: str, days: Sequence[date] | None = None) -> None:
        now = str(time.time())
        fields: dict[Any, Any] = {"all": now} if days is None else {f"day:{d.isoformat()}": now for d in days}
        if fields:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hset(self._marks(scope), mapping=fields)
                pipe.expire(self._marks(scope), int(self.keep))
                await pipe.execute()

    async def remove(
        self, scope: str, day: date, event_type_ids: Iterable[int], start: datetime, end: datetime
    ) -> None:
        key = self._key(scope, day)
        fields = [str(t) for t in event_type_ids]
        if not fields:
            return
        raws = await self.redis.hmget(key, fields)
        updated: dict[Any, Any] = {}
        for field, raw in zip(fields, raws, strict=True):
            if raw is not None:
                fetched_at, spans = self._decode(raw)
                updated[field] = self._encode(fetched_at, _without(spans, start, end))
        if updated:
            await self.redis.hset(key, mapping=updated)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.redis.aclose()


def slot_cache_from_url(redis_url: str | None) -> SlotCache:
    """Redis when a URL is configured, else the in-process picture."""
    if redis_url:
        return RedisSlotCache(Redis.from_url(redis_url, socket_timeout=2.0, socket_connect_timeout=2.0))
    return MemorySlotCache()
