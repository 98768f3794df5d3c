"""Prometheus metrics (prometheus-client): what the engineer on call reads at /metrics.

With several server processes, set PROMETHEUS_MULTIPROC_DIR (an empty folder shared by them, as
prometheus-client's multiprocess mode wants) and every process's samples are summed at each scrape;
unset, /metrics shows this process. Label values are bounded: function names from our tool list,
outcomes from our reply codes (anything else is "other"); never a call id, a name or a number.
Issue 16 adds the rest of the families (bookings, saga, outbox, caller ID, Cal.com).
"""

from __future__ import annotations

import os
import re

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

VOICE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0)
"""Seconds, fit for a voice line: a caller notices 0.3 s, hangs up after a few seconds."""
_CODE = re.compile(r"^[a-z_]{1,40}$")

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


def exposition() -> bytes:
    """The text format for a scrape: every process's samples in multiprocess mode, else this one's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return bytes(generate_latest(registry))
    return bytes(generate_latest())
