"""The saga tests' emulator: the Cal.com demo salon mirrored by `emulators.calcom.from_salon`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from rezeption.emulators.calcom.from_salon import emulator_config as salon_emulator_config
from rezeption.store.salon_file import SalonFile, read_salon

ROOT = Path(__file__).resolve().parents[3]
CALCOM_SALON = ROOT / "salons" / "friseur1-calcom.yaml"
FUNCTIONAL_RATE_LIMIT = {"limit": 100000, "window_seconds": 60, "block_seconds": 60}
"""The saga tests prove what happens to one booking (faults, crashes, races), not throughput: they
may send more than Cal.com's 120 a minute. The busy minute under the real limit is proved in
tests/integration/calcom/test_calcom_request_budget.py and measured by bench/calcom.py."""


def emulator_config(salon: SalonFile, now: datetime | None, **extra: Any) -> dict[str, Any]:
    """The emulator config for `salon`, with the functional tests' rate limit unless `extra` sets one."""
    return salon_emulator_config(salon, now, **{"rate_limit": FUNCTIONAL_RATE_LIMIT, **extra})


def calcom_salon(base_url: str) -> SalonFile:
    """The Cal.com demo salon pointed at `base_url`."""
    salon = read_salon(CALCOM_SALON)
    salon.calendar.settings["base_url"] = base_url
    return salon
