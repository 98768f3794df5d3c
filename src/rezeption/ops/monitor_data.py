"""What `rezeption monitor` shows, read from the database (and, when given, a /metrics scrape): the
last hour of function calls (bookings per minute, success, p50/p95 per function, caller-ID outcomes,
the latest failures with their reasons), the outbox, callback requests and pending rows, and the
counters only the servers keep (orphans, compensations). The old plan needed hand-written SQL
for this; here it is one read of the indexed traces plus the scrape's facts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import quantiles
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from rezeption.domain.clock import require_aware
from rezeption.ops.metrics import Fact, booking_result
from rezeption.ops.metrics_db import database_facts
from rezeption.store.db import Database
from rezeption.store.tables import FunctionCallTraceRow, TenantRow

WINDOW = timedelta(hours=1)
MAX_TRACES = 100_000  # the last hour of a busy salon group is far below; bounded all the same
NOT_THE_CALLERS_ASK = frozenset(
    {"internal_error", "invalid_arguments", "call_mismatch", "unknown_call", "changed_meanwhile"}
)
"""Refusals that are our failures although not the calendar's (shown among the latest failures)."""
BOOK = "book_appointment"


@dataclass(frozen=True)
class FunctionStats:
    """One function's calls in the window."""

    calls: int
    ok: int
    failed: int  # our or the calendar's failures (not the caller's ask)
    p50_ms: float
    p95_ms: float


@dataclass(frozen=True)
class Failure:
    """A recent failed function call, without personal data."""

    at: datetime
    salon: str
    function: str
    reason: str
    latency_ms: int


@dataclass
class Snapshot:
    """Everything one frame of the monitor shows."""

    now: datetime
    bookings_per_minute: list[tuple[datetime, int, int]] = field(default_factory=list)  # minute, ok, failed
    functions: dict[str, FunctionStats] = field(default_factory=dict)
    caller_id: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    facts: dict[str, float] = field(default_factory=dict)  # database gauges, summed over labels
    counters: dict[str, float] | None = None  # from /metrics, when scraped

    @property
    def booking_success(self) -> float | None:
        """ok / (ok + failed) of book_appointment in the window; None without any."""
        stats = self.functions.get(BOOK)
        if stats is None or stats.ok + stats.failed == 0:
            return None
        return stats.ok / (stats.ok + stats.failed)


async def snapshot(
    database: Database,
    now: datetime,
    *,
    salon: str | None = None,
    metrics: dict[str, float] | None = None,
) -> Snapshot:
    """The last hour, read now (one salon's when `salon` is a slug)."""
    now = require_aware(now)
    since = now - WINDOW
    query = (
        select(
            FunctionCallTraceRow.at,
            FunctionCallTraceRow.function,
            FunctionCallTraceRow.ok,
            FunctionCallTraceRow.reason,
            FunctionCallTraceRow.latency_ms,
            FunctionCallTraceRow.reply,
            TenantRow.slug,
        )
        .join(TenantRow, TenantRow.id == FunctionCallTraceRow.tenant_id)
        .where(FunctionCallTraceRow.at >= since, FunctionCallTraceRow.at <= now)
        .order_by(FunctionCallTraceRow.at.desc())
        .limit(MAX_TRACES)
    )
    if salon is not None:
        query = query.where(TenantRow.slug == salon)
    async with database.statement() as conn:
        rows = (await conn.execute(query)).all()
    result = Snapshot(now=now, counters=metrics)
    result.facts = _summed(await database_facts(database, now))
    _fill(result, rows, since)
    return result


def _fill(result: Snapshot, rows: Sequence[Any], since: datetime) -> None:
    latencies: dict[str, list[int]] = {}
    tally: dict[str, Counter[str]] = {}
    minutes: dict[datetime, list[int]] = {}
    for at, function, ok, reason, latency_ms, reply, slug in rows:
        if function == "call_inbound":
            result.caller_id[str((reply or {}).get("caller", "unknown"))] += 1
            continue
        if function == "llm_connect":
            continue
        failed = not ok and (booking_result(reason) == "failed" or reason in NOT_THE_CALLERS_ASK)
        latencies.setdefault(function, []).append(int(latency_ms))
        counts = tally.setdefault(function, Counter())
        counts["calls"] += 1
        counts["ok"] += bool(ok)
        counts["failed"] += failed
        if failed and len(result.failures) < 10:
            result.failures.append(Failure(at, slug, function, reason or "?", int(latency_ms)))
        if function == BOOK:
            minute = require_aware(at).replace(second=0, microsecond=0)
            slot = minutes.setdefault(minute, [0, 0])
            slot[0] += bool(ok)
            slot[1] += failed
    for function, counts in sorted(tally.items()):
        p50, p95 = _percentiles(latencies[function])
        result.functions[function] = FunctionStats(counts["calls"], counts["ok"], counts["failed"], p50, p95)
    result.bookings_per_minute = [
        (m, ok, failed) for m, (ok, failed) in sorted(minutes.items()) if m >= since
    ]


def _percentiles(values: list[int]) -> tuple[float, float]:
    if len(values) == 1:
        return float(values[0]), float(values[0])
    cuts = quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[94]


def _summed(facts: list[Fact]) -> dict[str, float]:
    """Database gauges by name: counts summed over their labels, ages the largest."""
    summed: dict[str, float] = {}
    for name, _, _, value in facts:
        if name.endswith("_age_seconds") or name.endswith("_up"):
            summed[name] = max(summed.get(name, 0.0), value)
        else:
            summed[name] = summed.get(name, 0.0) + value
    return summed


SCRAPED = (
    "rezeption_reconcile_found",
    "rezeption_saga_compensations",
    "rezeption_database_deadlocks",
    "rezeption_calcom_key_refused",
    "rezeption_past_year_dates",
)


async def scrape(url: str, token: str | None = None, *, patience: float = 3.0) -> dict[str, float]:
    """The counters only the servers keep, by "family{label=value}" (e.g. orphans found), from a
    /metrics endpoint. Raises httpx errors when it does not answer."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=patience) as client:
        response = await client.get(url, headers=headers)
        response.raise_for_status()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        if family.name not in SCRAPED:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                found[f"{family.name}{{{labels}}}" if labels else family.name] = sample.value
    return found
