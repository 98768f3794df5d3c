"""Every line of tests/data/language_cases.txt, resolved and compared field by field."""

from __future__ import annotations

from collections import Counter

import pytest
from language_case_file import Case, load_cases

from rezeption.language import When, resolve_when

CASES = load_cases()


def _observed(case: Case, when: When) -> dict[str, object]:
    window = when.window
    return {
        "date": when.date,
        "time": when.time,
        "window_days": (window.first_day, window.last_day) if window and window.first_day else None,
        "window_hours": (window.start, window.end) if window and window.start else None,
        "alternatives": tuple(reading.date for reading in when.alternatives),
        "alternative_time": when.alternatives[0].time if when.alternatives else None,
        "approximate": when.approximate,
        "reason": when.reason,
    }


def _expected(case: Case) -> dict[str, object]:
    return {
        "date": case.date,
        "time": case.time,
        "window_days": case.window_days,
        "window_hours": case.window_hours,
        "alternatives": case.alternatives,
        "alternative_time": case.alternative_time,
        "approximate": case.approximate,
        "reason": case.reason,
    }


@pytest.mark.parametrize("case", CASES, ids=[f"L{c.line}-{c.category}" for c in CASES])
def test_case_file_line_resolves_as_written(case: Case) -> None:
    when = resolve_when(case.date_words, case.time_words, case.now, opening_hours=case.opening_hours)
    assert _observed(case, when) == _expected(case), (
        f"line {case.line}: {case.date_words!r} / {case.time_words!r}"
    )


def test_case_file_is_big_and_spread_across_the_year() -> None:
    categories = Counter(case.category for case in CASES)
    reference_days = {case.now.date().isoformat() for case in CASES}
    assert len(CASES) >= 300
    assert min(categories.values()) >= 10
    assert {"2025-03-30", "2025-10-26", "2025-12-31", "2025-11-09", "2025-11-10"} <= reference_days
    assert all(case.now.utcoffset() is not None for case in CASES)


def test_every_rejection_comes_with_a_german_sentence() -> None:
    for case in CASES:
        when = resolve_when(case.date_words, case.time_words, case.now, opening_hours=case.opening_hours)
        assert (when.reason is None) == (when.message is None), case.line
