"""Prometheus metrics (prometheus-client): what the engineer on call reads at /metrics.

With several server processes, set PROMETHEUS_MULTIPROC_DIR (an empty folder shared by them, as
prometheus-client's multiprocess mode wants) and every process's samples are summed at each scrape;
unset, /metrics shows this process. Label values are bounded: function names from our tool list,
outcomes from our reply codes (anything else is "other"), routes with their ids cut out, salon
slugs (one per configured salon); never a call id, a name or a number.

Facts that live in the database (outbox depth and age, callback requests waiting, pending rows) are
not counted by any process: `ops.metrics_db` reads them at each scrape (`exposition(facts=...)`).
The alert rules over these families are in deploy/prometheus/alerts.yml.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

VOICE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0)
"""Seconds, fit for a voice line: a caller notices 0.3 s, hangs up after a few seconds."""
_CODE = re.compile(r"^[a-z_]{1,40}$")
_ROUTE_WORDS = frozenset(
    {
        "v1",
        "v2",
        "slots",
        "available",
        "bookings",
        "event-types",
        "cancel",
        "reschedule",
        "confirm",
        "decline",
        "me",
        "schedules",
        "webhooks",
        "users",
        "teams",
        "organizations",
        "calendars",
        "busy-times",
    }
)
SYSTEM_FAILURES = frozenset(
    {"calendar_unavailable", "calendar_busy", "calendar_not_configured", "unavailable", "other"}
)
"""Reasons a booking failed because of us or the calendar, not because of what the caller asked."""

FUNCTION_CALLS = Counter(
    "rezeption_function_calls",
    "The agent's function calls (HTTP and the dialog engine), by function and outcome.",
    ["function", "channel", "outcome"],
)
FUNCTION_SECONDS = Histogram(
    "rezeption_function_seconds",
    "Time from request to reply of the agent's function calls.",
    ["function", "channel"],
    buckets=VOICE_BUCKETS,
)
FIRST_WORDS_SECONDS = Histogram(
    "rezeption_dialog_first_words_seconds",
    "Custom-LLM socket: time from response_required to the first words sent (a holding line counts).",
    buckets=VOICE_BUCKETS,
)
HOLDING_LINES = Counter(
    "rezeption_dialog_holding_lines", "Holding lines spoken while an answer was worked out."
)


BOOKINGS = Counter(
    "rezeption_bookings",
    "Booking attempts by provider and result: ok, refused (a rule or a taken slot: the caller's ask) "
    "or failed (the calendar or we failed), with the reason code.",
    ["provider", "result", "reason"],
)
SAGA_STEPS = Counter(
    "rezeption_saga_steps",
    "Steps of the Cal.com saga: create, confirm, compensate, resolve, by outcome.",
    ["step", "outcome"],
)
COMPENSATIONS = Counter(
    "rezeption_saga_compensations",
    "Cancelling a calendar booking we could not keep: ok, queued (retried by the worker), "
    "failed (the worker gave up: an orphan until an operator acts).",
    ["outcome"],
)
OUTBOX_RUNS = Counter(
    "rezeption_outbox_job_runs",
    "Outbox jobs run by the worker: ok, retry (failed, tried again later), dead (given up).",
    ["kind", "outcome"],
)
COMPENSATION_REASONS = frozenset({"mismatch", "confirm_failed"})
"""The `why` of a cancel job that undoes a booking the saga could not keep."""
RECONCILE_FOUND = Counter(
    "rezeption_reconcile_found",
    "What the reconciler found and repaired: orphan (booked there, not here: cancelled there), "
    "pending (an overdue pending row settled), imported, cancelled_here, conflict, error.",
    ["kind"],
)
RECONCILE_RUNS = Counter("rezeption_reconcile_runs", "Reconcile runs over one salon.")
CALLER_ID = Counter(
    "rezeption_caller_id",
    "Caller recognition: matched, shared (several people at one number: never greeted by name), "
    "unknown, no_consent, disabled (flag off), no_number.",
    ["outcome"],
)
CALENDAR_SECONDS = Histogram(
    "rezeption_calendar_request_seconds",
    "External calendar requests, by provider and route (ids cut out).",
    ["provider", "route"],
    buckets=VOICE_BUCKETS,
)
CALENDAR_ERRORS = Counter(
    "rezeption_calendar_errors",
    "External calendar requests that failed: timeout, unreachable, http_5xx, http_4xx, rate_limited "
    "(429), budget (our own budget did not send it), key_refused (401/403).",
    ["provider", "route", "kind"],
)
CALCOM_KEY_REFUSED = Counter(
    "rezeption_calcom_key_refused", "Cal.com answered 401/403 to a salon's API key.", ["salon"]
)
CALCOM_RATE_REMAINING = Gauge(
    "rezeption_calcom_rate_limit_remaining",
    "Requests Cal.com says are left in its window for the salon's key (its X-RateLimit-Remaining).",
    ["salon"],
    multiprocess_mode="mostrecent",
)
BREAKER_STATE = Gauge(
    "rezeption_calendar_breaker_state",
    "Circuit breaker of a salon's Cal.com client: 0 closed, 1 half-open, 2 open.",
    ["salon", "breaker"],
    multiprocess_mode="mostrecent",
)
SLOT_CACHE = Counter(
    "rezeption_slot_cache_lookups",
    "Cal.com slot pictures: fresh (answered from the cache), fetched, stale (the last known picture "
    "because Cal.com was slow or away).",
    ["result"],
)
PAST_YEAR_DATES = Counter(
    "rezeption_past_year_dates",
    "Dates the agent sent with a year already past (the old system's 2023 bug); never booked.",
)
DEADLOCKS = Counter(
    "rezeption_database_deadlocks",
    "PostgreSQL deadlocks: handled (two claims on one slot: one hears slot_taken) or unhandled (a 503).",
    ["handled"],
)
FLAG_DECISIONS = Counter(
    "rezeption_flag_decisions", "Feature-flag decisions by flag and answer.", ["flag", "answer"]
)
ADMISSION_SHED = Counter(
    "rezeption_admission_shed",
    "Requests turned away under overload before any work (ops.admission), by route kind and why: "
    "full (the line was full), late (the expected wait too long), waited (no turn in time).",
    ["route", "reason"],
)
ADMISSION_WAIT = Histogram(
    "rezeption_admission_wait_seconds",
    "Time an admitted request waited in line for its turn.",
    ["route"],
    buckets=VOICE_BUCKETS,
)
ADMISSION_IN_FLIGHT = Gauge(
    "rezeption_admission_in_flight",
    "Requests at work now (the admission gate's turns in use).",
    multiprocess_mode="livesum",
)


def route_label(path: str) -> str:
    """A request path with every segment that is not one of Cal.com's route words cut to ":id"
    ("/v2/bookings/:id/cancel"): a bounded label whatever the ids look like."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    return "/" + "/".join(p if p in _ROUTE_WORDS else ":id" for p in parts if p)


def booking_result(reason: str | None) -> str:
    """ok, refused (the caller's ask cannot be met) or failed (we or the calendar failed)."""
    if reason is None:
        return "ok"
    return "failed" if reason in SYSTEM_FAILURES or not _CODE.match(reason) else "refused"


def observe_booking(provider: str, reason: str | None) -> None:
    """Count one booking attempt (reason None: booked)."""
    code = reason if reason is None or _CODE.match(reason) else "other"
    BOOKINGS.labels(provider, booking_result(code), code or "ok").inc()


def outcome_label(reply: dict[str, object]) -> str:
    """ "ok", or the reply's reason code ("slot_taken", "unavailable", ...), bounded."""
    if reply.get("ok"):
        return "ok"
    reason = reply.get("reason")
    return reason if isinstance(reason, str) and _CODE.match(reason) else "other"


def observe_function(function: str, channel: str, reply: dict[str, object], seconds: float) -> None:
    """Count one function call and its latency."""
    FUNCTION_CALLS.labels(function, channel, outcome_label(reply)).inc()
    FUNCTION_SECONDS.labels(function, channel).observe(seconds)


Fact = tuple[str, str, Mapping[str, str], float]
"""A gauge read at scrape time: name, help, labels, value."""


class _Facts(Collector):
    def __init__(self, facts: Iterable[Fact]) -> None:
        self.facts = list(facts)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families: dict[str, GaugeMetricFamily] = {}
        for name, help_text, labels, value in self.facts:
            family = families.get(name)
            if family is None:
                family = families[name] = GaugeMetricFamily(name, help_text, labels=list(labels))
            family.add_metric(list(labels.values()), value)
        yield from families.values()


def exposition(facts: Iterable[Fact] = ()) -> bytes:
    """The text format for a scrape: every process's samples in multiprocess mode, else this one's,
    then the database facts read for this scrape."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        counted = bytes(generate_latest(registry))
    else:
        counted = bytes(generate_latest())
    read = CollectorRegistry(auto_describe=False)
    read.register(_Facts(facts))
    return counted + bytes(generate_latest(read))
