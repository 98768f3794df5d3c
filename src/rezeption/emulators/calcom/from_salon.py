"""An emulator config that mirrors a salon file, as a salon would set up its Cal.com account: one
Cal.com user per stylist, one event type per service and stylist (one id shared by several stylists
becomes a round-robin team event type), each user's schedule = the stylist's hours minus breaks, and
Cal.com's real rate limit (120 requests a minute per API key) unless a test says otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, time
from typing import Any

from rezeption.store.salon_file import SalonFile, Weekday


def _minus_breaks(hours: list[list[str]], breaks: list[list[str]]) -> list[str]:
    windows: list[str] = []
    for start, end in hours:
        cursor = start
        for b_start, b_end in sorted(breaks):
            if cursor < b_start < end:
                windows.append(f"{cursor}-{b_start}")
                cursor = b_end
        windows.append(f"{cursor}-{end}")
    return windows


def _ranges(hours: Mapping[Weekday, list[tuple[time, time]]]) -> dict[str, list[list[str]]]:
    return {d: [[a.strftime("%H:%M"), b.strftime("%H:%M")] for a, b in r] for d, r in hours.items()}


def emulator_config(salon: SalonFile, now: datetime | None = None, **extra: Any) -> dict[str, Any]:
    """The emulator config for `salon` (its `calendar.settings` name event types, hosts and key);
    `now` freezes the emulator's clock, `extra` replaces top-level keys (a test's rate limit)."""
    settings = salon.calendar.settings
    if salon.calendar.provider != "calcom" or "hosts" not in settings or "event_types" not in settings:
        raise ValueError(f"salon {salon.slug!r} has no Cal.com calendar with hosts and event_types")
    hosts: dict[str, int] = settings["hosts"]
    users, schedules = [], []
    for entry in salon.staff:
        hours, breaks = _ranges(entry.hours), _ranges(entry.breaks)
        host = hosts[entry.key]
        weekly = {day: _minus_breaks(ranges, breaks.get(day, [])) for day, ranges in hours.items()}
        users.append(
            {
                "id": host,
                "username": entry.key,
                "name": entry.name,
                "email": f"{entry.key}@salon.example",
                "schedule_id": host,
            }
        )
        schedules.append({"id": host, "time_zone": salon.timezone, "weekly": weekly})
    by_id: dict[int, dict[str, Any]] = {}
    for service in salon.services:
        for staff_key, type_id in settings["event_types"][service.key].items():
            known = by_id.get(type_id)
            if known is not None:  # one id for several stylists: a round-robin team event type
                known["host_ids"] = [*(known.get("host_ids") or [known["host_id"]]), hosts[staff_key]]
                continue
            by_id[type_id] = {
                "id": type_id,
                "slug": f"{service.key}-{staff_key}",
                "title": service.name,
                "length": service.duration,
                "slot_interval": salon.booking.slot_grid_minutes,
                "minimum_booking_notice": salon.booking.min_notice_minutes,
                "before_buffer": service.buffer_before,
                "after_buffer": service.buffer_after,
                "host_id": hosts[staff_key],
            }
    config: dict[str, Any] = {
        "api_keys": [settings["api_key"]],
        "seed": 7,
        "users": users,
        "schedules": schedules,
        "event_types": list(by_id.values()),
        **extra,
    }
    if now is not None:
        config["now"] = now.isoformat()
    return config
