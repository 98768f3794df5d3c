"""Reads tests/data/language_cases.txt: one resolve_when case a line (format in the file's header)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

CASE_FILE = Path(__file__).resolve().parents[2] / "data" / "language_cases.txt"
SALON_ZONE = ZoneInfo("Europe/Berlin")


@dataclass(frozen=True)
class Case:
    """One line: the words, the reference time, and what resolve_when must answer."""

    line: int
    category: str
    now: datetime
    date_words: str
    time_words: str
    date: date | None = None
    time: time | None = None
    window_days: tuple[date, date] | None = None
    window_hours: tuple[time, time] | None = None
    alternatives: tuple[date, ...] = ()
    alternative_time: time | None = None
    approximate: bool = False
    reason: str | None = None
    opening_hours: tuple[time, time] | None = None
    raw_expected: str = field(default="", repr=False)


def _hours(text: str) -> tuple[time, time]:
    start, end = text.split("-")
    return time.fromisoformat(start), time.fromisoformat(end)


def _salon_time(text: str) -> datetime:
    """The written time in the salon's zone; the written offset must be the zone's offset then."""
    written = datetime.fromisoformat(text)
    local = written.astimezone(SALON_ZONE)
    if local.utcoffset() != written.utcoffset():
        raise ValueError(f"{text}: Europe/Berlin is at {local.utcoffset()} then")
    return local


def load_cases(path: Path = CASE_FILE) -> list[Case]:
    """Parse the case file; anchors ("@wed = <ISO>") name reference times."""
    anchors: dict[str, datetime] = {}
    cases: list[Case] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            name, value = (part.strip() for part in line.split("=", 1))
            anchors[name] = _salon_time(value)
            continue
        columns = [column.strip() for column in line.split("|")]
        category, now_text, date_words, time_words, expected = columns[:5]
        now = anchors[now_text] if now_text.startswith("@") else _salon_time(now_text)
        fields: dict[str, object] = {}
        for item in expected.split():
            key, _, value = item.partition("=")
            if key == "date":
                fields["date"] = date.fromisoformat(value)
            elif key == "time":
                fields["time"] = time.fromisoformat(value)
            elif key == "window":
                first, last = value.split("..")
                fields["window_days"] = (date.fromisoformat(first), date.fromisoformat(last))
            elif key == "hours":
                fields["window_hours"] = _hours(value)
            elif key == "alt":
                fields["alternatives"] = tuple(date.fromisoformat(v) for v in value.split(","))
            elif key == "alt_time":
                fields["alternative_time"] = time.fromisoformat(value)
            elif key == "approx":
                fields["approximate"] = True
            elif key == "reason":
                fields["reason"] = value
            else:
                raise ValueError(f"line {number}: unknown key {key!r}")
        opening = _hours(columns[5]) if len(columns) > 5 and columns[5] else None
        cases.append(
            Case(
                number,
                category,
                now,
                date_words,
                time_words,
                opening_hours=opening,
                raw_expected=expected,
                **fields,  # type: ignore[arg-type]
            )
        )
    return cases
