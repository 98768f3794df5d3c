"""/metrics on the running server: the function families after a few calls, label values that never
carry a call id or a number, and the bearer token when one is set."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from tests.integration.retell_adapter.conftest import CALLER, SALON_NUMBER, RetellClient, running

from rezeption.app import create_app
from rezeption.domain.clock import FixedClock
from rezeption.settings import Settings
from rezeption.store import outbox
from rezeption.store.db import Database


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_function_calls_are_counted_by_function_and_outcome(retell: RetellClient) -> None:
    before = samples((await retell.http.get("/metrics")).text)
    await retell.function("list_services", {}, call_id="call_metrics_1")
    refused = await retell.function(
        "check_availability",
        {"dienstleistung": "Dauerwelle", "datum": "Dienstag", "uhrzeit": "10 Uhr"},
        call_id="call_metrics_1",
    )
    assert refused["ok"] is False
    response = await retell.http.get("/metrics")
    assert response.status_code == 200
    after = samples(response.text)

    def grew(name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return after.get(key, 0.0) - before.get(key, 0.0)

    ok = {"function": "list_services", "channel": "http", "outcome": "ok"}
    assert grew("rezeption_function_calls_total", **ok) == 1
    assert grew("rezeption_function_calls_total", function="check_availability", channel="http",
                outcome=refused["reason"]) == 1  # fmt: skip
    assert grew("rezeption_function_seconds_count", function="list_services", channel="http") == 1
    assert "call_metrics_1" not in response.text and CALLER[3:] not in response.text


async def test_a_scrape_without_the_token_is_refused_when_one_is_set(
    database_url: str, salon_id: int, clock: FixedClock
) -> None:
    token = "scrape-token-0123456789"
    settings = Settings(database_url=database_url, metrics_token=token, environment="test")  # type: ignore[arg-type]
    with running(create_app(settings, clock=clock)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            assert (await client.get("/metrics")).status_code == 401
            wrong = await client.get("/metrics", headers={"Authorization": "Bearer wrong"})
            good = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert wrong.status_code == 401 and "rezeption_" not in wrong.text
    assert good.status_code == 200 and "rezeption_function_calls" in good.text


async def test_after_a_few_calls_the_scrape_shows_bookings_caller_id_dates_and_the_database_facts(
    retell: RetellClient, database: Database, clock: FixedClock, salon_id: int
) -> None:
    before = samples((await retell.http.get("/metrics")).text)
    inbound = {"event": "call_inbound", "call_inbound": {"from_number": CALLER, "to_number": SALON_NUMBER}}
    assert (await retell.post("/retell/inbound", inbound)).status_code == 200
    booked = await retell.function(
        "book_appointment",
        {
            "name": "Peter Schuster",
            "dienstleistung": "Bartpflege",
            "datum": "Donnerstag",
            "uhrzeit": "13 Uhr",
        },
    )
    assert booked["gebucht"] is True
    await retell.function(
        "check_availability", {"dienstleistung": "Bart", "datum": "2023-11-06", "uhrzeit": "13:00"}
    )
    async with database.write() as session, session.begin():  # a caller waiting 10 minutes for a call back
        await outbox.enqueue(
            session, "callback_request", {"appointment_id": 1}, at=clock.now() - timedelta(minutes=10),
            tenant_id=salon_id,
        )  # fmt: skip
    text = (await retell.http.get("/metrics")).text
    after = samples(text)

    def grew(name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return after.get(key, 0.0) - before.get(key, 0.0)

    def now(name: str, **labels: str) -> float:
        return after[(name, frozenset(labels.items()))]

    assert grew("rezeption_bookings_total", provider="local", result="ok", reason="ok") == 1
    assert grew("rezeption_caller_id_total", outcome="unknown") == 1
    assert grew("rezeption_past_year_dates_total") == 1
    assert grew("rezeption_flag_decisions_total", flag="caller_id", answer="true") == 1
    assert now("rezeption_metrics_database_up") == 1
    assert now("rezeption_callback_requests_waiting") == 1
    assert now("rezeption_callback_request_oldest_age_seconds") == 600
    assert now("rezeption_pending_appointments") == 0
    assert now("rezeption_outbox_jobs", kind="calendar_cancel", status="pending") == 0
    for family in ("rezeption_outbox_oldest_job_age_seconds", "rezeption_saga_steps",
                   "rezeption_reconcile_found", "rezeption_calendar_request_seconds",
                   "rezeption_calendar_errors", "rezeption_slot_cache_lookups",
                   "rezeption_calcom_key_refused", "rezeption_calendar_breaker_state",
                   "rezeption_calcom_rate_limit_remaining", "rezeption_database_deadlocks"):  # fmt: skip
        assert f"# HELP {family}" in text, family  # declared, even before a first sample
    assert "Peter" not in text and CALLER[3:] not in text


def test_several_processes_are_summed_in_multiprocess_mode(tmp_path: Path) -> None:
    """Two processes count into PROMETHEUS_MULTIPROC_DIR; a third one's scrape shows the sum."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    count = (
        "from rezeption.ops.metrics import observe_function\n"
        "observe_function('list_services', 'http', {'ok': True}, 0.02)"
    )
    for _ in range(2):
        subprocess.run([sys.executable, "-c", count], env=env, check=True, timeout=60)
    scrape = (
        "import sys\nfrom rezeption.ops.metrics import exposition\nsys.stdout.write(exposition().decode())"
    )
    text = subprocess.run(
        [sys.executable, "-c", scrape], env=env, check=True, timeout=60, capture_output=True, text=True
    ).stdout
    found = samples(text)
    ok = frozenset({"function": "list_services", "channel": "http", "outcome": "ok"}.items())
    assert found[("rezeption_function_calls_total", ok)] == 2
    assert (
        found[
            (
                "rezeption_function_seconds_count",
                frozenset({"function": "list_services", "channel": "http"}.items()),
            )
        ]
        == 2
    )
