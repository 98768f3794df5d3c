"""Properties of resolve_when and the spoken forms, over many reference times and words."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from rezeption.language import resolve_when, speak_date, speak_time, speak_when

BERLIN = ZoneInfo("Europe/Berlin")

# Reference times anywhere in 2025-2028, always in the salon's zone (DST days included).
# hypothesis takes naive bounds and attaches the zone itself.
reference_times = st.datetimes(
    min_value=datetime(2025, 1, 1),  # noqa: DTZ001
    max_value=datetime(2028, 12, 31, 23, 59),  # noqa: DTZ001
    timezones=st.just(BERLIN),
).map(lambda moment: moment.astimezone(UTC).astimezone(BERLIN))

WORDS = [
    "heute",
    "morgen",
    "übermorgen",
    "gestern",
    "Montag",
    "Donnerstag",
    "nächsten",
    "diesen",
    "übernächsten",
    "nächste",
    "Woche",
    "Wochenende",
    "Anfang",
    "Ende",
    "in",
    "drei",
    "zwei",
    "Tagen",
    "Wochen",
    "am",
    "fünften",
    "dreißigsten",
    "November",
    "Februar",
    "Januar",
    "Dezember",
    "31.",
    "29.02.",
    "5.11.2023",
    "2024-12-31",
    "2023-01-01",
    "1.1.",
    "12.",
    "um",
    "halb",
    "viertel",
    "vor",
    "nach",
    "14",
    "Uhr",
    "9",
    "vormittags",
    "nachmittags",
    "abends",
    "mittags",
    "kurz",
    "gegen",
    "äh",
    "bitte",
    "tomorrow",
    "next",
    "Friday",
    "3",
    "pm",
    "noon",
    "13.75",
    "25",
    "null",
    "eins",
]
phrases = st.lists(st.sampled_from(WORDS), min_size=0, max_size=6).map(" ".join)


@settings(max_examples=400, deadline=None)
@given(now=reference_times, date_words=phrases, time_words=phrases)
def test_never_a_date_in_the_past(now: datetime, date_words: str, time_words: str) -> None:
    when = resolve_when(date_words, time_words, now)
    today = now.date()
    days = [when.date, *(reading.date for reading in when.alternatives)]
    if when.window is not None:
        days += [when.window.first_day, when.window.last_day]
    assert all(day is None or day >= today for day in days)
    if when.date is not None and when.time is not None:
        assert datetime.combine(when.date, when.time, tzinfo=BERLIN) > now


@settings(max_examples=300, deadline=None)
@given(now=reference_times, ahead=st.integers(min_value=0, max_value=365))
def test_the_spoken_form_of_any_date_in_the_next_year_resolves_back_to_it(now: datetime, ahead: int) -> None:
    day = now.date() + timedelta(days=ahead)
    assert resolve_when(speak_date(day, now.date()), "", now).date == day


@settings(max_examples=300, deadline=None)
@given(hour=st.integers(0, 23), minute=st.integers(0, 59))
def test_every_clock_time_round_trips_through_its_spoken_form(hour: int, minute: int) -> None:
    now = datetime(2025, 11, 5, 10, 0, tzinfo=BERLIN)
    assert resolve_when("", speak_time(time(hour, minute)), now).time == time(hour, minute)


@settings(max_examples=200, deadline=None)
@given(now=reference_times, ahead=st.integers(min_value=1, max_value=365), hour=st.integers(7, 20))
def test_a_spoken_appointment_resolves_to_its_date_and_time(now: datetime, ahead: int, hour: int) -> None:
    day, at = now.date() + timedelta(days=ahead), time(hour, 30)
    when = resolve_when(speak_when(day, at, now.date()), "", now)
    assert (when.date, when.time) == (day, at)


@settings(max_examples=200, deadline=None)
@given(now=reference_times, day=st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)))
def test_an_iso_date_from_the_agent_is_never_in_the_past_and_keeps_day_and_month(
    now: datetime, day: date
) -> None:
    when = resolve_when(day.isoformat(), "", now)
    assert when.date is not None
    assert when.date >= now.date()
    assert (when.date.month, when.date.day) == (day.month, day.day)
    if day.year > now.year:
        assert when.date == day
