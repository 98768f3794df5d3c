"""/metrics on the running server: the function families after a few calls, label values that never
carry a call id or a number, and the bearer token when one is set."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families
from tests.integration.retell_adapter.conftest import CALLER, RetellClient

from rezeption.app import create_app
from rezeption.settings import Settings


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


async def test_a_scrape_without_the_token_is_refused_when_one_is_set() -> None:
    settings = Settings(metrics_token="scrape-token-0123456789", environment="test")  # type: ignore[arg-type]
    guarded = create_app(settings)
    transport = httpx.ASGITransport(app=guarded)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
        good = await client.get("/metrics", headers={"Authorization": "Bearer scrape-token-0123456789"})
    assert good.status_code == 200 and "rezeption_function_calls" in good.text
