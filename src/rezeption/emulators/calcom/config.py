"""Configuration of the Cal.com emulator: who can book what, when, and which faults to inject.

Owns the pydantic models of the config (a dict or a YAML file), its defaults (one salon in
Europe/Berlin with two event types) and the loader. Times of day are ``"HH:MM-HH:MM"`` ranges in
the schedule's zone; ``now`` freezes the emulator's clock (move it with ``POST /_emulator/clock``).
"""

from __future__ import annotations

from datetime import datetime, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "EmulatorConfig",
    "EventTypeConfig",
    "FaultRule",
    "RateLimitConfig",
    "ScheduleConfig",
    "UserConfig",
    "load_config",
]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

FaultMode = Literal[
    "latency",
    "server_error",
    "reset",
    "lost_response",
    "rate_limited",
    "auth_expired",
    "slot_stolen",
    "concurrent_duplicate",
    "race_window",
    "refuse_booking",
    "stale_slots",
    "hold_expiry",
    "reserved_slot_uid_unsupported",
    "pending",
    "dst_bug",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserConfig(_Strict):
    """A Cal.com user who hosts event types."""

    id: int
    username: str
    name: str
    email: str
    time_zone: str = "Europe/Berlin"
    schedule_id: int


class ScheduleConfig(_Strict):
    """Weekly working hours in one zone, e.g. ``{"mon": ["09:00-18:00"]}``."""

    id: int
    time_zone: str = "Europe/Berlin"
    weekly: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("time_zone")
    @classmethod
    def _zone_exists(cls, value: str) -> str:
        ZoneInfo(value)
        return value

    @field_validator("weekly")
    @classmethod
    def _valid_ranges(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for day, ranges in value.items():
            if day not in WEEKDAYS:
                raise ValueError(f"unknown weekday {day!r}, use one of {WEEKDAYS}")
            for item in ranges:
                parse_range(item)
        return value

    def windows(self, weekday: int) -> list[tuple[time, time]]:
        """Working windows for a weekday (0 = Monday)."""
        return [parse_range(item) for item in self.weekly.get(WEEKDAYS[weekday], [])]


def parse_range(text: str) -> tuple[time, time]:
    """``"09:00-18:00"`` → (09:00, 18:00); ``24:00`` is not allowed, end must follow start."""
    start_text, _, end_text = text.partition("-")
    start, end = time.fromisoformat(start_text.strip()), time.fromisoformat(end_text.strip())
    if end <= start:
        raise ValueError(f"working window {text!r} must end after it starts")
    return start, end


class EventTypeConfig(_Strict):
    """A bookable event type (a salon service) with its host."""

    id: int
    slug: str
    title: str
    length: int = 30
    length_options: list[int] = Field(default_factory=list)
    slot_interval: int | None = None
    minimum_booking_notice: int = 0
    before_buffer: int = 0
    after_buffer: int = 0
    booking_window_days: int | None = None
    requires_confirmation: bool = False
    hidden: bool = False
    host_id: int
    host_ids: list[int] = Field(default_factory=list)
    """A round-robin team event type's hosts (Cal.com picks a free one per booking); empty: host_id."""
    schedule_id: int | None = None


class RateLimitConfig(_Strict):
    """Requests allowed per tracker (API key, else client address) per window."""

    limit: int = 120
    window_seconds: int = 60
    block_seconds: int = 60


class FaultRule(_Strict):
    """Inject ``mode`` into requests matching ``method`` and ``path`` (glob).

    Fires on every match, or only on the ``nth`` match (1-based), or on the first ``count``
    matches; each firing is further subject to ``probability`` (drawn from the seeded RNG).
    """

    mode: FaultMode
    method: str = "*"
    path: str = "*"
    probability: float = Field(default=1.0, ge=0.0, le=1.0)
    count: int | None = Field(default=None, ge=1)
    nth: int | None = Field(default=None, ge=1)
    params: dict[str, Any] = Field(default_factory=dict)


def _default_users() -> list[UserConfig]:
    return [
        UserConfig(id=7, username="friseur1", name="Friseur 1", email="friseur1@salon.example", schedule_id=5)
    ]


def _default_schedules() -> list[ScheduleConfig]:
    days = {day: ["09:00-18:00"] for day in WEEKDAYS[:5]}
    days["sat"] = ["09:00-14:00"]
    return [ScheduleConfig(id=5, time_zone="Europe/Berlin", weekly=days)]


def _default_event_types() -> list[EventTypeConfig]:
    return [
        EventTypeConfig(id=42, slug="haarschnitt", title="Haarschnitt", length=30, host_id=7),
        EventTypeConfig(id=43, slug="faerben", title="Färben", length=90, slot_interval=30, host_id=7),
    ]


class EmulatorConfig(_Strict):
    """Everything the emulator starts from; ``POST /_emulator/reset`` returns to it."""

    api_keys: list[str] = Field(default_factory=lambda: ["cal_test_rezeption"])
    expired_api_keys: list[str] = Field(default_factory=list)
    now: datetime | None = None
    seed: int = 0
    reservation_ttl_minutes: int = 5
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)
    users: list[UserConfig] = Field(default_factory=_default_users)
    schedules: list[ScheduleConfig] = Field(default_factory=_default_schedules)
    event_types: list[EventTypeConfig] = Field(default_factory=_default_event_types)
    faults: list[FaultRule] = Field(default_factory=list)

    @field_validator("now")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("now must carry a zone, e.g. 2025-10-20T08:00:00Z")
        return value


def load_config(source: str | Path | dict[str, Any] | EmulatorConfig | None) -> EmulatorConfig:
    """A config from a YAML path, a dict, an existing config, or the defaults (``None``)."""
    if source is None:
        return EmulatorConfig()
    if isinstance(source, EmulatorConfig):
        return source
    if isinstance(source, dict):
        return EmulatorConfig.model_validate(source)
    raw = yaml.safe_load(Path(source).read_text(encoding="utf-8")) or {}
    return EmulatorConfig.model_validate(raw)
