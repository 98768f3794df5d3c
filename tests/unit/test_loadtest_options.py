"""`rezeption loadtest`'s Cal.com options refuse what they cannot do before any call is made: a fault
profile without an emulator or with an unknown name, an emulator beyond this machine, a salon file
that does not load. The profiles never touch the emulator's rate limit."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rezeption.cli import app
from rezeption.ops.loadtest import CALCOM_FAULT_PROFILES


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
