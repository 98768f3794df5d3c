"""`rezeption loadtest`'s Cal.com options refuse what they cannot do before any call is made: a fault
profile without an emulator or with an unknown name, an emulator beyond this machine, a salon file
that does not load. The profiles never touch the emulator's rate limit."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rezeption.cli import app
from rezeption.ops.loadtest import CALCOM_FAULT_PROFILES, CALLS_PER_CLIENT, LoadTest, Plan, Scenarios

SCENARIOS = Path(__file__).resolve().parents[2] / "bench" / "loadtest_scenarios.yaml"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--faults", "faulty"], "--faults needs --calcom"),
        (["--calcom", "http://127.0.0.1:9", "--faults", "laggy"], "one of none, slow, faulty"),
        (["--calcom", "http://10.0.0.7:8765"], "127.0.0.1 only"),
        (["--salon", "does/not/exist.yaml"], "rezeption:"),
    ],
)
def test_the_cal_com_options_refuse_before_calling(args: list[str], says: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["loadtest", "--url", "http://127.0.0.1:9", *args])
    assert result.exit_code == 2, result.output
    assert says in result.output


def test_no_fault_profile_lifts_the_rate_limit_or_shortens_a_timeout() -> None:
    modes = {rule["mode"] for rules in CALCOM_FAULT_PROFILES.values() for rule in rules}
    assert modes <= {"latency", "server_error", "lost_response", "slot_stolen"}
    slow = CALCOM_FAULT_PROFILES["slow"]
    assert slow == [{"mode": "latency", "method": "*", "path": "/v2/*", "params": {"min": 0.8, "max": 1.2}}]
    assert all(rule in CALCOM_FAULT_PROFILES["faulty"] for rule in slow)


@pytest.mark.parametrize(("concurrency", "clients"), [(4, 1), (50, 1), (51, 2), (1000, 20)])
async def test_the_generator_spreads_its_calls_over_small_connection_pools(
    concurrency: int, clients: int
) -> None:
    """One httpx client per 50 calls: a single pool of 2,000 connections cost the generator more CPU
    than the server spent (1,000 calls at once), and its own delay showed up as our p99."""
    plan = Plan(calls=concurrency, concurrency=concurrency, think=0, deadline=1, seed=1)
    test = LoadTest("http://127.0.0.1:9", "key", plan, Scenarios.load(SCENARIOS))
    try:
        assert len(test.phones) == len(test.clients) == clients
        pools = [client._transport._pool._max_connections for client in test.clients]  # type: ignore[attr-defined]
        assert all(size <= 2 * CALLS_PER_CLIENT for size in pools) and sum(pools) >= 2 * concurrency
        lines = {test._draw(n)["line"] for n in range(concurrency)}
        assert lines == set(range(clients)), "every client carries calls"
    finally:
        for client in test.clients:
            await client.aclose()
