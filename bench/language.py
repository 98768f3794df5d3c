"""Benchmark: rezeption.language.resolve_when against dateparser and ctparse on the same case file.

Run: ``.venv/bin/python bench/language.py`` -> prints the figures, writes bench/results/language.json.

Scoring. Every case of tests/data/language_cases.txt has a reference time, the caller's date words
and time words, and the expected answer.
- rezeption is scored strictly: date, time, window, alternatives, approximate flag and reason code
  must all match (``accuracy``); ``accuracy_date_time`` scores it like the libraries.
- The libraries cannot express windows, alternatives or rejections, so they are scored on what they
  can say: the right date (or none) and the right time (or none). A rejected date is "none"; a
  window of hours is "no time".
- Each library gets its best settings and several ways of being asked (the two fields joined, or
  each field parsed on its own; ctparse with and without latent times). A library's overall figure
  is its best single way over all cases; per category it gets the best way for that category, so the
  per-category comparison is as generous to the libraries as it can be.
"""

from __future__ import annotations

import json
import logging
import sys
import time as clock
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests" / "unit" / "language")]

import ctparse  # noqa: E402
from ctparse.types import Interval, Time  # noqa: E402
from dateparser.date import DateDataParser  # noqa: E402
from language_case_file import Case, load_cases  # noqa: E402

from rezeption.language import When, resolve_when  # noqa: E402
from rezeption.language.dates import next_occurrence  # noqa: E402

RESULT_FILE = ROOT / "bench" / "results" / "language.json"
logging.getLogger("ctparse").setLevel(logging.CRITICAL)  # it logs every phrase it cannot resolve
Answer = tuple[date | None, time | None]


@dataclass(frozen=True)
class Way:
    """One way of asking a library: a name and a function (case -> date, time)."""

    name: str
    ask: Callable[[Case], Answer]


def _expected(case: Case) -> Answer:
    return case.date, case.time


def _strict(case: Case, when: When) -> bool:
    window = when.window
    return (
        when.date == case.date
        and when.time == case.time
        and ((window.first_day, window.last_day) if window and window.first_day else None) == case.window_days
        and ((window.start, window.end) if window and window.start else None) == case.window_hours
        and tuple(r.date for r in when.alternatives) == case.alternatives
        and when.approximate == case.approximate
        and when.reason == case.reason
    )


# --- dateparser ------------------------------------------------------------------------------------
def _dateparser(text: str, now: datetime) -> Answer:
    if not text.strip():
        return None, None
    parser = DateDataParser(
        languages=["de", "en"],
        settings={
            "PREFER_DATES_FROM": "future",
            "RELATIVE_BASE": now.replace(tzinfo=None),
            "RETURN_TIME_AS_PERIOD": True,
            "DATE_ORDER": "DMY",
        },
    )
    data = parser.get_date_data(text)
    if data.date_obj is None:
        return None, None
    moment = data.date_obj
    return moment.date(), moment.time().replace(second=0, microsecond=0) if data.period == "time" else None


# --- ctparse ---------------------------------------------------------------------------------------
def _ctparse(text: str, now: datetime, latent: bool) -> Answer:
    if not text.strip():
        return None, None
    today = now.date()
    try:
        parsed = ctparse.ctparse(text, ts=now.replace(tzinfo=None), timeout=1.0, latent_time=latent)
    except Exception:  # a library error counts as no answer
        return None, None
    if parsed is None:
        return None, None
    resolution = parsed.resolution
    if isinstance(resolution, Interval):
        start, end = resolution.start, resolution.end
        if start is not None and end is not None and start.isDate and end.isDate and start.dt == end.dt:
            return start.dt.date(), None
        if (
            start is not None
            and start.hasDate
            and (end is None or not end.hasDate or end.dt.date() == start.dt.date())
        ):
            return start.dt.date(), None  # a window of hours on one day: the day, no time
        return None, None
    if not isinstance(resolution, Time):
        return None, None
    day: date | None = None
    if resolution.year is not None and resolution.month is not None and resolution.day is not None:
        try:
            day = date(resolution.year, resolution.month, resolution.day)
        except ValueError:
            day = None
    elif resolution.month is not None and resolution.day is not None:
        day = next_occurrence(today, resolution.month, resolution.day)  # help it: fill in the year
    at = None
    if resolution.hour is not None:
        try:
            at = time(resolution.hour, resolution.minute or 0)
        except ValueError:
            at = None
    return day, at


def _joined(parse: Callable[[str, datetime], Answer]) -> Callable[[Case], Answer]:
    def ask(case: Case) -> Answer:
        return parse(f"{case.date_words} {case.time_words}", case.now)

    return ask


def _separate(parse: Callable[[str, datetime], Answer]) -> Callable[[Case], Answer]:
    """Date from the date field, time from the time field (either field may carry both)."""

    def ask(case: Case) -> Answer:
        day_of_date, time_of_date = parse(case.date_words, case.now)
        day_of_time, time_of_time = parse(case.time_words, case.now)
        day = day_of_date if case.date_words.strip() else None
        if day is None and time_of_time is None:
            day = day_of_time
        return day, time_of_time or time_of_date

    return ask


def _ct(latent: bool) -> Callable[[str, datetime], Answer]:
    return lambda text, now: _ctparse(text, now, latent)


LIBRARIES: dict[str, list[Way]] = {
    "dateparser": [
        Way("joined", _joined(_dateparser)),
        Way("separate", _separate(_dateparser)),
    ],
    "ctparse": [
        Way("joined, latent_time", _joined(_ct(True))),
        Way("separate, latent_time", _separate(_ct(True))),
        Way("joined", _joined(_ct(False))),
        Way("separate", _separate(_ct(False))),
    ],
}


def _score_library(cases: list[Case], ways: list[Way]) -> dict[str, object]:
    hits: dict[str, dict[str, list[bool]]] = {}
    seconds: dict[str, float] = {}
    for way in ways:
        per_category: dict[str, list[bool]] = defaultdict(list)
        started = clock.perf_counter()
        for case in cases:
            per_category[case.category].append(way.ask(case) == _expected(case))
        seconds[way.name] = clock.perf_counter() - started
        hits[way.name] = per_category
    overall = {name: sum(sum(v) for v in cats.values()) / len(cases) for name, cats in hits.items()}
    best = max(overall, key=lambda name: overall[name])
    categories = sorted({case.category for case in cases})
    per_category_best = {
        category: max(sum(hits[name][category]) / len(hits[name][category]) for name in hits)
        for category in categories
    }
    return {
        "accuracy": overall[best],
        "best_way": best,
        "ways": overall,
        "per_category": per_category_best,
        "resolutions_per_s": len(cases) / seconds[best],
    }


def _score_ours(cases: list[Case]) -> dict[str, object]:
    strict: dict[str, list[bool]] = defaultdict(list)
    lenient: dict[str, list[bool]] = defaultdict(list)
    failures = []
    for case in cases:
        when = resolve_when(case.date_words, case.time_words, case.now, opening_hours=case.opening_hours)
        ok = _strict(case, when)
        strict[case.category].append(ok)
        lenient[case.category].append((when.date, when.time) == _expected(case))
        if not ok:
            failures.append(
                f"line {case.line}: {case.date_words!r} / {case.time_words!r} -> {when.as_dict()}"
            )
    calls, started = 0, clock.perf_counter()
    while clock.perf_counter() - started < 2.0:
        for case in cases:
            resolve_when(case.date_words, case.time_words, case.now, opening_hours=case.opening_hours)
        calls += len(cases)
    rate = calls / (clock.perf_counter() - started)
    return {
        "accuracy": sum(sum(v) for v in strict.values()) / len(cases),
        "accuracy_date_time": sum(sum(v) for v in lenient.values()) / len(cases),
        "per_category": {c: sum(v) / len(v) for c, v in sorted(strict.items())},
        "per_category_date_time": {c: sum(v) / len(v) for c, v in sorted(lenient.items())},
        "resolutions_per_s": rate,
        "failures": failures,
    }


def main() -> dict[str, object]:
    """Score all three on the case file, print a table, write the JSON."""
    cases = load_cases()
    ours = _score_ours(cases)
    libraries = {name: _score_library(cases, ways) for name, ways in LIBRARIES.items()}
    counts: dict[str, int] = defaultdict(int)
    for case in cases:
        counts[case.category] += 1
    per_category = {
        category: {
            "cases": counts[category],
            "rezeption": ours["per_category"][category],  # type: ignore[index]
            "rezeption_date_time": ours["per_category_date_time"][category],  # type: ignore[index]
            **{name: result["per_category"][category] for name, result in libraries.items()},  # type: ignore[index]
        }
        for category in sorted(counts)
    }
    result: dict[str, object] = {
        "cases": len(cases),
        "accuracy": round(float(ours["accuracy"]), 4),  # type: ignore[arg-type]
        "accuracy_date_time": round(float(ours["accuracy_date_time"]), 4),  # type: ignore[arg-type]
        "dateparser_accuracy": round(float(libraries["dateparser"]["accuracy"]), 4),  # type: ignore[arg-type]
        "ctparse_accuracy": round(float(libraries["ctparse"]["accuracy"]), 4),  # type: ignore[arg-type]
        "resolutions_per_s": round(float(ours["resolutions_per_s"])),  # type: ignore[arg-type]
        "per_category": {
            c: {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
            for c, row in per_category.items()
        },
        "libraries": {
            name: {
                "best_way": result["best_way"],
                "ways": {k: round(v, 4) for k, v in result["ways"].items()},  # type: ignore[attr-defined]
                "resolutions_per_s": round(float(result["resolutions_per_s"]), 1),  # type: ignore[arg-type]
            }
            for name, result in libraries.items()
        },
        "settings": {
            "dateparser": "languages ['de','en'], PREFER_DATES_FROM 'future', "
            "RELATIVE_BASE = reference time, RETURN_TIME_AS_PERIOD, DATE_ORDER 'DMY'",
            "ctparse": "ts = reference time, timeout 1 s, latent_time on/off; a day and month without year "
            "completed to the next occurrence",
        },
        "failures": ours["failures"],
    }
    RESULT_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULT_FILE.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    _print(result)
    return result


def _print(result: dict[str, object]) -> None:
    print(f"cases: {result['cases']}")
    print(f"accuracy (rezeption, strict): {result['accuracy']:.2%}")
    print(f"accuracy_date_time (rezeption, scored like the libraries): {result['accuracy_date_time']:.2%}")
    print(f"dateparser_accuracy: {result['dateparser_accuracy']:.2%}")
    print(f"ctparse_accuracy: {result['ctparse_accuracy']:.2%}")
    print(f"resolutions_per_s: {result['resolutions_per_s']:,}")
    print(f"{'category':<12}{'cases':>6}{'rezeption':>11}{'date+time':>11}{'dateparser':>12}{'ctparse':>9}")
    for category, row in result["per_category"].items():  # type: ignore[attr-defined]
        print(
            f"{category:<12}{row['cases']:>6}{row['rezeption']:>11.1%}{row['rezeption_date_time']:>11.1%}"
            f"{row['dateparser']:>12.1%}{row['ctparse']:>9.1%}"
        )
    for line in result["failures"]:  # type: ignore[attr-defined]
        print("FAIL", line)


if __name__ == "__main__":
    main()
