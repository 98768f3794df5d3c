"""Speech out: dates and times as a German receptionist says them."""

from __future__ import annotations

from datetime import date, time

import pytest

from rezeption.language import join_alternatives, speak_date, speak_time, speak_when

WEDNESDAY = date(2025, 11, 5)


@pytest.mark.parametrize(
    ("value", "spoken"),
    [
        (time(14, 30), "14:30 Uhr"),
        (time(9, 0), "9 Uhr"),
        (time(9, 5), "9:05 Uhr"),
        (time(12, 0), "12 Uhr"),
        (time(0, 0), "0 Uhr"),
        (time(3, 0), "3 Uhr nachts"),
        (time(6, 30), "6:30 Uhr morgens"),
        (time(18, 0), "18 Uhr"),
    ],
)
def test_speak_time(value: time, spoken: str) -> None:
    assert speak_time(value) == spoken


@pytest.mark.parametrize(
    ("value", "spoken"),
    [
        (date(2025, 11, 5), "heute"),
        (date(2025, 11, 6), "morgen"),
        (date(2025, 11, 7), "übermorgen"),
        (date(2025, 11, 10), "am Montag, dem 10. November"),
        (date(2026, 1, 3), "am Samstag, dem 3. Januar"),
        (date(2026, 11, 5), "am Donnerstag, dem 5. November 2026"),
        (date(2026, 3, 1), "am Sonntag, dem 1. März"),
    ],
)
def test_speak_date(value: date, spoken: str) -> None:
    assert speak_date(value, WEDNESDAY) == spoken


def test_speak_when_joins_date_and_time_like_a_receptionist() -> None:
    assert speak_when(date(2025, 11, 6), time(14, 30), date(2025, 11, 3)) == (
        "am Donnerstag, dem 6. November, um 14:30 Uhr"
    )
    assert speak_when(date(2025, 11, 6), time(9, 0), WEDNESDAY) == "morgen um 9 Uhr"


@pytest.mark.parametrize(
    ("items", "spoken"),
    [
        ([], ""),
        (["14:30 Uhr"], "14:30 Uhr"),
        (["14:30 Uhr", "15:15 Uhr"], "14:30 Uhr oder 15:15 Uhr"),
        (["9 Uhr", "10 Uhr", "11 Uhr"], "9 Uhr, 10 Uhr oder 11 Uhr"),
    ],
)
def test_join_alternatives(items: list[str], spoken: str) -> None:
    assert join_alternatives(items) == spoken


def test_join_alternatives_takes_another_conjunction() -> None:
    assert join_alternatives(["Anna", "Ben"], "und") == "Anna und Ben"
