"""Free slots of an external calendar: a rolling picture per salon, event type and local day.

Owns the stores: `MemorySlotCache` (one process) and `RedisSlotCache` (replicas share it, when
`REZEPTION_REDIS_URL` is set). An entry is a day's free (start, end) instants for one event type,
stamped with when its fetch began (`Picture.fetched_at`, wall-clock seconds), and the *holds* on it:
bookings we know of since (ours, or ones Cal.com's webhooks told of), each with the free spans it
took out. Entries are kept for `keep` seconds (an hour by default) as the last known picture;
whether one is fresh enough to answer without asking Cal.com is the caller's decision
(`Picture.fresh`).

- `put_days` stores the days of one range fetch (one /v2/slots request covers many days) and notes
  when the event type's whole range was fetched (`range_fetched_at`). Holds made after the fetch
  began are applied to it again (the fetch may not have seen them); an older hold stays (with its
  whole reach, and the spans it took that the fetch also found taken, for a later release to give
  back) while Cal.com still shows any of them taken, and goes when it shows them all free.
- `hold` takes a booking's reach out of days already known and remembers what it took, under the
  booking's key; `release` (the booking was cancelled or moved) puts back what that key took,
  except spans another hold still covers. Both keep the day fresh: our own writes and Cal.com's
  booking webhooks keep the picture current without a read. A release that finds no hold (the
  booking predates every picture we keep) leaves the day too full, never too empty of bookings:
  the slow background refresh shows the freed time again.
- `invalidate` marks days (or the whole salon) stale without dropping them: what we cannot know
  (a fault, a slot Cal.com refused us, a lost answer). Stale entries still answer when Cal.com is
  slow, away or over our request budget. A fetch that began before the invalidation does not make
  a day fresh.
- `claim` lets one process at a time do a named piece of shared work for a while: refresh an event
  type's range (`claim_refresh`; replicas without it each fetched the same range at the same
  call_inbound burst: measured 117 slot requests for 60 calls with two servers against 66 with
  one), or run a salon's scheduled reconcile pass.

Every update of an entry is read-modify-write: one Python step in memory, a WATCH/MULTI
transaction on the entries' keys in Redis (retried when another process wrote one meanwhile; one key
per day and event type, so only updates of the same day and event type ever meet).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import WatchError

__all__ = [
    "MemorySlotCache",
    "Picture",
    "RedisSlotCache",
    "SlotCache",
    "SlotSpans",
    "slot_cache_from_url",
]

SlotSpans = list[tuple[datetime, datetime]]
Reaches = Mapping[int, tuple[datetime, datetime]]
KEEP_SECONDS = 3600.0
ATTEMPTS = 8  # a Redis transaction retried this often when other processes keep writing the day


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

    async def claim(self, scope: str, name: str, seconds: float) -> bool:
        """Whether this process may do the salon's shared work `name` now: True for the first to
        ask within `seconds` (the claim then lapses by itself)."""
        ...

    async def claim_refresh(self, scope: str, event_type_id: int, seconds: float) -> bool:
        """Whether this process may refresh the event type's range now (`claim` of that range)."""
        ...

    async def mark(self, scope: str, name: str, seconds: float) -> None:
        """Set the salon's mark `name` for the next `seconds` (again: from now)."""
        ...

    async def marked(self, scope: str, name: str) -> bool:
        """Whether the salon's mark `name` is set and has not lapsed."""
        ...

    async def invalidate(self, scope: str, days: Sequence[date] | None = None) -> None:
        """Mark the salon's `days` (all of its days when None) stale; they stay as a fallback."""
        ...

    async def hold(self, scope: str, day: date, reaches: Reaches, key: str) -> None:
        """A booking `key` blocks, per event type, the starts of spans meeting its reach [a, b):
        take them out of the day's known spans and remember them under `key`."""
        ...

    async def release(self, scope: str, day: date, event_type_ids: Iterable[int], key: str) -> None:
        """The booking `key` is gone: put back what it took, unless another hold covers it."""
        ...


# --- one entry, as plain data -------------------------------------------------------------------
# {"at": fetched_at, "free": [[a, b], ...], "holds": [{"key", "reach": [a, b], "at", "taken": [...]}]}
# with every instant as epoch seconds.

Span = tuple[float, float]


@dataclass
class _Hold:
    key: str
    reach: Span
    at: float
    taken: list[Span] = field(default_factory=list)


@dataclass
class _Entry:
    at: float
    free: list[Span]
    holds: list[_Hold] = field(default_factory=list)

    def picture(self, invalidated_at: float) -> Picture:
        return Picture([(_instant(a), _instant(b)) for a, b in self.free], self.at, invalidated_at)


def _meets(span: Span, reach: Span) -> bool:
    return span[0] < reach[1] and reach[0] < span[1]


def _instant(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _seconds(spans: Iterable[tuple[datetime, datetime]]) -> list[Span]:
    return [(a.timestamp(), b.timestamp()) for a, b in spans]


def _encode(entry: _Entry) -> str:
    return json.dumps(
        {
            "at": entry.at,
            "free": entry.free,
            "holds": [{"key": h.key, "reach": h.reach, "at": h.at, "taken": h.taken} for h in entry.holds],
        }
    )


def _decode(raw: bytes | str) -> _Entry:
    value = json.loads(raw)
    holds = [
        _Hold(h["key"], (h["reach"][0], h["reach"][1]), float(h["at"]), [(a, b) for a, b in h["taken"]])
        for h in value.get("holds", ())
    ]
    return _Entry(float(value["at"]), [(a, b) for a, b in value["free"]], holds)


def _held(entry: _Entry, key: str, reach: Span, now: float, taken: Iterable[Span] = ()) -> None:
    """Take the spans meeting `reach` out of `entry` and remember them (and `taken`) under `key`."""
    took = {s for s in entry.free if _meets(s, reach)} | set(taken)
    entry.free = [s for s in entry.free if not _meets(s, reach)]
    for hold in entry.holds:
        if hold.key == key:
            hold.taken = sorted(set(hold.taken) | took)
            hold.reach = (min(hold.reach[0], reach[0]), max(hold.reach[1], reach[1]))
            hold.at = max(hold.at, now)
            return
    entry.holds.append(_Hold(key, reach, now, sorted(took)))


def _released(entry: _Entry, key: str) -> None:
    """Give back what `key` took, except spans another hold still covers."""
    gone = [h for h in entry.holds if h.key == key]
    if not gone:
        return
    entry.holds = [h for h in entry.holds if h.key != key]
    back = set()
    for span in {s for h in gone for s in h.taken}:
        other = next((h for h in entry.holds if _meets(span, h.reach)), None)
        if other is None:
            back.add(span)
        elif span not in other.taken:  # still blocked: it comes back with that hold's release
            other.taken = sorted({*other.taken, span})
    entry.free = sorted(set(entry.free) | back)


def _refreshed(old: _Entry | None, fetched: list[Span], began: float) -> _Entry | None:
    """The entry after a fetch that began at `began`; None when `old` is newer (keep it)."""
    if old is not None and old.at > began:
        return None
    entry = _Entry(began, sorted(fetched))
    present = set(fetched)
    for hold in old.holds if old is not None else ():
        if hold.at > began:  # made after the fetch began: the fetch may not have seen it
            _held(entry, hold.key, hold.reach, hold.at, hold.taken)
            continue
        still = [s for s in hold.taken if s not in present]
        if still:  # Cal.com still shows the booking: it keeps its whole reach out
            _held(entry, hold.key, hold.reach, hold.at, still)
    return entry


# --- the stores --------------------------------------------------------------------------------


class MemorySlotCache:
    """In-process picture."""

    def __init__(self, keep: float = KEEP_SECONDS) -> None:
        self.keep = keep
        self._entries: dict[tuple[str, date, int], _Entry] = {}
        self._invalid_days: dict[tuple[str, date], float] = {}
        self._invalid_all: dict[str, float] = {}
        self._ranges: dict[tuple[str, int], float] = {}
        self._claims: dict[tuple[str, str], float] = {}  # monotonic time a claim ends

    def _entry(self, key: tuple[str, date, int]) -> _Entry | None:
        entry = self._entries.get(key)
        return None if entry is None or time.time() - entry.at > self.keep else entry

    async def get(self, scope: str, day: date, event_type_id: int) -> Picture | None:
        entry = self._entry((scope, day, event_type_id))
        if entry is None:
            return None
        invalid = max(self._invalid_days.get((scope, day), 0.0), self._invalid_all.get(scope, 0.0))
        return entry.picture(invalid)

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
            key = (scope, day, event_type_id)
            entry = _refreshed(self._entry(key), _seconds(spans), fetched_at)
            if entry is not None:
                self._entries[key] = entry
        if whole_range:
            self._ranges[(scope, event_type_id)] = max(
                fetched_at, self._ranges.get((scope, event_type_id), 0.0)
            )

    async def claim(self, scope: str, name: str, seconds: float) -> bool:
        now = time.monotonic()
        if self._claims.get((scope, name), 0.0) > now:
            return False
        self._claims[(scope, name)] = now + seconds
        return True

    async def claim_refresh(self, scope: str, event_type_id: int, seconds: float) -> bool:
        return await self.claim(scope, f"refresh:{event_type_id}", seconds)

    async def mark(self, scope: str, name: str, seconds: float) -> None:
        self._claims[(scope, f"mark:{name}")] = time.monotonic() + seconds

    async def marked(self, scope: str, name: str) -> bool:
        return self._claims.get((scope, f"mark:{name}"), 0.0) > time.monotonic()

    async def range_fetched_at(self, scope: str, event_type_id: int) -> float:
        at = self._ranges.get((scope, event_type_id), 0.0)
        return 0.0 if at <= self._invalid_all.get(scope, 0.0) else at

    async def invalidate(self, scope: str, days: Sequence[date] | None = None) -> None:
        now = time.time()
        if days is None:
            self._invalid_all[scope] = now
        for day in days or ():
            self._invalid_days[(scope, day)] = now

    async def hold(self, scope: str, day: date, reaches: Reaches, key: str) -> None:
        now = time.time()
        for event_type, (start, end) in reaches.items():
            entry = self._entry((scope, day, event_type))
            if entry is not None:
                _held(entry, key, (start.timestamp(), end.timestamp()), now)

    async def release(self, scope: str, day: date, event_type_ids: Iterable[int], key: str) -> None:
        for event_type in event_type_ids:
            entry = self._entry((scope, day, event_type))
            if entry is not None:
                _released(entry, key)


class RedisSlotCache:
    """The picture in Redis: one key per salon, day and event type (so the event types of one range
    refresh, written side by side, never make each other's transactions retry), plus one hash of
    invalidation times and range fetch times per salon."""

    def __init__(self, redis: Redis, keep: float = KEEP_SECONDS) -> None:
        self.redis = redis
        self.keep = keep

    @staticmethod
    def _key(scope: str, day: date, event_type_id: int | str) -> str:
        return f"rezeption:slots2:{scope}:{day.isoformat()}:{event_type_id}"

    @staticmethod
    def _marks(scope: str) -> str:
        return f"rezeption:slots-marks:{scope}"

    async def get(self, scope: str, day: date, event_type_id: int) -> Picture | None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self._key(scope, day, event_type_id))
            pipe.hmget(self._marks(scope), f"day:{day.isoformat()}", "all")
            raw, marks = await pipe.execute()
        if raw is None:
            return None
        invalid = max(float(m) for m in (*marks, 0) if m is not None)
        return _decode(raw).picture(invalid)

    async def _update(self, changes: Mapping[str, Callable[[_Entry | None], _Entry | None]]) -> None:
        """Read each key, let its change give the new entry (None: leave it), and write them back in
        one transaction; again if another process wrote one of those keys meanwhile."""
        keys = list(changes)
        for _ in range(ATTEMPTS):
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(*keys)
                    raws = await pipe.mget(keys)
                    writes: dict[str, str] = {}
                    for key, raw in zip(keys, raws, strict=True):
                        entry = changes[key](_decode(raw) if raw is not None else None)
                        if entry is not None:
                            writes[key] = _encode(entry)
                    if not writes:
                        return  # leaving the block unwatches
                    pipe.multi()  # type: ignore[no-untyped-call]
                    for key, value in writes.items():
                        pipe.set(key, value, ex=int(self.keep))
                    await pipe.execute()
                    return
                except WatchError:
                    continue
        raise WatchError(f"slot picture busy: {len(keys)} entries written by others {ATTEMPTS} times")

    async def put_days(
        self,
        scope: str,
        event_type_id: int,
        days: Mapping[date, SlotSpans],
        *,
        fetched_at: float,
        whole_range: bool = False,
    ) -> None:
        def refresh(spans: list[Span]) -> Callable[[_Entry | None], _Entry | None]:
            return lambda old: _refreshed(old, spans, fetched_at)

        await self._update(
            {self._key(scope, day, event_type_id): refresh(_seconds(spans)) for day, spans in days.items()}
        )
        async with self.redis.pipeline(transaction=False) as pipe:
            if whole_range:
                pipe.hset(self._marks(scope), f"range:{event_type_id}", str(fetched_at))
            pipe.expire(self._marks(scope), int(self.keep))
            await pipe.execute()

    async def claim(self, scope: str, name: str, seconds: float) -> bool:
        key = f"rezeption:claim:{scope}:{name}"
        return bool(await self.redis.set(key, "1", nx=True, px=max(1, int(seconds * 1000))))

    async def claim_refresh(self, scope: str, event_type_id: int, seconds: float) -> bool:
        return await self.claim(scope, f"refresh:{event_type_id}", seconds)

    async def mark(self, scope: str, name: str, seconds: float) -> None:
        await self.redis.set(f"rezeption:mark:{scope}:{name}", "1", px=max(1, int(seconds * 1000)))

    async def marked(self, scope: str, name: str) -> bool:
        return bool(await self.redis.exists(f"rezeption:mark:{scope}:{name}"))

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

    async def hold(self, scope: str, day: date, reaches: Reaches, key: str) -> None:
        now = time.time()

        def take(reach: Span) -> Callable[[_Entry | None], _Entry | None]:
            def change(entry: _Entry | None) -> _Entry | None:
                if entry is not None:
                    _held(entry, key, reach, now)
                return entry

            return change

        changes = {
            self._key(scope, day, t): take((a.timestamp(), b.timestamp())) for t, (a, b) in reaches.items()
        }
        if changes:
            await self._update(changes)

    async def release(self, scope: str, day: date, event_type_ids: Iterable[int], key: str) -> None:
        def give_back(entry: _Entry | None) -> _Entry | None:
            if entry is None or not any(h.key == key for h in entry.holds):
                return None
            _released(entry, key)
            return entry

        changes = {self._key(scope, day, t): give_back for t in event_type_ids}
        if changes:
            await self._update(changes)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.redis.aclose()


def slot_cache_from_url(redis_url: str | None) -> SlotCache:
    """Redis when a URL is configured, else the in-process picture."""
    if redis_url:
        return RedisSlotCache(Redis.from_url(redis_url, socket_timeout=2.0, socket_connect_timeout=2.0))
    return MemorySlotCache()
