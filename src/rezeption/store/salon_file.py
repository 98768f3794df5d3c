"""The salon file: one YAML document that describes a salon completely, validated with Pydantic.

Operators edit it and load it with `rezeption tenants load FILE`; loading again updates the salon
in place (services and staff matched by key; ones missing from the file are deactivated, never
deleted, so past appointments keep their references).
"""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rezeption.domain.model import WEEKDAYS

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Key = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


class SalonFileError(ValueError):
    """The salon file cannot be used; the message says where and why."""


def _check_hours(hours: dict[Weekday, list[tuple[time, time]]]) -> dict[Weekday, list[tuple[time, time]]]:
    for day, ranges in hours.items():
        for start, end in ranges:
            if end <= start:
                raise ValueError(f"{day}: {start:%H:%M}-{end:%H:%M} must end after it starts")
    return hours


class Strict(BaseModel):
    """Unknown keys are typos: refuse them."""

    model_config = ConfigDict(extra="forbid")


class CalendarSection(Strict):
    """Where bookings live: our database (`local`) or Cal.com."""

    provider: Literal["local", "calcom"] = "local"
    settings: dict[str, Any] = Field(default_factory=dict)


class BookingSection(Strict):
    """The salon's booking policy."""

    min_notice_minutes: int = Field(60, ge=0)
    horizon_days: int = Field(90, ge=1, le=730)
    slot_grid_minutes: int = Field(15, ge=5, le=120)
    change_min_notice_hours: int = Field(2, ge=0)
    transcript_retention_days: int = Field(90, ge=1, le=3650)  # calls' transcripts purged after this
    max_active_per_caller: int = Field(4, ge=1, le=50)  # future appointments per number / per name
    max_bookings_per_call: int = Field(3, ge=1, le=20)  # future appointments booked in one phone call


class Absence(Strict):
    """Away from `start` to `end`: whole local days (inclusive) or aware instants."""

    start: date | datetime
    end: date | datetime
    reason: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Absence:
        for value in (self.start, self.end):
            if isinstance(value, datetime) and value.tzinfo is None:
                raise ValueError("absence times need a UTC offset, e.g. 2025-12-22T09:00:00+01:00")
        if type(self.start) is not type(self.end):
            raise ValueError("absence start and end must both be dates or both be times")
        if self.end < self.start:
            raise ValueError("absence ends before it starts")
        return self


LocalDay = date  # a field below is named `date`


class ClosureEntry(Strict):
    """A salon-wide exception: closed on `date` (through `until`), or open only at `hours`.

    `yearly: true` repeats the month and day every year (Heiligabend, Silvester).
    """

    date: LocalDay
    until: LocalDay | None = None
    hours: list[tuple[time, time]] = Field(default_factory=list)
    reason: str | None = Field(None, max_length=200)
    yearly: bool = False

    @model_validator(mode="after")
    def _valid(self) -> ClosureEntry:
        if self.until is not None and self.until < self.date:
            raise ValueError("closure ends (until) before it starts (date)")
        if self.yearly and self.until is not None and (self.until - self.date).days > 366:
            raise ValueError("a yearly closure spans at most one year")
        for start, end in self.hours:
            if end <= start:
                raise ValueError(f"{start:%H:%M}-{end:%H:%M} must end after it starts")
        return self

    @property
    def last_day(self) -> LocalDay:
        """The last closed (or special) day, inclusive."""
        return self.until or self.date


class StaffEntry(Strict):
    """A stylist."""

    key: Key
    name: str = Field(min_length=1, max_length=200)
    hours: dict[Weekday, list[tuple[time, time]]]
    breaks: dict[Weekday, list[tuple[time, time]]] = Field(default_factory=dict)
    absences: list[Absence] = Field(default_factory=list)
    active: bool = True
    external_ref: str | None = None

    _hours = field_validator("hours", "breaks")(_check_hours)


class ServiceEntry(Strict):
    """A service."""

    key: Key
    name: str = Field(min_length=1, max_length=200)
    aliases: list[str] = Field(default_factory=list)
    duration: int = Field(gt=0, le=600, description="minutes")
    buffer_before: int = Field(0, ge=0, le=120)
    buffer_after: int = Field(0, ge=0, le=120)
    price: float | None = Field(None, ge=0)
    staff: list[Key] = Field(min_length=1)
    active: bool = True
    external_ref: str | None = None


class SalonFile(Strict):
    """A whole salon."""

    slug: Key
    name: str = Field(min_length=1, max_length=200)
    timezone: str = "Europe/Berlin"
    holiday_state: str = Field("BE", pattern=r"^[A-Z]{2}$")
    phone_numbers: list[Annotated[str, Field(pattern=r"^\+[1-9][0-9]{6,14}$")]] = Field(default_factory=list)
    retell_agent_ids: list[str] = Field(default_factory=list)
    # the salon's own line: callers who ask for a person are transferred there (agent as code)
    transfer_number: Annotated[str, Field(pattern=r"^\+[1-9][0-9]{6,14}$")] | None = None
    agent: Key | None = None  # the agent definition under agents/ (default: the slug)
    calendar: CalendarSection = Field(default_factory=CalendarSection)
    booking: BookingSection = Field(default_factory=BookingSection)
    opening_hours: dict[Weekday, list[tuple[time, time]]]
    closures: list[ClosureEntry] = Field(default_factory=list)
    staff: list[StaffEntry] = Field(min_length=1)
    services: list[ServiceEntry] = Field(min_length=1)

    _hours = field_validator("opening_hours")(_check_hours)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {value!r}") from error
        return value

    @model_validator(mode="after")
    def _references(self) -> SalonFile:
        staff_keys = [s.key for s in self.staff]
        service_keys = [s.key for s in self.services]
        for kind, keys in (("staff", staff_keys), ("service", service_keys)):
            dupes = sorted({k for k in keys if keys.count(k) > 1})
            if dupes:
                raise ValueError(f"duplicate {kind} keys: {', '.join(dupes)}")
        for service in self.services:
            unknown = sorted(set(service.staff) - set(staff_keys))
            if unknown:
                raise ValueError(f"service {service.key!r} names unknown staff: {', '.join(unknown)}")
        return self


def ranges_doc(ranges: list[tuple[time, time]]) -> list[list[str]]:
    """Wall-clock ranges in the stored JSON shape."""
    return [[start.strftime("%H:%M"), end.strftime("%H:%M")] for start, end in ranges]


def hours_doc(hours: dict[Weekday, list[tuple[time, time]]]) -> dict[str, list[list[str]]]:
    """Hours in the stored JSON shape, weekdays in calendar order."""
    return {day: ranges_doc(hours[day]) for day in WEEKDAYS if day in hours}


def parse_salon(text: str, source: str = "<salon file>") -> SalonFile:
    """Parse and validate a salon file's text; SalonFileError says precisely what is wrong."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SalonFileError(f"{source}: not valid YAML: {error}") from error
    if not isinstance(doc, dict):
        raise SalonFileError(f"{source}: expected a mapping at the top level")
    try:
        return SalonFile.model_validate(doc)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in error.errors()
        )
        raise SalonFileError(f"{source}: {problems}") from error


def read_salon(path: str | Path) -> SalonFile:
    """Read and validate the salon file at `path`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SalonFileError(f"{path}: cannot read: {error.strerror}") from error
    return parse_salon(text, str(path))
