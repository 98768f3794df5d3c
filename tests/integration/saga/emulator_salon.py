"""The saga tests' emulator: the Cal.com demo salon mirrored by `emulators.calcom.from_salon`, under
Cal.com's real limit of 120 requests a minute (the saga tests stay far below it)."""

from __future__ import annotations

from pathlib import Path

from rezeption.emulators.calcom.from_salon import emulator_config
from rezeption.store.salon_file import SalonFile, read_salon

ROOT = Path(__file__).resolve().parents[3]
CALCOM_SALON = ROOT / "salons" / "friseur1-calcom.yaml"

__all__ = ["CALCOM_SALON", "calcom_salon", "emulator_config"]


def calcom_salon(base_url: str) -> SalonFile:
    """The Cal.com demo salon pointed at `base_url`."""
    salon = read_salon(CALCOM_SALON)
    salon.calendar.settings["base_url"] = base_url
    return salon
