"""resolve_when as the system calls it: the old failures, the result's shape, the CLI text."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from rezeption.language import REASONS, When, resolve_when
from rezeption.language.cli import parse_command, resolve_command

BERLIN = ZoneInfo("Europe/Berlin")
WEDNESDAY = datetime(2025, 11, 5, 10, 0, tzinfo=BERLIN)


@pytest.mark.parametrize(
    ("date_words", "time_words", "day", "at"),
    [
        ("heute", "14:00", date(2025, 11, 5), time(14, 0)),
        ("morgen", "14:00", date(2025, 11, 6), time(14, 0)),
        ("übermorgen", "um 9 Uhr bitte", date(2025, 11, 7), time(9, 0)),
        ("nächste Woche Montag", "14:00", date(2025, 11, 10), time(14, 0)),
        ("Donnerstag", "14 Uhr", date(2025, 11, 6), time(14, 0)),
        ("05.11.2023", "15 Uhr", date(2025, 11, 5), time(15, 0)),
        ("morgen", "halb drei", date(2025, 11, 6), time(14, 30)),
    ],
)
def test_the_old_systems_failures_resolve_correctly(
    date_words: str, time_words: str, day: date, at: time
) -> None:
    when = resolve_when(date_words, time_words, WEDNESDAY)
    assert (when.date, when.time, when.reason) == (day, at, None)
    assert when.complete


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        resolve_when("morgen", "14 Uhr", datetime(2025, 11, 5, 10, 0))  # noqa: DTZ001


def test_resolution_happens_in_the_zone_of_now() -> None:
    # 23:30 UTC on the 5th is already the 6th in Berlin: "morgen" is then the 7th.
    late_utc = datetime(2025, 11, 5, 23, 30, tzinfo=UTC)
    assert resolve_when("morgen", "", late_utc.astimezone(BERLIN)).date == date(2025, 11, 7)
    assert resolve_when("morgen", "", late_utc).date == date(2025, 11, 6)


def test_opening_hours_per_weekday_pick_the_reading_inside_them() -> None:
    hours = {3: [(time(12, 0), time(21, 0))], 4: [(time(8, 0), time(13, 0))]}
    assert resolve_when("Donnerstag", "um acht", WEDNESDAY, opening_hours=hours).time == time(20, 0)
    assert resolve_when("Freitag", "um acht", WEDNESDAY, opening_hours=hours).time == time(8, 0)


def test_an_ambiguous_next_weekday_is_not_complete() -> None:
    when = resolve_when("nächsten Freitag", "10 Uhr", WEDNESDAY)
    assert when.date == date(2025, 11, 7)
    assert [reading.date for reading in when.alternatives] == [date(2025, 11, 14)]
    assert not when.complete


def test_a_rejection_names_its_reason_and_says_it_in_german() -> None:
    when = resolve_when("heute", "9 Uhr", WEDNESDAY)
    assert when.reason == "past_time"
    assert when.time is None
    assert when.message == "9 Uhr ist heute schon vorbei. Welche Uhrzeit passt Ihnen?"
    assert set(REASONS) >= {"invalid_date", "invalid_time", "past_date", "past_time", "not_understood"}


def test_a_weekday_mismatch_offers_both_days() -> None:
    when = resolve_when("Freitag, der 6. November", "", WEDNESDAY)
    assert when.reason == "weekday_mismatch"
    assert when.date is None
    assert when.message is not None
    assert "Donnerstag" in when.message
    assert "morgen oder übermorgen" in when.message


def test_empty_words_are_no_answer_rather_than_a_rejection() -> None:
    assert resolve_when("", "", WEDNESDAY) == When()


def test_as_dict_is_json_with_iso_dates_and_hhmm_times() -> None:
    data = resolve_when("morgen", "vormittags", WEDNESDAY).as_dict()
    assert data["date"] == "2025-11-06"
    assert data["time"] is None
    assert data["window"] == {
        "first_day": "2025-11-06",
        "last_day": "2025-11-06",
        "start": "08:00",
        "end": "12:00",
    }
    json.dumps(data)


def test_parse_command_prints_json_for_the_given_now() -> None:
    printed = json.loads(parse_command("übermorgen", "halb drei", "2025-11-05T10:00:00+01:00", True))
    assert (printed["date"], printed["time"], printed["reason"]) == ("2025-11-07", "14:30", None)


def test_parse_command_reads_a_naive_now_as_salon_time_and_speaks_german() -> None:
    assert (
        parse_command("morgen", "9", "2025-11-05T10:00", False)
        == "morgen um 9 Uhr → Donnerstag, 06.11.2025, 09:00"
    )
    assert parse_command("blabla", "", "2025-11-05T10:00", False).startswith("not_understood: ")


def test_parse_says_when_it_refuses_so_the_command_can_exit_non_zero() -> None:
    """Before (issue 13): a refusal printed its sentence and the command exited 0."""
    assert resolve_command("gestern", "", "2025-11-05T10:00", False) == (
        "past_date: Dieser Tag liegt in der Vergangenheit. Welchen Tag meinen Sie?",
        True,
    )
    assert resolve_command("übermorgen", "halb drei", "2025-11-05T10:00", False) == (
        "übermorgen um 14:30 Uhr → Freitag, 07.11.2025, 14:30",
        False,
    )
    assert resolve_command("31.12.9999", "", "2025-11-05T10:00", True)[1] is True


def test_parse_command_uses_the_injected_clock_when_no_now_is_given() -> None:
    printed = json.loads(parse_command("morgen", "14 Uhr", None, True, now=WEDNESDAY))
    assert printed["date"] == "2025-11-06"
    with pytest.raises(ValueError):
        parse_command("morgen", "14 Uhr", None, True)
